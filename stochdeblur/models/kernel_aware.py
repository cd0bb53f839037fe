"""Kernel-aware initial predictor: learned kernel estimate → differentiable deconvolution → refiner.

g(y) = R(y, deconvolve(y, k̂)), with k̂ = E(y). The network is asked only for what the physics cannot give:

* **E, the kernel estimator** (after Schuler, Hirsch, Harmeling & Schölkopf, "Learning to Deblur", TPAMI 2016):
  a small UNet maps y to a sharp luminance x̂; the kernel is then the regularised least-squares fit of
  ``∇y ≈ k ⊛ ∇x̂`` solved in closed form in Fourier (windowed so the frame border does not dominate), cropped to
  ``kernel_size``², clipped to ≥ 0 and normalised. A delta kernel needs x̂ = y, so an untrained E is harmless, and
  the estimate is trained by direct supervision (the synthetic pairs' own kernels, :meth:`kernel_losses`).
* **the deconvolution**: :func:`stochdeblur.physics.deconvolve` (boundary-exact ADMM, TV prior, a few unrolled
  iterations), differentiable in y and k̂.
* **R, the refiner**: a UNet on ``[x_dec, y]`` that returns ``x_dec + R(·)`` (zero-initialised head, so g starts
  as the deconvolution); it removes ringing, noise and the cost of kernel errors, and can fall back on y where the
  estimate is wrong.

Any H×W; each tile of a tiled restoration estimates its own kernel (spatially varying blur).
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stochdeblur.baselines import blind_deconvolve, blind_deconvolve_batch
from stochdeblur.models.unet import UNet
from stochdeblur.physics import kernels as K
from stochdeblur.physics.nonblind import deconvolve
from stochdeblur.physics.operators import blur_circular, fft_safe, luminance

KERNEL_SOURCES = ("learned", "classical")


@dataclass
class KernelAwareOutput:
    """What the predictor computed: E's sharp luminance [B,1,H,W], the kernel estimate [B,k,k], the
    deconvolution and x_init, [B,3,H,W]."""

    sharp_luma: Tensor | None  # None when the kernel did not come from E
    kernel: Tensor | None  # None when the deconvolution was given
    deconvolved: Tensor
    image: Tensor


def _window(height: int, width: int, margin: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """Separable Tukey window: 1 inside, raised-cosine ramps of ``margin`` px at the borders."""

    def ramp(n: int) -> Tensor:
        m = max(1, min(margin, n // 2))
        t = torch.ones(n, dtype=dtype, device=device)
        edge = 0.5 - 0.5 * torch.cos(torch.pi * (torch.arange(m, dtype=dtype, device=device) + 0.5) / m)
        t[:m], t[n - m:] = edge, edge.flip(0)
        return t

    return ramp(height)[:, None] * ramp(width)[None, :]


def least_squares_kernel(blurry: Tensor, sharp: Tensor, size: int, reg: float = 1e-1,
                         floor: float = 0.03) -> Tensor:
    """k = argmin Σ_d ‖w·∇_d y − k ⊛ (w·∇_d x)‖² + γ‖k‖², in Fourier, cropped to ``size``², ≥ 0, sum 1.

    ``blurry``/``sharp``: [B,1,H,W], aligned (``sharp`` is the crop ``synth.degrade`` pairs with the blur).
    ``γ = reg · mean |F(w∇x)|²`` scales the Tikhonov weight with the image's edge energy; values below
    ``floor × max`` are removed by a soft threshold (the least-squares noise floor spread over the whole support
    costs the deconvolution dB, while a camera path is sparse). Differentiable.
    """
    blurry, sharp = fft_safe(blurry), fft_safe(sharp)
    _, _, h, w = blurry.shape
    window = _window(h, w, size, blurry.dtype, blurry.device)
    numerator, energy = 0.0, 0.0
    for dim in (-2, -1):
        gy = torch.fft.rfft2(torch.diff(blurry, dim=dim, append=blurry.narrow(dim, -1, 1)) * window)
        gx = torch.fft.rfft2(torch.diff(sharp, dim=dim, append=sharp.narrow(dim, -1, 1)) * window)
        numerator = numerator + gx.conj() * gy
        energy = energy + gx.abs() ** 2
    gamma = reg * energy.mean(dim=(-2, -1), keepdim=True)
    full = torch.fft.irfft2(numerator / (energy + gamma), s=(h, w))[:, 0]
    c = size // 2
    kernel = torch.roll(full, shifts=(c, c), dims=(-2, -1))[..., :size, :size]
    peak = kernel.amax(dim=(-2, -1), keepdim=True).clamp_min(1e-12)
    return fft_safe(K.normalize(kernel - floor * peak))


REBLUR_GAIN = 8.0  # reblur_residual's scale: a misfit edge (~0.1 in [−1, 1] units) then reads like image contrast


def reblur_residual(blur: Tensor, deconvolved: Tensor, kernel: Tensor) -> Tensor:
    """``REBLUR_GAIN · (y − k̂ ⊛ x_dec)``, [B,3,H,W]: how far the deconvolution, blurred again by its kernel,
    is from the input (the deconvolution is edge-padded by k // 2 so the periodic blur never wraps into the
    frame; y's valid blur saw true content there, so the band within k // 2 px of the border reads a little
    high whatever the kernel)."""
    pad = kernel.shape[-1] // 2
    padded = F.pad(deconvolved, (pad, pad, pad, pad), mode="replicate")
    reblurred = blur_circular(fft_safe(padded), kernel)[..., pad:pad + blur.shape[-2], pad:pad + blur.shape[-1]]
    return REBLUR_GAIN * (blur - reblurred)


@dataclass(frozen=True)
class ClassicalDeconvolution:
    """Training-item extras of the classical source: ``{"deconvolved": x_dec [3,H,W], "kernel_estimate": k̂ [k,k]}``
    of :func:`~stochdeblur.baselines.blind_deconvolve` on ``item["blur"]`` (the kernel is what a refiner with
    ``reblur_input`` re-blurs by).

    Run in the DataLoader workers (``Method.training_dataset``), one image at a time and single-threaded like the
    estimate itself, so the refiner learns from the very estimates it meets at inference — wrong kernels, the
    re-blur fallback and all — while the training step stays as cheap as with given kernels.
    """

    kernel_size: int
    edge_fraction: float = 1.0

    def __call__(self, item: dict[str, Tensor]) -> dict[str, Tensor]:
        blur = item["blur"]
        with torch.no_grad():
            restored, kernel = blind_deconvolve(blur.float(), min(self.kernel_size, *blur.shape[-2:]),
                                                edge_fraction=self.edge_fraction)
        return {"deconvolved": restored, "kernel_estimate": kernel}

    @property
    def cache_key(self) -> str:
        """The extras-cache key (``data.extras_cache``, :class:`~stochdeblur.data.ItemExtras`): the settings the
        extras depend on and what they hold (caches from before the kernel was kept hold only the deconvolution,
        under a key without ``-> ...``, and are not read)."""
        extra = f", edge_fraction={self.edge_fraction!r}" if self.edge_fraction != 1.0 else ""
        return f"ClassicalDeconvolution(kernel_size={self.kernel_size!r}{extra}) -> deconvolved, kernel_estimate"


def _fp32(device: torch.device) -> AbstractContextManager[object]:
    """Autocast off (the FFT solve needs fp32) where autocast exists; the ``meta`` device has none."""
    return torch.autocast(device.type, enabled=False) if device.type in ("cpu", "cuda") else nullcontext()


class KernelAwarePredictor(nn.Module):
    """g(y) = x_dec + R([x_dec, y]), x_dec = deconvolve(y, E(y)) (see the module docstring).

    Args:
        kernel_size: side of the estimated kernel (the largest blur it can represent; 33 covers the training
            kernels).
        estimator_channels, refiner_channels: base widths of E's and R's UNets.
        channel_mults, num_res_blocks: UNet layout, shared by E and R.
        deconv_iterations: unrolled ADMM iterations of the TV deconvolution (cost grows linearly).
        deconv_lam: TV weight of that deconvolution (None: ``physics.nonblind`` default).
        kernel_reg: relative Tikhonov weight of the least-squares kernel fit.
        kernel_source: ``"learned"`` (E + least squares, trained by :meth:`kernel_losses`) or ``"classical"``
            (:func:`stochdeblur.baselines.blind_deconvolve` per image — Pan et al.'s estimate, TV deconvolution,
            mixed with y where the re-blur check distrusts it — no E; the refiner is trained either on
            those estimates, made in the data workers (:class:`ClassicalDeconvolution`), or on the pairs' own
            kernels perturbed by :meth:`perturb_kernels`).
        kernel_blur_max, wrong_kernel_prob: the training perturbation of true kernels (:meth:`perturb_kernels`).
        edge_fraction: the classical estimate's salient-edge share (``physics.estimate_kernel``; 1 = all pixels).
        reblur_input: R also sees the re-blur residual ``y − k̂ ⊛ x_dec`` (:func:`reblur_residual`): near zero
            where the estimate explains y, edges where it does not — what R cannot tell from ``[x_dec, y]``
            alone, since it is not given k̂.
    """

    def __init__(self, kernel_size: int = 33, *, estimator_channels: int = 16, refiner_channels: int = 32,
                 channel_mults: tuple[int, ...] = (1, 2, 3, 4), num_res_blocks: int = 2, deconv_iterations: int = 30,
                 deconv_lam: float | None = None, kernel_reg: float = 1e-2, kernel_source: str = "learned",
                 kernel_blur_max: float = 1.5, wrong_kernel_prob: float = 0.2, edge_fraction: float = 1.0,
                 reblur_input: bool = False) -> None:
        super().__init__()
        if kernel_size < 3:
            raise ValueError(f"kernel_size must be >= 3, got {kernel_size}")
        if kernel_source not in KERNEL_SOURCES:
            raise ValueError(f"kernel_source must be one of {', '.join(KERNEL_SOURCES)}, got {kernel_source!r}")
        self.kernel_size, self.kernel_source = int(kernel_size), kernel_source
        self.estimator: UNet | None = None
        if kernel_source == "learned":
            self.estimator = UNet(in_channels=3, out_channels=1, base_channels=estimator_channels,
                                  channel_mults=channel_mults, num_res_blocks=num_res_blocks)
            nn.init.zeros_(self.estimator.head.weight)  # x̂ = y at start: k̂ ≈ delta, x_dec ≈ y
            nn.init.zeros_(self.estimator.head.bias)
        self.reblur_input = bool(reblur_input)
        self.refiner = UNet(in_channels=9 if reblur_input else 6, out_channels=3, base_channels=refiner_channels,
                            channel_mults=channel_mults, num_res_blocks=num_res_blocks, input_residual=True)
        self.deconv_iterations, self.deconv_lam, self.kernel_reg = deconv_iterations, deconv_lam, kernel_reg
        self.kernel_blur_max, self.wrong_kernel_prob = kernel_blur_max, wrong_kernel_prob
        self.edge_fraction = float(edge_fraction)
        self.size_multiple = self.refiner.size_multiple

    def sharp_estimate(self, blur: Tensor) -> Tensor:
        """E's sharp luminance x̂ = luma(y) + E(y), [B,1,H,W] fp32, from y [B,3,H,W] in [−1, 1]."""
        if self.estimator is None:
            raise ValueError("this predictor has no learned estimator (kernel_source='classical')")
        return luminance(blur.float()) + self.estimator(blur).float()

    def fit_kernel(self, blur: Tensor, sharp_luma: Tensor) -> Tensor:
        """k̂ [B, k, k] (≥ 0, sums to 1, fp32): the least-squares kernel between y and E's x̂."""
        size = min(self.kernel_size, *blur.shape[-2:])
        return least_squares_kernel(luminance(blur.float()), sharp_luma, size, self.kernel_reg)

    def estimate_kernel(self, blur: Tensor) -> Tensor:
        """k̂ [B, k, k] (≥ 0, sums to 1, fp32) from y [B,3,H,W] in [−1, 1], by ``kernel_source``."""
        if self.kernel_source == "classical":
            return self._classical(blur)[0]
        return self.fit_kernel(blur, self.sharp_estimate(blur))

    def _classical(self, blur: Tensor) -> tuple[Tensor, Tensor]:
        """(k̂ [B,k,k], x_dec [B,3,H,W]) of :func:`stochdeblur.baselines.blind_deconvolve` per image: the
        classical estimate and its TV deconvolution, mixed with y where the re-blur check distrusts the kernel
        (measured on the photo benchmark: without that mix two of five photos lose 5–7 dB)."""
        restored, kernels = blind_deconvolve_batch(blur, self.kernel_size, edge_fraction=self.edge_fraction)
        return kernels, restored

    def perturb_kernels(self, kernels: Tensor, generator: torch.Generator | None = None,
                        wrong_prob: float | None = None) -> Tensor:
        """Training kernels that look like estimates: each true kernel [B,K,K] is blurred by a Gaussian of
        σ ~ U(0, kernel_blur_max) px (a soft estimate, nearly as good as the truth), and with probability
        ``wrong_prob`` (None: ``wrong_kernel_prob``) rotated by 90° (a wrong orientation, the expensive error), so
        the refiner learns both to use the deconvolution and to fall back on y when it is wrong."""
        wrong_prob = self.wrong_kernel_prob if wrong_prob is None else wrong_prob
        b, k = kernels.shape[0], kernels.shape[-1]
        draw = torch.rand(b, 2, generator=generator, device=generator.device if generator else None).to(kernels)
        sigma = draw[:, 0] * self.kernel_blur_max
        offsets = torch.arange(-3, 4, dtype=kernels.dtype, device=kernels.device)
        taps = torch.exp(-0.5 * (offsets[None] / sigma[:, None].clamp_min(1e-3)) ** 2)
        taps = taps / taps.sum(dim=1, keepdim=True)
        soft = F.conv2d(kernels[None].float(), taps[:, None, :, None].float(), padding=(3, 0), groups=b)
        soft = F.conv2d(soft, taps[:, None, None, :].float(), padding=(0, 3), groups=b)[0]
        wrong = draw[:, 1] < wrong_prob
        soft = torch.where(wrong[:, None, None], soft.transpose(-2, -1).flip(-1), soft)
        return K.normalize(soft[..., :k, :k])

    def run(self, blur: Tensor, kernel: Tensor | None = None, deconvolved: Tensor | None = None) -> KernelAwareOutput:
        """All intermediate results of g on y [B,3,H,W] in [−1, 1]; ``kernel`` [B,k,k] replaces the estimate
        (training on true, perturbed kernels), ``deconvolved`` [B,3,H,W] the estimate's deconvolution (training on
        :class:`ClassicalDeconvolution` items; with ``reblur_input`` give that estimate's ``kernel`` too)."""
        sharp_luma = None
        if deconvolved is not None:
            deconvolved = deconvolved.float()
        elif kernel is None and self.kernel_source == "classical":
            kernel, deconvolved = self._classical(blur)
        else:
            if kernel is None:
                sharp_luma = self.sharp_estimate(blur)
                kernel = self.fit_kernel(blur, sharp_luma)
            with _fp32(blur.device):
                deconvolved = deconvolve(blur.float(), kernel, "tv", lam=self.deconv_lam,
                                         iterations=self.deconv_iterations).clamp(-1.5, 1.5)
        inputs = [deconvolved.to(blur.dtype), blur]
        if self.reblur_input:
            if kernel is None:
                raise ValueError("this refiner reads the re-blur residual (reblur_input): pass the kernel estimate "
                                 "with the deconvolution")
            with _fp32(blur.device):
                inputs.append(reblur_residual(blur.float(), deconvolved, kernel.float()).to(blur.dtype))
        image = self.refiner(torch.cat(inputs, dim=1))
        return KernelAwareOutput(sharp_luma=sharp_luma, kernel=kernel, deconvolved=deconvolved, image=image)

    def forward(self, blur: Tensor) -> Tensor:
        """x_init [B,3,H,W] (unclamped) from y [B,3,H,W] in [−1, 1], any H×W ≥ the kernel."""
        return self.run(blur).image

    def kernel_losses(self, sharp_luma: Tensor, kernel: Tensor, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Direct supervision of E: ``edge_l1`` (L1 between the gradients of x̂ and of the sharp luminance — the
        dense signal; the least-squares fit is exact when x̂ has the true edges) and, of the estimate ``kernel``
        [B,k,k], by the pair's true kernel (``batch["kernel"]``, [B,K,K] centred):
        ``kernel_l1`` (the sum of |k̂ − k| over the kernels padded to a common size, 0…2) and ``reblur_l1``
        (L1 between y and the sharp image blurred by k̂, circularly, away from the wrapped border — shape, not
        pixel position, is what the deconvolution needs)."""
        truth = batch["kernel"].float()
        size = max(truth.shape[-1], kernel.shape[-1])
        estimate = K.pad_to(kernel, size)
        kernel_l1 = (estimate - K.pad_to(truth, size)).abs().sum(dim=(-2, -1)).mean()
        sharp, blur = batch["sharp"].float(), batch["blur"].float()
        k = kernel.shape[-1]
        reblurred = blur_circular(fft_safe(sharp), kernel)  # wrap-around reaches k // 2 px: cropped below
        inner = slice(k, -k) if min(blur.shape[-2:]) > 3 * k else slice(None)
        reblur_l1 = (reblurred - blur)[..., inner, inner].abs().mean()
        truth_luma = luminance(sharp)
        edge_l1 = sum((torch.diff(sharp_luma, dim=d) - torch.diff(truth_luma, dim=d)).abs().mean() for d in (-2, -1))
        return {"kernel_l1": kernel_l1, "reblur_l1": reblur_l1, "edge_l1": edge_l1}
