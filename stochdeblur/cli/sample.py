"""Deblur an image or a folder of images with a trained model (DvSR or a GAN).

    python scripts/sample.py --input blurry/ --output restored/ --checkpoint runs/x/model --steps 10 --average 4

Writes ``<output>/<stem>.png`` per input (``<stem>_compare.png`` = blurry | restored with ``--compare``).
A file that cannot be read is reported and skipped; the exit code is 1 if any file failed, 2 if nothing
could start (no model, bad arguments), 0 otherwise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from tqdm.auto import tqdm

from stochdeblur.config import RunConfig
from stochdeblur.hub import load, load_default
from stochdeblur.io import ImageReadError, list_images, read_image, write_image
from stochdeblur.utils import autocast, inference_layout, pick_precision


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of ``scripts/sample.py``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", required=True, type=Path, help="an image file or a folder of images")
    parser.add_argument("--output", required=True, type=Path, help="folder for the restored PNGs")
    parser.add_argument("--checkpoint", type=Path, help="model directory (model.safetensors + config.json) or the "
                        "name of a model shipped in stochdeblur/weights/; default: the shipped DvSR model")
    parser.add_argument("--steps", type=int, help="reverse diffusion steps (default: the model's config; "
                        "500 = perceptual mode, 10 = averaging mode)")
    parser.add_argument("--average", type=int, help="samples averaged per image (default: the model's config)")
    parser.add_argument("--average-chunk", type=int, help="most samples per denoiser call (0 = auto: all on a GPU, "
                        "<= 256² pixels per call on a CPU, where big batches are slower)")
    parser.add_argument("--seed", type=int, help="sample k of each image uses seed + k (default: config)")
    parser.add_argument("--sampler", choices=("ddpm", "ddim", "dpmsolver"), help="reverse-step rule")
    parser.add_argument("--tile", type=int, help="tile side for images larger than this (0 = never tile)")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (cuda when available)")
    parser.add_argument("--predictor-only", action="store_true", help="skip the diffusion refinement")
    parser.add_argument("--compare", action="store_true", help="also write <stem>_compare.png (blurry | output)")
    parser.add_argument("--precision", default="auto", choices=("auto", "no", "bf16"),
                        help="bf16 autocast where the hardware runs it fast (auto), never (no) or always (bf16)")
    return parser


def _inputs(path: Path) -> list[Path]:
    if path.is_dir():
        return list_images(path)
    if path.is_file():
        return [path]
    raise ImageReadError(path, "no such file or directory")


def _load(checkpoint: Path | None, device: torch.device) -> tuple[torch.nn.Module, RunConfig]:
    if checkpoint is None:
        return load_default(device)
    return load(checkpoint, device)


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise ValueError(f"--device {name!r} must be cpu, cuda[:N] or auto")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: CUDA is not available on this machine")
    return torch.device(name)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 some images failed, 2 nothing could run)."""
    args = build_parser().parse_args(argv)
    try:
        device = _device(args.device)
        files = _inputs(args.input)
        model, cfg = _load(args.checkpoint, device)
    except ValueError as exc:  # CheckpointError, ImageReadError, bad --device
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not files:
        print(f"error: no images found in {args.input}", file=sys.stderr)
        return 2
    if args.output.resolve() in {f.parent.resolve() for f in files}:
        print(f"error: --output {args.output} is the input folder; restored PNGs would overwrite inputs",
              file=sys.stderr)
        return 2
    diffusion_flags = [flag for flag, value in (("--steps", args.steps), ("--average", args.average),
                                                 ("--sampler", args.sampler)) if value is not None]
    if cfg.method != "dvsr" and diffusion_flags:
        print(f"note: {cfg.name} ({cfg.method}) deblurs in one shot; {', '.join(diffusion_flags)} ignored",
              file=sys.stderr)
    precision = pick_precision(device, args.precision)
    model = inference_layout(model, precision)
    if args.average_chunk is not None and hasattr(model, "average_chunk"):
        model.average_chunk = max(0, args.average_chunk)
    steps = 0 if args.predictor_only else (cfg.sample.steps if args.steps is None else args.steps)
    options = {
        "steps": steps,
        "average": cfg.sample.average if args.average is None else args.average,
        "seed": cfg.sample.seed if args.seed is None else args.seed,
        "sampler": args.sampler or cfg.sample.sampler,
        "tile": (cfg.sample.tile if args.tile is None else args.tile) or None,
    }
    failures = 0
    for path in tqdm(files, desc="images", unit="img"):
        try:
            blur = inference_layout(read_image(path).unsqueeze(0).to(device), precision)
            with torch.no_grad(), autocast(device, precision):
                restored = model.restore(blur, progress=True, **options)[0].float()
            write_image(args.output / f"{path.stem}.png", restored)
            if args.compare:
                write_image(args.output / f"{path.stem}_compare.png", torch.cat([blur[0].float(), restored], dim=2))
        except (ImageReadError, ValueError) as exc:
            failures += 1
            tqdm.write(f"skipped {path}: {exc}", file=sys.stderr)
        except torch.OutOfMemoryError:
            failures += 1
            tqdm.write(f"skipped {path}: out of memory; try a smaller --tile", file=sys.stderr)
    print(f"restored {len(files) - failures} of {len(files)} images into {args.output}")
    return 1 if failures else 0
