"""XYDeblur (Ji et al., CVPR 2022) as a wrapper around the DvSR UNet: one encoder, one decoder used twice.

With E = ``unet.encode`` (bottleneck and every skip), D = ``unet.decode`` and R = ``rot90(k=1)`` on H, W::

    f(x) = x + D(E x) + R⁻¹ D(R E x)

(R applied to the bottleneck and to every skip, the second output rotated back with ``k=-1``). No new
parameters. Non-square inputs work: R swaps the padded H'×W' of every feature map, and the fully convolutional
decoder returns W'×H', which R⁻¹ turns back.

Equivariance, stated precisely: if E commutes with R and D commutes with R² (180°), then
f(R x) = R f(x) — the second branch turns a decoder with only 180° symmetry into a 90°-equivariant model
(proof: f(Rx) = Rx + D(REx) + R⁻¹D(R²Ex) = Rx + D(REx) + R·D(Ex) = R f(x)). A learned UNet satisfies neither
hypothesis exactly (generic kernels, stride-2 sampling grids and bottom/right padding are not
rotation-symmetric), so for trained weights this is an inductive bias, not an identity.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def _rot(x: Tensor, k: int) -> Tensor:
    return torch.rot90(x, k=k, dims=(-2, -1))


class XYDeblur(nn.Module):
    """Dual-direction decoding around a UNet with ``encode``/``decode`` (``stochdeblur.models.unet.UNet``).

    Args:
        unet: the wrapped network; needs ``in_channels == out_channels`` for the global residual.
    """

    def __init__(self, unet: nn.Module) -> None:
        super().__init__()
        if unet.in_channels != unet.out_channels:
            raise ValueError(f"XYDeblur needs in_channels == out_channels for its residual, got "
                             f"{unet.in_channels} → {unet.out_channels}")
        self.unet = unet
        self.size_multiple = unet.size_multiple

    def forward(self, x: Tensor, noise_level: Tensor | None = None) -> Tensor:
        """x + D(E x) + rot90⁻¹ D(rot90 E x), cropped back to the input size.

        Shape:
            x [B, C, H, W] (any H×W) → [B, C, H, W]; unbounded (like the UNet, no tanh).
        """
        height, width = x.shape[-2:]
        h, skips, emb = self.unet.encode(x, noise_level)
        direct = self.unet.decode(h, skips, emb)
        rotated = self.unet.decode(_rot(h, 1), [_rot(s, 1) for s in skips], emb)
        return x + (direct + _rot(rotated, -1))[..., :height, :width]
