"""Schedules, the training noise-level draw and the residual sampler (DDPM / DDIM / DPM-Solver)."""

from __future__ import annotations

import math

import pytest
import torch

from stochdeblur.config import DiffusionConfig
from stochdeblur.diffusion.sampler import auto_chunk, make_scheduler, sample, sample_all, sample_residual
from stochdeblur.diffusion.schedule import (
    alpha_bar_table,
    cosine_alpha_bars,
    inference_betas,
    linear_alpha_bars,
    sample_noise_level,
)
from stochdeblur.models.unet import UNet


def test_linear_and_cosine_tables() -> None:
    table = linear_alpha_bars(2000, 1e-6, 1e-2)
    assert table.shape == (2000,) and table.dtype == torch.float64
    assert torch.all(table[1:] < table[:-1])
    assert table[0] == pytest.approx(1 - 1e-6)
    assert 1e-5 < table[-1] < 1e-4  # SR3 schedule: ᾱ_2000 ≈ 4.5e-5
    cosine = cosine_alpha_bars(1000)
    assert torch.all(cosine[1:] <= cosine[:-1]) and cosine[-1] < 1e-4 and cosine[-1] > 0
    assert torch.equal(alpha_bar_table(DiffusionConfig()), table)


@pytest.mark.parametrize("steps", [1, 2, 10, 100, 500])
def test_inference_betas_reach_target_without_beta_one(steps: int) -> None:
    betas = inference_betas(steps)
    assert betas.shape == (steps,)
    assert torch.all(betas > 0) and torch.all(betas < 1)
    assert torch.prod(1 - betas).item() == pytest.approx(1e-3, rel=1e-6)
    assert torch.all(betas[1:] >= betas[:-1])


def test_noise_level_draw_stays_inside_the_drawn_interval() -> None:
    table = linear_alpha_bars(20, 1e-3, 0.3)
    levels = sample_noise_level(4096, table, torch.Generator().manual_seed(0))
    assert levels.shape == (4096,) and levels.dtype == torch.float32
    assert levels.min() >= table[-1].sqrt() - 1e-6 and levels.max() <= 1.0
    # t is uniform over 20 intervals: every interval [√ᾱ_t, √ᾱ_{t−1}] gets draws
    bounds = torch.cat([torch.ones(1, dtype=torch.float64), table]).sqrt()
    counts = torch.histc(torch.bucketize(levels.double(), bounds.flip(0)).float(), bins=20, min=1, max=20)
    assert counts.min() > 100
    again = sample_noise_level(4096, table, torch.Generator().manual_seed(0))
    assert torch.equal(levels, again)


def test_ddpm_step_is_the_ancestral_update_of_the_spec() -> None:
    """The scheduler's update equals z_{t−1} = c1·ẑ0 + c2·z_t + σ_t·ξ with DVSR.md §3's coefficients."""
    steps = 10
    scheduler = make_scheduler("ddpm", steps)
    betas = inference_betas(steps)
    alpha_bars = torch.cumprod(1 - betas, 0)
    z_t, z0 = torch.randn(1, 3, 8, 8), torch.randn(1, 3, 8, 8)
    for t in (7, 0):
        out = scheduler.step(z0, t, z_t, generator=[torch.Generator().manual_seed(3)]).prev_sample
        ab, ab_prev, beta = alpha_bars[t], (alpha_bars[t - 1] if t > 0 else torch.tensor(1.0)), betas[t]
        c1 = beta * ab_prev.sqrt() / (1 - ab)
        c2 = (1 - ab_prev) * (1 - beta).sqrt() / (1 - ab)
        sigma = (beta * (1 - ab_prev) / (1 - ab)).sqrt()
        xi = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(3)) if t > 0 else 0.0
        expected = c1.float() * z0 + c2.float() * z_t + sigma.float() * xi
        assert torch.allclose(out, expected, atol=1e-5)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "dpmsolver"])
