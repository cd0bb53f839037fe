"""Score a model on a training config's validation set: compare a new run with the shipped model on the very
pairs the run validates on, without touching the evaluation photos.

    python benchmarks/validation_set.py --config configs/dvsr_kernel_aware.yaml \\
        --set data.val_kind=wallpapers data.val_images=12                    # the shipped default
    python benchmarks/validation_set.py --checkpoint runs/ka_256/model --config configs/dvsr_kernel_aware.yaml \\
        --set data.val_kind=wallpapers data.val_images=12
    python benchmarks/validation_set.py --config configs/dvsr_kernel_aware.yaml \\
        --set data.val_kind=wallpapers data.val_images=36 --model-set predictor.edge_fraction=1   # an inference setting

The set is ``build_dataset(cfg.data, "val", cfg.train.seed)`` — what the trainer scores every ``train.val_every``
steps — restored in batches of ``data.batch_size`` like the trainer does; per mode (blurry input, predictor,
the model's averaging preset) the mean PSNR/SSIM, and in the JSON each pair's PSNR. Results:
``<out>/validation_set.{json,md}`` with the CPU and the command.
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
from torch.utils.data import DataLoader
from tqdm import tqdm

from stochdeblur import metrics
from stochdeblur.config import load_config
from stochdeblur.data import build_dataset
from stochdeblur.hub import load
from stochdeblur.restorer import Restorer
from stochdeblur.utils import describe_cpu, write_report

RESULTS = Path(__file__).parent / "results"
MODES = ("predictor", "average")


def score(restorer: Restorer, dataset, batch_size: int) -> tuple[dict[str, dict[str, float]], dict[str, list[float]]]:
    """Mean PSNR/SSIM of the blurry input and of each of :data:`MODES` over ``dataset``, plus seconds per image;
    and each mode's PSNR per pair, in the dataset's order (so two runs can be compared pair by pair)."""
    scores: dict[str, dict[str, list[float]]] = {m: {"psnr": [], "ssim": [], "seconds": []}
                                                  for m in ("blurry", *MODES)}
    for batch in tqdm(DataLoader(dataset, batch_size=batch_size, shuffle=False), desc="validation"):
        blur, sharp = batch["blur"], batch["sharp"]
        outputs = {"blurry": (blur, 0.0)}
        for mode in MODES:
            start = time.perf_counter()
            restored = restorer(blur, mode, seed=restorer.cfg.sample.seed).cpu()
            outputs[mode] = (restored, (time.perf_counter() - start) / len(blur))
        for mode, (images, seconds) in outputs.items():
            for i in range(len(images)):
                scores[mode]["psnr"].append(metrics.psnr(images[i].float(), sharp[i]))
                scores[mode]["ssim"].append(metrics.ssim(images[i].float(), sharp[i]))
                scores[mode]["seconds"].append(seconds)
    means = {mode: {k: float(np.mean(v)) for k, v in values.items()} for mode, values in scores.items()}
    return means, {mode: [float(v) for v in values["psnr"]] for mode, values in scores.items()}


def markdown(result: dict[str, Any]) -> str:
    """The result as a Markdown table."""
    lines = [f"# {result['model']} on the validation set of `{result['config']}` ({result['images']} pairs)", "",
             f"- command: `{result['command']}`; CPU: {result['cpu']}; precision {result['precision']}", "",
             "| mode | PSNR ↑ | SSIM ↑ | s / image |", "|---|---:|---:|---:|"]
    for mode, s in result["scores"].items():
        lines.append(f"| {mode} | {s['psnr']:.2f} | {s['ssim']:.4f} | {s['seconds']:.2f} |")
    return "\n".join(lines) + "\n"


def parser() -> argparse.ArgumentParser:
    """Command-line options of ``benchmarks/validation_set.py``."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default="default", help="model directory or shipped name (default: default)")
    p.add_argument("--config", type=Path, required=True, help="the training config whose val set is scored")
    p.add_argument("--set", nargs="*", default=[], help="config overrides (key=value), as given to the run")
    p.add_argument("--model-set", nargs="*", default=[],
                   help="changes to the model's saved config (key=value), e.g. predictor.edge_fraction=1")
    p.add_argument("--precision", default="auto", choices=("auto", "no", "bf16"))
    p.add_argument("--out", type=Path, default=RESULTS, help="folder for validation_set.{json,md}")
    return p


def main(argv: list[str] | None = None) -> int:
    """Score the model and write the report; returns the exit code (2 when the model cannot be loaded)."""
    argv_text = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)
    cfg = load_config(args.config, args.set)
    try:
        model, run_cfg = load(args.checkpoint, "cpu", overrides=args.model_set)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    restorer = Restorer(model, run_cfg, device="cpu", precision=args.precision)
    dataset = build_dataset(cfg.data, "val", cfg.train.seed)
    with torch.no_grad():
        scores, per_pair = score(restorer, dataset, cfg.data.batch_size)
    result = {"model": str(args.checkpoint), "config": str(args.config), "overrides": args.set,
              "model_overrides": args.model_set, "images": len(dataset), "cpu": describe_cpu(),
              "precision": restorer.precision, "scores": scores, "psnr_per_pair": per_pair,
              "command": shlex.join(["python", "benchmarks/validation_set.py", *argv_text])}
    write_report(args.out / "validation_set", result, markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
