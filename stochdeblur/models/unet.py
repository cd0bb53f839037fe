"""The DvSR UNet: one class for the initial predictor g and the residual denoiser f.

SR3-style layout (DESIGN.md §3, DVSR.md §1): channel multipliers (1, 2, 3, 4) on a base width C, 3 ResBlocks per
encoder level and ``num_res_blocks + 1`` per decoder level fed with concatenated skips, 2 middle blocks, Swish,
residual stride-2 downsampling and nearest-×2 + conv upsampling (the "residual up/down blocks" of the DvSR
supplement as re-implemented by nothonfz/Debluring-via-Stochastic-Refinement), a Swish + 3×3 conv head, no tanh.
There is **no attention and no normalization layer**, so a model trained on 128² crops behaves the same on
1280×720 frames. With ``noise_embed=True`` the continuous noise level √ᾱ is embedded (sinusoidal of √ᾱ·scale →
Linear(C,4C) → Swish → Linear(4C,C)) and added per block as a channel bias (or FiLM, ``film=True``).

Paper widths: g = UNet(3→3, C=64) ≈ 26.8M parameters, f = UNet(6→3, C=32, noise_embed) ≈ 6.8M.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stochdeblur.tiling import pad_to_multiple


def sinusoidal_embedding(noise_level: Tensor, dim: int, scale: float = 1000.0) -> Tensor:
    """WaveGrad/SR3 encoding of a continuous noise level: [sin(s·v·ω_k), cos(s·v·ω_k)], ω_k = 1e4^(−k/(dim/2)).

    Computed in float32 whatever the autocast state, so small noise-level differences stay resolved.

    Shape:
        noise_level [B] (√ᾱ in [0, 1]) → [B, dim].
    """
    half = dim // 2
    steps = torch.arange(half, dtype=torch.float32, device=noise_level.device) / half
    freqs = torch.exp(-math.log(1e4) * steps)
    angles = noise_level.float().mul(scale).unsqueeze(1) * freqs.unsqueeze(0)
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


class _NoiseInjection(nn.Module):
    """Per-block projection of the noise embedding: channel bias, or FiLM (1+γ)·h + β."""

    def __init__(self, emb_dim: int, channels: int, film: bool) -> None:
        super().__init__()
        self.film = film
        self.proj = nn.Linear(emb_dim, channels * (2 if film else 1))

    def forward(self, h: Tensor, emb: Tensor) -> Tensor:
        params = self.proj(emb)[:, :, None, None].to(h.dtype)
        if self.film:
            gamma, beta = params.chunk(2, dim=1)
            return h * (1 + gamma) + beta
        return h + params


def _injection(emb_dim: int | None, channels: int, film: bool) -> _NoiseInjection | None:
    return None if emb_dim is None else _NoiseInjection(emb_dim, channels, film)


class ResBlock(nn.Module):
    """Swish → conv3×3 → (+noise) → Swish → dropout → conv3×3, plus a (1×1 if needed) shortcut."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int | None, dropout: float, film: bool) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.noise = _injection(emb_dim, out_ch, film)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor | None) -> Tensor:
        """Shape: [B, in_ch, H, W] → [B, out_ch, H, W]."""
        h = self.conv1(F.silu(x))
        if self.noise is not None:
            h = self.noise(h, emb)
        h = self.conv2(self.dropout(F.silu(h)))
        return h + self.skip(x)


class Downsample(nn.Module):
    """Residual stride-2 block: Swish → conv3×3/2 → Swish → conv3×3 → (+noise) → Swish → dropout → conv3×3, + 1×1/2."""

    def __init__(self, ch: int, emb_dim: int | None, dropout: float, film: bool) -> None:
        super().__init__()
        self.conv_down = nn.Conv2d(ch, ch, 3, stride=2, padding=1)
        self.conv1 = nn.Conv2d(ch, ch, 3, padding=1)
        self.noise = _injection(emb_dim, ch, film)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1)
        self.skip = nn.Conv2d(ch, ch, 1, stride=2)

    def forward(self, x: Tensor, emb: Tensor | None) -> Tensor:
        """Shape: [B, C, H, W] → [B, C, H/2, W/2] (H, W even)."""
        h = self.conv1(F.silu(self.conv_down(F.silu(x))))
        if self.noise is not None:
            h = self.noise(h, emb)
        h = self.conv2(self.dropout(F.silu(h)))
        return h + self.skip(x)


class Upsample(nn.Module):
    """Residual ×2 block: Swish → nearest×2 → conv3×3 → (+noise) → Swish → dropout → conv3×3, + 1×1(nearest×2)."""

    def __init__(self, ch: int, emb_dim: int | None, dropout: float, film: bool) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, padding=1)
        self.noise = _injection(emb_dim, ch, film)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1)
        self.skip = nn.Conv2d(ch, ch, 1)

    def forward(self, x: Tensor, emb: Tensor | None) -> Tensor:
        """Shape: [B, C, H, W] → [B, C, 2H, 2W]."""
        up = F.interpolate(x, scale_factor=2.0, mode="nearest")
        h = self.conv1(F.interpolate(F.silu(x), scale_factor=2.0, mode="nearest"))
        if self.noise is not None:
            h = self.noise(h, emb)
        h = self.conv2(self.dropout(F.silu(h)))
        return h + self.skip(up)


