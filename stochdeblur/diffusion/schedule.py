"""Noise schedules as ᾱ tables, the continuous noise-level draw for training, and per-T inference schedules.

Convention: a table ``alpha_bars`` of length T holds ᾱ_1 … ᾱ_T (index t−1), with ᾱ_0 = 1 implied. Tables are
float64 so products over thousands of steps stay exact; the values fed to networks are float32.

The denoiser is conditioned on the continuous √ᾱ (WaveGrad/SR3), never on t, so the inference schedule
(:func:`inference_schedule`) is chosen per number of steps independently of the training schedule: its β shape
(``"linear"``: :func:`inference_betas`, ``"cosine"``: :func:`cosine_inference_betas`) and its final noise level
ᾱ_T (``alpha_bar_end``), the perception–distortion knobs of ``sample.schedule`` / ``sample.alpha_bar_end``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from stochdeblur.config import INFERENCE_SCHEDULES, DiffusionConfig

COSINE_OFFSET = 0.008  # Nichol & Dhariwal's s: keeps β_1 from vanishing


def linear_alpha_bars(timesteps: int, beta_start: float = 1e-6, beta_end: float = 1e-2) -> Tensor:
    """ᾱ_t = ∏_{s≤t} (1 − β_s) for β linear from ``beta_start`` to ``beta_end`` (SR3: 1e-6 → 1e-2, T=2000).

    Shape: [timesteps], float64, strictly decreasing in (0, 1).
    """
    if timesteps < 1:
        raise ValueError(f"timesteps must be >= 1, got {timesteps}")
    if not 0.0 < beta_start <= beta_end < 1.0:
        raise ValueError(f"need 0 < beta_start <= beta_end < 1, got {beta_start}, {beta_end}")
    betas = torch.linspace(beta_start, beta_end, timesteps, dtype=torch.float64)
    return torch.cumprod(1.0 - betas, dim=0)


def cosine_alpha_bars(timesteps: int, s: float = COSINE_OFFSET, max_beta: float = 0.999) -> Tensor:
    """Nichol & Dhariwal's cosine schedule ᾱ(t) = cos²((t/T + s)/(1 + s)·π/2), β clipped to ``max_beta``.

    Shape: [timesteps], float64.
    """
    if timesteps < 1:
        raise ValueError(f"timesteps must be >= 1, got {timesteps}")
    steps = torch.arange(timesteps + 1, dtype=torch.float64) / timesteps
    f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    betas = (1 - f[1:] / f[:-1]).clamp(max=max_beta)
    return torch.cumprod(1.0 - betas, dim=0)


def alpha_bar_table(cfg: DiffusionConfig) -> Tensor:
    """The training ᾱ table described by ``cfg`` (``schedule``, ``train_timesteps``, β range for linear)."""
    if cfg.schedule == "linear":
        return linear_alpha_bars(cfg.train_timesteps, cfg.beta_start, cfg.beta_end)
    if cfg.schedule == "cosine":
        return cosine_alpha_bars(cfg.train_timesteps)
    raise ValueError(f"diffusion.schedule={cfg.schedule!r} is not one of linear, cosine")


def sample_noise_level(batch_size: int, alpha_bar_table: Tensor,
                       generator: torch.Generator | None = None) -> Tensor:
    """Draw continuous noise levels for training: t ~ U{1..T}, then √ᾱ ~ U(√ᾱ_t, √ᾱ_{t−1}) per element.

    SR3 draws one t per batch; we draw one per element (same marginal, lower gradient variance).
    The draw happens on the generator's device (CPU when ``generator`` is None).

    Shape: [batch_size] float32 √ᾱ in (0, 1].
    """
    device = generator.device if generator is not None else torch.device("cpu")
    table = alpha_bar_table.to(device=device, dtype=torch.float64)
    upper_table = torch.cat([table.new_ones(1), table[:-1]]).sqrt()
    t = torch.randint(0, table.numel(), (batch_size,), generator=generator, device=device)
    lower, upper = table[t].sqrt(), upper_table[t]
    u = torch.rand(batch_size, generator=generator, device=device, dtype=torch.float64)
    return (lower + u * (upper - lower)).float()


def inference_betas(steps: int, alpha_bar_end: float = 1e-3, start_ratio: float = 1e-4) -> Tensor:
    """β grid for a T-step sampler: linear β from ``start_ratio``·b to b, with b solved so that ᾱ_T = ``alpha_bar_end``.

    The shape is the SR3/WaveGrad training shape (linear β, first/last ratio 1e-4) rescaled per T, so the last
    reverse step is nearly noise-free and the first starts from almost pure noise (ᾱ_T ≈ 1e-3, DESIGN.md §3).
    b is found by bisection on log ᾱ_T(b), which is monotone in b; every β stays < 1 (β = 1 gives ᾱ_T = 0 and
    NaN in the ε → ẑ0 inversion). T = 1 gives β = [1 − alpha_bar_end].

    Shape: [steps], float64.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if not 0.0 < alpha_bar_end < 1.0:
        raise ValueError(f"alpha_bar_end must be in (0, 1), got {alpha_bar_end}")
    shape = torch.linspace(start_ratio, 1.0, steps, dtype=torch.float64) if steps > 1 else torch.ones(1, dtype=torch.float64)
    target = math.log(alpha_bar_end)
    low, high = 0.0, 1.0
    for _ in range(200):
        mid = 0.5 * (low + high)
        if torch.log1p(-mid * shape).sum().item() > target:
            low = mid
        else:
            high = mid
    return low * shape


