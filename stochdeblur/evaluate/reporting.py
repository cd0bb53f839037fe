"""What an evaluation writes for people: CSV cells and files, the Markdown summary, comparison grids, the sweep plot.

:func:`write_grid` is the one comparison-grid writer: the evaluation's ``grid.png`` and the demo's both go
through it. Every file is written atomically (:mod:`stochdeblur.utils`).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from torch import Tensor

from stochdeblur.metrics import IMAGE_METRICS, LOWER_IS_BETTER, format_value
from stochdeblur.utils import atomic_path, atomic_write_text

SUMMARY_COLUMNS = ("model", "mode", "images", "psnr", "ssim", "lpips", "fid", "kid", "haarpsi", "mdsi", "gmsd",
                   "grad_ratio", "hf_ratio", "seconds")
TABLE_COLUMNS = (("psnr", "PSNR ↑"), ("ssim", "SSIM ↑"), ("lpips", "LPIPS ↓"), ("fid", "FID ↓"), ("kid", "KID ↓"),
                 ("haarpsi", "HaarPSI ↑"), ("grad_ratio", "grad. energy (→1)"), ("seconds", "s/image"))
SWEEP_COLUMNS = ("steps", "average", "sampler", "mode", "images", *IMAGE_METRICS, "seconds")


# ---------------------------------------------------------------------------------------------------------
# CSV
# ---------------------------------------------------------------------------------------------------------


def csv_cell(value: Any) -> str:
    """A value as a CSV cell: ``""`` for None and NaN, ``repr`` for floats (round-trips exactly)."""
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    return str(value)


def csv_number(text: str) -> float | None:
    """A CSV cell as a number (None for an empty cell)."""
    return float(text) if text not in ("", None) else None


def write_csv(path: Path, columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> None:
    """``rows`` (dicts; missing keys are empty cells) as a CSV file with ``columns``, written atomically."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([csv_cell(row.get(c)) for c in columns] for row in rows)
    atomic_write_text(path, buffer.getvalue())


def read_csv(path: Path) -> list[dict[str, str]]:
    """The rows of a CSV file with a header (none when the file does not exist)."""
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


