"""The small contract between the trainer/CLIs and a model family (DvSR, DeblurGAN-v2, DeblurGAN v1).

A *method* is one ``nn.Module`` holding every network of a family. The trainer only knows
:class:`Method`: it asks for parameter groups (one optimizer each), calls the module with a batch and a
group name (so Accelerate/DDP wrap one module and gradients are synchronised), and never inspects the
networks. Inference code only calls :meth:`Method.restore`.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from stochdeblur.diffusion.sampler import Restoration


@runtime_checkable
class Predictor(Protocol):
    """Maps a blurry batch y in [-1, 1]^{B×3×H×W} to x_init of the same shape, for any H×W."""

    size_multiple: int

    def __call__(self, y: Tensor) -> Tensor: ...


@runtime_checkable
class Method(Protocol):
    """A trainable, restorable model family.

    ``forward(batch, group)`` is the training step for one optimizer group and returns a dict of scalar
    tensors with a ``"loss"`` key (the value to back-propagate); the other keys are logged.
    Batches are dicts with ``"blur"`` and ``"sharp"`` tensors, shape [B, 3, h, w], values in [-1, 1].
    """

    def param_groups(self) -> dict[str, list[nn.Parameter]]: ...

    def forward(self, batch: dict[str, Tensor], group: str) -> dict[str, Tensor]: ...

    @torch.no_grad()
    def restore(self, blur: Tensor, *, mode: str | None = None, steps: int | None = None, average: int | None = None,
                seed: int = 0, sampler: str = "ddpm", tile: int | None = None, progress: bool = False,
                return_samples: bool = False) -> Tensor | Restoration:
        """Deblur y [B,3,H,W] → [B,3,H,W] in [-1, 1]; with ``return_samples`` a :class:`Restoration` (the image,
        its K samples and their σ map). ``mode`` names a preset ("predictor", "average", "perceptual");
        one-shot methods accept and ignore it and the diffusion arguments."""
        ...

    def estimate_kernels(self, blur: Tensor) -> Tensor | None:
        """The blur kernels [B, k, k] the method estimates for a batch, or None when it estimates none."""
        ...
