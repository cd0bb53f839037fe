"""Where the shipped default's seconds go, per 256² image: the classical estimate, R, and f's reverse steps.

    python benchmarks/default_cost.py                 # ~1 min on 2 cores; run it with the machine otherwise idle
    python benchmarks/default_cost.py --checkpoint runs/x/model

The averaging mode (10 steps × 4 samples) is g once — Pan et al.'s estimate (single-threaded by default,
``estimate_kernel(threads=1)``), its TV deconvolution, R — then 40 denoiser evaluations. Measured here: the estimate
and TV deconvolution as g runs them, the estimate alone with 1 thread and with the process's threads, the predictor and the averaging mode through the
``Restorer`` (precision "auto"), and one denoiser evaluation per image at batch 1/2/4 with 1 and 2 threads (bf16
autocast + channels last, as the Restorer runs it on a CPU with fast bf16), which bounds what running samples
side by side could save. Results: ``<out>/default_cost.{json,md}`` (atomic, with the CPU and the command).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from kernel_refit import load_classical_kernel_aware

from stochdeblur.baselines import blind_deconvolve
from stochdeblur.data.photos import PhotoPairs
from stochdeblur.physics.blind import estimate_kernel
from stochdeblur.restorer import Restorer
from stochdeblur.utils import autocast, describe_cpu, write_report

RESULTS = Path(__file__).parent / "results"


def seconds(fn: Callable[[], object], repeats: int) -> float:
    """Mean wall seconds of ``fn()`` over ``repeats`` calls, after one warm-up call."""
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def denoiser_seconds(model: torch.nn.Module, restorer: Restorer, size: int, batch: int, threads: int,
                     repeats: int) -> float:
    """Seconds per image of one denoiser evaluation on a ``batch`` × ``size``² input with ``threads`` threads."""
    denoiser = model.denoiser
    x = torch.randn(batch, denoiser.in_channels, size, size)
    if restorer.precision == "bf16":
        x = x.contiguous(memory_format=torch.channels_last)
    level = torch.rand(batch)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.no_grad(), autocast(restorer.device, restorer.precision):
            return seconds(lambda: denoiser(x, level), repeats) / batch
    finally:
        torch.set_num_threads(previous)


def markdown(result: dict[str, Any]) -> str:
    """The result as Markdown tables."""
    s = result["seconds"]
    lines = [f"# Where the seconds go: `{result['model']}`, one {result['size']}² photo", "",
             f"- command: `{result['command']}`; CPU: {result['cpu']}; {result['threads']} threads; precision "
             f"{result['precision']}", "",
             "| part | s / image |", "|---|---:|",
             f"| classical estimate + TV deconvolution, as g runs them | {s['estimate']:.2f} |",
             f"| the kernel estimate alone, 1 thread (the default) | {s['kernel_1_thread']:.2f} |",
             f"| the kernel estimate alone, {result['threads']} threads | {s['kernel_all_threads']:.2f} |",
             f"| predictor g (estimate, deconvolution, R) | {s['predictor']:.2f} |",
             f"| averaging ({result['average']}: g + {result['evaluations']} denoiser evaluations) | {s['average']:.2f} |",
             f"| averaging − predictor | {s['average'] - s['predictor']:.2f} |", "",
             "| denoiser evaluation | 1 thread | 2 threads |", "|---|---:|---:|"]
    for batch, row in result["denoiser"].items():
        lines.append(f"| batch {batch}, s per image | {row['1']:.3f} | {row['2']:.3f} |")
    return "\n".join(lines) + "\n"


def parser() -> argparse.ArgumentParser:
    """Command-line options of ``benchmarks/default_cost.py``."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default="default", help="a DvSR model (default: the shipped one)")
    p.add_argument("--size", type=int, default=256, help="side of the centre crop (default 256)")
    p.add_argument("--repeats", type=int, default=3, help="timed calls per measurement (after a warm-up)")
    p.add_argument("--out", type=Path, default=RESULTS, help="folder for default_cost.{json,md}")
    return p


def main(argv: list[str] | None = None) -> int:
    """Measure and write the report; returns the exit code (2 for another kind of model)."""
    argv_text = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)
    try:
        model, cfg, predictor = load_classical_kernel_aware(args.checkpoint)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    restorer = Restorer(model, cfg, device="cpu", precision="auto")
    blur = PhotoPairs(seed=0, crop=args.size, return_kernel=False)[0]["blur"]
    size = min(predictor.kernel_size, *blur.shape[-2:])
    timings: dict[str, float] = {}
    with torch.no_grad():
        timings["estimate"] = seconds(lambda: blind_deconvolve(blur, size), args.repeats)
        timings["kernel_1_thread"] = seconds(lambda: estimate_kernel(blur, size), args.repeats)
        timings["kernel_all_threads"] = seconds(lambda: estimate_kernel(blur, size, threads=None), args.repeats)
        timings["predictor"] = seconds(lambda: restorer(blur[None], "predictor"), args.repeats)
        timings["average"] = seconds(lambda: restorer(blur[None], "average"), args.repeats)
    preset = model.modes["average"]
    denoiser = {str(b): {str(t): denoiser_seconds(model, restorer, args.size, b, t, args.repeats) for t in (1, 2)}
                for b in (1, 2, 4)}
    result = {"model": str(args.checkpoint), "size": args.size, "cpu": describe_cpu(),
              "threads": torch.get_num_threads(), "precision": restorer.precision, "seconds": timings,
              "average": f"{preset.steps} steps × {preset.average}", "evaluations": preset.steps * preset.average,
              "denoiser": denoiser, "command": shlex.join(["python", "benchmarks/default_cost.py", *argv_text])}
    write_report(args.out / "default_cost", result, markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
