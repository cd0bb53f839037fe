"""Padding to a size multiple and overlapping-tile inference with a smooth blend window.

``tiled_apply`` runs a network on overlapping spatial tiles of its inputs and blends the outputs with a
raised-cosine ramp over the overlaps (0 on an inner tile edge, 1 elsewhere and on the image border),
normalised by the summed window. Peak memory of the network part is that of one tile. For the diffusion sampler only the
denoiser call is tiled: z_t and the noise stay full-size, so every tile sees the same noise field.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor


def pad_to_multiple(x: Tensor, multiple: int) -> tuple[Tensor, tuple[int, int]]:
    """Reflect-pad H, W (bottom/right) up to a multiple (replicate where the image is too small to reflect).

    Returns the padded tensor and the original (H, W), to crop back with ``y[..., :H, :W]``.
    """
    h, w = x.shape[-2:]
    pad_h, pad_w = (-h) % multiple, (-w) % multiple
    if pad_h or pad_w:
        mode = "reflect" if pad_h < h and pad_w < w else "replicate"
        x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
    return x, (h, w)


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size ``tile`` covering ``length`` with at least ``overlap`` shared pixels."""
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return starts


def _ramp(size: int, overlap: int, rise: bool, fall: bool) -> Tensor:
    """1-D window: raised-cosine rise/fall over ``overlap`` pixels on inner edges, 1 elsewhere.

    The weight is 0 exactly on an inner tile edge (whose value saw the tile's artificial border) and 1 on
    the image border; a neighbouring tile always has weight 1 there, so the window sum is never 0.
    """
    window = torch.ones(size)
    n = min(overlap, size)
    if n > 0:
        ramp = 0.5 - 0.5 * torch.cos(math.pi * torch.arange(n) / n)
        if rise:
            window[:n] = torch.minimum(window[:n], ramp)
        if fall:
            window[size - n:] = torch.minimum(window[size - n:], ramp.flip(0))
    return window


def tiled_apply(fn: Callable[..., Tensor], inputs: list[Tensor], *, tile: int, overlap: int = 32,
                multiple: int = 8) -> Tensor:
    """Apply ``fn(*tiles)`` on overlapping tiles of all ``inputs`` (same H×W) and blend the outputs.

    Args:
        fn: maps crops of the inputs [B, C_i, h, w] to an output [B, C_out, h, w].
        inputs: tensors cropped identically, [B, C_i, H, W].
        tile: tile side in pixels; rounded down to a multiple of ``multiple``. If H and W both fit,
            ``fn`` is called once on the whole image, so the result equals the untiled one exactly.
        overlap: pixels shared by neighbouring tiles (the blend ramp length), capped at tile // 2.
        multiple: the network's size multiple, so inner tiles need no padding.

    Shape:
        returns [B, C_out, H, W] (float32).
    """
    height, width = inputs[0].shape[-2:]
    tile = max(multiple, tile - tile % multiple)
    if height <= tile and width <= tile:
        return fn(*inputs)
    if overlap < 0:
        raise ValueError(f"tile overlap must be >= 0, got {overlap}")
    overlap = min(overlap, tile // 2)
    out: Tensor | None = None
    weight = torch.zeros(1, 1, height, width, device=inputs[0].device)
    ys, xs = tile_starts(height, tile, overlap), tile_starts(width, tile, overlap)
    for y0 in ys:
        th = min(tile, height)
        wy = _ramp(th, overlap, rise=y0 > 0, fall=y0 + th < height)
        for x0 in xs:
            tw = min(tile, width)
            wx = _ramp(tw, overlap, rise=x0 > 0, fall=x0 + tw < width)
            window = (wy[:, None] * wx[None, :]).to(weight.device)
            result = fn(*[x[..., y0:y0 + th, x0:x0 + tw] for x in inputs]).float()
            if out is None:
                out = result.new_zeros(result.shape[0], result.shape[1], height, width)
            out[..., y0:y0 + th, x0:x0 + tw] += result * window
            weight[..., y0:y0 + th, x0:x0 + tw] += window
    return out / weight
