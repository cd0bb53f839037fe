"""Restorer: the one inference path gives exactly the model's own restore; its defaults, errors and kernels."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from stochdeblur import Restorer
from stochdeblur.config import load_config
from stochdeblur.diffusion.sampler import Restoration
from stochdeblur.hub import CheckpointError, save_pretrained
from stochdeblur.io import quantize, read_image, write_image
from stochdeblur.methods import build_method
from stochdeblur.utils import autocast, inference_layout


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cfg = load_config(overrides=["predictor.base_channels=8", "denoiser.base_channels=8"])
    return save_pretrained(build_method(cfg), tmp_path_factory.mktemp("tiny") / "model", cfg)


@pytest.fixture(scope="module")
def blur() -> torch.Tensor:
    return torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1


@pytest.mark.parametrize("precision", ["auto", "no"])
@pytest.mark.parametrize(("mode", "steps"), [("predictor", None), ("average", 2), ("perceptual", 3)])
def test_restorer_equals_the_models_own_restore(checkpoint: Path, blur: torch.Tensor, precision: str,
                                                mode: str, steps: int | None) -> None:
    restorer = Restorer.from_pretrained(checkpoint, device="cpu", precision=precision)
    sample = restorer.cfg.sample
    got = restorer(blur, mode, steps=steps, seed=3)
    with torch.no_grad(), autocast("cpu", restorer.precision):
        want = restorer.model.restore(inference_layout(blur, restorer.precision), mode=mode, steps=steps, seed=3,
                                      sampler=sample.sampler, tile=sample.tile or None)
    assert got.dtype == torch.float32 and got.shape == blur.shape
    assert torch.equal(got, want.float())


def test_defaults_timing_samples_and_batch_of_one(checkpoint: Path, blur: torch.Tensor) -> None:
    restorer = Restorer.from_pretrained(checkpoint, device="cpu", precision="no")
    assert torch.equal(restorer(blur, average=2), restorer(blur, "average", average=2))  # no mode: "average"
    assert torch.equal(restorer(blur, steps=1), restorer(blur, "perceptual", steps=1))  # steps alone: 1 sample
    assert restorer.settings() == (10, 4) and restorer.settings(steps=5) == (5, 1)
    out, seconds = restorer.timed(blur[0], "predictor")
    assert seconds >= 0 and torch.equal(out, restorer(blur, "predictor"))
    result = restorer(blur, "average", steps=1, average=2, return_samples=True)
    assert isinstance(result, Restoration) and result.samples.shape == (2, *blur.shape)
    assert restorer.estimate_kernels(blur) is None  # the default predictor estimates no kernel


def test_classical_restores_and_estimates_kernels(blur: torch.Tensor) -> None:
    restorer = Restorer.from_pretrained("classical", device="cpu")
    assert not restorer.diffusion
    kernels = restorer.estimate_kernels(blur)
    assert kernels is not None and kernels.ndim == 3 and kernels.dtype == torch.float32
    assert restorer(blur, "perceptual").shape == blur.shape  # one-shot: the mode is accepted and ignored


def test_errors(checkpoint: Path, blur: torch.Tensor, tmp_path: Path) -> None:
    restorer = Restorer.from_pretrained(checkpoint, device="cpu")
    with pytest.raises(ValueError, match="unknown mode 'sharpest'"):
        restorer(blur, "sharpest")
    with pytest.raises(ValueError, match="average >= 1"):
        restorer(blur, "average", average=0)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        Restorer.from_pretrained(tmp_path / "missing", device="cpu")
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        Restorer.from_pretrained("not-a-shipped-model", device="cpu")


def test_quantize_matches_the_written_file(tmp_path: Path) -> None:
    image = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(1)) * 2.2 - 1.1
    image[0, 0, 0] = 1 / 255  # a tie: half-way between two codes
    written = read_image(write_image(tmp_path / "x.png", image))
    assert torch.equal(quantize(image), written)
