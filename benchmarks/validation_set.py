"""Score a model on a training config's validation set: compare a new run with the shipped model on the very
pairs the run validates on, without touching the evaluation photos.

    python benchmarks/validation_set.py --config configs/dvsr_kernel_aware.yaml \\
        --set data.val_kind=wallpapers data.val_images=12                    # the shipped default
    python benchmarks/validation_set.py --checkpoint runs/ka_256/model --config configs/dvsr_kernel_aware.yaml \\
        --set data.val_kind=wallpapers data.val_images=12
    python benchmarks/validation_set.py --config configs/dvsr_kernel_aware.yaml \\
        --set data.val_kind=wallpapers data.val_images=36 --model-set predictor.edge_fraction=1   # an inference setting
    python benchmarks/validation_set.py ... --baseline benchmarks/results/validation_wallpapers/visible_blur/default/validation_set.json

The set is ``build_dataset(cfg.data, "val", cfg.train.seed)`` — what the trainer scores every ``train.val_every``
steps — restored in batches of ``data.batch_size`` like the trainer does; per mode (blurry input, predictor,
the model's averaging preset) the mean PSNR/SSIM, and in the JSON each pair's PSNR. ``--baseline`` (an earlier
result on the same set) adds, per mode, the mean pair-by-pair PSNR difference, its standard error and the pairs
won, so a choice rests on the paired difference rather than on two means. Results:
``<out>/validation_set.{json,md}`` with the CPU and the command.
"""

from __future__ import annotations

import argparse
import json
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


def paired(per_pair: dict[str, list[float]], baseline: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per mode in both: mean PSNR difference (this − baseline, dB), its standard error, pairs won / compared.

    Raises:
        ValueError: the baseline scored another set (its blurry inputs differ) or has no per-pair PSNRs.
    """
    before = baseline.get("psnr_per_pair")
    if not before:
        raise ValueError("the baseline JSON has no psnr_per_pair (written by an older validation_set.py?)")
    if len(before["blurry"]) != len(per_pair["blurry"]) or not np.allclose(before["blurry"], per_pair["blurry"],
                                                                            atol=1e-3):
        raise ValueError("the baseline scored other pairs (its blurry PSNRs differ): use the same --config/--set")
    out = {}
    for mode in MODES:
        if mode in before:
            diff = np.asarray(per_pair[mode]) - np.asarray(before[mode])
            out[mode] = {"mean_diff": float(diff.mean()), "std_error": float(diff.std(ddof=1) / np.sqrt(len(diff))),
                         "wins": int((diff > 0).sum()), "pairs": len(diff)}
    return out


def markdown(result: dict[str, Any]) -> str:
    """The result as a Markdown table."""
    lines = [f"# {result['model']} on the validation set of `{result['config']}` ({result['images']} pairs)", "",
             f"- command: `{result['command']}`; CPU: {result['cpu']}; precision {result['precision']}", "",
             "| mode | PSNR ↑ | SSIM ↑ | s / image |", "|---|---:|---:|---:|"]
    for mode, s in result["scores"].items():
        lines.append(f"| {mode} | {s['psnr']:.2f} | {s['ssim']:.4f} | {s['seconds']:.2f} |")
    if result.get("versus"):
        lines += ["", f"Pair by pair against `{result['baseline']}` ({result['baseline_model']}):", "",
                  "| mode | mean difference (dB) | standard error | pairs ahead |", "|---|---:|---:|---:|"]
        for mode, d in result["versus"].items():
            lines.append(f"| {mode} | {d['mean_diff']:+.3f} | {d['std_error']:.3f} | {d['wins']} / {d['pairs']} |")
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
    p.add_argument("--baseline", type=Path, help="an earlier validation_set.json of the same set: paired comparison")
    p.add_argument("--out", type=Path, default=RESULTS, help="folder for validation_set.{json,md}")
    return p


def main(argv: list[str] | None = None) -> int:
    """Score the model and write the report; returns the exit code (2 when the model cannot be loaded)."""
    argv_text = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)
    cfg = load_config(args.config, args.set)
    try:
        baseline = json.loads(args.baseline.read_text()) if args.baseline else None
    except (OSError, ValueError) as exc:
        print(f"error: --baseline {args.baseline}: {exc}", file=sys.stderr)
        return 2
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
    problem = None
    if baseline is not None:
        try:
            result.update(baseline=str(args.baseline), baseline_model=baseline.get("model", "?"),
                          versus=paired(per_pair, baseline))
        except ValueError as exc:
            problem = f"error: --baseline {args.baseline}: {exc} (the scores are written without the comparison)"
    write_report(args.out / "validation_set", result, markdown(result))
    print(markdown(result))
    if problem:
        print(problem, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
