"""Tune ``physics.deconvolve``'s defaults on synthetic data only (dead leaves + CC0 textures, never the photos).

    python benchmarks/deconvolve_tuning.py            # ~6 min on 2 cores

Pairs: 8 images of 192² (textured dead leaves and crops of scikit-image's CC0 textures, alternating), blurred by
seeded camera-shake kernels of 9–33 px with σ = 0.01 noise and 8-bit rounding (``synth.degrade``). For each prior,
a grid over λ, the ADMM penalty μ and the iteration count; the table gives the mean PSNR gain over the blurry input
and the seconds per image. The best row per prior is what ``physics.nonblind.DEFAULTS`` holds.
Results: ``benchmarks/results/deconvolve_tuning.{json,md}``.
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from stochdeblur.data.synth import dead_leaves, degrade, motion_kernel
from stochdeblur.data.textures import load_training_images, texture_crop
from stochdeblur.metrics import psnr
from stochdeblur.physics import deconvolve
from stochdeblur.utils import describe_cpu, write_report

RESULTS = Path(__file__).parent / "results"
GRID = {
    "tv": {"lam": [3e-4, 6e-4, 1e-3], "mu": [0.1, 0.3], "iterations": [40, 60]},
    "hyper_laplacian": {"lam": [3e-4, 6e-4, 1e-3], "mu": [0.1, 0.3], "iterations": [40, 60]},
    "wiener": {"lam": [1e-3, 3e-3, 1e-2], "mu": [0.1, 0.3], "iterations": [40, 60]},
}


def tuning_pairs(count: int = 8, size: int = 192, seed: int = 7) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(blurry, sharp, kernel) tensors, [1,3,s,s] in [−1, 1], from dead leaves and CC0 textures."""
    textures = list(load_training_images().values())
    pairs = []
    for i, ksize in enumerate(np.linspace(9, 33, count).round().astype(int)):
        rng = np.random.default_rng([seed, i])
        kernel = motion_kernel(int(ksize), rng)
        side = size + int(ksize) - 1
        sharp = dead_leaves(side, side, rng, texture=True) if i % 2 == 0 else texture_crop(textures, side, rng)
        blur, target = degrade(sharp, kernel, rng, noise_sigma=0.01)
        as_tensor = lambda a: torch.from_numpy(a.transpose(2, 0, 1).copy())[None] * 2 - 1  # noqa: E731
        pairs.append((as_tensor(blur), as_tensor(target), torch.from_numpy(kernel)))
    return pairs


def main(argv: list[str] | None = None) -> int:
    """Run the grid and write the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    pairs = tuning_pairs()
    rows = []
    combos = [(prior, *c) for prior, grid in GRID.items() for c in itertools.product(*grid.values())]
    for prior, lam, mu, iterations in tqdm(combos, desc="grid"):
        gains, seconds = [], []
        for blur, sharp, kernel in pairs:
            start = time.perf_counter()
            out = deconvolve(blur, kernel, prior, lam=lam, mu=mu, iterations=iterations).clamp(-1, 1)
            seconds.append(time.perf_counter() - start)
            gains.append(psnr(out[0], sharp[0]) - psnr(blur[0], sharp[0]))
        rows.append({"prior": prior, "lam": lam, "mu": mu, "iterations": iterations,
                     "gain_db": float(np.mean(gains)), "gains_db": [round(g, 2) for g in gains],
                     "seconds": float(np.mean(seconds))})
    best = {p: max((r for r in rows if r["prior"] == p), key=lambda r: r["gain_db"]) for p in GRID}
    lines = ["# deconvolve: defaults tuned on dead leaves + CC0 textures", "",
             f"- command: `python benchmarks/deconvolve_tuning.py`; CPU: {describe_cpu()}",
             "- 8 pairs of 192², kernels 9–33 px, σ = 0.01, 8-bit; gain = PSNR(out) − PSNR(blurry), mean", "",
             "| prior | λ | μ | iterations | gain dB | s/image |", "|---|---:|---:|---:|---:|---:|"]
    for r in sorted(rows, key=lambda r: (r["prior"], -r["gain_db"])):
        mark = " **best**" if r is best[r["prior"]] else ""
        lines.append(f"| {r['prior']}{mark} | {r['lam']:g} | {r['mu']:g} | {r['iterations']} | "
                     f"{r['gain_db']:+.2f} | {r['seconds']:.3f} |")
    write_report(args.out / "deconvolve_tuning", {"rows": rows, "best": best, "cpu": describe_cpu()},
                 "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
