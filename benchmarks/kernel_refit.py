"""Does the refiner's output make a better kernel? Re-fit k̂ from g(y), deconvolve again, refine again.

    python benchmarks/kernel_refit.py                         # 12 held-out training-photo crops, ~2 min
    python benchmarks/kernel_refit.py --set data.val_images=4

A training-free variant of the kernel-aware predictor g(y) = x_dec + R([x_dec, y]): after g, the kernel is
re-estimated by least squares between y and g(y) (``models.kernel_aware.least_squares_kernel``, the fit the
learned source uses), y is deconvolved with it (TV, mixed with y where the re-blur check distrusts it, as
``baselines.blind_deconvolve`` does) and R runs again; ``--rounds`` times. Scored on the validation pairs of a
training config (tuning data: by default 12 held-out crops of the training photographs, never the evaluation
photos): PSNR of the blurry input, of each round's deconvolution and refinement, and each round's kernel NCC with
the truth. Results: ``<out>/kernel_refit.{json,md}`` (atomic, with the CPU and the command).
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
from torch import Tensor
from tqdm import tqdm

from stochdeblur import metrics
from stochdeblur.baselines import mix_untrusted
from stochdeblur.config import load_config
from stochdeblur.data import build_dataset
from stochdeblur.hub import load
from stochdeblur.models.kernel_aware import KernelAwarePredictor, least_squares_kernel
from stochdeblur.physics.blind import kernel_confidence
from stochdeblur.physics.kernels import ncc
from stochdeblur.physics.nonblind import deconvolve
from stochdeblur.physics.operators import luminance
from stochdeblur.utils import describe_cpu, write_report

RESULTS = Path(__file__).parent / "results"
DEFAULT_SET = ("data.val_kind=wallpapers", "data.val_images=12", "data.val_crop_size=256")


def load_classical_kernel_aware(checkpoint: str) -> tuple[torch.nn.Module, Any, KernelAwarePredictor]:
    """(model in eval mode, its run config, its predictor) of a DvSR model whose predictor is kernel-aware with the
    classical kernel source, like the shipped default.

    Raises:
        ValueError: any other model (one line naming it).
    """
    model, cfg = load(checkpoint, "cpu")
    predictor = getattr(model, "predictor", None)
    if not isinstance(predictor, KernelAwarePredictor) or predictor.kernel_source != "classical":
        raise ValueError(f"{checkpoint} has no kernel-aware predictor with the classical kernel source")
    return model.eval(), cfg, predictor


def refit_rounds(predictor: KernelAwarePredictor, blur: Tensor, rounds: int,
                 reg: float = 1e-2) -> list[dict[str, Tensor]]:
    """g on ``blur`` ([1,3,H,W] in [−1, 1]), then ``rounds`` re-fits: per round its kernel [1,k,k], its
    deconvolution and its refinement ([1,3,H,W], clamped), round 0 being g itself."""
    out = predictor.run(blur)
    results = [{"kernel": out.kernel, "deconvolved": out.deconvolved.clamp(-1, 1), "image": out.image.clamp(-1, 1)}]
    size = out.kernel.shape[-1]
    for _ in range(rounds):
        kernel = least_squares_kernel(luminance(blur.float()), luminance(results[-1]["image"].float()), size, reg)
        deconvolved = deconvolve(blur.float(), kernel, "tv").clamp(-1, 1)
        deconvolved = mix_untrusted(blur.float(), deconvolved, kernel_confidence(blur[0], kernel[0], deconvolved[0]))
        image = predictor.run(blur, kernel, deconvolved=deconvolved).image.clamp(-1, 1)
        results.append({"kernel": kernel, "deconvolved": deconvolved, "image": image})
    return results


def markdown(result: dict[str, Any]) -> str:
    """The result as Markdown: the mean per round, then each pair."""
    rounds = len(result["mean"]["rounds"])
    lines = [f"# Kernel re-fit from the refiner's output ({result['images']} pairs of `{result['config']}`)", "",
             f"- model: `{result['model']}`; command: `{result['command']}`; CPU: {result['cpu']}", "",
             "| round | kernel NCC ↑ | deconvolution PSNR | refined PSNR |", "|---|---:|---:|---:|"]
    for r, row in enumerate(result["mean"]["rounds"]):
        label = "0 (g: classical estimate)" if r == 0 else f"{r} (least squares from round {r - 1})"
        lines.append(f"| {label} | {row['ncc']:.3f} | {row['deconvolved']:.2f} | {row['image']:.2f} |")
    lines += ["", f"Blurry input: {result['mean']['blurry']:.2f} dB.", "",
              "| pair | blurry | " + " | ".join(f"round {r} (NCC)" for r in range(rounds)) + " |",
              "|---|---:|" + "---:|" * rounds]
    for pair in result["pairs"]:
        cells = " | ".join(f"{row['image']:.2f} ({row['ncc']:.2f})" for row in pair["rounds"])
        lines.append(f"| {pair['name']} | {pair['blurry']:.2f} | {cells} |")
    return "\n".join(lines) + "\n"


def parser() -> argparse.ArgumentParser:
    """Command-line options of ``benchmarks/kernel_refit.py``."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default="default", help="a kernel-aware model (default: the shipped one)")
    p.add_argument("--config", type=Path, default=Path("configs/dvsr_kernel_aware.yaml"),
                   help="the training config whose validation pairs are scored")
    p.add_argument("--set", nargs="*", default=list(DEFAULT_SET), help="config overrides (key=value)")
    p.add_argument("--rounds", type=int, default=2, help="re-fits after g (default 2)")
    p.add_argument("--out", type=Path, default=RESULTS / "kernel_refit", help="folder for kernel_refit.{json,md}")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the re-fits and write the report; returns the exit code (2 for a model without the classical source)."""
    argv_text = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)
    if args.rounds < 1:
        print("error: --rounds must be >= 1", file=sys.stderr)
        return 2
    cfg = load_config(args.config, args.set)
    try:
        _, _, predictor = load_classical_kernel_aware(args.checkpoint)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    dataset = build_dataset(cfg.data, "val", cfg.train.seed)
    pairs = []
    start = time.perf_counter()
    with torch.no_grad():
        for i in tqdm(range(len(dataset)), desc="pairs"):
            item = dataset[i]
            blur, sharp, truth = item["blur"][None], item["sharp"], item["kernel"]
            rows = [{"ncc": float(ncc(r["kernel"][0], truth)), "deconvolved": metrics.psnr(r["deconvolved"][0], sharp),
                     "image": metrics.psnr(r["image"][0], sharp)} for r in refit_rounds(predictor, blur, args.rounds)]
            pairs.append({"name": item["name"], "blurry": metrics.psnr(item["blur"], sharp), "rounds": rows})
    mean = {"blurry": float(np.mean([p["blurry"] for p in pairs])),
            "rounds": [{key: float(np.mean([p["rounds"][r][key] for p in pairs])) for key in ("ncc", "deconvolved", "image")}
                       for r in range(args.rounds + 1)]}
    result = {"model": str(args.checkpoint), "config": str(args.config), "overrides": args.set, "images": len(pairs),
              "cpu": describe_cpu(), "seconds_per_image": (time.perf_counter() - start) / len(pairs), "mean": mean,
              "pairs": pairs, "command": shlex.join(["python", "benchmarks/kernel_refit.py", *argv_text])}
    write_report(args.out / "kernel_refit", result, markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
