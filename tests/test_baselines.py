"""Non-blind deconvolution baselines recover a blurred image they are told the kernel of."""

import numpy as np
import pytest
import torch
from scipy.signal import fftconvolve

from stochdeblur.baselines import richardson_lucy, wiener_deconvolve


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(4 / ((a - b) ** 2).mean()))


@pytest.fixture
def blurred_pair() -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    rng = np.random.default_rng(0)
    sharp = np.zeros((64, 64, 3))
    for _ in range(12):  # piecewise-constant rectangles: edges that blur visibly
        y, x = rng.integers(0, 56, 2)
        sharp[y : y + rng.integers(4, 20), x : x + rng.integers(4, 20)] = rng.random(3)
    kernel = np.zeros((9, 9))
    kernel[4, :] = 1 / 9  # horizontal motion
    pad = 9
    padded = np.pad(sharp, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
    blur = np.stack([fftconvolve(padded[..., c], kernel, mode="same") for c in range(3)], -1)[pad:-pad, pad:-pad]
    to_t = lambda a: torch.from_numpy(a * 2 - 1).permute(2, 0, 1).float()  # noqa: E731
    return to_t(blur), to_t(sharp), kernel


@pytest.mark.parametrize("method", [wiener_deconvolve, richardson_lucy])
def test_deconvolution_beats_blurry_input(blurred_pair, method) -> None:
    blur, sharp, kernel = blurred_pair
    restored = method(blur, kernel)
    assert restored.shape == blur.shape and restored.min() >= -1 and restored.max() <= 1
    assert _psnr(restored, sharp) > _psnr(blur, sharp) + 3
