"""Geometric transforms applied identically to every image of a pair (blur, sharp), so pairs stay aligned.

All functions take a sequence of [C, H, W] tensors of one size and a ``numpy.random.Generator``; the
window, flips and rotation are drawn once and applied to each image.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor


def _size2(size: int | tuple[int, int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def _check_same_size(images: Sequence[Tensor]) -> tuple[int, int]:
    if not images:
        raise ValueError("no images given")
    sizes = {tuple(img.shape[-2:]) for img in images}
    if len(sizes) != 1:
        raise ValueError(f"images of a pair differ in size: {sorted(sizes)}")
    return next(iter(sizes))


def _reflect_index(n: int, before: int, after: int) -> Tensor:
    """Indices into a length-``n`` axis that mirror it (without repeating the edge) for any pad width."""
    idx = torch.arange(-before, n + after)
    if n == 1:
        return torch.zeros_like(idx)
    period = 2 * (n - 1)
    idx = torch.remainder(idx, period)
    return torch.where(idx >= n, period - idx, idx)


def reflect_pad_to(images: Sequence[Tensor], size: int | tuple[int, int]) -> list[Tensor]:
    """Mirror-pad images (centred) so each side is at least ``size``; larger images pass unchanged."""
    height, width = _check_same_size(images)
    target_h, target_w = _size2(size)
    pad_h, pad_w = max(0, target_h - height), max(0, target_w - width)
    if pad_h == 0 and pad_w == 0:
        return list(images)
    rows = _reflect_index(height, pad_h // 2, pad_h - pad_h // 2)
    cols = _reflect_index(width, pad_w // 2, pad_w - pad_w // 2)
    return [img[..., rows, :][..., cols] for img in images]


def paired_random_crop(
    images: Sequence[Tensor], size: int | tuple[int, int], rng: np.random.Generator
) -> list[Tensor]:
    """Crop the same random ``size`` window from every image (mirror-padding images that are smaller)."""
    images = reflect_pad_to(images, size)
    height, width = _check_same_size(images)
    crop_h, crop_w = _size2(size)
    top = int(rng.integers(0, height - crop_h + 1))
    left = int(rng.integers(0, width - crop_w + 1))
    return [img[..., top : top + crop_h, left : left + crop_w] for img in images]


def paired_center_crop(images: Sequence[Tensor], size: int | tuple[int, int]) -> list[Tensor]:
    """Crop the same central ``size`` window from every image (mirror-padding images that are smaller)."""
    images = reflect_pad_to(images, size)
    height, width = _check_same_size(images)
    crop_h, crop_w = _size2(size)
    top, left = (height - crop_h) // 2, (width - crop_w) // 2
    return [img[..., top : top + crop_h, left : left + crop_w] for img in images]


def paired_augment(images: Sequence[Tensor], rng: np.random.Generator) -> list[Tensor]:
    """Apply one of the 8 flips/rotations by 90° (uniformly drawn) to every image.

    A transpose swaps height and width, so non-square inputs may come back rotated.
    """
    _check_same_size(images)
    hflip, vflip, transpose = (bool(b) for b in rng.integers(0, 2, size=3))
    out = []
    for img in images:
        if hflip:
            img = torch.flip(img, dims=(-1,))
        if vflip:
            img = torch.flip(img, dims=(-2,))
        if transpose:
            img = img.transpose(-1, -2)
        out.append(img.contiguous())
    return out
