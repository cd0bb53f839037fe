"""Blind kernel estimation (Pan et al., ``physics.blind``) + TV deconvolution against the same deconvolution
told the true kernel, on synthetic pairs only (dead leaves + CC0 textures, never the evaluation photos).

    python benchmarks/blind_kernel.py                 # 8 pairs, ~1 min on 2 cores
    python benchmarks/blind_kernel.py --window 0      # kernel window = each true kernel's size

Pairs: alternately textured dead leaves and crops of scikit-image's CC0 textures, 192² and 256², blurred by
seeded camera-shake kernels of 9–33 px with σ = 0.01 noise and 8-bit rounding (``synth.degrade``); the seed
differs from those the estimator and its trust check were tuned on. Per pair: the kernel NCC of the estimate
with the truth (``kernels.ncc``); the PSNR gain over the blurry input of ``baselines.blind_deconvolve`` (with
its fallback), of the TV deconvolution with the estimate (no fallback) and with the true kernel (oracle);
``kernel_confidence`` and whether the fallback fired; the seconds of ``blind_deconvolve``. The kernel window
is 33 px by default, the largest blur, as in the other benchmarks. Results: ``<out>/blind_kernel.{json,md}``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stochdeblur.baselines import BLIND_TRUST, blind_deconvolve
from stochdeblur.data.synth import dead_leaves, degrade, motion_kernel
from stochdeblur.data.textures import load_training_images, texture_crop
from stochdeblur.metrics import psnr
from stochdeblur.physics import deconvolve
from stochdeblur.physics.blind import kernel_confidence
from stochdeblur.physics.kernels import ncc
from stochdeblur.utils import describe_cpu, write_report

RESULTS = Path(__file__).parent / "results"


def pairs(count: int, seed: int) -> list[dict[str, Any]]:
    """``count`` synthetic pairs: blur and sharp [3, s, s] in [−1, 1], the true kernel, and what they are."""
    textures = list(load_training_images().values())
    out = []
    for i, ksize in enumerate(np.linspace(9, 33, count).round().astype(int)):
        rng = np.random.default_rng([seed, i])
        size = (192, 256)[i // 2 % 2]
        kernel = motion_kernel(int(ksize), rng)
        side = size + int(ksize) - 1
        if i % 2 == 0:
            sharp = dead_leaves(side, side, rng, texture=True)
        else:
            sharp = texture_crop(textures, side, rng)
        blur, target = degrade(sharp, kernel, rng, noise_sigma=0.01)
        as_tensor = lambda a: torch.from_numpy(a.transpose(2, 0, 1).copy()) * 2 - 1  # noqa: E731
        out.append({"content": ("dead leaves", "texture")[i % 2], "size": size, "blur": as_tensor(blur),
                    "sharp": as_tensor(target), "kernel": torch.from_numpy(kernel)})
    return out


def measure(pair: dict[str, Any], window: int) -> dict[str, Any]:
    """One pair's row (see the module docstring)."""
    blur, sharp, kernel = pair["blur"], pair["sharp"], pair["kernel"]
    start = time.perf_counter()
    restored, estimate = blind_deconvolve(blur, window or kernel.shape[-1])
    seconds = time.perf_counter() - start
    latent = deconvolve(blur[None], estimate)[0].clamp(-1, 1)  # blind_deconvolve's output before its check
    confidence = kernel_confidence(blur, estimate, latent)
    blurry = psnr(blur, sharp)
    return {"content": pair["content"], "size": pair["size"], "kernel_px": int(kernel.shape[-1]),
            "kernel_ncc": ncc(estimate, kernel), "confidence": confidence,
            "fallback": confidence < BLIND_TRUST, "blurry_psnr": blurry,
            "blind_gain_db": psnr(restored, sharp) - blurry, "no_fallback_gain_db": psnr(latent, sharp) - blurry,
            "oracle_gain_db": psnr(deconvolve(blur[None], kernel)[0].clamp(-1, 1), sharp) - blurry,
            "seconds": seconds}