def test_oracle_denoiser_recovers_the_residual(sampler: str) -> None:
    """With the exact ε of a known residual r, every sampler returns x_init + r (clamped to [−1, 1])."""
    x_init = torch.rand(2, 3, 8, 8) * 1.6 - 0.8
    r = torch.randn(2, 3, 8, 8) * 0.5

    def oracle(z_t: torch.Tensor, level: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        a = level[:, None, None, None].double()
        rr = r.repeat(z_t.shape[0] // 2, 1, 1, 1).double()
        return ((z_t.double() - a * rr) / (1 - a**2).sqrt()).float()

    out = sample(oracle, x_init, x_init, 10, average=2, seed=1, sampler=sampler)
    assert torch.allclose(out, (x_init + r).clamp(-1, 1), atol=1e-4)


def _tiny_eps_fn(size: int = 16):
    net = UNet(6, 3, base_channels=8, channel_mults=(1, 2), num_res_blocks=1, noise_embed=True).eval()

    def eps_fn(z_t: torch.Tensor, level: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return net(torch.cat([cond, z_t], 1), level)

    return eps_fn


@pytest.mark.parametrize("steps", [1, 2, 10, 500])
def test_sampler_runs_any_step_count_and_is_deterministic(steps: int) -> None:
    eps_fn = _tiny_eps_fn()
    y = torch.rand(1, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        a = sample(eps_fn, y, y, steps, seed=7)
        b = sample(eps_fn, y, y, steps, seed=7)
        c = sample(eps_fn, y, y, steps, seed=8)
    assert a.shape == y.shape and torch.isfinite(a).all()
    assert a.min() >= -1 and a.max() <= 1
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "dpmsolver"])
def test_average_equals_mean_of_single_seeded_samples(sampler: str) -> None:
    eps_fn = _tiny_eps_fn()
    y = torch.rand(2, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        averaged = sample(eps_fn, y, y, 5, average=3, seed=4, sampler=sampler)
        singles = torch.stack([sample(eps_fn, y, y, 5, seed=4 + k, sampler=sampler) for k in range(3)]).mean(0)
        alone = sample(eps_fn, y[1:], y[1:], 5, average=3, seed=4, sampler=sampler)
    assert torch.allclose(averaged, singles, atol=1e-5)
    assert torch.allclose(averaged[1:], alone, atol=1e-5)  # independent of the batch it ran in
    for chunk in (1, 2):  # the K samples split over several denoiser calls: same seeds, same result
        with torch.no_grad():
            chunked = sample(eps_fn, y, y, 5, average=3, seed=4, sampler=sampler, chunk=chunk)
        assert torch.allclose(averaged, chunked, atol=1e-5)


def test_auto_chunk_batches_everything_on_gpu_and_bounds_pixels_on_cpu() -> None:
    assert auto_chunk(8, 1, 256, 256, torch.device("cuda")) == 8
    assert auto_chunk(8, 1, 256, 256, torch.device("cpu")) == 1
    assert auto_chunk(8, 1, 64, 64, torch.device("cpu")) == 8
    assert auto_chunk(4, 2, 128, 128, torch.device("cpu")) == 2


def test_residual_samples_have_shape_k_b() -> None:
    y = torch.zeros(2, 3, 8, 8)
    out = sample_residual(lambda z, lvl, c: torch.zeros_like(z), y, y, 3, average=4)
    assert out.shape == (4, 2, 3, 8, 8)
    assert not math.isclose((out[0] - out[1]).abs().max().item(), 0.0)


def test_bad_arguments_are_clear_errors() -> None:
    y = torch.zeros(1, 3, 8, 8)
    with pytest.raises(ValueError, match="sampler"):
        sample(lambda z, lvl, c: z, y, y, 3, sampler="euler")
    with pytest.raises(ValueError, match="steps"):
        sample(lambda z, lvl, c: z, y, y, 0)


def _gaussian_prior_eps(spread: torch.Tensor):
    """The exact ε-predictor E[ε | z_t] when every residual pixel is N(0, spread²): √(1−ᾱ)·z_t / (ᾱ·s² + 1 − ᾱ)."""

    def eps_fn(z: torch.Tensor, level: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        ab = (level**2).view(-1, 1, 1, 1)
        return (1 - ab).sqrt() / (ab * spread**2 + 1 - ab) * z

    return eps_fn


def test_sigma_map_measures_the_sampler_spread() -> None:
    """With the exact denoiser of a Gaussian residual prior (std 0.05 left, 0.3 right), the σ map over 32 samples
    is zero for one sample, grows with the number of DDPM steps (one step returns ≈ the posterior mean at z_T,
    no spread) toward the prior's own spread s/2 in [0,1] units, and is larger where the prior is wider."""
    spread = torch.full((1, 3, 16, 16), 0.05)
    spread[..., 8:] = 0.3
    eps_fn, zero = _gaussian_prior_eps(spread), torch.zeros(1, 3, 16, 16)
    single = sample_all(eps_fn, zero, zero, 20, average=1)
    assert single.samples.shape == (1, 1, 3, 16, 16) and single.sigma.shape == (1, 16, 16)
    assert torch.count_nonzero(single.sigma) == 0
    wide = [sample_all(eps_fn, zero, zero, steps, average=32, chunk=32).sigma[0, :, 8:].mean().item()
            for steps in (1, 5, 20, 100)]
    assert wide == sorted(wide) and wide[0] < 0.01
    assert 0.8 * 0.15 < wide[-1] < 0.15
    many = sample_all(eps_fn, zero, zero, 100, average=32, chunk=32)
    assert many.sigma[0, :, 8:].mean() > 4 * many.sigma[0, :, :8].mean()
    assert torch.equal(many.image, sample(eps_fn, zero, zero, 100, average=32, chunk=32))
    assert torch.allclose(many.samples.mean(0), many.image, atol=1e-6)