class UNet(nn.Module):
    """Fully convolutional UNet for any H×W (reflect-padded to ``size_multiple`` and cropped back).

    Args:
        in_channels: input channels (3 for g; 6 = [y, z_t] for f; 9 with g(y) as extra condition).
        out_channels: output channels (3).
        base_channels: base width C (64 for g, 32 for f in the paper).
        channel_mults: width multipliers per level; ``2**(len-1)`` is the size multiple.
        num_res_blocks: ResBlocks per encoder level (decoder levels get one more).
        dropout: dropout inside the blocks.
        noise_embed: whether ``forward`` takes the continuous noise level √ᾱ.
        film: FiLM (scale and bias) instead of a bias for the noise embedding.
        noise_embed_scale: multiplier on √ᾱ before the sinusoidal encoding (so frequencies resolve).
        input_residual: :meth:`forward` returns ``x[:, :out_channels] + UNet(x)`` and the head starts at zero,
            so the network starts as the identity and learns a correction (used for the predictor g).
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 3, base_channels: int = 64,
                 channel_mults: tuple[int, ...] | list[int] = (1, 2, 3, 4), num_res_blocks: int = 3,
                 dropout: float = 0.0, noise_embed: bool = False, film: bool = False,
                 noise_embed_scale: float = 1000.0, input_residual: bool = False) -> None:
        super().__init__()
        if input_residual and in_channels < out_channels:
            raise ValueError(f"input_residual needs in_channels >= out_channels, got {in_channels} < {out_channels}")
        self.input_residual = input_residual
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.base_channels = base_channels
        self.noise_embed = noise_embed
        self.noise_embed_scale = noise_embed_scale
        self.size_multiple = 2 ** (len(channel_mults) - 1)
        emb_dim = base_channels if noise_embed else None
        self.noise_mlp = (nn.Sequential(nn.Linear(base_channels, 4 * base_channels), nn.SiLU(),
                                        nn.Linear(4 * base_channels, base_channels)) if noise_embed else None)

        self.stem = nn.Conv2d(in_channels, base_channels, 3, padding=1)
        skip_channels = [base_channels]
        ch = base_channels
        self.down = nn.ModuleList()
        for level, mult in enumerate(channel_mults):
            for _ in range(num_res_blocks):
                self.down.append(ResBlock(ch, base_channels * mult, emb_dim, dropout, film))
                ch = base_channels * mult
                skip_channels.append(ch)
            if level < len(channel_mults) - 1:
                self.down.append(Downsample(ch, emb_dim, dropout, film))
                skip_channels.append(ch)

        self.middle = nn.ModuleList([ResBlock(ch, ch, emb_dim, dropout, film) for _ in range(2)])

        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mults))):
            for _ in range(num_res_blocks + 1):
                self.up.append(ResBlock(ch + skip_channels.pop(), base_channels * mult, emb_dim, dropout, film))
                ch = base_channels * mult
            if level > 0:
                self.up.append(Upsample(ch, emb_dim, dropout, film))
        self.head = nn.Conv2d(ch, out_channels, 3, padding=1)
        if input_residual:
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def _embed(self, noise_level: Tensor | None, batch: int) -> Tensor | None:
        if not self.noise_embed:
            return None
        if noise_level is None:
            raise ValueError("this UNet was built with noise_embed=True: forward() needs noise_level [B]")
        noise_level = noise_level.reshape(-1)
        if noise_level.numel() == 1:
            noise_level = noise_level.expand(batch)
        if noise_level.numel() != batch:
            raise ValueError(f"noise_level has {noise_level.numel()} entries for a batch of {batch}")
        return self.noise_mlp(sinusoidal_embedding(noise_level, self.base_channels, self.noise_embed_scale))

    def forward(self, x: Tensor, noise_level: Tensor | None = None) -> Tensor:
        """Run the UNet on any spatial size.

        Args:
            x: input batch (images or [condition, z_t] concatenated), typically in [-1, 1].
            noise_level: √ᾱ per batch element, in [0, 1]; required iff ``noise_embed``.

        Shape:
            x [B, in_channels, H, W] → [B, out_channels, H, W]; unbounded output (no tanh).
        """
        height, width = x.shape[-2:]
        h, skips, emb = self.encode(x, noise_level)
        out = self.decode(h, skips, emb)[..., :height, :width]
        return out + x[:, : self.out_channels] if self.input_residual else out

    def encode(self, x: Tensor, noise_level: Tensor | None = None) -> tuple[Tensor, list[Tensor], Tensor | None]:
        """Encoder half (embedding, padding, stem, down path), split out for XYDeblur (``models/xy.py``).

        Shape:
            x [B, in_channels, H, W] → (bottleneck [B, C_L, H'/m, W'/m], skips, embedding [B, C] or None),
            where H', W' are H, W padded to ``size_multiple`` m.
        """
        # 1. noise-level embedding (None for the predictor)
        emb = self._embed(noise_level, x.shape[0])
        # 2. pad to a multiple of 8, stem
        h = self.stem(pad_to_multiple(x, self.size_multiple)[0])
        # 3. encoder, keeping every output as a skip
        skips = [h]
        for block in self.down:
            h = block(h, emb)
            skips.append(h)
        return h, skips, emb

    def decode(self, h: Tensor, skips: list[Tensor], emb: Tensor | None) -> Tensor:
        """Decoder half (middle, up path with skips, head) on :meth:`encode`'s outputs; fully convolutional.

        Shape:
            bottleneck [B, C_L, h, w] and skips → [B, out_channels, h·m, w·m] (padded size, not cropped).
        """
        skips = list(skips)
        # 4. middle
        for block in self.middle:
            h = block(h, emb)
        # 5. decoder: ResBlocks take the concatenated skip, Upsample blocks do not
        for block in self.up:
            if isinstance(block, ResBlock):
                h = torch.cat([h, skips.pop()], dim=1)
            h = block(h, emb)
        # 6. head (the caller crops back)
        return self.head(F.silu(h))
