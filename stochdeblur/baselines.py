"""Classical deconvolution baselines for benchmarks: non-blind (told the true kernel) and blind.

They answer "how much of the gap does a learned blind model close against a method that knows the blur, or
against classical blind deblurring?". All take a *valid*-blurred [3, H, W] tensor in [-1, 1] (as
:func:`stochdeblur.data.synth.degrade` makes) and return the aligned [3, H, W] in [-1, 1], clamped; kernels
follow synth's convention (sum 1, centre pixel ``(k // 2, k // 2)``). The FFT work is
:mod:`stochdeblur.physics`, whose solvers fit only the observed pixels, so the frame border does not ring:

* :func:`wiener_deconvolve`: the quadratic-gradient-prior ("wiener") solve of :func:`physics.deconvolve`;
* :func:`richardson_lucy`: multiplicative Richardson–Lucy on the valid forward operator, normalised by the
  adjoint of ones (the boundary-exact variant of Bertero & Boccacci 2005);
* :func:`blind_deconvolve`: the blind kernel estimate of Pan et al. (:mod:`stochdeblur.physics.blind`), its
  TV deconvolution, and a milder output where :func:`~stochdeblur.physics.blind.kernel_confidence` distrusts
  the estimate (:func:`blind_estimate` also returns that confidence; :func:`checked_deconvolution` is that
  second half for a given kernel).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from stochdeblur.physics import deconvolve
from stochdeblur.physics import kernels as K
from stochdeblur.physics.blind import estimate_kernel, kernel_confidence
from stochdeblur.physics.nonblind import fft_size
from stochdeblur.physics.operators import crop_offset, psf2otf

# blind_deconvolve: below BLIND_TRUST kernel_confidence the estimate is not trusted and the output is
# BLIND_FALLBACK × deconvolution + (1 − BLIND_FALLBACK) × input. Chosen on 96 synthetic tuning pairs (33-px
# window): mean gain over the blurry input +3.15 → +3.75 dB, worst −7.4 → −3.3 dB (benchmarks/blind_kernel.py
# measures it on other pairs).
BLIND_TRUST = 1.0
BLIND_FALLBACK = 0.5
EPS = 1e-6


def _kernel(kernel: np.ndarray | Tensor) -> Tensor:
    """A float32 square kernel tensor; a non-square one is zero-padded keeping its centre pixel ``k // 2``."""
    k = torch.as_tensor(np.asarray(kernel), dtype=torch.float32)
    return K.pad_to(k, max(k.shape))


def wiener_deconvolve(blur: Tensor, kernel: np.ndarray, nsr: float | None = None) -> Tensor:
    """Wiener deconvolution with a quadratic gradient prior of weight ``nsr`` (a noise-to-signal ratio of
    image gradients, [0, 1] units; None = the tuned default of ``physics.nonblind``), exact at the border.

    Shape: [3, H, W] in [-1, 1] -> [3, H, W] in [-1, 1].
    """
    return deconvolve(blur.float()[None], _kernel(kernel), prior="wiener", lam=nsr)[0].clamp(-1.0, 1.0)


def richardson_lucy(blur: Tensor, kernel: np.ndarray, iterations: int = 30) -> Tensor:
    """Richardson–Lucy deconvolution (multiplicative, non-negative); more iterations sharpen and add noise.

    The estimate lives on the whole sharp support ``(H + k − 1) × (W + k − 1)`` (started from the
    replicate-padded input); each step multiplies it by ``Kᵀ(y / Kx) / Kᵀ1``, ``K`` the valid blur (by FFT
    on a frame that holds the support, so the circular blur never wraps into the data): border pixels that
    few observations see are not pulled down. Shape: [3, H, W] in [-1, 1] -> [3, H, W] in [-1, 1].
    """
    k = _kernel(kernel)
    y = ((blur.detach().float() + 1.0) * 0.5).clamp_min(0.0)
    h, w = y.shape[-2:]
    size = k.shape[-1]
    top = crop_offset(size)
    frame = (fft_size(h + size - 1), fft_size(w + size - 1))
    pads = (top, frame[1] - w - top, top, frame[0] - h - top)  # y sits at (top, top) of the frame
    otf = psf2otf(k, frame)
    support = torch.zeros(frame)
    support[: h + size - 1, : w + size - 1] = 1.0

    def forward(x: Tensor) -> Tensor:
        return torch.fft.irfft2(torch.fft.rfft2(x) * otf, s=frame)

    def adjoint(r: Tensor) -> Tensor:
        return torch.fft.irfft2(torch.fft.rfft2(r) * otf.conj(), s=frame)

    data = F.pad(y, pads)  # zero outside the observed window, so the ratio below is too
    seen = adjoint(F.pad(torch.ones(h, w), pads)).clamp_min(EPS)
    x = F.pad(y[None], pads, mode="replicate")[0] * support
    for _ in range(iterations):
        x = (x * adjoint(data / forward(x).clamp_min(EPS)) / seen).clamp_min(0.0) * support
    return (x[:, top:top + h, top:top + w] * 2.0 - 1.0).clamp(-1.0, 1.0)


