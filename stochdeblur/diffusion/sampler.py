"""Predict-and-refine sampling: reverse diffusion over the residual z = x − x_init (DvSR, DESIGN.md §3).

One loop serves the three samplers; the per-step update comes from diffusers, built on the inference
schedule of :func:`~stochdeblur.diffusion.schedule.inference_schedule` (``trained_betas``: linear β by default or
the cosine shape, ending at ᾱ_T = ``alpha_bar_end``; ``clip_sample=False``, ``timestep_spacing="trailing"`` so the
T inference steps are exactly t = T−1 … 0):

* ``"ddpm"``: :class:`diffusers.DDPMScheduler` (``variance_type="fixed_small"``). Its update is exactly the
  ancestral step of DVSR.md §3: z_{t−1} = c1·ẑ0 + c2·z_t + σ_t·ξ with c1 = β_t√ᾱ_{t−1}/(1−ᾱ_t),
  c2 = (1−ᾱ_{t−1})√α_t/(1−ᾱ_t), σ_t² = β_t(1−ᾱ_{t−1})/(1−ᾱ_t), and no noise on the last step; a list of
  per-row generators draws each sample's noise from its own stream.
* ``"ddim"``: :class:`diffusers.DDIMScheduler` with its η (``eta``): 0 (the default) is deterministic after z_T,
  1 has σ_t² = β_t(1−ᾱ_{t−1})/(1−ᾱ_t), the DDPM update above; the noise comes from the per-sample generators.
* ``"dpmsolver"``: :class:`diffusers.DPMSolverMultistepScheduler` (DPM-Solver++ 2M, deterministic after z_T).

What stays hand-written, and why: (a) the denoiser sees the continuous √ᾱ of the scheduler's timestep, never t;
(b) ẑ0 = (z_t − √(1−ᾱ_t)·ε̂)/√ᾱ_t is computed here and **x_init + ẑ0** is clamped to [−1, 1] (diffusers can only
clamp ẑ0 itself to a symmetric range, which is wrong for a residual), then handed to the scheduler as its
``prediction_type="sample"`` output — the scheduler's own ε is re-derived from that clamped ẑ0; (c) z_T and all
per-sample randomness use one generator per sample seeded ``seed + k``, so averaging K samples equals the mean
of K single runs with seeds seed … seed+K−1 and no result depends on the batch it ran in.

The network is called through ``eps_fn(z_t, noise_level, cond)``, a hook that :mod:`stochdeblur.tiling` can wrap
to run the denoiser tile by tile while z_t and the noise stay full-size (one noise field per step, so tiles agree).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler
from torch import Tensor
from tqdm.auto import tqdm

from stochdeblur.diffusion.schedule import inference_schedule

EpsFn = Callable[[Tensor, Tensor, Tensor], Tensor]
"""``eps_fn(z_t [N,3,H,W], noise_level √ᾱ_t [N], cond [N,C,H,W]) -> ε̂ [N,3,H,W]``."""

SAMPLERS = ("ddpm", "ddim", "dpmsolver")


def make_scheduler(sampler: str, steps: int, *, schedule: str = "linear",
                   alpha_bar_end: float = 1e-3) -> DDPMScheduler | DDIMScheduler | DPMSolverMultistepScheduler:
    """A diffusers scheduler running exactly ``steps`` reverse steps over
    :func:`~stochdeblur.diffusion.schedule.inference_schedule` (steps, schedule, alpha_bar_end)."""
    betas = inference_schedule(steps, schedule, alpha_bar_end).tolist()
    common = {"num_train_timesteps": steps, "trained_betas": betas, "prediction_type": "sample",
              "timestep_spacing": "trailing"}
    if sampler == "ddpm":
        scheduler = DDPMScheduler(**common, clip_sample=False, variance_type="fixed_small")
    elif sampler == "ddim":
        scheduler = DDIMScheduler(**common, clip_sample=False, set_alpha_to_one=True)
    elif sampler == "dpmsolver":
        scheduler = DPMSolverMultistepScheduler(**common, algorithm_type="dpmsolver++", solver_order=2,
                                                lower_order_final=True)
    else:
        raise ValueError(f"sampler={sampler!r} is not one of {', '.join(SAMPLERS)}")
    scheduler.set_timesteps(steps)
    return scheduler


def sample_generators(batch: int, average: int, seed: int, device: torch.device | str) -> list[torch.Generator]:
    """One generator per row of a K-fold repeated batch (row k·B + b ↔ sample k of image b), seeded ``seed + k``."""
    return [torch.Generator(device=device).manual_seed(seed + k) for k in range(average) for _ in range(batch)]


def _randn(like: Tensor, generators: list[torch.Generator]) -> Tensor:
    """Standard normal noise shaped like ``like``, each row drawn from its own generator."""
    rows = [torch.randn((1, *like.shape[1:]), generator=g, device=g.device, dtype=torch.float32)
            for g in generators]
    return torch.cat(rows).to(like.device)


def sample_residual(eps_fn: EpsFn, cond: Tensor, x_init: Tensor, steps: int, *, average: int = 1, seed: int = 0,
                    sampler: str = "ddpm", eta: float = 0.0, schedule: str = "linear", alpha_bar_end: float = 1e-3,
                    progress: bool = False) -> Tensor:
    """Draw ``average`` residual samples z_0 per image by reverse diffusion, all K·B in one batch.

    Args:
        eps_fn: the denoiser hook, called once per step on the whole (repeated) batch.
        cond: what the denoiser is conditioned on (y, or [y, x_init]), [B, C, H, W].
        x_init: the predictor output g(y), [B, 3, H, W], used for the clamp of x_init + ẑ0.
        steps: number of reverse steps T (≥ 1); the inference schedule is chosen per T.
        average: samples per image K, computed as one batch of K·B rows.
        seed: sample k of every image uses a generator seeded ``seed + k``.
        sampler: "ddpm" (ancestral), "ddim" or "dpmsolver".
        eta: DDIM's η in [0, 1] (0: deterministic after z_T; 1: the ancestral update); only ``"ddim"`` uses it.
        schedule: β shape of the inference schedule, "linear" or "cosine".
        alpha_bar_end: ᾱ_T, the noise level of the first reverse step, in (0, 1).
        progress: show a progress bar over the steps.

    Shape:
        returns [K, B, 3, H, W] residuals (x_init + z_0 lies in [−1, 1] up to the last-step noise-free update).
    """
    if steps < 1 or average < 1:
        raise ValueError(f"steps and average must be >= 1, got steps={steps}, average={average}")
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta must be in [0, 1], got {eta}")
    scheduler = make_scheduler(sampler, steps, schedule=schedule, alpha_bar_end=alpha_bar_end)
    options = {"eta": eta} if sampler == "ddim" else {}
    batch = x_init.shape[0]
    gen_device = x_init.device if x_init.device.type == "cuda" else torch.device("cpu")
    generators = sample_generators(batch, average, seed, gen_device)
    cond_k = cond.repeat(average, 1, 1, 1)
    init_k = x_init.float().repeat(average, 1, 1, 1)
    alpha_bars = scheduler.alphas_cumprod.to(torch.float64)

    # 1. z_T ~ N(0, I), one stream per sample
    z = _randn(init_k, generators)
    for t in tqdm(scheduler.timesteps, desc="steps", leave=False, disable=not progress):
        alpha_bar = alpha_bars[int(t)]
        noise_level = torch.full((z.shape[0],), alpha_bar.sqrt().item(), device=z.device)
        # 2. ε̂ = f([y, z_t], √ᾱ_t)  (continuous noise level, never t)
        eps = eps_fn(z, noise_level, cond_k).float()
        # 3. ẑ0 = (z_t − √(1−ᾱ_t)·ε̂) / √ᾱ_t   (DDPM eq. 15, on the residual)
        z0 = (z - (1.0 - alpha_bar).sqrt().item() * eps) / alpha_bar.sqrt().item()
        # 4. clamp the image x_init + ẑ0 to [−1, 1], never the residual alone
        z0 = (init_k + z0).clamp(-1.0, 1.0) - init_k
        # 5. z_{t−1} = c1·ẑ0 + c2·z_t + σ_t·ξ (DDPM eq. 6–7; DDIM / DPM-Solver++ updates for the others)
        z = scheduler.step(z0, t, z, generator=generators, **options).prev_sample
    return z.view(average, batch, *z.shape[1:])


CPU_PIXELS_PER_CALL = 256 * 256  # auto chunk on a CPU: batching beyond this costs more than separate calls


def auto_chunk(average: int, batch: int, height: int, width: int, device: torch.device) -> int:
    """Samples per denoiser call for ``average_chunk=0``: all K on a GPU, ≤ 256² pixels per call on a CPU."""
    if device.type != "cpu":
        return average
    return max(1, min(average, CPU_PIXELS_PER_CALL // max(1, batch * height * width)))


def _image_chunks(eps_fn: EpsFn, cond: Tensor, x_init: Tensor, steps: int, *, average: int, seed: int,
                  progress: bool, chunk: int, **options: Any) -> Iterator[Tensor]:
    """The K sampled images clamp(x_init + z_0^k, −1, 1) in chunks of [≤ chunk, B, 3, H, W] (0: auto)."""
    chunk = chunk or auto_chunk(average, x_init.shape[0], *x_init.shape[-2:], x_init.device)
    for first in range(0, average, chunk):
        count = min(chunk, average - first)
        residuals = sample_residual(eps_fn, cond, x_init, steps, average=count, seed=seed + first,
                                    progress=progress, **options)
        yield (x_init.float().unsqueeze(0) + residuals).clamp(-1.0, 1.0)


def _mean(chunks: Iterable[Tensor], like: Tensor, average: int) -> Tensor:
    total = torch.zeros_like(like, dtype=torch.float32)
    for images in chunks:
        total += images.sum(dim=0)
    return total / average


def sample(eps_fn: EpsFn, cond: Tensor, x_init: Tensor, steps: int, *, average: int = 1, seed: int = 0,
           sampler: str = "ddpm", eta: float = 0.0, schedule: str = "linear", alpha_bar_end: float = 1e-3,
           progress: bool = False, chunk: int = 0) -> Tensor:
    """Restored images: the mean over K samples of clamp(x_init + z_0^k, −1, 1); ``sampler``, ``eta``,
    ``schedule`` and ``alpha_bar_end`` as in :func:`sample_residual`.

    Averaging the clamped images (not the residuals) makes ``average=K`` equal the mean of K single-sample
    calls with seeds ``seed … seed+K−1``. The K samples run in batches of ``chunk`` rows per image (0: see
    :func:`auto_chunk`); sample k keeps its seed ``seed + k`` whatever the chunking.

    Shape:
        cond [B, C, H, W], x_init [B, 3, H, W] → [B, 3, H, W] in [−1, 1].
    """
    return _mean(_image_chunks(eps_fn, cond, x_init, steps, average=average, seed=seed, progress=progress,
                               chunk=chunk, sampler=sampler, eta=eta, schedule=schedule, alpha_bar_end=alpha_bar_end),
                 x_init, average)


@dataclass
class Restoration:
    """A restoration with its K samples: what ``restore(..., return_samples=True)`` returns.

    Attributes:
        image: [B,3,H,W] in [−1, 1], the mean of the samples (bit-for-bit what ``restore`` returns).
        samples: [K,B,3,H,W] in [−1, 1], the individual restorations (sample k drawn with seed ``seed + k``).
        sigma: [B,H,W] float32, the per-pixel standard deviation over the K samples in [0, 1]-image units
            (root mean square over the colour channels): where the samples disagree; zero when K = 1.
    """

    image: Tensor
    samples: Tensor
    sigma: Tensor

    @classmethod
    def from_samples(cls, samples: Tensor, image: Tensor) -> Restoration:
        """Samples [K,B,3,H,W] and their mean ``image`` [B,3,H,W], with σ computed; a one-shot output is K = 1."""
        variance = (samples.float() / 2).var(dim=0, correction=0).mean(dim=1)  # /2: [−1, 1] → [0, 1] units
        return cls(image, samples, variance.sqrt())


def sample_all(eps_fn: EpsFn, cond: Tensor, x_init: Tensor, steps: int, *, average: int = 1, seed: int = 0,
               sampler: str = "ddpm", eta: float = 0.0, schedule: str = "linear", alpha_bar_end: float = 1e-3,
               progress: bool = False, chunk: int = 0) -> Restoration:
    """:func:`sample` keeping the K samples and their per-pixel spread (same draws, same mean bit for bit).

    Shape:
        cond [B, C, H, W], x_init [B, 3, H, W] → image [B,3,H,W], samples [K,B,3,H,W], sigma [B,H,W].
    """
    chunks = list(_image_chunks(eps_fn, cond, x_init, steps, average=average, seed=seed, progress=progress,
                                chunk=chunk, sampler=sampler, eta=eta, schedule=schedule, alpha_bar_end=alpha_bar_end))
    return Restoration.from_samples(torch.cat(chunks), _mean(chunks, x_init, average))
