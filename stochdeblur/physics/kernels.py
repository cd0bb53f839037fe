"""Blur-kernel utilities: normalisation, re-centring, resizing between scales, support pruning, comparison.

Kernels are ``[k, k]`` or ``[B, k, k]`` tensors, non-negative and summing to 1, centre pixel ``(k // 2, k // 2)``
(the convention of :func:`stochdeblur.data.synth.degrade`). :func:`normalize`, :func:`resize` and
:func:`pad_to` are differentiable; :func:`prune` and :func:`center` are projections used between the steps of an
estimator (integer shifts and connected components), not inside a network.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import Tensor


def normalize(kernel: Tensor, eps: float = 1e-12) -> Tensor:
    """Clamp negatives to 0 and scale each kernel to sum 1 (a zero kernel becomes a delta)."""
    kernel = kernel.clamp_min(0.0)
    total = kernel.sum(dim=(-2, -1), keepdim=True)
    delta = torch.zeros_like(kernel)
    delta[..., kernel.shape[-2] // 2, kernel.shape[-1] // 2] = 1.0
    return torch.where(total > eps, kernel / total.clamp_min(eps), delta)


def delta(size: int, *, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> Tensor:
    """The identity kernel of side ``size`` (1 at the centre pixel)."""
    kernel = torch.zeros(size, size, dtype=dtype, device=device)
    kernel[size // 2, size // 2] = 1.0
    return kernel


def center_of_mass(kernel: Tensor) -> Tensor:
    """(row, column) centre of mass of each kernel, ``[..., 2]``."""
    kh, kw = kernel.shape[-2:]
    total = kernel.sum(dim=(-2, -1)).clamp_min(1e-12)
    rows = torch.arange(kh, dtype=kernel.dtype, device=kernel.device)
    cols = torch.arange(kw, dtype=kernel.dtype, device=kernel.device)
    return torch.stack([(kernel.sum(-1) * rows).sum(-1) / total, (kernel.sum(-2) * cols).sum(-1) / total], dim=-1)


def _shift_zero_fill(kernel: Tensor, dy: int, dx: int) -> Tensor:
    kh, kw = kernel.shape[-2:]
    out = torch.zeros_like(kernel)
    src_y, dst_y = slice(max(0, -dy), min(kh, kh - dy)), slice(max(0, dy), min(kh, kh + dy))
    src_x, dst_x = slice(max(0, -dx), min(kw, kw - dx)), slice(max(0, dx), min(kw, kw + dx))
    out[..., dst_y, dst_x] = kernel[..., src_y, src_x]
    return out


def center(kernel: Tensor) -> Tensor:
    """Shift each kernel by whole pixels so its centre of mass is nearest the centre pixel (zero fill).

    A blind estimate is only defined up to a translation (the latent image moves the other way); centring makes
    the deconvolution's output aligned with the input, as the synthetic pairs are.
    """
    if kernel.dim() == 3:
        return torch.stack([center(k) for k in kernel])
    com = center_of_mass(kernel)
    dy = int(round(kernel.shape[-2] // 2 - float(com[0])))
    dx = int(round(kernel.shape[-1] // 2 - float(com[1])))
    return _shift_zero_fill(kernel, dy, dx)


def resize(kernel: Tensor, size: int) -> Tensor:
    """Resample kernels to side ``size`` (bilinear, centre to centre) and renormalise: moves between scales."""
    if kernel.shape[-1] == size and kernel.shape[-2] == size:
        return kernel
    batch_shape = kernel.shape[:-2]
    flat = kernel.reshape(-1, 1, *kernel.shape[-2:])
    out = F.interpolate(flat, size=(size, size), mode="bilinear", align_corners=True)
    return normalize(out.reshape(*batch_shape, size, size))


def pad_to(kernel: Tensor, size: int) -> Tensor:
    """Zero-pad (or centre-crop) kernels to side ``size`` keeping the centre pixel at ``size // 2``."""
    out = kernel
    for dim in (-2, -1):
        k = out.shape[dim]
        before = size // 2 - k // 2
        if before < 0:
            out = out.narrow(dim, -before, size)
            continue
        pads = [0, 0, 0, 0]
        pads[0 if dim == -1 else 2], pads[1 if dim == -1 else 3] = before, size - k - before
        out = F.pad(out, pads)
    return out


def prune(kernel: Tensor, threshold: float = 0.05, component_mass: float = 0.0) -> Tensor:
    """Keep a kernel's support: zero values below ``threshold × max``, drop connected components (8-connected)
    whose share of the mass is below ``component_mass``, renormalise.

    This is the projection coarse-to-fine estimators apply after each kernel update (Pan et al. 2014: small
    isolated blobs are noise fitted by the least-squares step, not camera motion).
    """
    if kernel.dim() == 3:
        return torch.stack([prune(k, threshold, component_mass) for k in kernel])
    values = kernel.detach().cpu().double().numpy()
    keep = values >= threshold * values.max()
    if component_mass > 0 and keep.any():
        labels, count = ndimage.label(keep, structure=np.ones((3, 3)))
        mass = ndimage.sum(values, labels, index=np.arange(1, count + 1))
        small = np.flatnonzero(mass < component_mass * mass.sum()) + 1
        keep &= ~np.isin(labels, small)
    mask = torch.from_numpy(keep).to(kernel.device)
    return normalize(torch.where(mask, kernel, torch.zeros_like(kernel)))


def ncc(estimate: Tensor, truth: Tensor, max_shift: int | None = None) -> float:
    """Normalised cross-correlation ``max_s ⟨a, b_s⟩ / (‖a‖ ‖b‖)`` of two kernels over integer shifts ``s`` (a blind
    estimate is defined up to a translation; within ``max_shift`` px when given). Different sizes are padded to
    the larger; 1 = same shape. No mean is removed: kernels are non-negative and their zero background matters.
    """
    size = max(estimate.shape[-1], truth.shape[-1], estimate.shape[-2], truth.shape[-2])
    a = pad_to(estimate.detach().double().cpu(), size)
    b = pad_to(truth.detach().double().cpu(), size)
    denom = float(a.norm() * b.norm())
    if denom == 0.0:
        return 0.0
    corr = F.conv2d(F.pad(a, (size - 1,) * 4)[None, None], b[None, None])[0, 0]
    if max_shift is not None:
        mid = size - 1
        corr = corr[mid - max_shift:mid + max_shift + 1, mid - max_shift:mid + max_shift + 1]
    return float(corr.max()) / denom
