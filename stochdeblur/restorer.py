"""One inference path for every front end (sample.py, the demo, evaluate, the app, the benchmarks).

    restorer = Restorer.from_pretrained("default")          # or a checkpoint path, or "classical"
    restored = restorer(blur, "perceptual", seed=1)         # [B,3,H,W] in [-1, 1], float32

:class:`Restorer` owns what a restoration needs besides the model: the device, the precision
(:func:`~stochdeblur.utils.pick_precision`, "auto" by default), the memory layout (NHWC under bf16), autocast,
the model's mode presets (``sample.modes``, each with its sampler settings) and the tiling, seed and sampler
defaults of its ``sample`` config, so the same request gives the same pixels wherever it is made.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from stochdeblur.config import ModePreset, RunConfig, resolve_preset
from stochdeblur.diffusion.sampler import Restoration
from stochdeblur.hub import load, load_default
from stochdeblur.utils import autocast, inference_layout, pick_precision


def resolve_device(device: torch.device | str) -> torch.device:
    """``"auto"`` → CUDA when available, else the CPU; anything else as given."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _model_device(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


class Restorer:
    """A model ready for inference: ``restorer(y, mode)`` deblurs a batch with the model's presets and defaults.

    Args:
        model: a method (``methods/base.py``: DvSR, a GAN, the classical method).
        cfg: its run config (the ``sample`` presets and defaults); ``None``: the defaults of ``RunConfig()``.
        device: where to run; ``None``: where the model's parameters are; ``"auto"``: CUDA when available.
        precision: "auto" (bf16/fp16 where the device runs it fast, see ``pick_precision``), "no", "bf16", "fp16".
    """

    def __init__(self, model: nn.Module, cfg: RunConfig | None = None, device: torch.device | str | None = None,
                 precision: str = "auto") -> None:
        self.cfg = cfg or RunConfig()
        self.device = _model_device(model) if device is None else resolve_device(device)
        self.precision = pick_precision(self.device, precision)
        self.model = inference_layout(model.to(self.device).eval(), self.precision)

    @classmethod
    def from_pretrained(cls, spec: str | Path | None = None, device: torch.device | str = "auto",
                        precision: str = "auto", overrides: list[str] | None = None) -> Restorer:
        """The model of ``spec`` (a checkpoint path, a shipped model's name, ``"classical"``; ``None``: the
        shipped default) via :func:`stochdeblur.hub.load`, ``overrides`` (``key=value``) applied to its config.

        Raises:
            CheckpointError: no such checkpoint or shipped model, or it fails to load.
        """
        device = resolve_device(device)
        model, cfg = (load_default(device, overrides=overrides) if spec is None
                      else load(spec, device, overrides=overrides))
        return cls(model, cfg, device, precision)

    @property
    def presets(self) -> dict[str, ModePreset]:
        """The named modes: predictor, average and ``sample.modes`` (the model's own; its config's for one-shot
        methods, which keep none and ignore them)."""
        return getattr(self.model, "modes", None) or self.cfg.sample.presets()

    @property
    def diffusion(self) -> bool:
        """Whether the model samples (DvSR); one-shot methods ignore modes, steps and averaging."""
        return bool(self.model.samples)

    def preset(self, mode: str | None = None, steps: int | None = None, average: int | None = None, *,
               sampler: str | None = None, eta: float | None = None, schedule: str | None = None,
               alpha_bar_end: float | None = None) -> ModePreset:
        """The complete setting of a request (:func:`~stochdeblur.config.resolve_preset`): the preset ``mode`` with
        each explicit argument replacing its value; no mode and no ``steps``: the "average" preset; no mode but
        ``steps``: ``steps`` × ``average`` (1) with the ``sample`` section's sampler settings.

        Raises:
            ValueError: an unknown mode (the message lists the model's), steps < 0 / average < 1, or a bad sampler
                setting (an explicit ``eta`` needs the DDIM sampler).
        """
        if mode is None and steps is None:
            mode = "average"
        return resolve_preset(self.presets, mode, steps, average, sampler=sampler, eta=eta, schedule=schedule,
                              alpha_bar_end=alpha_bar_end)

    def settings(self, mode: str | None = None, steps: int | None = None,
                 average: int | None = None) -> tuple[int, int]:
        """(steps, average) of a request, as :meth:`preset` resolves it."""
        preset = self.preset(mode, steps, average)
        return preset.steps, preset.average

    def _batch(self, y: Tensor) -> Tensor:
        batch = y.unsqueeze(0) if y.ndim == 3 else y
        return inference_layout(batch.to(self.device), self.precision)

    @torch.no_grad()
    def __call__(self, y: Tensor, mode: str | None = None, *, steps: int | None = None, average: int | None = None,
                 seed: int | None = None, sampler: str | None = None, eta: float | None = None,
                 schedule: str | None = None, alpha_bar_end: float | None = None, tile: int | None = None,
                 return_samples: bool = False, progress: bool = False) -> Tensor | Restoration:
        """Deblur ``y`` in ``mode`` (see :meth:`preset`: the mode's steps, samples and sampler settings, each
        replaced by an explicit argument); ``seed``/``tile`` default to the config's ``sample`` values (``tile=0``:
        never tile). ``return_samples=True`` returns the :class:`~stochdeblur.diffusion.sampler.Restoration`
        (image, K samples, σ map).

        Shape: y [B,3,H,W] (or [3,H,W], a batch of one) in [-1,1] → [B,3,H,W] in [-1,1], float32, on the device.

        Raises:
            ValueError: an unknown mode, bad steps/average or a bad sampler setting.
        """
        run = self.preset(mode, steps, average, sampler=sampler, eta=eta, schedule=schedule,
                          alpha_bar_end=alpha_bar_end)
        sample = self.cfg.sample
        tile = sample.tile if tile is None else tile
        batch = self._batch(y)
        with autocast(self.device, self.precision):
            result = self.model.restore(batch, steps=run.steps, average=run.average,
                                        seed=sample.seed if seed is None else seed, sampler=run.sampler,
                                        eta=run.eta if run.sampler == "ddim" else None, schedule=run.schedule,
                                        alpha_bar_end=run.alpha_bar_end, tile=tile or None, progress=progress,
                                        return_samples=return_samples)
        if isinstance(result, Restoration):
            return Restoration(result.image.float(), result.samples.float(), result.sigma.float())
        return result.float()

    def timed(self, y: Tensor, mode: str | None = None, **options: Any) -> tuple[Tensor | Restoration, float]:
        """``self(y, mode, **options)`` and its wall seconds (CUDA work included: the device is synchronised)."""
        self._synchronize()
        start = time.perf_counter()
        out = self(y, mode, **options)
        self._synchronize()
        return out, time.perf_counter() - start

    @torch.no_grad()
    def estimate_kernels(self, y: Tensor) -> Tensor | None:
        """The blur kernels [B, k, k] (float32) the model estimates for ``y`` [B,3,H,W] (or [3,H,W]), or None
        when it estimates none (only the kernel-aware predictor and the classical method do)."""
        with autocast(self.device, self.precision):
            kernels = self.model.estimate_kernels(self._batch(y))
        return None if kernels is None else kernels.float()

    def _synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