def summarize(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Means (and the worst NCC / gain) over the rows."""
    column = lambda key: np.array([r[key] for r in rows], dtype=float)  # noqa: E731
    return {"kernel_ncc_mean": float(column("kernel_ncc").mean()),
            "kernel_ncc_min": float(column("kernel_ncc").min()),
            "blind_gain_db": float(column("blind_gain_db").mean()),
            "blind_gain_db_min": float(column("blind_gain_db").min()),
            "no_fallback_gain_db": float(column("no_fallback_gain_db").mean()),
            "no_fallback_gain_db_min": float(column("no_fallback_gain_db").min()),
            "oracle_gain_db": float(column("oracle_gain_db").mean()),
            "fallback_rate": float(column("fallback").mean()), "seconds": float(column("seconds").mean())}


def report(rows: list[dict[str, Any]], mean: dict[str, float], command: str, window: int) -> str:
    """The markdown table."""
    lines = ["# Blind kernel estimation (Pan et al. 2014) + TV deconvolution, synthetic pairs", "",
             f"- command: `{command}`; CPU: {describe_cpu()}",
             f"- {len(rows)} pairs (dead leaves / CC0 textures, 192² and 256², kernels 9–33 px, σ = 0.01, "
             f"8-bit); kernel window {window or 'the true size'}; fallback where `kernel_confidence` < "
             f"{BLIND_TRUST}",
             f"- kernel NCC mean **{mean['kernel_ncc_mean']:.3f}**, min {mean['kernel_ncc_min']:.3f}",
             f"- gain over the blurry input: blind_deconvolve **{mean['blind_gain_db']:+.2f} dB** (worst "
             f"{mean['blind_gain_db_min']:+.2f}), without the fallback {mean['no_fallback_gain_db']:+.2f} "
             f"(worst {mean['no_fallback_gain_db_min']:+.2f}), oracle (true kernel) "
             f"{mean['oracle_gain_db']:+.2f}",
             f"- fallback fired on {mean['fallback_rate']:.0%} of the pairs; {mean['seconds']:.2f} s per "
             "image (blind_deconvolve)",
             "", "| content | size | kernel px | NCC | confidence | fallback | blurry dB | blind gain | "
             "no fallback | oracle gain | s |", "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['content']} | {r['size']} | {r['kernel_px']} | {r['kernel_ncc']:.3f} | "
                     f"{r['confidence']:.2f} | {'yes' if r['fallback'] else 'no'} | {r['blurry_psnr']:.2f} | "
                     f"{r['blind_gain_db']:+.2f} | {r['no_fallback_gain_db']:+.2f} | "
                     f"{r['oracle_gain_db']:+.2f} | {r['seconds']:.2f} |")
    lines += ["", "NCC: normalised cross-correlation with the true kernel, maximised over shifts (1 = same "
              "shape). Gains: PSNR (RGB, [0, 1]) of the output minus the blurry input's, outputs not "
              "rounded. Oracle: `physics.deconvolve` (TV) told the true kernel."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Measure and write the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=8, help="number of pairs")
    parser.add_argument("--seed", type=int, default=2025)
    parser.add_argument("--window", type=int, default=33, help="kernel window (px); 0 = the true size")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    for pair in pairs(args.count, args.seed):
        rows.append(measure(pair, args.window))
        row = rows[-1]
        print(f"{row['content']} {row['kernel_px']} px: NCC {row['kernel_ncc']:.3f}, "
              f"gain {row['blind_gain_db']:+.2f} dB", file=sys.stderr)
    mean = summarize(rows)
    command = shlex.join(["python", "benchmarks/blind_kernel.py", *(sys.argv[1:] if argv is None else argv)])
    data = {"command": command, "cpu": describe_cpu(), "window": args.window, "seed": args.seed,
            "trust": BLIND_TRUST, "mean": mean, "images": rows}
    write_report(args.out / "blind_kernel", data, report(rows, mean, command, args.window))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
