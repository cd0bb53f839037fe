"""Write a synthetic GoPro-layout dataset (dead leaves or your sharp photos + random camera-shake blur).

Output: ``OUT/<split>/<SEQ>/{blur,sharp,kernel}/NNNNNN.png`` plus the raw kernels as ``kernel/NNNNNN.npy``
and ``OUT/<split>/manifest.csv`` (name, kernel size, noise sigma, JPEG quality, source of the sharp content). The split folder is built
in a temporary folder and renamed into place, so a crash never leaves half a dataset.

Example:
    python scripts/make_dataset.py --dead-leaves --count 8 --size 128 --out /tmp/ds --preview preview.png
    python scripts/make_dataset.py --dead-leaves --texture-prob 0.5 --count 8 --out /tmp/mixed  # as dvsr_default
    python scripts/make_dataset.py --dead-leaves --photo-prob 0.5 --kernels boracchi,gp --out /tmp/photos
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from tqdm import tqdm

from stochdeblur.data.synth import SyntheticPairs, SyntheticSample
from stochdeblur.data.textures import load_training_images
from stochdeblur.io import write_image
from stochdeblur.utils import atomic_dir, atomic_path, atomic_write_text

PREVIEW_ROWS = 8


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface of ``scripts/make_dataset.py``."""
    parser = argparse.ArgumentParser(
        prog="make_dataset.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawTextHelpFormatter,
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--dead-leaves", action="store_true", help="synthesise sharp images (dead leaves)")
    source.add_argument("--sharp", type=Path, metavar="DIR", help="folder of sharp images to crop and blur")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="dataset root to write")
    parser.add_argument("--count", type=int, default=8, help="number of pairs (default 8)")
    parser.add_argument(
        "--size", type=int, default=128, help="side of every output image in pixels (default 128)"
    )
    parser.add_argument(
        "--kernel-size",
        default="7-33",
        metavar="K|MIN-MAX",
        help="kernel size range; one number = max, min 7",
    )
    parser.add_argument("--noise", type=float, default=0.01, help="max Gaussian noise sigma in [0,1] units")
    parser.add_argument("--jpeg-prob", type=float, default=0.0, help="probability of JPEG-compressing a blur")
    parser.add_argument(
        "--texture-prob",
        type=float,
        default=0.0,
        help="with --dead-leaves: fraction of pairs cropped from scikit-image's CC0 images instead (default 0)",
    )
    parser.add_argument(
        "--photo-prob",
        type=float,
        default=0.0,
        help="with --dead-leaves: fraction of pairs cropped from the Debian wallpaper photos (make photos)",
    )
    parser.add_argument(
        "--kernels",
        default="boracchi",
        metavar="NAMES",
        help="comma-separated kernel generators drawn per pair: boracchi, gp (default boracchi)",
    )
    parser.add_argument("--seed", type=int, default=0, help="pair i depends only on (seed, i)")
    parser.add_argument("--split", default="train", help="split folder name (default train)")
    parser.add_argument("--seq-size", type=int, default=100, help="pairs per <SEQ> folder (default 100)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing OUT/<split>")
    parser.add_argument("--preview", type=Path, metavar="PNG", help="also write a grid of kernels and pairs")
    return parser


def parse_kernel_size(text: str) -> tuple[int, int]:
    """``"33"`` -> (7, 33) (or (33, 33) below 7); ``"9-21"`` -> (9, 21)."""
    try:
        parts = [int(p) for p in text.split("-")]
    except ValueError:
        raise ValueError(f"--kernel-size {text!r}: expected K or MIN-MAX, e.g. 33 or 7-33") from None
    low, high = (min(7, parts[0]), parts[0]) if len(parts) == 1 else tuple(parts)
    if len(parts) > 2 or not 3 <= low <= high:
        raise ValueError(f"--kernel-size {text!r}: need 3 <= MIN <= MAX")
    return low, high


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))) * 2.0 - 1.0


def _write_sample(seq_dir: Path, stem: str, sample: SyntheticSample) -> None:
    write_image(seq_dir / "blur" / f"{stem}.png", _to_tensor(sample.blur))
    write_image(seq_dir / "sharp" / f"{stem}.png", _to_tensor(sample.sharp))
    kernel = torch.from_numpy(sample.kernel / sample.kernel.max())[None] * 2.0 - 1.0
    write_image(seq_dir / "kernel" / f"{stem}.png", kernel)
    with atomic_path(seq_dir / "kernel" / f"{stem}.npy") as tmp, tmp.open("wb") as f:
        np.save(f, sample.kernel)