def mix_untrusted(y: Tensor, latent: Tensor, confidence: float, *, trust: float = BLIND_TRUST,
                  fallback: float = BLIND_FALLBACK) -> Tensor:
    """:func:`blind_deconvolve`'s fallback: ``latent`` where ``confidence`` (``kernel_confidence``) reaches
    ``trust``, else ``fallback`` of it mixed with the blurry ``y``."""
    return latent if confidence >= trust else torch.lerp(y.to(latent.dtype), latent, fallback)


@dataclass(frozen=True)
class BlindEstimate:
    """What :func:`blind_estimate` found: the restored image [3, H, W] in [-1, 1], the kernel [k, k] and its
    re-blur confidence (``kernel_confidence`` of the unmixed deconvolution; below ``trust`` the image is mixed)."""

    restored: Tensor
    kernel: Tensor
    confidence: float


def blind_estimate(y: Tensor, kernel_size: int, *, trust: float = BLIND_TRUST, fallback: float = BLIND_FALLBACK,
                   edge_fraction: float = 1.0) -> BlindEstimate:
    """Blind deblurring without a network: kernel estimate (Pan et al. 2014), then TV deconvolution.

    Where :func:`~stochdeblur.physics.blind.kernel_confidence` is below ``trust`` the deconvolution is mixed
    with the input (``fallback`` of it): a wrong kernel costs several dB, the mix about half of that.

    Args:
        y: [3, H, W] (or [1, 3, H, W]) blurry image in [-1, 1], valid-blurred.
        kernel_size: the kernel window, at least the largest blur expected (capped at the image's size).
        trust, fallback: the confidence threshold and the share of the deconvolution kept below it.
        edge_fraction: the estimate's salient-edge share (:func:`~stochdeblur.physics.estimate_kernel`).

    Returns:
        the restored image (clamped), the kernel estimate [k, k] (k = min(kernel_size, H, W)) and its confidence.
    """
    image = y[0] if y.dim() == 4 else y
    kernel, latent = estimate_kernel(image, min(kernel_size, *image.shape[-2:]), edge_fraction=edge_fraction)
    return checked_deconvolution(image, kernel, latent, trust=trust, fallback=fallback)


def checked_deconvolution(y: Tensor, kernel: Tensor, latent: Tensor | None = None, *, trust: float = BLIND_TRUST,
                          fallback: float = BLIND_FALLBACK) -> BlindEstimate:
    """The second half of :func:`blind_estimate` for a kernel from anywhere: the TV deconvolution of ``y``
    [3, H, W] by ``kernel`` [k, k] (``latent``, when already made), mixed with ``y`` where
    :func:`~stochdeblur.physics.blind.kernel_confidence` is below ``trust`` — so a refiner trained on kernels other
    than the estimate (``predictor.truth_mix``) sees deconvolutions made exactly as at inference."""
    if latent is None:
        latent = deconvolve(y.float()[None], kernel.float())[0].clamp(-1.0, 1.0)
    confidence = kernel_confidence(y, kernel, latent)
    restored = mix_untrusted(y, latent, confidence, trust=trust, fallback=fallback).clamp(-1.0, 1.0)
    return BlindEstimate(restored, kernel, confidence)


def blind_deconvolve(y: Tensor, kernel_size: int, *, trust: float = BLIND_TRUST,
                     fallback: float = BLIND_FALLBACK, edge_fraction: float = 1.0) -> tuple[Tensor, Tensor]:
    """:func:`blind_estimate` as (restored [3, H, W] in [-1, 1], kernel [k, k]): the blind classical pipeline."""
    found = blind_estimate(y, kernel_size, trust=trust, fallback=fallback, edge_fraction=edge_fraction)
    return found.restored, found.kernel


def blind_deconvolve_batch(blur: Tensor, kernel_size: int, *, edge_fraction: float = 1.0) -> tuple[Tensor, Tensor]:
    """:func:`blind_deconvolve` of each image of ``[B, 3, H, W]`` (each has its own blur), in fp32 whatever the
    caller's autocast, without gradients: (restored [B, 3, H, W], kernels [B, k, k]) on ``blur``'s device."""
    size = min(kernel_size, *blur.shape[-2:])
    with torch.no_grad(), torch.autocast(blur.device.type, enabled=False):
        pairs = [blind_deconvolve(image.float(), size, edge_fraction=edge_fraction) for image in blur]
    return torch.stack([x for x, _ in pairs]).to(blur.device), torch.stack([k for _, k in pairs]).to(blur.device)
