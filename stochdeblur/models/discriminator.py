"""PatchGAN critics of DeblurGAN-v2 / v1 (DEBLURGAN.md §2): ``NLayerDiscriminator`` and the double-scale pair.

ndf 64, 4×4 kernels with padding 2, LeakyReLU 0.2, instance norm (no affine), conv bias on, no sigmoid.
n_layers=3 is the 70×70 PatchGAN (2,764,737 parameters, a 35² map at 256²); n_layers=5 is the "full" branch
(11,154,369 parameters, receptive field 286 px: the whole 256² crop, an 11² map).
"""

from __future__ import annotations

from torch import Tensor, nn

BRANCH_LAYERS = {"patch": 3, "full": 5}


class NLayerDiscriminator(nn.Module):
    """PatchGAN: C64/2 → (n−1)×[conv/2, ×2 channels capped at 512, IN] → conv/1 + IN → conv/1 to one channel.

    Args:
        in_channels: image channels.
        ndf: width of the first layer.
        n_layers: number of stride-2 convs (3: 70 px receptive field; 5: 286 px).
    """

    def __init__(self, in_channels: int = 3, ndf: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, stride=2, padding=2), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2 ** n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride=stride, padding=2),
                       nn.InstanceNorm2d(ndf * mult), nn.LeakyReLU(0.2, True)]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=2))
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """Unbounded realness scores per patch.

        Shape:
            x [B, C, H, W] in [-1, 1] → [B, 1, h, w] (h ≈ H / 2**(n_layers−1) + 3).
        """
        return self.model(x)


class DoubleScaleDiscriminator(nn.Module):
    """DeblurGAN-v2 ``double_gan``: a PatchGAN branch (n_layers 3) and a full-image branch (n_layers 5).

    Both see the whole image; the trainer averages their losses. ``branches`` keeps only some of them
    (``("patch",)`` is DeblurGAN v1's critic).
    """

    def __init__(self, branches: tuple[str, ...] = ("patch", "full"), in_channels: int = 3, ndf: int = 64) -> None:
        super().__init__()
        unknown = [b for b in branches if b not in BRANCH_LAYERS]
        if unknown or not branches:
            raise ValueError(f"DoubleScaleDiscriminator: branches={branches!r}; choose from patch, full")
        self.branches = nn.ModuleDict({b: NLayerDiscriminator(in_channels, ndf, BRANCH_LAYERS[b]) for b in branches})

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """Score maps per branch.

        Shape:
            x [B, C, H, W] in [-1, 1] → {"patch": [B, 1, h1, w1], "full": [B, 1, h2, w2]}.
        """
        return {name: branch(x) for name, branch in self.branches.items()}