def _check_args(args: argparse.Namespace) -> None:
    if args.count < 1 or args.size < 8 or args.seq_size < 1:
        raise ValueError("--count and --seq-size must be >= 1 and --size >= 8")
    if args.noise < 0 or not all(0 <= p <= 1 for p in (args.jpeg_prob, args.texture_prob, args.photo_prob)):
        raise ValueError("--noise must be >= 0, --jpeg-prob, --texture-prob and --photo-prob in [0, 1]")
    target = args.out / args.split
    if target.exists() and any(target.iterdir()) and not args.overwrite:
        raise ValueError(f"{target} already exists and is not empty; pass --overwrite to replace it")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 2 bad arguments or input)."""
    args = build_parser().parse_args(argv)
    try:
        _check_args(args)
        low, high = parse_kernel_size(args.kernel_size)
        pairs = SyntheticPairs(
            args.count,
            args.size,
            kernel_size_min=low,
            kernel_size_max=high,
            noise_max=args.noise,
            jpeg_prob=args.jpeg_prob,
            sharp_dir=args.sharp,
            seed=args.seed,
            texture_images=list(load_training_images().values()) if args.texture_prob > 0 else (),
            texture_prob=args.texture_prob,
            photo_prob=args.photo_prob,
            kernel_generators=[name.strip() for name in args.kernels.split(",")],
        )
        previews = _write_dataset(args, pairs)
        if args.preview is not None:
            save_preview(args.preview, previews)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    where = args.out / args.split
    print(f"wrote {args.count} pairs to {where}" + (f"; preview {args.preview}" if args.preview else ""))
    return 0


def _write_dataset(args: argparse.Namespace, pairs: SyntheticPairs) -> list[SyntheticSample]:
    previews: list[SyntheticSample] = []
    rows = io.StringIO()
    writer = csv.writer(rows, lineterminator="\n")
    writer.writerow(["seq", "name", "kernel_size", "noise_sigma", "jpeg_quality", "source"])
    with atomic_dir(args.out / args.split) as tmp:
        for i in tqdm(range(len(pairs)), desc="make_dataset", unit="pair"):
            sample = pairs.sample(i)
            seq, stem = f"SEQ{i // args.seq_size:04d}", f"{i:06d}"
            _write_sample(tmp / seq, stem, sample)
            writer.writerow(
                [seq, stem, sample.kernel.shape[0], f"{sample.noise_sigma:.5f}", sample.jpeg_quality or "",
                 sample.source]
            )
            if len(previews) < PREVIEW_ROWS:
                previews.append(sample)
        atomic_write_text(tmp / "manifest.csv", rows.getvalue())
    return previews


def _kernel_tile(kernel: np.ndarray, tile: int) -> np.ndarray:
    """The kernel scaled by an integer factor (nearest), coloured with 'inferno', centred on a black tile."""
    from matplotlib import colormaps

    factor = max(1, tile // kernel.shape[0])
    big = np.kron(kernel / kernel.max(), np.ones((factor, factor)))[:tile, :tile]
    out = np.zeros((tile, tile, 3))
    top, left = (tile - big.shape[0]) // 2, (tile - big.shape[1]) // 2
    out[top : top + big.shape[0], left : left + big.shape[1]] = colormaps["inferno"](big)[..., :3]
    return out


def save_preview(path: str | Path, samples: Sequence[SyntheticSample], tile: int = 128) -> Path:
    """Write a PNG grid: per sample its kernel (false colour), blurry and sharp image; two samples a row."""
    if not samples:
        raise ValueError("no samples to preview")
    columns, gap, header = 2, 6, 18
    rows = math.ceil(len(samples) / columns)
    width = columns * 3 * tile + (columns * 3 + 1) * gap
    height = header + rows * (tile + gap) + gap
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    for j, sample in enumerate(samples):
        r, c = divmod(j, columns)
        y = header + gap + r * (tile + gap)
        panels = [_kernel_tile(sample.kernel, tile)] + [_fit(im, tile) for im in (sample.blur, sample.sharp)]
        for p, panel in enumerate(panels):
            x = gap + (c * 3 + p) * (tile + gap)
            canvas.paste(Image.fromarray(np.floor(panel * 255 + 0.5).astype(np.uint8)), (x, y))
        k = sample.kernel.shape[0]
        label_xy = (gap + c * 3 * (tile + gap) + 3, y + 2)
        draw.rectangle(draw.textbbox(label_xy, f"{k}x{k}", font=font), fill=(0, 0, 0))
        draw.text(label_xy, f"{k}x{k}", fill=(255, 255, 255), font=font)
    for c in range(columns):
        for p, title in enumerate(("kernel", "blurry", "sharp")):
            draw.text((gap + (c * 3 + p) * (tile + gap) + 3, 3), title, fill=(0, 0, 0), font=font)
    with atomic_path(path) as tmp:
        canvas.save(tmp, format="PNG")
    return Path(path)


def _fit(image: np.ndarray, tile: int) -> np.ndarray:
    """Centre-crop or pad an [H, W, 3] image to tile x tile."""
    out = np.ones((tile, tile, 3))
    h, w = min(tile, image.shape[0]), min(tile, image.shape[1])
    top, left = (image.shape[0] - h) // 2, (image.shape[1] - w) // 2
    out[:h, :w] = image[top : top + h, left : left + w]
    return out
