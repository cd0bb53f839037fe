"""Benchmark one or more models on a paired dataset: per-image CSV, summary table, crops, sweep, W&B run.

    python scripts/evaluate.py --data synthetic:photos --crop 256 --modes "predictor; average; perceptual" \\
        --out runs/eval --sweep "steps=1,2,5,10 average=1,2,4"

``--data`` takes a folder (its layout and split are detected) or one of the specs of :data:`DATASETS`.
Re-running the same command resumes. Exit code 0 on success, 2 when nothing could run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn

from stochdeblur.evaluate.modes import EvaluationError, parse_modes, parse_sweep
from stochdeblur.evaluate.reporting import markdown_table
from stochdeblur.evaluate.runner import evaluate, sweep
from stochdeblur.evaluate.wandb_run import write_wandb_run
from stochdeblur.hub import load, load_default
from stochdeblur.utils import describe_cpu, pick_precision

DEFAULT_MODES = "predictor; average; perceptual"
DATASETS = """\
datasets (--data):
  DIR                   a folder in the GoPro layout DIR/<split>/<SEQ>/{blur,sharp}/ (what make_dataset.py writes,
                        e.g. data/synth) or with DIR/[<split>/]{blur,sharp}/; the one split there is used
  gopro:ROOT[:SPLIT]    GoPro, e.g. gopro:/data/GOPRO_Large:test (no SPLIT: the one split folder there)
  hide:ROOT[:SPLIT]     HIDE, e.g. hide:/data/HIDE_dataset:test-long-shot (SPLIT default: test)
  realblur:LISTFILE     RealBlur-J/R, e.g. realblur:/data/RealBlur/RealBlur_J_test_list.txt
  pairs:ROOT[:SPLIT]    ROOT/[SPLIT/]{blur,sharp}/ matched by file name, e.g. pairs:photos/pairs
  synthetic:photos      sample photos shipped by scikit-image/matplotlib with known synthetic blur (default)
  synthetic:deadleaves  dead-leaves images with synthetic camera shake (--limit images, --crop px)

