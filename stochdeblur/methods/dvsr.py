"""DvSR, "Deblurring via Stochastic Refinement" (Whang et al., CVPR 2022): predict, then refine the residual.

A deterministic predictor g gives x_init = g(y); a small denoiser f models the residual z = x − x_init by
diffusion, conditioned on the blurry y and the continuous noise level √ᾱ. Both are trained jointly with one
L1 ε-loss (DESIGN.md §3), gradients reaching g through the residual. Inference: predictor only (``steps=0``),
perceptual mode (T=500, one sample) or averaging mode (T=10, K samples averaged), by name with
``restore(y, mode=...)`` (the presets of ``sample.modes``); ``return_samples=True`` also gives the K samples and
their per-pixel spread.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from stochdeblur.baselines import checked_deconvolution
from stochdeblur.config import ModePreset, RunConfig, SampleConfig, resolve_preset
from stochdeblur.data import WithExtras
from stochdeblur.diffusion.sampler import EpsFn, Restoration, sample, sample_all
from stochdeblur.diffusion.schedule import alpha_bar_table, sample_noise_level
from stochdeblur.methods.base import Method, OptimizerGroup
from stochdeblur.models import build_denoiser, build_predictor
from stochdeblur.models.kernel_aware import ClassicalDeconvolution, KernelAwarePredictor
from stochdeblur.physics import kernels as K
from stochdeblur.tiling import tiled_apply


class DvSR(Method):
    """Predictor g + residual denoiser f, trained jointly; one optimizer group ``"model"``; samples.

    Args:
        predictor: g, maps y [B,3,H,W] in [-1,1] to x_init (any H×W).
        denoiser: f, maps ([y, z_t] or [y, x_init, z_t], √ᾱ [B]) to ε̂ [B,3,H,W].
        alpha_bars: training ᾱ table (float64, length T) for the continuous noise-level draw.
        aux_predictor_weight: λ of the optional auxiliary L1(g(y), x); 0 disables it.
        condition_on_init: also feed x_init to f (the denoiser must then take 9 channels).
        tile_overlap: overlap in pixels when :meth:`restore` runs tiled.
        average_chunk: most samples per denoiser call when averaging (0: auto, see ``sampler.auto_chunk``).
        kernel_loss_weight, reblur_loss_weight, edge_loss_weight: with a :class:`KernelAwarePredictor`, weights
            of its estimator's supervision (``KernelAwarePredictor.kernel_losses``); training batches must then carry ``"kernel"``.
        kernel_only: the loss is the kernel supervision alone (stage 1: only the estimator learns).
        true_kernels: the predictor deconvolves with the pairs' own kernels, perturbed
            (``KernelAwarePredictor.perturb_kernels``), instead of its estimate (``predictor.train_kernel=truth``).
        item_estimates: the classical estimate and its deconvolution are made per training item in the data
            workers (:class:`~stochdeblur.models.kernel_aware.ClassicalDeconvolution`; ``kernel_source=classical``
            with ``train_kernel=estimated``), and the step refines them.
        truth_mix: with ``item_estimates``, the share of training items whose deconvolution the step makes instead
            from their own kernel, softened (:meth:`KernelAwarePredictor.perturb_kernels`, never rotated) and
            checked as at inference (:func:`~stochdeblur.baselines.checked_deconvolution`): good estimates, which
            the 128² training crops give less often than whole photos, so the refiner learns to keep them.
        modes: the named modes of :meth:`restore` (``SampleConfig.presets``; default: those of ``SampleConfig()``).
        lr: base learning rate of the group (``train.lr``).
    """

    samples = True

    def __init__(self, predictor: nn.Module, denoiser: nn.Module, alpha_bars: Tensor, *,
                 aux_predictor_weight: float = 0.0, condition_on_init: bool = False, tile_overlap: int = 32,
                 average_chunk: int = 0, kernel_loss_weight: float = 0.0, reblur_loss_weight: float = 0.0,
                 edge_loss_weight: float = 0.0, kernel_only: bool = False, true_kernels: bool = False,
                 item_estimates: bool = False, truth_mix: float = 0.0, modes: dict[str, ModePreset] | None = None,
                 lr: float = 1e-4) -> None:
        super().__init__()
        self.modes = SampleConfig().presets() if modes is None else dict(modes)
        self.kernel_weights = {"kernel_l1": kernel_loss_weight, "reblur_l1": reblur_loss_weight,
                               "edge_l1": edge_loss_weight}
        self.kernel_only, self.true_kernels, self.item_estimates = kernel_only, true_kernels, item_estimates
        if not 0.0 <= truth_mix <= 1.0 or (truth_mix and not item_estimates):
            raise ValueError(f"truth_mix ({truth_mix}) is a share in [0, 1] of the classical training items "
                             "(item_estimates)")
        self.truth_mix = truth_mix
        if (any(self.kernel_weights.values()) or true_kernels or item_estimates) and not isinstance(predictor, KernelAwarePredictor):
            raise ValueError("kernel supervision and training on true kernels need a kernel-aware predictor "
                             "(predictor.type=kernel_aware)")
        self.predictor = predictor
        self.denoiser = denoiser
        self.register_buffer("alpha_bars", alpha_bars.to(torch.float64), persistent=False)
        self.aux_predictor_weight = aux_predictor_weight
        self.condition_on_init = condition_on_init
        self.tile_overlap = tile_overlap
        self.average_chunk = average_chunk
        self.lr = lr
        self.size_multiple = max(getattr(predictor, "size_multiple", 1), getattr(denoiser, "size_multiple", 1))

    @classmethod
    def from_config(cls, cfg: RunConfig) -> DvSR:
        """Build g, f and the training schedule from a :class:`RunConfig`."""
        return cls(build_predictor(cfg.predictor), build_denoiser(cfg.denoiser), alpha_bar_table(cfg.diffusion),
                   aux_predictor_weight=cfg.diffusion.aux_predictor_weight,
                   condition_on_init=cfg.denoiser.condition_on_init, tile_overlap=cfg.sample.tile_overlap,
                   average_chunk=cfg.sample.average_chunk, kernel_loss_weight=cfg.predictor.kernel_loss_weight,
                   reblur_loss_weight=cfg.predictor.reblur_loss_weight, edge_loss_weight=cfg.predictor.edge_loss_weight,
                   kernel_only=cfg.predictor.kernel_only, true_kernels=cfg.predictor.train_kernel == "truth",
                   item_estimates=cfg.predictor.kernel_source == "classical" and cfg.predictor.train_kernel == "estimated",
                   truth_mix=cfg.predictor.truth_mix, modes=cfg.sample.presets(), lr=cfg.train.lr)

    def training_dataset(self, dataset: Dataset, cache_dir: str | Path | None = None) -> Dataset:
        """With ``item_estimates``, each item gains its classical estimate's deconvolution, made in the data
        workers with its kernel (and kept in ``cache_dir`` when given); otherwise the dataset as it is."""
        if not self.item_estimates:
            return dataset
        extras = ClassicalDeconvolution(self.predictor.kernel_size, self.predictor.edge_fraction)
        return WithExtras(dataset, extras, cache_dir)

    def optimizer_groups(self) -> dict[str, OptimizerGroup]:
        """One group: g and f are optimised together by the joint objective."""
        return {"model": OptimizerGroup(list(self.parameters()), self.lr)}

    def condition(self, blur: Tensor, x_init: Tensor) -> Tensor:
        """What f is conditioned on: y, or [y, x_init] with ``condition_on_init`` (concatenated before z_t)."""
        return torch.cat([blur, x_init], dim=1) if self.condition_on_init else blur

    def forward(self, batch: dict[str, Tensor], group: str = "model",
                generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """Joint loss L1(ε, f([y, √ᾱ·(x − g(y)) + √(1−ᾱ)·ε], √ᾱ)) (+ λ·L1(g(y), x) if enabled).

        Args:
            batch: ``{"blur": y, "sharp": x}``, each [B,3,h,w] in [-1,1].
            group: must be ``"model"``.
            generator: source of the noise levels and ε (torch's default generator when None).

        Returns:
            ``{"loss", "eps_l1"}``, ``"aux_l1"`` when the auxiliary term is on and ``"kernel_l1"``/``"reblur_l1"``/
            ``"edge_l1"`` when the estimator's supervision is; scalar tensors.
        """
        if group != "model":
            raise ValueError(f"DvSR has one parameter group 'model', got {group!r}")
        blur, sharp = batch["blur"], batch["sharp"]
        supervised = any(self.kernel_weights.values())
        if (supervised or self.true_kernels) and "kernel" not in batch:
            raise ValueError("the batch has no 'kernel', which kernel supervision and predictor.train_kernel=truth "
                             "need (synthetic data carries it; for real pairs set the kernel/reblur/edge loss weights "
                             "to 0 and train_kernel=estimated)")
        if supervised:
            if self.kernel_only:
                sharp_luma = self.predictor.sharp_estimate(blur)
                terms = self.predictor.kernel_losses(sharp_luma, self.predictor.fit_kernel(blur, sharp_luma), batch)
                loss = sum(self.kernel_weights[name] * value for name, value in terms.items())
                return {"loss": loss, **{name: value.detach() for name, value in terms.items()}}
            run = self.predictor.run(blur)
            x_init, kernel_terms = run.image, self.predictor.kernel_losses(run.sharp_luma, run.kernel, batch)
        elif self.item_estimates:
            if "deconvolved" not in batch:
                raise ValueError("the batch has no 'deconvolved': build the training data through "
                                 "DvSR.training_dataset (the trainer does), which adds each item's classical estimate")
            kernel, deconvolved = batch.get("kernel_estimate"), batch["deconvolved"]
            if self.truth_mix > 0:
                kernel, deconvolved = self._mix_true_kernels(batch, kernel, deconvolved, generator)
            run = self.predictor.run(blur, kernel, deconvolved=deconvolved)
            x_init, kernel_terms = run.image, {}
        elif self.true_kernels:
            kernel = self.predictor.perturb_kernels(batch["kernel"], generator)
            x_init, kernel_terms = self.predictor.run(blur, kernel).image, {}
        else:
            x_init, kernel_terms = self.predictor(blur), {}
        residual = sharp - x_init
        sqrt_ab = sample_noise_level(blur.shape[0], self.alpha_bars, generator).to(blur.device)
        noise_device = generator.device if generator is not None else torch.device("cpu")
        eps = torch.randn(residual.shape, generator=generator, device=noise_device).to(blur.device)
        scale = sqrt_ab[:, None, None, None]
        z_t = scale * residual + (1.0 - scale**2).sqrt() * eps
        eps_hat = self.denoiser(torch.cat([self.condition(blur, x_init), z_t], dim=1), sqrt_ab)
        eps_l1 = F.l1_loss(eps_hat.float(), eps)
        out = {"loss": eps_l1, "eps_l1": eps_l1.detach()}
        if self.aux_predictor_weight > 0:
            aux = F.l1_loss(x_init.float(), sharp)
            out["loss"] = out["loss"] + self.aux_predictor_weight * aux
            out["aux_l1"] = aux.detach()
        for name, value in kernel_terms.items():
            out["loss"] = out["loss"] + self.kernel_weights[name] * value
            out[name] = value.detach()
        return out

    def _mix_true_kernels(self, batch: dict[str, Tensor], kernel: Tensor | None, deconvolved: Tensor,
                          generator: torch.Generator | None) -> tuple[Tensor | None, Tensor]:
        """``(kernel, deconvolved)`` with the ``truth_mix`` share of items (drawn from ``generator``) made from the
        item's own softened kernel instead of its estimate (see the class docstring)."""
        if "kernel" not in batch:
            raise ValueError("the batch has no 'kernel', which predictor.truth_mix needs (synthetic data carries it)")
        chosen = torch.rand(len(deconvolved), generator=generator,
                            device=generator.device if generator is not None else None) < self.truth_mix
        if not chosen.any():
            return kernel, deconvolved
        size = min(self.predictor.kernel_size, *deconvolved.shape[-2:]) if kernel is None else kernel.shape[-1]
        softened = K.pad_to(self.predictor.perturb_kernels(batch["kernel"].float(), generator, wrong_prob=0.0), size)
        deconvolved = deconvolved.clone()
        kernel = None if kernel is None else kernel.clone()
        with torch.no_grad(), torch.autocast(deconvolved.device.type, enabled=False):
            for index in chosen.nonzero().flatten().tolist():
                found = checked_deconvolution(batch["blur"][index].float(), softened[index])
                deconvolved[index] = found.restored.to(deconvolved)
                if kernel is not None:
                    kernel[index] = softened[index].to(kernel)
        return kernel, deconvolved

    def loss(self, batch: dict[str, Tensor], generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """Same as ``forward(batch, "model", generator)``, for callers that do not go through DDP."""
        return self.forward(batch, "model", generator)

    def _tiled(self, tile: int | None, blur: Tensor) -> bool:
        return tile is not None and max(blur.shape[-2:]) > tile

    def predict_init(self, blur: Tensor, tile: int | None = None) -> Tensor:
        """x_init = g(y), tiled when ``tile`` is set and the image is larger.

        Shape: [B,3,H,W] in [-1,1] → [B,3,H,W] (float32, unclamped).
        """
        if self._tiled(tile, blur):
            return tiled_apply(self.predictor, [blur], tile=tile, overlap=self.tile_overlap,
                               multiple=self.size_multiple)
        return self.predictor(blur).float()

    def eps_fn(self, blur: Tensor, tile: int | None = None) -> EpsFn:
        """The sampler's denoiser hook ``(z_t, √ᾱ, cond) -> ε̂``, tiled when ``tile`` is set and ``blur`` is larger."""

        def eps(z_t: Tensor, noise_level: Tensor, cond: Tensor) -> Tensor:
            return self.denoiser(torch.cat([cond, z_t.to(cond.dtype)], dim=1), noise_level)

        if not self._tiled(tile, blur):
            return eps

        def tiled_eps(z_t: Tensor, noise_level: Tensor, cond: Tensor) -> Tensor:
            return tiled_apply(lambda z, c: eps(z, noise_level, c), [z_t, cond], tile=tile,
                               overlap=self.tile_overlap, multiple=self.size_multiple)

        return tiled_eps

    @torch.no_grad()
    def restore(self, blur: Tensor, *, mode: str | None = None, steps: int | None = None, average: int | None = None,
                seed: int = 0, sampler: str | None = None, eta: float | None = None, schedule: str | None = None,
                alpha_bar_end: float | None = None, tile: int | None = None, progress: bool = False,
                return_samples: bool = False) -> Tensor | Restoration:
        """Deblur a batch: g only when ``steps`` is None/0, else g + ``steps`` reverse steps, ``average`` samples.

        ``mode`` names a preset of :attr:`modes` ("predictor", "average", "perceptual", ...) whose settings an
        explicit ``steps``/``average``/``sampler``/``eta``/``schedule``/``alpha_bar_end`` replaces
        (:func:`~stochdeblur.config.resolve_preset`); without a mode, ``average`` defaults to one sample and the
        sampler settings to the "average" preset's (the config's ``sample`` section: DDPM, linear β, ᾱ_T = 1e-3).
        ``eta`` is DDIM's η (an explicit one needs the DDIM sampler). ``return_samples=True`` returns a
        :class:`~stochdeblur.diffusion.sampler.Restoration` (the same image, the K samples, their σ map).

        Shape: [B,3,H,W] in [-1,1], any H×W → [B,3,H,W] in [-1,1] (float32).
        """
        run = resolve_preset(self.modes, mode, steps, average, sampler=sampler, eta=eta, schedule=schedule,
                             alpha_bar_end=alpha_bar_end)
        x_init = self.predict_init(blur, tile)
        if not run.steps:
            image = x_init.clamp(-1.0, 1.0)
            return Restoration.from_samples(image.unsqueeze(0), image) if return_samples else image
        cond = self.condition(blur, x_init.to(blur.dtype))
        draw = sample_all if return_samples else sample
        return draw(self.eps_fn(blur, tile), cond, x_init, run.steps, average=run.average, seed=seed,
                    sampler=run.sampler, eta=run.eta, schedule=run.schedule, alpha_bar_end=run.alpha_bar_end,
                    progress=progress, chunk=self.average_chunk)

    @torch.no_grad()
    def estimate_kernels(self, blur: Tensor) -> Tensor | None:
        """The kernel-aware predictor's estimates k̂ [B, k, k] for y [B,3,H,W] (whole image), else None."""
        if isinstance(self.predictor, KernelAwarePredictor):
            return self.predictor.estimate_kernel(blur)
        return None

    @torch.no_grad()
    def validation_images(self, blur: Tensor) -> dict[str, Tensor]:
        """Extra tracker panels: the predictor's x_init (clamped to [-1, 1])."""
        return {"x_init": self.predict_init(blur).clamp(-1.0, 1.0)}
