"""Non-blind deconvolution of a *valid*-blurred frame by variable splitting (ADMM), solved with FFTs.

Model: the blurry ``y`` (``H × W``) is the valid blur of an unknown sharp support ``x`` of ``(H + k − 1)²``;
:func:`deconvolve` minimises

    ½ ‖M (k ⊛ x) − y‖² + λ Σ |∇x|^p

over that support, where ``M`` keeps the pixels that were observed. The mask is what removes border ringing:
nothing is assumed about the content beyond the frame (no periodic or reflected image), so the FFT's wrap-around
never meets the data (the boundary-exact splitting of Almeida & Figueiredo 2013). Splitting ``v = k ⊛ x`` and
``w = ∇x`` (the half-quadratic splitting of Krishnan & Fergus 2009, made exact by ADMM's scaled dual variables
``u``) gives sub-problems with closed forms:

1. ``x``: ``F⁻¹[(μ K̄ F(v − u_v) + β Σ D̄ᵢ F(wᵢ − u_i)) / (μ |K|² + β Σ |Dᵢ|²)]``;
2. ``v``: ``(M y + μ (k ⊛ x + u_v)) / (M + μ)`` per pixel (observed pixels are pulled towards ``y``, the others
   follow the model);
3. ``w``: per-pixel shrinkage of ``∇x + u`` (soft threshold for TV, p = 1; a Newton solve of
   ``λ|w|^p + β/2 (w − ·)²`` for the hyper-Laplacian, p < 1, where Krishnan & Fergus use a lookup table; linear
   for the quadratic "wiener" prior, p = 2);
4. the duals accumulate the constraint residuals.

Everything is torch: batched over images and kernels, fp32 (fp64 for checks), and differentiable in ``y`` and
``k`` (autograd through the unrolled iterations), so a network can sit before (estimating ``k``) and after
(removing artefacts). Images are in the package's [−1, 1] convention; the solve runs in [0, 1] units, where
``λ`` and ``μ`` were tuned (``benchmarks/deconvolve_tuning.py``: dead leaves and CC0 textures, never the photos).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from stochdeblur.physics.operators import batch_kernels, crop_offset, divergence, fft_safe, gradients, psf2otf

Prior = Literal["tv", "hyper_laplacian", "wiener"]
PRIORS: tuple[str, ...] = ("tv", "hyper_laplacian", "wiener")


@dataclass(frozen=True)
class PriorDefaults:
    """Tuned defaults of one prior: weight ``lam``, exponent ``p``, ADMM penalty ``mu`` of ``v = k ⊛ x`` and the
    number of iterations (``benchmarks/results/deconvolve_tuning.md``)."""

    lam: float
    p: float
    mu: float
    iterations: int


DEFAULTS: dict[str, PriorDefaults] = {
    "tv": PriorDefaults(lam=6e-4, p=1.0, mu=0.1, iterations=60),
    "hyper_laplacian": PriorDefaults(lam=6e-4, p=2.0 / 3.0, mu=0.3, iterations=60),
    "wiener": PriorDefaults(lam=3e-3, p=2.0, mu=0.1, iterations=40),
}
BETA = 10.0  # ADMM penalty of w = ∇x, in units of λ


def fft_size(n: int) -> int:
    """The smallest size ≥ n whose prime factors are 2, 3 and 5 (fast FFT)."""
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


def _gradient_otfs(shape: tuple[int, int], dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor]:
    dy = torch.zeros(shape, dtype=dtype, device=device)
    dx = torch.zeros(shape, dtype=dtype, device=device)
    dy[0, 0], dy[-1, 0] = -1.0, 1.0
    dx[0, 0], dx[0, -1] = -1.0, 1.0
    return torch.fft.rfft2(dy), torch.fft.rfft2(dx)  # conj-correlation of the roll above


def shrink(v: Tensor, threshold: Tensor | float, p: float) -> Tensor:
    """``argmin_w  threshold·|w|^p + ½ (w − v)²`` per element (the w-step, ``threshold = λ / β``).

    p = 1: soft thresholding; p = 2: ``v / (1 + 2·threshold)``; 0 < p < 1: five Newton steps on the optimality
    condition from ``w = v`` (convex there), then ``0`` where that gives a lower cost (the problem is non-convex).
    """
    if p == 1.0:
        return torch.sign(v) * (v.abs() - threshold).clamp_min(0.0)
    if p == 2.0:
        return v / (1.0 + 2.0 * threshold)
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1], or 2, got {p}")
    a = v.abs()
    u = a
    for _ in range(5):
        safe = u.clamp_min(1e-6)
        grad = threshold * p * safe ** (p - 1.0) + (safe - a)
        hess = threshold * p * (p - 1.0) * safe ** (p - 2.0) + 1.0
        u = torch.where(hess > 0, safe - grad / hess.clamp_min(1e-6), safe * 0.5).clamp(0.0).minimum(a)
    cost = threshold * u.clamp_min(1e-12) ** p + 0.5 * (u - a) ** 2
    return torch.where(cost < 0.5 * a**2, torch.sign(v) * u, torch.zeros_like(v))


def deconvolve(
    y: Tensor,
    kernel: Tensor,
    prior: Prior = "tv",
    *,
    lam: float | None = None,
    p: float | None = None,
    iterations: int | None = None,
    mu: float | None = None,
    return_support: bool = False,
) -> Tensor:
    """Non-blind deconvolution of valid-blurred images (see the module docstring for the model).

    Args:
        y: ``[B, C, H, W]`` (or ``[C, H, W]``) blurry images in [−1, 1], valid-blurred as by ``synth.degrade``.
        kernel: ``[k, k]`` or ``[B, k, k]``, non-negative, summing to 1, centre ``(k // 2, k // 2)``.
        prior: ``"tv"`` (anisotropic total variation), ``"hyper_laplacian"`` (|∇x|^p, p = 2/3 by default) or
            ``"wiener"`` (quadratic gradient prior: a Wiener filter with the mask's exact borders).
        lam: prior weight (data term ½‖·‖² in [0, 1] units); the prior's tuned default when None.
        p: exponent of the hyper-Laplacian (ignored by the other priors).
        iterations: ADMM iterations (each: 4 real FFTs per channel); the prior's default when None.
        mu: ADMM penalty of the data split (convergence speed, not the solution); the prior's default when None.
        return_support: return the whole estimated support ``[B, C, H + k − 1, W + k − 1]`` instead of the
            ``H × W`` crop aligned with ``y``.

    Returns:
        The sharp estimate aligned with ``y`` (the crop ``synth.degrade`` returns as the target), in [−1, 1] units,
        not clamped (a network after it may want the overshoot); clamp before display.
    """
    if prior not in PRIORS:
        raise ValueError(f"prior must be one of {', '.join(PRIORS)}, got {prior!r}")
    squeeze = y.dim() == 3
    if squeeze:
        y = y[None]
    if y.dim() != 4:
        raise ValueError(f"y must be [B, C, H, W] or [C, H, W], got {list(y.shape)}")
    if not (y.dtype.is_floating_point and y.dtype in (torch.float32, torch.float64)):
        y = y.float()
    y = fft_safe(y)
    b, c, h, w = y.shape
    kernels = fft_safe(batch_kernels(kernel, b).to(y.dtype))
    k = max(kernels.shape[-2:])
    if kernels.shape[-2] != kernels.shape[-1]:
        raise ValueError(f"kernel must be square, got {list(kernels.shape[-2:])}")
    if k > min(h, w):
        raise ValueError(f"kernel of {k} px is larger than the {h}x{w} image")
    defaults = DEFAULTS[prior]
    lam = defaults.lam if lam is None else float(lam)
    p = defaults.p if (p is None or prior != "hyper_laplacian") else float(p)
    iterations = defaults.iterations if iterations is None else int(iterations)
    mu = defaults.mu if mu is None else float(mu)
    if lam <= 0 or mu <= 0 or iterations < 1:
        raise ValueError(f"need lam > 0, mu > 0 and iterations >= 1, got lam={lam}, mu={mu}, iterations={iterations}")

    top = crop_offset(k)
    frame = (fft_size(h + k - 1), fft_size(w + k - 1))
    observed = torch.zeros(frame, dtype=y.dtype, device=y.device)
    observed[top:top + h, top:top + w] = 1.0
    unit = (y + 1.0) * 0.5
    data = F.pad(unit, (top, frame[1] - w - top, top, frame[0] - h - top))
    x = F.pad(unit, (top, frame[1] - w - top, top, frame[0] - h - top), mode="replicate")

    otf = psf2otf(kernels, frame)[:, None]
    dy_otf, dx_otf = _gradient_otfs(frame, y.dtype, y.device)
    beta = BETA * lam
    denominator = mu * otf.abs() ** 2 + beta * (dy_otf.abs() ** 2 + dx_otf.abs() ** 2)
    v, (wy, wx) = data + (1.0 - observed) * x, gradients(x)
    uv, uy, ux = torch.zeros_like(x), torch.zeros_like(x), torch.zeros_like(x)
    for _ in range(iterations):
        # x-step in 4 real FFTs: the gradient terms are summed in image space (their adjoint, a divergence)
        # before one transform, and K x is read off x's own spectrum.
        spectrum = (mu * otf.conj() * torch.fft.rfft2(v - uv)
                    + beta * torch.fft.rfft2(divergence(wy - uy, wx - ux))) / denominator
        x = torch.fft.irfft2(spectrum, s=frame)
        kx = torch.fft.irfft2(spectrum * otf, s=frame)
        gy, gx = gradients(x)
        v = (observed * data + mu * (kx + uv)) / (observed + mu)
        wy, wx = shrink(gy + uy, lam / beta, p), shrink(gx + ux, lam / beta, p)
        uv, uy, ux = uv + kx - v, uy + gy - wy, ux + gx - wx
    if return_support:
        out = x[..., : h + k - 1, : w + k - 1]
    else:
        out = x[..., top:top + h, top:top + w]
    out = fft_safe(out * 2.0 - 1.0)
    return out[0] if squeeze else out
