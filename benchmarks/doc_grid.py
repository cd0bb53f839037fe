"""The README's copy of the demo grid: half size, 256 colours (≈ 0.2 MB instead of ≈ 3 MB), written atomically.

    python benchmarks/doc_grid.py demo_out/grid.png docs/images/demo_grid.png

Half size keeps the panels readable at the README's display width; the palette is a median cut without
dithering, so restored detail is not confused with dither noise.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

from PIL import Image

from stochdeblur.utils import atomic_write_bytes


def doc_grid(image: Image.Image, factor: int = 2, colors: int = 256) -> Image.Image:
    """``image`` reduced ``factor``× (box filter) and quantized to a ``colors``-entry palette."""
    reduced = image.convert("RGB").reduce(factor)
    return reduced.quantize(colors=colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)


def main(argv: list[str] | None = None) -> int:
    """Write the docs copy of a demo grid; exit 2 when the input is missing or unreadable."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("grid", type=Path, help="grid.png written by scripts/demo.py")
    parser.add_argument("out", type=Path, help="where to write the docs copy (PNG)")
    parser.add_argument("--factor", type=int, default=2, help="size reduction factor (default 2)")
    args = parser.parse_args(argv)
    try:
        with Image.open(args.grid) as image:
            small = doc_grid(image, args.factor)
    except OSError as exc:
        print(f"error: {args.grid}: {exc}", file=sys.stderr)
        return 2
    buffer = io.BytesIO()
    small.save(buffer, format="PNG", optimize=True)
    atomic_write_bytes(args.out, buffer.getvalue())
    print(f"wrote {args.out} ({small.width}×{small.height}, {len(buffer.getvalue()) / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
