"""The contract between the trainer/CLIs and a model family (DvSR, DeblurGAN-v2, DeblurGAN v1, classical).

A *method* is one :class:`Method`: an ``nn.Module`` holding every network of a family that *declares* what the
trainer and the CLIs need, so they never probe it (no ``hasattr``, no signature inspection):

- ``samples``: whether :meth:`~Method.restore` draws samples (diffusion: steps, averaging, σ maps) or is one shot;
- :meth:`~Method.optimizer_groups`: named parameter groups with their base learning rates (one optimizer each);
- :meth:`~Method.step_schedule`: which groups step, in which order, in one training step;
- :meth:`~Method.requirements`: what training needs that may be missing, checked before step 1;
- :meth:`~Method.training_dataset`, :meth:`~Method.on_step`, :meth:`~Method.validation_images`, :meth:`~Method.estimate_kernels`: hooks with
  no-op defaults;
- :meth:`~Method.forward` (one group's training loss) and :meth:`~Method.restore` (inference).

The trainer calls the (DDP-wrapped) module with ``(batch, group, generator=...)``, so Accelerate/DDP wrap one
module and gradients are synchronised; it never looks at the networks inside.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from stochdeblur.config import ModePreset
from stochdeblur.diffusion.sampler import Restoration


@dataclass
class OptimizerGroup:
    """The parameters one optimizer updates and its base learning rate (before warm-up/decay)."""

    params: list[nn.Parameter]
    lr: float


class Method(nn.Module, ABC):
    """A trainable, restorable model family (see the module docstring for the contract).

    Batches are dicts with ``"blur"`` and ``"sharp"`` tensors, shape [B, 3, h, w], values in [-1, 1] (synthetic
    data also carry ``"kernel"``). Subclasses set ``samples`` and implement :meth:`optimizer_groups`,
    :meth:`forward` and :meth:`restore`; the other methods have defaults.
    """

    samples: ClassVar[bool]
    """True when :meth:`restore` samples (honours steps/average, can give K samples and a σ map)."""

    def __init__(self) -> None:
        super().__init__()
        self.modes: dict[str, ModePreset] = {}  # named presets of restore(mode=...); none for one-shot methods

    @abstractmethod
    def optimizer_groups(self) -> dict[str, OptimizerGroup]:
        """``{group name: OptimizerGroup}``, in optimizer order.

        Raises:
            ConfigError: the method has nothing to train.
        """

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """The parameters of each group of :meth:`optimizer_groups`."""
        return {name: group.params for name, group in self.optimizer_groups().items()}

    def step_schedule(self) -> list[str]:
        """The group names one training step runs, in order (a name may repeat); default: each group once."""
        return list(self.optimizer_groups())

    def requirements(self) -> list[str]:
        """Check, before training starts, what training needs beyond the config (cached weights, ...).

        Returns:
            notes on settings that will not apply as written (printed once by the trainer).

        Raises:
            ValueError subclass (``ConfigError``, ``PerceptualUnavailable``): something is missing; a one-line
            message naming the fix.
        """
        return []

    def training_dataset(self, dataset: Dataset, cache_dir: str | Path | None = None) -> Dataset:
        """The training items the method learns from, given the config's dataset (default: that dataset); a method
        whose step needs per-item work done in the data workers wraps it (``data.WithExtras``), keeping that
        work in ``cache_dir`` when given (``data.extras_cache``)."""
        return dataset

    def on_step(self, step: int) -> None:
        """Called by the trainer before training step ``step`` (0-based), e.g. to freeze parts for a while."""

    @abstractmethod
    def forward(self, batch: dict[str, Tensor], group: str,
                generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """The training loss of ``group`` on ``batch``: scalar tensors with ``"loss"`` (back-propagated) and
        logged terms. ``generator`` (a ``torch.Generator`` on the training device, or None for torch's default)
        is the source of the step's training noise, so a resumed run replays it exactly."""

    @abstractmethod
    def restore(self, blur: Tensor, *, mode: str | None = None, steps: int | None = None, average: int | None = None,
                seed: int = 0, sampler: str | None = None, eta: float | None = None, schedule: str | None = None,
                alpha_bar_end: float | None = None, tile: int | None = None, progress: bool = False,
                return_samples: bool = False) -> Tensor | Restoration:
        """Deblur y [B,3,H,W] → [B,3,H,W] in [-1, 1]; with ``return_samples`` a :class:`Restoration` (the image,
        its K samples and their σ map). ``mode`` names a preset of :attr:`modes`; one-shot methods
        (``samples`` False) accept and ignore it and the diffusion arguments."""

    def estimate_kernels(self, blur: Tensor) -> Tensor | None:
        """The blur kernels [B, k, k] the method estimates for a batch, or None when it estimates none."""
        return None

    def validation_images(self, blur: Tensor) -> dict[str, Tensor]:
        """Extra validation panels [B,3,H,W] in [-1, 1] by name (``"x_init"`` is also scored); default none."""
        return {}