def _check_end(alpha_bar_end: float) -> None:
    if not 0.0 < alpha_bar_end < 1.0:
        raise ValueError(f"alpha_bar_end must be in (0, 1), got {alpha_bar_end}")


def cosine_inference_betas(steps: int, alpha_bar_end: float = 1e-3, s: float = COSINE_OFFSET) -> Tensor:
    """β grid for a T-step sampler on Nichol & Dhariwal's cosine curve, cut where ᾱ reaches ``alpha_bar_end``.

    ᾱ_t = f(u_T·t/T) / f(0) with f(u) = cos²((u + s)/(1 + s)·π/2), and u_T solved in closed form so that
    ᾱ_T = ``alpha_bar_end`` exactly (the full curve would end at ᾱ = 0, i.e. β_T = 1). Compared with the linear
    shape at the same T and ᾱ_T, it spends more steps at low noise, where the detail is drawn.

    Shape: [steps], float64, every β in (0, 1).
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    _check_end(alpha_bar_end)
    start = s / (1 + s) * math.pi / 2  # the angle of u = 0
    u_end = math.acos(math.sqrt(alpha_bar_end) * math.cos(start)) * 2 / math.pi * (1 + s) - s
    u = torch.arange(steps + 1, dtype=torch.float64) / steps * u_end
    alpha_bars = torch.cos((u + s) / (1 + s) * math.pi / 2) ** 2 / math.cos(start) ** 2
    alpha_bars[-1] = alpha_bar_end  # exact, not up to the rounding of acos/cos
    return 1.0 - alpha_bars[1:] / alpha_bars[:-1]


def inference_schedule(steps: int, schedule: str = "linear", alpha_bar_end: float = 1e-3) -> Tensor:
    """The β grid of a ``steps``-step sampler: ``schedule`` "linear" (:func:`inference_betas`, the default) or
    "cosine" (:func:`cosine_inference_betas`), ending at ᾱ_T = ``alpha_bar_end``.

    Shape: [steps], float64.
    """
    if schedule == "linear":
        return inference_betas(steps, alpha_bar_end)
    if schedule == "cosine":
        return cosine_inference_betas(steps, alpha_bar_end)
    raise ValueError(f"schedule={schedule!r} is not one of {', '.join(INFERENCE_SCHEDULES)}")