modes (--modes, ';'-separated):
  predictor, average, perceptual    the presets of the first diffusion model (sample.steps × sample.average
                                    and sample.modes; the shipped default: 10 × 4 DDPM and 10 × 1 DDIM η=0.5,
                                    perceptual_500 = the paper's 500-step DDPM sample)
  steps=N[,average=K][,sampler=S][,eta=E][,schedule=B][,alpha_bar_end=A][,label=L]
                                    e.g. "steps=10,average=4; steps=20,sampler=ddim,eta=0.5,schedule=cosine";
                                    unset settings come from the model's sample section
  NAME,key=value                    a preset with overrides, e.g. "perceptual,average=4"

sweep (--sweep, space-separated key=list; every key optional):
  steps=1,2,5,10,50,500 average=1,2,4,8 sampler=ddpm eta=0 schedule=linear alpha_bar_end=0.001   (the defaults)
  e.g. --sweep "steps=5,10,20 average=1 sampler=ddpm,ddim eta=0,0.5,1"   (η applies to DDIM only)
"""


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of ``scripts/evaluate.py``; ``--help`` lists the dataset specs and mode syntax."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=DATASETS,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", action="append", type=Path, default=[],
                        help="model directory, shipped model name or 'classical' (repeat to compare models); "
                             "default: the shipped DvSR model")
    parser.add_argument("--label", action="append", default=[], help="name of each --checkpoint in the tables")
    parser.add_argument("--data", default="synthetic:photos", help="a dataset folder or spec (see 'datasets' below)")
    parser.add_argument("--crop", type=int, help="centre-crop synthetic images to this size (deadleaves: 256)")
    parser.add_argument("--modes", "--mode", default=DEFAULT_MODES,
                        help=f"';'-separated modes, see 'modes' below (default: {DEFAULT_MODES!r})")
    parser.add_argument("--limit", type=int, help="evaluate only the first N images")
    parser.add_argument("--out", type=Path, default=Path("runs/eval"), help="output directory (resumable)")
    parser.add_argument("--sweep", help="perception–distortion sweep of the first model, see 'sweep' below")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (the same for every image)")
    parser.add_argument("--tile", type=int, help="restore in tiles of this size (default: whole images)")
    parser.add_argument("--device", default="auto", help="cpu, cuda[:N] or auto")
    parser.add_argument("--precision", default="auto", choices=("auto", "no", "bf16"),
                        help="bf16 autocast where the hardware runs it fast (auto, default), never (no) or always (bf16)")
    parser.add_argument("--no-wandb", action="store_true", help="skip the (offline) W&B run")
    parser.add_argument("--wandb-project", default="stochdeblur", help="W&B project name")
    return parser


def _subdirs(path: Path) -> list[Path]:
    return sorted(d for d in path.iterdir() if d.is_dir() and not d.name.startswith("."))


def _has_pair_dirs(path: Path) -> bool:
    return (path / "blur").is_dir() and (path / "sharp").is_dir()


def _splits(kind: str, root: Path) -> list[str]:
    """Split folders of ``root``: ``<split>/<SEQ>/{blur,sharp}/`` (gopro) or ``<split>/{blur,sharp}/`` (pairs)."""
    if kind == "gopro":
        return [d.name for d in _subdirs(root) if any(_has_pair_dirs(seq) for seq in _subdirs(d))]
    return [d.name for d in _subdirs(root) if _has_pair_dirs(d)]


_LAYOUTS = {"gopro": "the GoPro layout <split>/<SEQ>/{blur,sharp}/", "pairs": "[<split>/]{blur,sharp}/ folders"}


def _only_split(spec: str, kind: str, root: Path, detected: bool) -> str:
    splits = _splits(kind, root)
    if len(splits) == 1:
        return splits[0]
    if not splits:
        found = f"neither {' nor '.join(_LAYOUTS.values())}" if detected else f"no {_LAYOUTS[kind]}"
        raise EvaluationError(f"--data {spec}: found {found} in {root}; see --help for the dataset specs")
    picks = " or ".join(f"--data {kind}:{root}:{split}" for split in splits)
    raise EvaluationError(f"--data {spec}: {root} has {len(splits)} splits ({', '.join(splits)}); pick one: {picks}")


def resolve_data_spec(spec: str) -> str:
    """The full spec ``KIND:ROOT[:SPLIT]`` of ``--data``: a folder's layout (GoPro or blur/ + sharp/) is detected,
    and a missing gopro/pairs split is the one split folder there.

    Raises:
        EvaluationError: no such layout in the folder, or several splits (the message lists them and how to pick
            one).
    """
    detected = Path(spec).is_dir()
    if detected:
        root, split = spec, ""
        kind = "gopro" if _splits("gopro", Path(root)) and not _has_pair_dirs(Path(root)) else "pairs"
    else:
        kind, _, rest = spec.partition(":")
        root, _, split = rest.partition(":")
        if kind not in _LAYOUTS or split or not Path(root).is_dir():
            return spec
    if kind == "pairs" and _has_pair_dirs(Path(root)):
        return f"pairs:{root}"
    return f"{kind}:{root}:{_only_split(spec, kind, Path(root), detected)}"


def build_dataset(spec: str, crop: int | None = None, seed: int = 0, limit: int | None = None):
    """The evaluation dataset named by ``--data`` (full images, no augmentation; see :func:`resolve_data_spec`)."""
    spec = resolve_data_spec(spec)
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
        raise EvaluationError(f"--data {spec}: not a folder, and unknown kind '{kind}' (gopro, hide, realblur, "
                              "pairs, synthetic); see --help")
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
    names = labels or default_labels(checkpoints)
    return [(name, load(path, device)[0]) for name, path in zip(names, checkpoints, strict=True)]


def default_labels(checkpoints: list[Path]) -> list[str]:
    """Table labels of checkpoints without ``--label``: the folder names, with as many parent folders as it takes
    to tell them apart (``runs/a/model`` and ``runs/b/model`` → ``a/model``, ``b/model``)."""
    parts = [path.resolve().parts if path.exists() else (str(path),) for path in checkpoints]
    for depth in range(1, max(map(len, parts)) + 1):
        names = ["/".join(p[-depth:]) for p in parts]
        if len(set(names)) == len(names):
            break
    return names


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 2 bad arguments, missing model or data)."""
    args = build_parser().parse_args(argv)
    try:
        device = _device(args.device)
        sweep_grid = parse_sweep(args.sweep) if args.sweep else None
        data = resolve_data_spec(args.data)
        if data != args.data:
            print(f"data: --data {data}")
        dataset = build_dataset(data, args.crop, args.seed, args.limit)
        models = load_models(args.checkpoint, args.label, device)
        # named modes take the first diffusion model's presets, so every model runs the same steps
        modes = parse_modes(args.modes, next((m.modes for _, m in models if m.samples), None))
        precision = pick_precision(device, args.precision)
        summary = evaluate(models, dataset, modes, args.out, limit=args.limit, seed=args.seed, tile=args.tile,
                           precision=precision)
        if sweep_grid:
            sweep(models[0][1], dataset, args.out, sweep_grid, limit=args.limit,
                  seed=args.seed, tile=args.tile, label=models[0][0], precision=precision)
    except ValueError as exc:  # EvaluationError, CheckpointError, LayoutError, ImageReadError
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(markdown_table(summary))
    print(f"device: {describe_cpu() if device.type == 'cpu' else torch.cuda.get_device_name(device)}")
    print(f"wrote {args.out}/per_image.csv, summary.md, grid.png" + (", sweep.csv, sweep.png" if sweep_grid else ""))
    if not args.no_wandb:
        run_dir = write_wandb_run(args.out, project=args.wandb_project,
                                  config={"data": data, "modes": args.modes, "seed": args.seed,
                                          "checkpoints": [str(c) for c in args.checkpoint] or ["default"]})
        print(f"W&B run: {run_dir}  (upload: wandb sync {run_dir})")
    return 0
