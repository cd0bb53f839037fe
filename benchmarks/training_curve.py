"""Validation curve of a training run, from its ``metrics.jsonl``: a Markdown table and a plot.

    python benchmarks/training_curve.py runs/dvsr_default --out benchmarks/results/dvsr_default_curve

Rows: every validation step with PSNR/SSIM of the sampled output (``val/psnr``), the predictor alone
(``val/psnr_init``) and the blurry input (``val/psnr_blur``) when logged, plus the training loss and
throughput averaged over the log lines since the previous validation. Writes ``OUT.md`` and ``OUT.png``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from stochdeblur.utils import atomic_path, atomic_write_text

CURVES = (("val/psnr", "sampled output"), ("val/psnr_init", "predictor g(y)"), ("val/psnr_blur", "blurry input"))


def read_rows(run_dir: Path) -> list[dict[str, Any]]:
    """One row per validation step: its val/* metrics and the mean train loss and images/s before it."""
    rows, pending = [], []
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        if "train/loss" in record:
            pending.append(record)
        if any(key.startswith("val/") for key in record):
            losses = [r["train/loss"] for r in pending]
            speeds = [r["images_per_s"] for r in pending if "images_per_s" in r]
            rows.append({**record, "train_loss": sum(losses) / len(losses) if losses else None,
                         "images_per_s": sum(speeds) / len(speeds) if speeds else None})
            pending = []
    return rows


def _cell(value: float | None, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def markdown(rows: list[dict[str, Any]], title: str) -> str:
    """The curve as a table (PSNR in dB, SSIM, mean train loss, images/s)."""
    lines = [f"{title}", "", "| step | PSNR sampled | PSNR g(y) | PSNR blurry | SSIM sampled | SSIM g(y) | train loss | images/s |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['step']} | {_cell(r.get('val/psnr'), 2)} | {_cell(r.get('val/psnr_init'), 2)} | "
                     f"{_cell(r.get('val/psnr_blur'), 2)} | {_cell(r.get('val/ssim'), 3)} | "
                     f"{_cell(r.get('val/ssim_init'), 3)} | {_cell(r['train_loss'], 3)} | {_cell(r['images_per_s'], 1)} |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    """Validation PSNR against the training step, one line per curve that was logged."""
    fig = Figure(figsize=(6, 3.6))
    ax = fig.add_subplot()
    for key, label in CURVES:
        points = [(r["step"], r[key]) for r in rows if key in r]
        if points:
            ax.plot(*zip(*points, strict=True), marker="o", label=label)
    ax.set(xlabel="training step", ylabel="validation PSNR (dB)", title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)


def main(argv: list[str] | None = None) -> int:
    """Read RUN_DIR/metrics.jsonl and write OUT.md and OUT.png."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, help="a training run directory (holds metrics.jsonl)")
    parser.add_argument("--out", type=Path, required=True, help="output path without suffix")
    args = parser.parse_args(argv)
    rows = read_rows(args.run_dir)
    if not rows:
        parser.error(f"{args.run_dir / 'metrics.jsonl'} has no validation rows yet")
    title = f"Validation curve of {args.run_dir.name}"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out.with_suffix(".md"), markdown(rows, title))
    plot(rows, args.out.with_suffix(".png"), title)
    print(markdown(rows, title))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
