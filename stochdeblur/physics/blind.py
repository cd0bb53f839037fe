"""Blind kernel estimation: the L0-regularised intensity and gradient prior of Pan, Hu, Su & Yang.

J. Pan, Z. Hu, Z. Su, M.-H. Yang, "Deblurring Text Images via L0-Regularized Intensity and Gradient Prior",
CVPR 2014 / TPAMI 2017. The method alternates, coarse to fine, between

* a latent step: ``min_x ‖k ⊛ x − y‖² + λ_p ‖x‖₀ + λ_g ‖∇x‖₀`` by half-quadratic splitting — an auxiliary
  ``u ≈ x`` (weight β) and ``g ≈ ∇x`` (weight μ), each a hard threshold (``u = 0`` where ``x² < λ_p/β``,
  ``g = 0`` where ``|∇x|² < λ_g/μ``), ``x`` in closed form by FFT; β doubles in an outer loop up to β_max,
  μ doubles in an inner loop up to μ_max (the paper's Algorithm 1);
* a kernel step: ``min_k ‖∇x ⊛ k − ∇y‖² + γ ‖k‖²`` on image gradients, then values below a fraction of the
  peak and connected components of little mass are dropped and the kernel renormalised (negative values go
  with them);

with λ_p and λ_g divided by 1.1 after every iteration (floor 1e-4) and carried from scale to scale, on an image
pyramid of ratio 1/√2 whose coarsest kernel is about 5 px (kernel bilinearly upsampled between scales, re-centred
after each scale).

Two departures, both about the border of a *valid*-blurred frame (``synth.degrade``): the latent lives on the
whole support ``(H + k − 1)²`` (FFT-padded) and only observed pixels enter the data term. The latent step
handles the mask by majorisation — the unobserved band of the data is refilled with the current re-blur
``k ⊛ x`` after every β step (the band starts as a smooth periodic ramp, like the paper's boundary wrapping) —
and the kernel step fits only gradients between observed pixels, with the normal equations solved exactly on
the ``k × k`` support (Toeplitz autocorrelation of the latent gradients, a Cholesky solve) where the paper runs
20 conjugate-gradient steps. The final latent is :func:`stochdeblur.physics.nonblind.deconvolve` with the
estimate, in colour. Units: the estimation runs on the luminance in [0, 1], where the paper's λ and γ hold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from stochdeblur.physics import kernels as K
from stochdeblur.physics.nonblind import _fft_size, deconvolve
from stochdeblur.physics.operators import crop_offset, psf2otf

LUMA = (0.299, 0.587, 0.114)


@dataclass
class _Scale:
    """One pyramid level: the observed luminance placed in an FFT frame, and what the steps reuse."""

    size: int  # kernel side at this scale (odd)
    frame: tuple[int, int]
    observed: Tensor  # [P, Q] 1 where y was observed
    data: Tensor  # [P, Q] y inside, the current fill outside
    grad_y: tuple[Tensor, Tensor]  # observed gradients of y (rows, columns), 0 where not both pixels observed
    grad_mask: tuple[Tensor, Tensor]
    d2: Tensor  # |D_rows|² + |D_cols|² on the rfft grid


def _luminance(y: Tensor) -> Tensor:
    """[C, H, W] in [−1, 1] → [H, W] in [0, 1] (Rec. 601 luma for colour)."""
    unit = (y.float() + 1.0) * 0.5
    if unit.shape[0] == 3:
        return torch.tensordot(torch.tensor(LUMA, dtype=unit.dtype), unit, dims=1)
    return unit.mean(0)


def _gradients(x: Tensor) -> tuple[Tensor, Tensor]:
    """Circular forward differences along rows and columns."""
    return torch.diff(x, dim=-2, append=x[..., :1, :]), torch.diff(x, dim=-1, append=x[..., :1])


def _divergence(gy: Tensor, gx: Tensor) -> Tensor:
    """Adjoint of :func:`_gradients`: ``Dᵀ g``."""
    return -(torch.diff(gy, dim=-2, prepend=gy[..., -1:, :]) + torch.diff(gx, dim=-1, prepend=gx[..., -1:]))


def _periodic_fill(y: Tensor, frame: tuple[int, int], top: int) -> Tensor:
    """``y`` at ``(top, top)`` in a ``frame``; the band around it a linear ramp between opposite edges, so the
    frame is continuous when wrapped (a cheap stand-in for Liu & Jia's boundary wrapping)."""
    h, w = y.shape
    p, q = frame
    out = y
    for dim, (n, m) in ((0, (h, p)), (1, (w, q))):
        band = m - n
        t = torch.arange(1, band + 1, dtype=y.dtype) / (band + 1)
        first, last = out.narrow(dim, 0, 1), out.narrow(dim, n - 1, 1)
        shape = (-1, 1) if dim == 0 else (1, -1)
        ramp = last + (first - last) * t.reshape(shape)
        out = torch.cat([out, ramp], dim=dim)
    return torch.roll(out, shifts=(top, top), dims=(0, 1))


def _scale(gray: Tensor, size: int) -> _Scale:
    h, w = gray.shape
    top = crop_offset(size)
    frame = (_fft_size(h + size - 1), _fft_size(w + size - 1))
    observed = torch.zeros(frame, dtype=gray.dtype)
    observed[top:top + h, top:top + w] = 1.0
    rows = torch.zeros(frame, dtype=gray.dtype)
    rows[top:top + h - 1, top:top + w] = 1.0
    cols = torch.zeros(frame, dtype=gray.dtype)
    cols[top:top + h, top:top + w - 1] = 1.0
    data = _periodic_fill(gray, frame, top)
    gy, gx = _gradients(data)
    dy = torch.zeros(frame, dtype=gray.dtype)
    dx = torch.zeros(frame, dtype=gray.dtype)
    dy[0, 0], dy[1, 0], dx[0, 0], dx[0, 1] = -1.0, 1.0, -1.0, 1.0
    d2 = torch.fft.rfft2(dy).abs() ** 2 + torch.fft.rfft2(dx).abs() ** 2
    return _Scale(size, frame, observed, data, (gy * rows, gx * cols), (rows, cols), d2)


def _latent(
    scale: _Scale, kernel: Tensor, lam_pixel: float, lam_grad: float, *, kappa: float, beta_max: float,
    mu_max: float, beta_kappa: float = 2.0,
) -> Tensor:
    """Pan et al.'s Algorithm 1 on the frame: L0 intensity (outer, β) and L0 gradient (inner, μ) splitting.

    After each β step the unobserved band of ``scale.data`` is replaced by the re-blur of the current latent.
    """
    otf = psf2otf(kernel.to(scale.data.dtype), scale.frame)
    k2 = otf.abs() ** 2
    x = scale.data
    beta = 2.0 * lam_pixel
    while True:
        kb = otf.conj() * torch.fft.rfft2(scale.data)
        if lam_pixel > 0:
            u = torch.where(x * x < lam_pixel / beta, torch.zeros_like(x), x)
            kb = kb + beta * torch.fft.rfft2(u)
        mu = 2.0 * lam_grad
        while mu < mu_max:
            gy, gx = _gradients(x)
            small = gy * gy + gx * gx < lam_grad / mu
            gy, gx = gy.masked_fill(small, 0.0), gx.masked_fill(small, 0.0)
            fx = (kb + mu * torch.fft.rfft2(_divergence(gy, gx))) / (k2 + mu * scale.d2 + beta)
            x = torch.fft.irfft2(fx, s=scale.frame)
            mu *= kappa
        reblur = torch.fft.irfft2(fx * otf, s=scale.frame)
        scale.data = scale.observed * scale.data + (1.0 - scale.observed) * reblur
        beta *= beta_kappa
        if lam_pixel <= 0 or beta >= beta_max:
            return x


def _kernel(scale: _Scale, latent: Tensor, gamma: float) -> Tensor:
    """``argmin_k Σ_obs (∇x ⊛ k − ∇y)² + γ‖k‖²`` on the ``k × k`` support (normal equations, Cholesky).

    Right-hand side exact by FFT cross-correlation; the normal matrix is the autocorrelation of the latent
    gradients seen by the kernel's centre tap (Toeplitz; exact but for a band of ``k`` px at the border).
    """
    k, (p, q) = scale.size, scale.frame
    c = k // 2
    rhs = torch.zeros(scale.frame, dtype=torch.float64)
    auto = torch.zeros(scale.frame, dtype=torch.float64)
    for g, obs, mask in zip(_gradients(latent), scale.grad_y, scale.grad_mask, strict=True):
        fg = torch.fft.rfft2(g)
        rhs = rhs + torch.fft.irfft2(torch.fft.rfft2(obs).conj() * fg, s=scale.frame).double()
        auto = auto + torch.fft.irfft2(torch.fft.rfft2(g * mask).abs() ** 2, s=scale.frame).double()
    taps = torch.arange(k)
    b = rhs[(c - taps) % p][:, (c - taps) % q].reshape(-1)
    ii, jj = (taps[:, None] - taps[None, :]), (taps[:, None] - taps[None, :])
    rows = ii[:, None, :, None] % p  # (q1_i, q1_j, q2_i, q2_j)
    cols = jj[None, :, None, :] % q
    normal = auto[rows, cols].reshape(k * k, k * k)
    normal.diagonal().add_(gamma)
    solution = torch.cholesky_solve(b[:, None], torch.linalg.cholesky(normal))
    return solution.reshape(k, k).float()


def _center_subpixel(kernel: Tensor) -> Tensor:
    """Move the kernel's centre of mass onto pixel ``(k // 2, k // 2)`` exactly: a whole-pixel shift, then
    linear interpolation for the remaining fraction (Pan et al.'s ``adjust_psf_center``). Re-centring by whole
    pixels only leaves up to half a pixel of offset, which the deconvolution turns into a shifted image."""
    kernel = K.center(kernel)
    residual = kernel.shape[-1] // 2 - K.center_of_mass(kernel)
    for dim, shift in ((-2, float(residual[0])), (-1, float(residual[1]))):
        step = 1 if shift > 0 else -1
        moved = torch.roll(kernel, step, dims=dim)
        edge = 0 if step > 0 else kernel.shape[dim] - 1
        moved.narrow(dim, edge, 1).zero_()
        kernel = (1.0 - abs(shift)) * kernel + abs(shift) * moved
    return K.normalize(kernel)


def _pyramid(size: int, ratio: float, coarsest: int) -> list[tuple[int, float]]:
    """(kernel side, image scale) per level, coarse to fine: Pan et al.'s ``ceil(size · ratioⁱ)``, made odd."""
    levels = max(int(math.floor(math.log(coarsest / size) / math.log(ratio))), 0)
    out = []
    for i in range(levels, -1, -1):
        side = math.ceil(size * ratio**i)
        out.append((side + 1 - side % 2, ratio**i))
    return out


def estimate_kernel(
    y: Tensor,
    size: int,
    *,
    lam_pixel: float = 4e-3,
    lam_grad: float = 4e-3,
    lam_decay: float = 1.1,
    lam_min: float = 1e-4,
    iterations: int = 5,
    gamma: float = 2.0,
    kappa: float = 2.0,
    beta_max: float = 8.0,
    mu_max: float = 1e5,
    threshold: float = 0.05,
    component_mass: float = 0.1,
    ratio: float = 1.0 / math.sqrt(2.0),
    coarsest: int = 5,
    beta_kappa: float = 2.0,
) -> tuple[Tensor, Tensor]:
    """Blind estimate of a uniform blur kernel and the sharp image (Pan et al. 2014; see the module docstring).

    Args:
        y: ``[C, H, W]`` or ``[1, C, H, W]`` blurry image in [−1, 1], valid-blurred (``synth.degrade``).
        size: kernel side to estimate (the blur's extent must fit in it).
        lam_pixel, lam_grad: initial weights of the L0 intensity and L0 gradient priors ([0, 1] units).
        lam_decay, lam_min: both weights are divided by ``lam_decay`` after every iteration, down to ``lam_min``.
        iterations: latent/kernel alternations per scale.
        gamma: weight of ``‖k‖²`` in the kernel step.
        kappa, beta_max, mu_max: continuation of the splitting weights in the latent step.
        threshold, component_mass: kernel pruning after every kernel step (values below ``threshold × max``;
            8-connected components with less than ``component_mass`` of the mass).
        ratio, coarsest: pyramid ratio between scales and the smallest kernel side it goes down to.

    Returns:
        ``(kernel, latent)``: kernel ``[size, size]``, non-negative, sum 1, centre of mass at ``size // 2``
        (``synth.degrade``'s convention); latent ``[C, H, W]`` in [−1, 1], the TV deconvolution of ``y`` with it.
    """
    image = y[0] if y.dim() == 4 else y
    if image.dim() != 3 or (y.dim() == 4 and y.shape[0] != 1):
        raise ValueError(f"y must be [C, H, W] or [1, C, H, W], got {list(y.shape)}")
    if size < 3 or size > min(image.shape[-2:]):
        raise ValueError(f"kernel size must be in [3, {min(image.shape[-2:])}], got {size}")
    gray = _luminance(image.detach().cpu())
    h, w = gray.shape
    kernel = None
    for side, scale_factor in _pyramid(size, ratio, coarsest):
        # 1. this level's image and the kernel brought to its size
        shape = (max(round(h * scale_factor), side), max(round(w * scale_factor), side))
        level = gray if shape == (h, w) else F.interpolate(
            gray[None, None], size=shape, mode="bilinear", antialias=True, align_corners=False)[0, 0]
        if kernel is None:
            kernel = torch.zeros(side, side)
            kernel[side // 2, side // 2:side // 2 + 2] = 0.5  # the paper's two-pixel start
        else:
            kernel = K.resize(kernel, side)
        scale = _scale(level, side)
        # 2. alternate latent and kernel steps, the prior weights decreasing
        for _ in range(iterations):
            latent = _latent(scale, kernel, lam_pixel, lam_grad, kappa=kappa, beta_max=beta_max,
                             mu_max=mu_max, beta_kappa=beta_kappa).clamp(0.0, 1.0)
            kernel = K.prune(_kernel(scale, latent, gamma), threshold, component_mass)
            lam_pixel, lam_grad = (max(lam / lam_decay, lam_min) if lam > 0 else 0.0 for lam in (lam_pixel, lam_grad))
        # 3. re-centre: the kernel must not drift out of its window as it grows
        kernel = K.center(kernel)
    kernel = _center_subpixel(K.pad_to(kernel, size))
    latent = deconvolve(image.float()[None], kernel)[0].clamp(-1.0, 1.0)
    return kernel.to(y.dtype if y.dtype.is_floating_point else torch.float32), latent
