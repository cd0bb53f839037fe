"""DvSR inference cost on this machine: seconds per image and peak RSS, fp32 vs bf16 autocast + channels_last.

    python benchmarks/sampler.py                       # paper widths (g 64, f 32); long modes extrapolated
    python benchmarks/sampler.py --full                # every mode run in full (~1 h at 720p on 2 cores)
    python benchmarks/sampler.py --quick               # 256² only
    python benchmarks/sampler.py --widths 16,8         # other widths (predictor, denoiser)

Modes: predictor only; averaging (10 steps × 4 samples, one batch); perceptual (500 steps, one sample); at
256² and 1280×720 with 512² tiles. Each case runs in a fresh process, so its peak RSS (``ru_maxrss``) is its
own. Weights are random (cost does not depend on them). A case marked ``extrapolated`` ran fewer steps: its
time is predictor + (measured seconds per step) × the full step count, stated in the table.

Two ratios are measured in the averaging cases at 256²:
``sampler_overhead`` = restore() wall time ÷ wall time of the same network calls made bare (1 predictor
forward + T denoiser forwards per chunk of samples), and ``average_cost_ratio`` = time of one K-sample call
÷ (K × time of one single-sample call). On a CPU the K samples run in chunks of ≤ 256² pixels per call
(``sample.average_chunk=0``): one K-row batch at 256² measured 1.19× (bf16) and 1.54× (fp32) the cost of K
single-sample calls here. Results: ``benchmarks/results/sampler.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from stochdeblur.config import load_config
from stochdeblur.diffusion.sampler import auto_chunk
from stochdeblur.methods.dvsr import DvSR
from stochdeblur.utils import autocast, describe_cpu, inference_layout, write_report

SIZES = {"256": (256, 256), "720p": (720, 1280)}
RESULTS = Path(__file__).parent / "results"


def _build(widths: tuple[int, int], precision: str) -> DvSR:
    cfg = load_config(overrides=[f"predictor.base_channels={widths[0]}", f"denoiser.base_channels={widths[1]}"])
    model = DvSR.from_config(cfg).eval()
    return inference_layout(model, precision)


def _timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _bare_calls(model: DvSR, blur: torch.Tensor, steps: int, average: int, tile: int | None) -> float:
    """Wall time of 1 predictor forward + ``steps`` denoiser forwards per chunk of samples, outside the sampler.

    The chunks are the ones ``restore`` uses (``sampler.auto_chunk`` unless the model sets ``average_chunk``).
    """
    eps_fn = model.eps_fn(blur, tile)
    x_init = model.predict_init(blur, tile)
    chunk = model.average_chunk or auto_chunk(average, blur.shape[0], *blur.shape[-2:], blur.device)
    cond = model.condition(blur, x_init.to(blur.dtype))
    calls = [min(chunk, average - first) for first in range(0, average, chunk)]
    start = time.perf_counter()
    model.predict_init(blur, tile)
    for rows in calls:
        z = torch.randn(rows * blur.shape[0], 3, *blur.shape[-2:])
        level = torch.full((z.shape[0],), 0.5)
        cond_k = cond.repeat(rows, 1, 1, 1)
        for _ in range(steps):
            eps_fn(z, level, cond_k)
    return time.perf_counter() - start


def run_case(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one benchmark case in this process and return its measurements (spec + timings + peak RSS)."""
    torch.set_num_threads(spec["threads"])
    height, width = SIZES[spec["size"]]
    model = _build(tuple(spec["widths"]), spec["precision"])
    model.average_chunk = spec.get("average_chunk", 0)
    blur = inference_layout(torch.rand(1, 3, height, width) * 2 - 1, spec["precision"])
    tile, steps, average = spec["tile"], spec["run_steps"], spec["average"]
    result = dict(spec)
    result["rows_per_call"] = model.average_chunk or auto_chunk(spec["average"], 1, height, width, blur.device)
    with torch.no_grad(), autocast("cpu", spec["precision"]):
        warm = blur[..., : min(height, tile or height), : min(width, tile or width)]
        model.restore(warm, steps=1 if steps else 0, average=average)
        predictor_s = _timed(lambda: model.restore(blur, steps=0, tile=tile))
        if steps:
            total = _timed(lambda: model.restore(blur, steps=steps, average=average, tile=tile))
        else:
            total = predictor_s
        result["predictor_s"] = predictor_s
        result["run_s"] = total
        if steps and steps != spec["steps"]:
            per_step = (total - predictor_s) / steps
            result["seconds_per_step"] = per_step
            result["seconds"] = predictor_s + per_step * spec["steps"]
            result["extrapolated"] = True
        else:
            result["seconds"] = total
            result["extrapolated"] = False
        if spec.get("ratios"):
            single = _timed(lambda: model.restore(blur, steps=steps, average=1, tile=tile))
            result["single_sample_s"] = single
            result["average_cost_ratio"] = total / (average * single)
            result["bare_forwards_s"] = _bare_calls(model, blur, steps, average, tile)
            result["sampler_overhead"] = total / result["bare_forwards_s"]
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["load_avg_1min_after"] = os.getloadavg()[0]
    return result


