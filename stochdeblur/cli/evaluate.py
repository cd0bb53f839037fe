"""Benchmark one or more models on a paired dataset: per-image CSV, summary table, crops, sweep, W&B run.

    python scripts/evaluate.py --data synthetic:photos --crop 256 --modes "predictor; steps=10,average=4" \\
        --out runs/eval --sweep "steps=1,2,5,10 average=1,2,4"

``--data``: ``gopro:ROOT[:SPLIT]``, ``hide:ROOT``, ``realblur:LISTFILE`` (or ``realblur:ROOT:SPLIT``),
``pairs:ROOT`` (``blur/`` + ``sharp/``; SPLIT defaults to ``test``),
``synthetic:photos`` (sample photos of installed packages, known blur) or ``synthetic:deadleaves``.
Re-running the same command resumes. Exit code 0 on success, 2 when nothing could run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn

from stochdeblur.evaluate import (
    EvaluationError,
    evaluate,
    markdown_table,
    parse_modes,
    sweep,
    write_wandb_run,
)
from stochdeblur.hub import load, load_default
from stochdeblur.utils import describe_cpu, inference_layout, pick_precision

DEFAULT_MODES = "predictor; steps=10,average=4; steps=500"


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of ``scripts/evaluate.py``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", action="append", type=Path, default=[],
                        help="model directory or shipped model name (repeat to compare models); default: the shipped DvSR model")
    parser.add_argument("--label", action="append", default=[], help="name of each --checkpoint in the tables")
    parser.add_argument("--data", default="synthetic:photos", help="dataset spec (see above)")
    parser.add_argument("--crop", type=int, help="centre-crop synthetic images to this size (deadleaves: 256)")
    parser.add_argument("--modes", default=DEFAULT_MODES, help=f"';'-separated modes (default: {DEFAULT_MODES!r})")
    parser.add_argument("--limit", type=int, help="evaluate only the first N images")
    parser.add_argument("--out", type=Path, default=Path("runs/eval"), help="output directory (resumable)")
    parser.add_argument("--sweep", help="perception–distortion sweep of the first model, "
                        "e.g. 'steps=1,2,5,10,50,500 average=1,2,4,8'")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (the same for every image)")
    parser.add_argument("--tile", type=int, help="restore in tiles of this size (default: whole images)")
    parser.add_argument("--device", default="auto", help="cpu, cuda[:N] or auto")
    parser.add_argument("--precision", default="no", choices=("auto", "no", "bf16"),
                        help="autocast for restore(): no (fp32, default), bf16, or auto (bf16 where fast)")
    parser.add_argument("--no-wandb", action="store_true", help="skip the (offline) W&B run")
    parser.add_argument("--wandb-project", default="stochdeblur", help="W&B project name")
    return parser


def parse_sweep(spec: str) -> tuple[list[int], list[int]]:
    """Parse ``"steps=1,2,5 average=1,2,4"`` into (steps, averages)."""
    values: dict[str, list[int]] = {}
    for part in spec.replace(";", " ").split():
        key, sep, numbers = part.partition("=")
        if not sep or key not in ("steps", "average"):
            raise EvaluationError(f"--sweep: expected 'steps=…' and 'average=…', got '{part}'")
        try:
            values[key] = [int(n) for n in numbers.split(",") if n]
        except ValueError:
            raise EvaluationError(f"--sweep: '{part}' must list integers") from None
        if not values[key] or min(values[key]) < 1:
            raise EvaluationError(f"--sweep: '{part}' needs positive integers")
    return values.get("steps", [1, 2, 5, 10, 50, 500]), values.get("average", [1, 2, 4, 8])


def build_dataset(spec: str, crop: int | None = None, seed: int = 0, limit: int | None = None):
    """The evaluation dataset named by ``--data`` (full images, no augmentation)."""
    kind, _, rest = spec.partition(":")
    if kind == "synthetic":
        if rest == "photos":
            from stochdeblur.data.photos import photo_pairs

            return photo_pairs(seed=seed, crop=crop)
        if rest == "deadleaves":
            from stochdeblur.data.synth import SyntheticPairs

            return SyntheticPairs(limit or 16, crop or 256, seed=seed)
        raise EvaluationError(f"--data {spec}: synthetic data is 'synthetic:photos' or 'synthetic:deadleaves'")
    if kind not in ("gopro", "hide", "realblur", "pairs"):
        raise EvaluationError(f"--data {spec}: unknown kind '{kind}' (gopro, hide, realblur, pairs, synthetic)")
    if not rest:
        raise EvaluationError(f"--data {spec}: expected {kind}:ROOT[:SPLIT]")
    from stochdeblur.data.paired import PairedDataset, find_pairs

    root, _, split = rest.partition(":")
    if kind == "realblur" and Path(root).is_file():  # realblur:LISTFILE
        root, split = str(Path(root).resolve().parent), str(Path(root).resolve())
    return PairedDataset(find_pairs(kind, root, split or "test"), crop_size=None, augment=False, seed=seed)


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise EvaluationError(f"--device {name}: CUDA is not available on this machine")
    return torch.device(name)


def load_models(checkpoints: list[Path], labels: list[str], device: torch.device) -> list[tuple[str, nn.Module]]:
    """(label, method) for each checkpoint, or the shipped default model when none is given."""
    if labels and len(labels) != max(len(checkpoints), 1):
        raise EvaluationError(f"{len(labels)} --label for {len(checkpoints)} --checkpoint; give one per checkpoint")
    if not checkpoints:
        return [(labels[0] if labels else "default", load_default(device)[0])]
    names = labels or [path.resolve().name if path.exists() else str(path) for path in checkpoints]
    return [(name, load(path, device)[0]) for name, path in zip(names, checkpoints, strict=True)]


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 2 bad arguments, missing model or data)."""
    args = build_parser().parse_args(argv)
    try:
        device = _device(args.device)
        modes = parse_modes(args.modes)
        sweep_grid = parse_sweep(args.sweep) if args.sweep else None
        dataset = build_dataset(args.data, args.crop, args.seed, args.limit)
        models = load_models(args.checkpoint, args.label, device)
        precision = pick_precision(device, args.precision)
        models = [(label, inference_layout(method, precision)) for label, method in models]
        summary = evaluate(models, dataset, modes, args.out, limit=args.limit, seed=args.seed, tile=args.tile,
                           precision=precision)
        if sweep_grid:
            sweep(models[0][1], dataset, args.out, steps=sweep_grid[0], averages=sweep_grid[1], limit=args.limit,
                  seed=args.seed, tile=args.tile, label=models[0][0], precision=precision)
    except ValueError as exc:  # EvaluationError, CheckpointError, LayoutError, ImageReadError
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(markdown_table(summary))
    print(f"device: {describe_cpu() if device.type == 'cpu' else torch.cuda.get_device_name(device)}")
    print(f"wrote {args.out}/per_image.csv, summary.md, grid.png" + (", sweep.csv, sweep.png" if sweep_grid else ""))
    if not args.no_wandb:
        run_dir = write_wandb_run(args.out, project=args.wandb_project,
                                  config={"data": args.data, "modes": args.modes, "seed": args.seed,
                                          "checkpoints": [str(c) for c in args.checkpoint] or ["default"]})
        print(f"W&B run: {run_dir}  (upload: wandb sync {run_dir})")
    return 0
