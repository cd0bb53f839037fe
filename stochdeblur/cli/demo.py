"""`make demo`: deblur real photos with the shipped model in its three modes, offline, in minutes.

    python scripts/demo.py --out demo_out [--checkpoint DIR] [--size 256] [--mode NAME ...] [--perceptual-steps N]

Example images: the sample photos installed packages ship (:class:`~stochdeblur.data.photos.PhotoPairs`:
seeded camera-shake kernels of 7–33 px, σ = 0.01 noise, ``--size``² centre crops) plus scikit-image's real
camera-shake photo ``clock_motion.png`` (no ground truth: shown, not scored). Each is restored in every
``--mode`` (default: predictor, average and perceptual, the model's presets: the predictor alone, 10 steps × 4
samples averaged and one 500-step sample unless its config says otherwise). Writes
``<out>/{blurry,sharp,<mode>...}/<name>.png``, ``<out>/grid.png`` and ``<out>/summary.md`` and prints the
PSNR/SSIM table. Exit code 2 (one line, no traceback) when no model can be loaded.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from torch import Tensor
from tqdm.auto import tqdm

from stochdeblur.config import ModePreset
from stochdeblur.data.photos import KERNEL_MAX, NOISE, PhotoPairs
from stochdeblur.evaluate.modes import Mode, parse_mode
from stochdeblur.evaluate.reporting import Panel, write_grid
from stochdeblur.evaluate.runner import restore_timed
from stochdeblur.io import quantize, read_image, write_image
from stochdeblur.metrics import mean_or_none, psnr, ssim
from stochdeblur.restorer import Restorer
from stochdeblur.utils import atomic_write_text, describe_cpu

REAL_BLUR_NAME = "clock_motion"
DEMO_MODES = ("predictor", "average", "perceptual")


@dataclass
class DemoImage:
    """One example: a blurry image [3,H,W] in [-1,1] and its sharp original (``None`` for real blur)."""

    name: str
    blur: Tensor
    sharp: Tensor | None


def preset_modes(presets: dict[str, ModePreset], names: list[str] | tuple[str, ...] = DEMO_MODES,
                 perceptual_steps: int | None = None) -> list[Mode]:
    """The named modes of a model's presets (``SampleConfig.presets``), "perceptual" with ``perceptual_steps``
    steps when given.

    Raises:
        EvaluationError: a name that is not a preset.
    """
    modes = [parse_mode(name, presets) for name in names]
    if perceptual_steps is None:
        return modes
    return [dataclasses.replace(m, steps=perceptual_steps) if m.label == "perceptual" else m for m in modes]


def _centre_crop(image: Tensor, size: int) -> Tensor:
    h, w = image.shape[-2:]
    top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return image[..., top:top + size, left:left + size].contiguous()


def real_blur_photo(size: int) -> Tensor:
    """scikit-image's real camera-shake photo ``clock_motion.png`` (grey → RGB), centre-cropped to ``size``².

    Shape: returns [3, min(size, 300), min(size, 400)] in [-1, 1].
    """
    import skimage.data

    return _centre_crop(read_image(Path(skimage.data.__file__).parent / f"{REAL_BLUR_NAME}.png"), size)


def demo_images(size: int = 256, seed: int = 0) -> list[DemoImage]:
    """The synthetic-blur sample photos (``size``² crops) followed by the real-blur clock photo."""
    pairs = PhotoPairs(kernel_max=KERNEL_MAX, noise=NOISE, seed=seed, crop=size, return_kernel=False)
    images = [DemoImage(item["name"], item["blur"], item["sharp"]) for item in (pairs[i] for i in range(len(pairs)))]
    return [*images, DemoImage(REAL_BLUR_NAME, real_blur_photo(size), None)]


@dataclass
class Result:
    """One restored image with its scores (``None`` without ground truth)."""

    image: Tensor
    seconds: float | None
    psnr: float | None
    ssim: float | None


def _score(image: Tensor, sharp: Tensor | None, seconds: float | None) -> Result:
    if sharp is None:
        return Result(image, seconds, None, None)
    return Result(image, seconds, psnr(image, sharp), ssim(image, sharp))


def run_demo(restorer: Restorer, images: list[DemoImage], modes: list[Mode], out: Path, *,
             seed: int = 0) -> dict[str, dict[str, Result]]:
    """Restore every image in every mode, writing ``out/<mode>/<name>.png``; returns name → column → result."""
    results: dict[str, dict[str, Result]] = {}
    bar = tqdm(total=len(images) * len(modes), desc="demo", unit="restore")
    for item in images:
        write_image(out / "blurry" / f"{item.name}.png", item.blur)
        if item.sharp is not None:
            write_image(out / "sharp" / f"{item.name}.png", item.sharp)
        row = {"blurry": _score(quantize(item.blur), item.sharp, None)}
        for mode in modes:
            bar.set_postfix_str(f"{item.name}: {mode.label}")
            restored, seconds = restore_timed(restorer, item.blur, mode, seed=seed,
                                              progress=(mode.steps or 0) >= 50)
            write_image(out / mode.slug / f"{item.name}.png", restored)
            row[mode.label] = _score(restored, item.sharp, seconds)
            bar.update(1)
        results[item.name] = row
    bar.close()
    return results


def _cell(result: Result) -> str:
    return "n/a" if result.psnr is None else f"{result.psnr:.2f} / {result.ssim:.3f}"


def mode_title(mode: Mode) -> str:
    """Column title of a mode: its label, with ``(steps×samples)`` for the diffusion modes."""
    return mode.label if not mode.steps else f"{mode.label} ({mode.steps}×{mode.average})"


def summary_table(results: dict[str, dict[str, Result]], modes: list[Mode]) -> str:
    """Markdown table: PSNR dB / SSIM per image and column, their means, and seconds per image per mode."""
    columns = ["blurry", *[m.label for m in modes]]
    titles = ["blurry", *[mode_title(m) for m in modes]]
    lines = ["| image | " + " | ".join(titles) + " |", "|---|" + "---:|" * len(columns)]
    for name, row in results.items():
        label = f"{name} (real blur, no ground truth)" if row["blurry"].psnr is None else name
        lines.append(f"| {label} | " + " | ".join(_cell(row[c]) for c in columns) + " |")
    scored = [row for row in results.values() if row["blurry"].psnr is not None]
    means = []
    for column in columns:
        p, s = mean_or_none([row[column].psnr for row in scored]), mean_or_none([row[column].ssim for row in scored])
        means.append("n/a" if p is None else f"{p:.2f} / {s:.3f}")
    lines.append(f"| **mean** ({len(scored)} images) | " + " | ".join(means) + " |")
    seconds = [mean_or_none([row[c].seconds for row in results.values()]) for c in columns]
    lines.append("| seconds / image | " + " | ".join("–" if s is None else f"{s:.2f}" for s in seconds) + " |")
    return "\n".join(lines) + "\n"


def grid_rows(images: list[DemoImage], results: dict[str, dict[str, Result]], modes: list[Mode]) -> list[list[Panel]]:
    """The grid's panels, one row per image: blurry | each mode | sharp, PSNR under each scored panel."""
    rows = []
    for item in images:
        scored = [results[item.name][column] for column in ["blurry", *[m.label for m in modes]]]
        row = [Panel(r.image, None if r.psnr is None else f"{r.psnr:.2f} dB") for r in scored]
        note = item.name if item.sharp is not None else f"{item.name}: real blur, no sharp"
        rows.append([*row, Panel(item.sharp, note)])
    return rows


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of ``scripts/demo.py``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="output folder (PNGs, grid.png, summary.md)")
    parser.add_argument("--checkpoint", type=Path, help="model directory (model.safetensors + config.json) or the "
                        "name of a shipped model; default: the shipped DvSR model")
    parser.add_argument("--size", type=int, default=256, help="side of the centre crops (16-268 px)")
    parser.add_argument("--mode", action="append", help="restore in this mode (repeat for several; default: "
                        f"{', '.join(DEMO_MODES)}; any name of the model's sample.modes)")
    parser.add_argument("--perceptual-steps", type=int, help="reverse steps of the perceptual mode (default: the "
                        "model's preset, 500)")
    parser.add_argument("--seed", type=int, default=0, help="blur kernels/noise and sampling seed")
    parser.add_argument("--precision", default="auto", choices=("auto", "no", "bf16"),
                        help="bf16 autocast where the CPU runs it natively (auto), never (no) or always (bf16)")
    return parser