# ---------------------------------------------------------------------------------------------------------
# summary.md / summary.csv
# ---------------------------------------------------------------------------------------------------------


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """The summary rows as a Markdown table (``unavailable`` where a metric has no weights)."""
    header = ["model", "mode", "images", *[title for _, title in TABLE_COLUMNS]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * 3 + "---:|" * len(TABLE_COLUMNS)]
    for row in rows:
        cells = [str(row["model"]), str(row["mode"]), str(row["images"])]
        cells += [format_value(key, row.get(key)) for key, _ in TABLE_COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_summary(out: Path, rows: Sequence[dict[str, Any]], unavailable: dict[str, str]) -> None:
    """Write ``summary.md`` (table + conventions + why metrics are unavailable) and ``summary.csv``."""
    notes = ["", "PSNR/SSIM: torchmetrics, RGB in [0,1] (data range 1), SSIM Gaussian 11/σ1.5, full images, "
             "outputs rounded to 8 bits. LPIPS (AlexNet) and FID/KID on non-overlapping 256² patches. "
             "HaarPSI: piq. Gradient energy: output/sharp (>1 sharper or noisier, <1 blurrier).", ""]
    by_reason: dict[str, list[str]] = {}
    for name, reason in unavailable.items():
        if name in {key for key, _ in TABLE_COLUMNS}:
            by_reason.setdefault(reason, []).append(name.upper())
    notes += [f"- {'/'.join(names)} unavailable: {reason}" for reason, names in by_reason.items()]
    atomic_write_text(out / "summary.md", markdown_table(rows) + "\n".join(notes) + "\n")
    write_csv(out / "summary.csv", SUMMARY_COLUMNS, rows)


# ---------------------------------------------------------------------------------------------------------
# comparison grids
# ---------------------------------------------------------------------------------------------------------


@dataclass
class Panel:
    """One cell of a comparison grid: an image [3,H,W] in [-1, 1] (None: the cell stays empty) and the note
    under it (None: no note)."""

    image: Tensor | None
    note: str | None = None


def _display(image: Tensor, crop: int | None) -> np.ndarray:
    """[3,H,W] in [-1, 1] → [h,w,3] in [0, 1]: the centre ``crop``² square (clipped to the image) or all of it."""
    if crop is not None:
        h, w = image.shape[-2:]
        s = min(crop, h, w)
        top, left = (h - s) // 2, (w - s) // 2
        image = image[:, top:top + s, left:left + s]
    return ((image.clamp(-1, 1) + 1) / 2).permute(1, 2, 0).numpy()


def write_grid(path: Path, titles: Sequence[str], rows: Sequence[Sequence[Panel]], *, crop: int | None = None,
               cell: tuple[float, float] = (2.0, 2.2), title_size: int = 8) -> None:
    """A comparison grid as a PNG: one row of panels per image, one column per title (shown above the first row).

    Args:
        crop: show each panel's centre ``crop``² square (None: the whole image).
        cell: inches (width, height) of one panel at 100 dpi.
        title_size: font size of the column titles (notes: 8).
    """
    if not rows:
        return
    fig = Figure(figsize=(cell[0] * len(titles), cell[1] * len(rows)), dpi=100)
    axes = fig.subplots(len(rows), len(titles), squeeze=False)
    for r, row in enumerate(rows):
        for c, panel in enumerate(row):
            ax = axes[r][c]
            if panel.image is not None:
                ax.imshow(_display(panel.image, crop))
            ax.set_xticks([])
            ax.set_yticks([])
            if panel.note is not None:
                ax.set_xlabel(panel.note, fontsize=8)
            if r == 0:
                ax.set_title(titles[c], fontsize=title_size)
    fig.tight_layout()
    save_figure(fig, path)


def save_figure(fig: Figure, path: Path) -> None:
    """Save a matplotlib figure as PNG, atomically."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")


# ---------------------------------------------------------------------------------------------------------
# perception–distortion plot
# ---------------------------------------------------------------------------------------------------------

_SWEEP_AXES = (("lpips", "LPIPS ↓"), ("haarpsi", "HaarPSI ↑"), ("grad_ratio", "gradient energy / sharp (1 = ideal)"))


def plot_sweep(rows: Sequence[dict[str, Any]], path: Path, title: str = "perception–distortion") -> None:
    """Plot sweep rows: x = PSNR, one panel per available perceptual measure, one line per (sampler settings,
    average); the sampler is named in the legend only when the sweep has more than one."""
    metrics = [(k, t) for k, t in _SWEEP_AXES if any(r.get(k) is not None for r in rows)]
    fig = Figure(figsize=(5.0 * len(metrics), 4.2), dpi=100)
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    lines = list(dict.fromkeys((r.get("sampler", "ddpm"), r["average"]) for r in rows if r["steps"]))
    several = len({rule for rule, _ in lines}) > 1
    for ax, (key, axis_title) in zip(axes, metrics, strict=True):
        for rule, average in lines:
            line = sorted((r for r in rows if r["steps"] and (r.get("sampler", "ddpm"), r["average"]) == (rule, average)),
                          key=lambda r: r["steps"])
            line = [r for r in line if r["psnr"] is not None and r[key] is not None]
            name = f"average {average}" + (f", {rule}" if several else "")
            ax.plot([r["psnr"] for r in line], [r[key] for r in line], marker="o", label=name)
            for r in line:
                ax.annotate(str(r["steps"]), (r["psnr"], r[key]), textcoords="offset points", xytext=(4, 4),
                            fontsize=7)
        for r in rows:
            if not r["steps"] and r["psnr"] is not None and r[key] is not None:
                ax.plot([r["psnr"]], [r[key]], marker="*", markersize=12, color="black", linestyle="",
                        label="predictor")
        if LOWER_IS_BETTER.get(key) is None:  # a ratio: 1 is ideal, log scale shows ×2 and ÷2 alike
            ax.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
            ax.set_yscale("log")
        ax.set_xlabel("PSNR (dB) →")
        ax.set_ylabel(axis_title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title + " — point labels: sampling steps")
    fig.tight_layout()
    save_figure(fig, path)
