"""physics.blind and the baselines built on physics: blind kernel estimation (Pan et al.), its trust check,
and Wiener / Richardson–Lucy / blind deconvolution of valid-blurred synthetic pairs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stochdeblur.baselines import blind_deconvolve, richardson_lucy, wiener_deconvolve
from stochdeblur.data.synth import dead_leaves, degrade, motion_kernel
from stochdeblur.metrics import psnr
from stochdeblur.physics import blind, deconvolve
from stochdeblur.physics import kernels as K
from stochdeblur.physics.operators import unit_luminance


def _pair(seed: int, ksize: int, side: int) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """(blurry [3, side, side], sharp target, true kernel) from textured dead leaves, σ = 0.01, 8-bit."""
    rng = np.random.default_rng(seed)
    kernel = motion_kernel(ksize, rng)
    sharp = dead_leaves(side + ksize - 1, side + ksize - 1, rng, texture=True)
    blur, target = degrade(sharp, kernel, rng, noise_sigma=0.01)
    as_tensor = lambda a: torch.from_numpy(a.transpose(2, 0, 1).copy()) * 2 - 1  # noqa: E731
    return as_tensor(blur), as_tensor(target), kernel


@pytest.fixture(scope="module")
def estimated() -> tuple[torch.Tensor, torch.Tensor, np.ndarray, torch.Tensor, torch.Tensor]:
    blur, sharp, kernel = _pair(0, 15, 176)
    estimate, latent = blind.estimate_kernel(blur, 15)
    return blur, sharp, kernel, estimate, latent


def test_estimate_kernel_recovers_a_motion_kernel(estimated) -> None:
    blur, sharp, kernel, estimate, latent = estimated
    assert K.ncc(estimate, torch.from_numpy(kernel)) >= 0.8
    assert psnr(latent, sharp) > psnr(blur, sharp) + 3.0


def test_estimate_kernel_output_contract(estimated) -> None:
    blur, _, _, estimate, latent = estimated
    assert estimate.shape == (15, 15) and estimate.dtype == torch.float32
    assert estimate.min() >= 0 and abs(float(estimate.sum()) - 1.0) < 1e-5
    assert torch.allclose(K.center_of_mass(estimate), torch.tensor([7.0, 7.0]), atol=0.1)
    assert latent.shape == blur.shape and latent.min() >= -1 and latent.max() <= 1
    torch.testing.assert_close(latent, deconvolve(blur[None], estimate)[0].clamp(-1, 1))
    even, _ = blind.estimate_kernel(blur[None, :, :96, :96], 12, iterations=1)  # [1, C, H, W], even side
    assert even.shape == (12, 12) and abs(float(even.sum()) - 1.0) < 1e-5
    with pytest.raises(ValueError, match="kernel size"):
        blind.estimate_kernel(blur, 2)


def test_kernel_step_is_least_squares_on_the_observed_pixels() -> None:
    """Told the sharp support, the kernel step returns the true kernel (the valid border is modelled)."""
    rng = np.random.default_rng(1)
    kernel, support = motion_kernel(13, rng), dead_leaves(76, 76, rng, texture=True)
    blur, _ = degrade(support, kernel, rng, noise_sigma=0.01)
    blur = torch.from_numpy(blur.transpose(2, 0, 1).copy()) * 2 - 1
    level = blind._level(unit_luminance(blur), 13)
    latent = torch.zeros(level.frame)
    latent[:76, :76] = unit_luminance(torch.from_numpy(support.transpose(2, 0, 1).copy()) * 2 - 1)
    step = K.normalize(blind._kernel(level, latent, 1e-3))
    assert K.ncc(step, torch.from_numpy(kernel), max_shift=0) > 0.97


def test_salient_edges_prefer_a_long_edge_to_fine_texture() -> None:
    """Xu & Jia's r-map: gradients that cancel within the window (noise-like texture) are left out, a straight
    edge is kept, and the mask holds at least the share of observed pixels asked for."""
    gen = torch.Generator().manual_seed(0)
    gray = torch.full((64, 64), 0.3)
    gray[:, 40:] = 0.8  # one vertical edge at column 40
    gray[:, :24] += 0.2 * (torch.rand(64, 24, generator=gen) - 0.5)  # zero-mean fine texture on the left
    level = blind._level(gray, 9)
    mask = blind._salient_edges(level, 0.05)
    observed = level.observed > 0
    assert 0.05 <= float(mask[observed].mean()) < 0.1  # at least the share asked for; ties (one straight edge) kept
    top = 9 // 2
    cols = torch.nonzero(mask[top:top + 64, top:top + 64])[:, 1]
    assert (cols >= 30).float().mean() > 0.9  # the selection sits on the edge, not on the texture


@pytest.mark.parametrize(("option", "value", "invalid"), [("edge_fraction", 0.3, 0.0), ("dark_patch", 35, 4)])
def test_estimator_options_still_recover_the_kernel(option: str, value: float, invalid: float) -> None:
    """Salient-edge selection (Xu & Jia) and the dark-channel prior (Pan et al. 2016) keep the estimate right on a
    dead-leaves pair; an out-of-range value is refused by name."""
    blur, _, kernel = _pair(0, 15, 176)
    estimate, _ = blind.estimate_kernel(blur, 15, **{option: value})
    assert K.ncc(estimate, torch.from_numpy(kernel)) >= 0.8
    with pytest.raises(ValueError, match=option):
        blind.estimate_kernel(blur, 15, **{option: invalid})


def test_dark_pixels_are_the_window_minima() -> None:
    """The dark-channel pixels are exactly those that are the minimum of some window holding them (brute force
    over every window), and the dark-channel L0 step zeros only dark pixels that are also small."""
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(23, 19, generator=gen)
    patch, pad = 5, 2
    minima = torch.zeros_like(x, dtype=torch.bool)
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            window = x[max(i - pad, 0):i + pad + 1, max(j - pad, 0):j + pad + 1]
            rows, cols = torch.nonzero(window == window.min())[0]
            minima[max(i - pad, 0) + rows, max(j - pad, 0) + cols] = True
    torch.testing.assert_close(blind._dark_pixels(x, patch), minima)
    step = blind._intensity_step(x, 0.25, patch)  # threshold x² < 0.25: x < 0.5
    zeroed = step == 0
    assert torch.equal(zeroed, minima & (x < 0.5))
    assert torch.equal(step[~zeroed], x[~zeroed])
    assert int((blind._intensity_step(x, 0.25, 0) == 0).sum()) == int((x < 0.5).sum()) > int(zeroed.sum())


def test_salient_window_finds_the_edges_and_the_cropped_estimate_still_recovers_the_kernel() -> None:
    """The crop's window sits on the long edges, not on flat ground or fine noise-like texture; estimating on a
    crop of the blurry image still finds the blur, and the latent covers the whole image."""
    gen = torch.Generator().manual_seed(0)
    gray = torch.full((120, 160), 0.4)
    gray[:, :60] += 0.05 * (torch.rand(120, 60, generator=gen) - 0.5)  # fine texture on the left
    gray[70:, 110:] = 0.9  # a corner: two long edges at row 70 and column 110
    top, left = blind._salient_window(gray, (48, 48))
    assert top <= 70 < top + 48 and left <= 110 < left + 48
    blur, _, kernel = _pair(0, 15, 176)
    estimate, latent = blind.estimate_kernel(blur, 15, crop=112)
    assert K.ncc(estimate, torch.from_numpy(kernel)) >= 0.8
    assert latent.shape == blur.shape
    with pytest.raises(ValueError, match="crop"):
        blind.estimate_kernel(blur, 15, crop=9)


def test_kernel_confidence_separates_right_from_wrong_kernels(estimated) -> None:
    blur, _, kernel, estimate, latent = estimated
    assert blind.kernel_confidence(blur, estimate, latent) >= 1.0
    wrong = torch.from_numpy(kernel.T.copy())  # the same blur, transposed: a wrong direction
    assert blind.kernel_confidence(blur, wrong, deconvolve(blur[None], wrong)[0].clamp(-1, 1)) < 0.8
    assert blind.noise_level(blur) == pytest.approx(0.01, rel=0.3)


def test_blind_deconvolve_beats_the_blurry_input() -> None:
    blur, sharp, _ = _pair(3, 9, 104)
    restored, kernel = blind_deconvolve(blur, 9)
    assert restored.shape == blur.shape and kernel.shape == (9, 9)
    assert restored.min() >= -1 and restored.max() <= 1
    assert psnr(restored, sharp) > psnr(blur, sharp) + 3.0
    mixed, _ = blind_deconvolve(blur, 9, trust=float("inf"))  # never trusted: half deconvolution, half input
    torch.testing.assert_close(mixed, (0.5 * (restored + blur)).clamp(-1, 1), atol=1e-5, rtol=0)
    small, kernel = blind_deconvolve(blur[:, :24, :24], 33)  # the window is capped at the image
    assert small.shape == (3, 24, 24) and kernel.shape == (24, 24)


@pytest.mark.parametrize(("method", "gain"), [(wiener_deconvolve, 4.0), (richardson_lucy, 3.0)])
def test_non_blind_baselines_gain_with_the_true_kernel(method, gain: float) -> None:
    blur, sharp, kernel = _pair(0, 13, 128)
    restored = method(blur, kernel)
    assert restored.shape == blur.shape and restored.min() >= -1 and restored.max() <= 1
    assert psnr(restored, sharp) > psnr(blur, sharp) + gain