def _check_args(args: argparse.Namespace) -> None:
    if args.size < 16:
        raise ValueError(f"--size {args.size}: must be at least 16 px")
    if args.perceptual_steps is not None and args.perceptual_steps < 1:
        raise ValueError(f"--perceptual-steps {args.perceptual_steps}: must be at least 1")


def main(argv: list[str] | None = None) -> int:
    """Run the demo; returns the exit code (0 ok, 2 no model or bad arguments)."""
    args = build_parser().parse_args(argv)
    start = time.perf_counter()
    try:
        _check_args(args)
        restorer = Restorer.from_pretrained(args.checkpoint, device="cpu", precision=args.precision)
        cfg, precision = restorer.cfg, restorer.precision
        modes = preset_modes(restorer.presets, args.mode or DEMO_MODES, args.perceptual_steps)
        images = demo_images(args.size, args.seed)
    except ValueError as exc:  # CheckpointError, ImageReadError, a crop larger than a photo, an unknown mode
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"model: {args.checkpoint or 'shipped default'} ({cfg.name}); {len(images)} images of {args.size} px; "
          f"precision {precision}; {describe_cpu()}")
    results = run_demo(restorer, images, modes, args.out, seed=args.seed)
    write_grid(args.out / "grid.png", ["blurry", *[mode_title(m) for m in modes], "sharp"],
               grid_rows(images, results, modes), cell=(2.8, 3.0), title_size=9)
    table = summary_table(results, modes)
    elapsed = time.perf_counter() - start
    notes = (f"\nCells: PSNR dB / SSIM against the sharp photo (RGB, 8-bit outputs). Synthetic blur: kernels "
             f"7–{KERNEL_MAX} px, σ = {NOISE}, seed {args.seed}. Model: {args.checkpoint or 'shipped default'}. "
             f"CPU: {describe_cpu()}, precision {precision}. Total wall time {elapsed:.0f} s.\n")
    atomic_write_text(args.out / "summary.md", "# stochdeblur demo\n\n" + table + notes)
    print(table + notes)
    print(f"wrote {args.out / 'grid.png'}, {args.out / 'summary.md'} and the restored PNGs under {args.out}")
    return 0
