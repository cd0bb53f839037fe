"""Classical *non-blind* deconvolution baselines (told the true kernel), for benchmarks only.

They answer "how much of the gap does a learned blind model close against a method that knows the blur?".
Both work on a [3, H, W] tensor in [-1, 1] and return the same shape. The blurry image is edge-tapered
(reflect-padded by the kernel size, then cropped back) so the FFT's circular boundary does not ring.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.signal import fftconvolve
from torch import Tensor


def _to_unit_hwc(image: Tensor) -> np.ndarray:
    return ((image.detach().cpu().float().clamp(-1, 1) + 1) / 2).permute(1, 2, 0).numpy().astype(np.float64)


def _from_unit_hwc(image: np.ndarray) -> Tensor:
    return torch.from_numpy(np.clip(image, 0, 1) * 2 - 1).permute(2, 0, 1).float().contiguous()


def _pad_for(kernel: np.ndarray) -> int:
    return max(kernel.shape)


def _odd(kernel: np.ndarray) -> np.ndarray:
    """Zero-pad an even side at its end so the centre pixel stays ``(k_h // 2, k_w // 2)``.

    That is the centre :func:`stochdeblur.data.synth.degrade` aligns blur and sharp with; ``fftconvolve``'s
    "same" mode centres an even kernel at ``(k - 1) // 2`` instead, a one-pixel shift that also breaks the
    Richardson–Lucy adjoint. Odd kernels are returned unchanged.
    """
    kh, kw = kernel.shape
    return np.pad(kernel, ((0, 1 - kh % 2), (0, 1 - kw % 2)))


def wiener_deconvolve(blur: Tensor, kernel: np.ndarray, nsr: float = 1e-2) -> Tensor:
    """Wiener filter with a constant noise-to-signal ratio ``nsr``; ``kernel`` sums to 1, centre ``(k // 2, k // 2)``.

    Shape: [3, H, W] in [-1, 1] -> [3, H, W] in [-1, 1].
    """
    kernel = _odd(kernel)
    pad = _pad_for(kernel)
    image = np.pad(_to_unit_hwc(blur), ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
    h, w = image.shape[:2]
    psf = np.zeros((h, w))
    kh, kw = kernel.shape
    psf[:kh, :kw] = kernel
    psf = np.roll(psf, (-((kh - 1) // 2), -((kw - 1) // 2)), axis=(0, 1))  # same centre as fftconvolve "same"
    otf = np.fft.fft2(psf)
    gain = np.conj(otf) / (np.abs(otf) ** 2 + nsr)
    out = np.stack([np.real(np.fft.ifft2(np.fft.fft2(image[..., c]) * gain)) for c in range(3)], axis=-1)
    return _from_unit_hwc(out[pad:-pad, pad:-pad])


def richardson_lucy(blur: Tensor, kernel: np.ndarray, iterations: int = 30) -> Tensor:
    """Richardson–Lucy deconvolution (multiplicative, non-negative); more iterations sharpen and amplify noise.

    ``kernel`` sums to 1 with its centre at ``(k // 2, k // 2)``, as in :func:`stochdeblur.data.synth.degrade`.

    Shape: [3, H, W] in [-1, 1] -> [3, H, W] in [-1, 1].
    """
    kernel = _odd(kernel)
    pad = _pad_for(kernel)
    image = np.pad(_to_unit_hwc(blur), ((pad, pad), (pad, pad), (0, 0)), mode="reflect") + 1e-6
    flipped = kernel[::-1, ::-1]
    estimate = np.full_like(image, 0.5)
    for _ in range(iterations):
        for c in range(3):
            reblurred = fftconvolve(estimate[..., c], kernel, mode="same")
            ratio = image[..., c] / np.maximum(reblurred, 1e-6)
            estimate[..., c] *= fftconvolve(ratio, flipped, mode="same")
    return _from_unit_hwc(estimate[pad:-pad, pad:-pad])
