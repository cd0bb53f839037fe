"""Classical blind deblurring behind the method contract: no network, no weights, no training.

``ClassicalDeblurrer.restore`` runs :func:`stochdeblur.baselines.blind_deconvolve` (coarse-to-fine kernel
estimation of :mod:`stochdeblur.physics.blind`, then the TV deconvolution of :mod:`stochdeblur.physics.nonblind`)
on each image, or on each tile of a large one (each tile estimates its own kernel, which also follows spatially
varying blur). It is what ``--checkpoint classical`` loads in the CLIs and the ``blind-classical`` row of the
benchmarks.
"""

from __future__ import annotations

import torch
from torch import Tensor

from stochdeblur import baselines
from stochdeblur.config import ConfigError, RunConfig
from stochdeblur.diffusion.sampler import Restoration
from stochdeblur.methods.base import Method, OptimizerGroup
from stochdeblur.tiling import tiled_apply

NAME = "classical"
_NOTHING_TO_TRAIN = "method=classical has no parameters to train; train method=dvsr or a GAN"


class ClassicalDeblurrer(Method):
    """Blind deconvolution as a one-shot method (nothing to train: :meth:`requirements` refuses training).

    Args:
        kernel_size: the largest blur (px) the kernel estimate may have.
        tile_overlap: overlap in pixels between tiles when :meth:`restore` tiles.
    """

    samples = False

    def __init__(self, kernel_size: int = 33, tile_overlap: int = 32) -> None:
        super().__init__()
        if kernel_size < 3:
            raise ValueError(f"kernel_size must be >= 3, got {kernel_size}")
        self.kernel_size, self.tile_overlap = int(kernel_size), int(tile_overlap)
        self.size_multiple = 1
        self._last: tuple[Tensor, Tensor, Tensor] | None = None  # (input, restored, kernels) of the last call

    @classmethod
    def from_config(cls, cfg: RunConfig) -> ClassicalDeblurrer:
        """``sample.kernel_size`` and ``sample.tile_overlap`` of a :class:`RunConfig`."""
        return cls(cfg.sample.kernel_size, cfg.sample.tile_overlap)

    def requirements(self) -> list[str]:
        """Training is refused before it starts (``ConfigError`` naming what to train instead)."""
        raise ConfigError(_NOTHING_TO_TRAIN)

    def optimizer_groups(self) -> dict[str, OptimizerGroup]:
        """Nothing to train: refused, as :meth:`requirements`."""
        raise ConfigError(_NOTHING_TO_TRAIN)

    def forward(self, batch: dict[str, Tensor], group: str,
                generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """Refused, as :meth:`requirements`."""
        raise ConfigError(_NOTHING_TO_TRAIN)

    def _run(self, blur: Tensor) -> tuple[Tensor, Tensor]:
        """(restored [B,3,H,W], kernels [B,k,k]) for a batch, one image at a time (each has its own blur)."""
        last = self._last
        if last is not None and last[0].shape == blur.shape and torch.equal(last[0], blur):
            return last[1], last[2]
        restored, kernels = baselines.blind_deconvolve_batch(blur, self.kernel_size)
        self._last = (blur.detach().clone(), restored, kernels)
        return restored, kernels

    @torch.no_grad()
    def estimate_kernels(self, blur: Tensor) -> Tensor:
        """The blind kernel estimates [B, k, k] of a batch [B,3,H,W] in [−1, 1] (for ``--save-kernel``); a
        following :meth:`restore` of the same batch reuses the work."""
        return self._run(blur)[1]

    @torch.no_grad()
    def restore(self, blur: Tensor, *, mode: str | None = None, steps: int | None = None, average: int | None = None,
                seed: int = 0, sampler: str | None = None, eta: float | None = None, schedule: str | None = None,
                alpha_bar_end: float | None = None, tile: int | None = None, progress: bool = False,
                return_samples: bool = False) -> Tensor | Restoration:
        """Deblur [B,3,H,W] in [−1, 1] → [B,3,H,W] in [−1, 1]; mode and the diffusion options are ignored (one
        shot); ``return_samples=True`` wraps the output as its single sample (σ = 0)."""
        if tile is not None and max(blur.shape[-2:]) > tile:
            out = tiled_apply(lambda crop: self._run(crop)[0], [blur], tile=tile, overlap=self.tile_overlap,
                              multiple=1)
        else:
            out = self._run(blur)[0]
        return Restoration.from_samples(out.unsqueeze(0), out) if return_samples else out
