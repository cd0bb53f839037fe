"""DeblurGAN v1 generator (Kupyn et al., CVPR 2018): ``resnet_9blocks`` with instance norm, dropout and a
learned residual, as in the last correct upstream revision (DEBLURGAN.md §5; 11,378,179 parameters).

Deviation: the official test code never calls ``eval()``, so dropout stays active at inference; here
``eval()`` turns it off as usual (instance norm uses per-image statistics in both modes). Inputs are
reflect-padded to a multiple of 4 and cropped back, so any H×W works.
"""

from __future__ import annotations

from torch import Tensor, nn

from ..tiling import pad_to_multiple


class ResnetBlock(nn.Module):
    """[ReflPad1, conv3, IN, ReLU, Dropout, ReflPad1, conv3, IN] + identity."""

    def __init__(self, channels: int, dropout: float) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels), nn.ReLU(True),
            nn.Dropout(dropout),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels))

    def forward(self, x: Tensor) -> Tensor:
        """Shape: [B, C, H, W] → [B, C, H, W]."""
        return x + self.block(x)


class ResnetGenerator(nn.Module):
    """conv7 → 2 strided convs → ``n_blocks`` ResBlocks → 2 transposed convs → conv7 → tanh, + input, clamp.

    Args:
        ngf: base width (64).
        n_blocks: residual blocks at 1/4 resolution (9).
        dropout: dropout inside each ResBlock (0.5).
        learn_residual: output ``clamp(x + G(x), -1, 1)`` (official ``--learn_residual``) instead of ``G(x)``.
    """

    size_multiple = 4

    def __init__(self, ngf: int = 64, n_blocks: int = 9, dropout: float = 0.5, learn_residual: bool = True) -> None:
        super().__init__()
        self.learn_residual = learn_residual
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(3, ngf, 7), nn.InstanceNorm2d(ngf), nn.ReLU(True)]
        for mult in (1, 2):
            layers += [nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1),
                       nn.InstanceNorm2d(ngf * mult * 2), nn.ReLU(True)]
        layers += [ResnetBlock(ngf * 4, dropout) for _ in range(n_blocks)]
        for mult in (4, 2):
            layers += [nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 3, stride=2, padding=1, output_padding=1),
                       nn.InstanceNorm2d(ngf * mult // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """Deblur a batch of any size.

        Shape:
            x [B, 3, H, W] in [-1, 1] → [B, 3, H, W] in [-1, 1].
        """
        padded, (height, width) = pad_to_multiple(x, self.size_multiple)
        out = self.model(padded)
        if self.learn_residual:
            out = (out + padded).clamp(-1.0, 1.0)
        return out[..., :height, :width]