def plan(widths: tuple[int, int], threads: int, quick: bool, full: bool, chunk: int = 0) -> list[dict[str, Any]]:
    """The cases to run: (size, mode, precision) with the steps actually run (fewer = extrapolated).

    Without ``full``, long cases run a few steps and are extrapolated (labelled); the 256² averaging cases
    always run in full, since the two ratios come from them.
    """
    cases = []
    sizes = ["256"] if quick else ["256", "720p"]
    for size in sizes:
        tile = 512 if size == "720p" else None
        for precision in ("bf16", "no"):
            base = {"size": size, "precision": precision, "widths": list(widths), "threads": threads, "tile": tile,
                    "average_chunk": chunk}
            cases.append({**base, "mode": "predictor", "steps": 0, "run_steps": 0, "average": 1})
            cases.append({**base, "mode": "average 10x4", "steps": 10, "average": 4,
                          "run_steps": 10 if full or size == "256" else 1, "ratios": size == "256"})
            cases.append({**base, "mode": "perceptual 500", "steps": 500, "average": 1,
                          "run_steps": 500 if full else (20 if size == "256" else 2)})
    return cases


def markdown(results: list[dict[str, Any]], header: str) -> str:
    """Results as a Markdown table with the ratios and the machine named."""
    lines = [header, "", "| size | mode | precision | s / image | peak RSS MiB | note |", "|---|---|---|---:|---:|---|"]
    for r in results:
        size = "256²" if r["size"] == "256" else "1280×720, 512² tiles"
        precision = "bf16 autocast + channels_last" if r["precision"] == "bf16" else "fp32"
        note = (f"extrapolated: {r['run_steps']} steps run, {r['seconds_per_step']:.3f} s/step"
                if r["extrapolated"] else "measured")
        lines.append(f"| {size} | {r['mode']} | {precision} | {r['seconds']:.2f} | {r['peak_rss_mib']:.0f} | {note} |")
    ratios = [r for r in results if "sampler_overhead" in r]
    if ratios:
        lines += ["", "| precision | samples per denoiser call | sampler_overhead (goal ≤ 1.05) | "
                  "average_cost_ratio (goal ≤ 1.0) |", "|---|---:|---:|---:|"]
        lines += [f"| {r['precision']} | {r['rows_per_call']} | {r['sampler_overhead']:.3f} | "
                  f"{r['average_cost_ratio']:.3f} |" for r in ratios]
    return "\n".join(lines) + "\n"


def describe_run(machine: str, widths: tuple[int, int], loads: list[float], threads: int) -> str:
    """The table's header: machine, widths, torch, and whether other jobs shared the CPU (load > threads)."""
    shared = max(loads) > threads + 0.5
    return (f"DvSR inference on {machine}, widths g={widths[0]} f={widths[1]}, torch {torch.__version__}, "
            f"random weights, batch 1 image. 1-min load average during the run: {min(loads):.1f}–{max(loads):.1f} "
            f"with {threads} benchmark threads on {os.cpu_count()} cores"
            + (" (other jobs shared the CPU: treat times as upper bounds)." if shared else " (no other job running)."))


def main(argv: list[str] | None = None) -> int:
    """Run every case in a subprocess, then write sampler.json and sampler.md."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--widths", default="64,32", help="predictor,denoiser base widths (paper: 64,32)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="256² only; the 500-step mode is extrapolated")
    parser.add_argument("--full", action="store_true", help="run every step count in full (no extrapolation)")
    parser.add_argument("--average-chunk", type=int, default=0,
                        help="samples per denoiser call (0 = auto, the package default; 4 = one K-row batch)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.case:
        print(json.dumps(run_case(json.loads(args.case))))
        return 0
    widths = tuple(int(w) for w in args.widths.split(","))
    torch.set_num_threads(args.threads)
    results = []
    for spec in plan(widths, args.threads, args.quick, args.full, args.average_chunk):
        proc = subprocess.run([sys.executable, __file__, "--case", json.dumps(spec)], capture_output=True,
                              text=True, check=True)
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        r = results[-1]
        print(f"{r['size']:>5} {r['mode']:<15} {r['precision']:<4} {r['seconds']:8.2f} s "
              f"{r['peak_rss_mib']:6.0f} MiB load {r['load_avg_1min_after']:.1f}"
              f"{' (extrapolated)' if r['extrapolated'] else ''}", flush=True)
    machine = describe_cpu()
    header = describe_run(machine, widths, [r["load_avg_1min_after"] for r in results], args.threads)
    write_report(args.out / "sampler", {"machine": machine, "results": results}, markdown(results, header))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
