"""Evaluation runner: models × inference modes on a paired dataset -> CSV, Markdown table, crops, sweep, W&B.

Everything lands in one output directory::

    per_image.csv      one row per (model, mode, image); appended with flush + fsync after every image
    summary.md/.csv    one row per model × mode: PSNR, SSIM, LPIPS, FID, KID, weight-free proxies, s/image
    grid.png           centre crops: blurry | every model × mode | sharp, for the first few images
    outputs/           restored images (8-bit PNG), read back for FID/KID and the grid
    sweep.csv/.png     perception–distortion sweep over (steps, average) (:func:`sweep`)
    wandb/             the same results as an offline W&B run (:func:`write_wandb_run`)

Resuming: rows already in ``per_image.csv`` are skipped, so a killed evaluation restarted with the same
arguments continues where it stopped; a trailing half-written line (a crash mid-append) is dropped.
Every image is restored with the same ``seed``, so a resumed run gives the same numbers as an
uninterrupted one. Outputs are clamped to [-1, 1] and rounded to 8 bits *before* scoring, as the saved
PNGs are (the convention of published deblurring tables).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor, nn
from tqdm.auto import tqdm

from stochdeblur import trackers
from stochdeblur.checkpointing import tensors_digest
from stochdeblur.config import SAMPLER_TYPES, ModePreset, SampleConfig
from stochdeblur.io import IMAGE_EXTENSIONS, quantize, read_image, write_image
from stochdeblur.metrics import IMAGE_METRICS, LOWER_IS_BETTER, MetricSuite, format_value, mean_or_none
from stochdeblur.restorer import Restorer
from stochdeblur.utils import atomic_path, atomic_write_text

_TEXT_COLUMNS = ("model", "mode", "image", "sampler")
ROW_KEYS = ("model", "mode", "image")
CSV_COLUMNS = (*ROW_KEYS, "steps", "average", "sampler", "seed", "height", "width", "seconds", *IMAGE_METRICS)
SUMMARY_COLUMNS = ("model", "mode", "images", "psnr", "ssim", "lpips", "fid", "kid", "haarpsi", "mdsi", "gmsd",
                   "grad_ratio", "hf_ratio", "seconds")
TABLE_COLUMNS = (("psnr", "PSNR ↑"), ("ssim", "SSIM ↑"), ("lpips", "LPIPS ↓"), ("fid", "FID ↓"), ("kid", "KID ↓"),
                 ("haarpsi", "HaarPSI ↑"), ("grad_ratio", "grad. energy (→1)"), ("seconds", "s/image"))
KERNEL_MAX, NOISE = 33, 0.01  # the demo photos' synthetic blur (PhotoPairs): kernels of 7–33 px, σ = 0.01


class EvaluationError(ValueError):
    """Bad evaluation input: an unparsable mode, duplicate labels or image names, an incompatible CSV."""


@dataclass(frozen=True)
class Mode:
    """One inference setting: predictor only (``steps=None``) or ``steps`` reverse steps × ``average`` samples."""

    steps: int | None = None
    average: int = 1
    sampler: str = "ddpm"
    label: str = "predictor"

    @property
    def slug(self) -> str:
        """The label as a file-name-safe string."""
        return _slug(self.label)


def demo_modes(perceptual_steps: int = 500, average_steps: int = 10, average: int = 4) -> list[Mode]:
    """The three inference modes of the paper: predictor only, averaging (10 × 4) and perceptual (500 × 1)."""
    return [Mode(label="predictor"), Mode(average_steps, average, "ddpm", "average"),
            Mode(perceptual_steps, 1, "ddpm", "perceptual")]


def restore_timed(restorer: Restorer, blur: Tensor, mode: Mode, *, seed: int = 0, tile: int | None = None,
                  progress: bool = False) -> tuple[Tensor, float]:
    """Restore one image in ``mode``; returns (8-bit-quantised output, wall seconds of the restoration).

    ``tile``: as :class:`~stochdeblur.restorer.Restorer` (None: the config's, 0: never).

    Shape: blur [3,H,W] in [-1,1] → [3,H,W] in [-1,1] (float32, CPU).
    """
    out, seconds = restorer.timed(blur, steps=mode.steps or 0, average=mode.average, sampler=mode.sampler,
                                  seed=seed, tile=tile, progress=progress)
    return quantize(out[0].cpu()), seconds


def _canonical_label(steps: int | None, average: int, sampler: str) -> str:
    if not steps:
        return "predictor"
    label = f"steps={steps}" + (f",average={average}" if average != 1 else "")
    return label + (f",sampler={sampler}" if sampler != "ddpm" else "")


def _parse_int(part: str, key: str, value: str, minimum: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise EvaluationError(f"mode '{part}': {key}={value!r} is not an integer") from None
    if number < minimum:
        raise EvaluationError(f"mode '{part}': {key} must be >= {minimum}, got {number}")
    return number


def parse_mode(part: str, presets: dict[str, ModePreset] | None = None) -> Mode:
    """Parse ``"steps=10,average=4[,sampler=ddim][,label=NAME]"``, or a mode name of ``presets`` ("predictor",
    "average", "perceptual"; default: those of ``SampleConfig()``) optionally followed by such overrides, e.g.
    ``"perceptual,average=4"``, into a :class:`Mode`. A bare name is labelled with the name."""
    part = part.strip()
    presets = SampleConfig().presets() if presets is None else presets
    items = [s.strip() for s in part.split(",") if s.strip()]
    name = items.pop(0) if items and "=" not in items[0] else None
    if name is not None and name not in presets:
        raise EvaluationError(f"mode '{part}': unknown mode name '{name}' (named modes: {', '.join(presets)}; "
                              "or give steps=N[,average=K])")
    fields: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key.strip() not in ("steps", "average", "sampler", "label"):
            raise EvaluationError(f"mode '{part}': expected steps=, average=, sampler= or label=, got '{item}'")
        fields[key.strip()] = value.strip()
    preset = presets[name] if name is not None else ModePreset(0, 1)
    steps = _parse_int(part, "steps", fields.get("steps", str(preset.steps)), 0) or None
    average = _parse_int(part, "average", fields.get("average", str(preset.average)), 1)
    sampler = fields.get("sampler", "ddpm")
    if sampler not in SAMPLER_TYPES:
        raise EvaluationError(f"mode '{part}': sampler={sampler!r} is not one of {', '.join(SAMPLER_TYPES)}")
    default_label = name if name is not None and not fields else _canonical_label(steps, average, sampler)
    label = fields.get("label") or default_label
    return Mode(steps=steps, average=average if steps else 1, sampler=sampler, label=label)


def parse_modes(spec: str, presets: dict[str, ModePreset] | None = None) -> list[Mode]:
    """Parse ``"predictor; steps=10,average=4; perceptual"`` (modes separated by ``;``, names from ``presets``)."""
    modes = [parse_mode(part, presets) for part in spec.split(";") if part.strip()]
    if not modes:
        raise EvaluationError(f"no modes in {spec!r}")
    _check_unique([m.label for m in modes], "mode label")
    return modes


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "_"


def _check_unique(items: Sequence[str], what: str) -> None:
    seen: set[str] = set()
    for item in items:
        if item in seen:
            raise EvaluationError(f"duplicate {what} '{item}'")
        seen.add(item)


def _method_device(method: nn.Module) -> torch.device:
    param = next(method.parameters(), None) if isinstance(method, nn.Module) else None
    return param.device if param is not None else torch.device("cpu")


# ---------------------------------------------------------------------------------------------------------
# per_image.csv: append-only with fsync, tolerant of a trailing partial line
# ---------------------------------------------------------------------------------------------------------


class ResultsLog:
    """``per_image.csv``: one complete line per finished image, appended with flush + fsync.

    On open, a trailing partial line (the process died mid-write) or a malformed row is dropped and the
    file is rewritten atomically, so every later append starts on a clean line.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.rows: dict[tuple[str, str, str], dict[str, str]] = {}
        if self.path.exists():
            self._load()
        else:
            atomic_write_text(self.path, ",".join(CSV_COLUMNS) + "\n")

    def _load(self) -> None:
        text = self.path.read_text()
        complete = text if text.endswith("\n") else text[: text.rfind("\n") + 1]
        reader = csv.reader(io.StringIO(complete))
        header = next(reader, None)
        if header is None:
            atomic_write_text(self.path, ",".join(CSV_COLUMNS) + "\n")
            return
        if tuple(header) != CSV_COLUMNS:
            raise EvaluationError(f"{self.path}: written with other columns ({','.join(header)}); use a new --out")
        good = [row for row in reader if len(row) == len(CSV_COLUMNS)]
        for row in good:
            record = dict(zip(CSV_COLUMNS, row, strict=True))
            self.rows[(record["model"], record["mode"], record["image"])] = record
        if len(good) + 1 != complete.count("\n") or complete != text:
            self._rewrite()

    def _rewrite(self) -> None:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        writer.writerows([row[c] for c in CSV_COLUMNS] for row in self.rows.values())
        atomic_write_text(self.path, buffer.getvalue())

    def __contains__(self, key: tuple[str, str, str]) -> bool:
        return key in self.rows

    def append(self, record: dict[str, Any]) -> None:
        """Write one row durably (flush + fsync) and remember it."""
        row = {c: _cell(record.get(c)) for c in CSV_COLUMNS}
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerow([row[c] for c in CSV_COLUMNS])
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(buffer.getvalue())
            handle.flush()
            os.fsync(handle.fileno())
        self.rows[(row["model"], row["mode"], row["image"])] = row


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    return str(value)


def _number(text: str) -> float | None:
    return float(text) if text not in ("", None) else None


# ---------------------------------------------------------------------------------------------------------
# the evaluation loop
# ---------------------------------------------------------------------------------------------------------


@dataclass
class _Item:
    index: int
    name: str

    @property
    def file_name(self) -> str:
        """Relative output path: the name's parts slugged (an image suffix dropped), plus ``.png``."""
        path = Path(self.name)
        if path.suffix.lower() in IMAGE_EXTENSIONS:
            path = path.with_suffix("")
        return "/".join(_slug(p) for p in path.parts if p not in ("", ".", "..", "/")) + ".png"


def _select(dataset, limit: int | None) -> list[_Item]:
    count = len(dataset) if limit is None else min(limit, len(dataset))
    items = [_Item(i, _name_of(dataset, i)) for i in range(count)]
    _check_unique([item.name for item in items], "image name")
    return items


def _name_of(dataset, index: int) -> str:
    """The item's name without loading its images where the dataset lists them (``names`` or ``pairs``)."""
    names = getattr(dataset, "names", None)
    if isinstance(names, Sequence) and len(names) == len(dataset):
        return str(names[index])
    pairs = getattr(dataset, "pairs", None)
    if isinstance(pairs, Sequence) and len(pairs) == len(dataset) and hasattr(pairs[index], "name"):
        return str(pairs[index].name)
    return str(dataset[index].get("name", f"{index:06d}"))


def _plan(models: Sequence[tuple[str, nn.Module]], modes: Sequence[Mode]) -> list[tuple[str, nn.Module, Mode]]:
    if not models or not modes:
        raise EvaluationError("evaluate needs at least one model and one mode")
    _check_unique([label for label, _ in models], "model label")
    plan = []
    for label, method in models:
        for mode in modes if method.samples else [Mode()]:  # one-shot methods run once, as "predictor"
            plan.append((label, method, mode))
    return plan


def check_same_weights(out: Path, models: Sequence[tuple[str, nn.Module]]) -> None:
    """Record each label's weight digest in ``out/models.json``; refuse to resume over other weights.

    Resuming keys rows on (model label, mode, image): without this check a re-run after re-training would
    silently keep the old model's rows under the same label.
    """
    path = out / "models.json"
    digests = {label: tensors_digest(method.state_dict().items()) for label, method in models}
    recorded = json.loads(path.read_text()) if path.exists() else {}
    changed = sorted(label for label, digest in digests.items() if recorded.get(label, digest) != digest)
    if changed:
        raise EvaluationError(f"{out} holds results of other weights under the label(s) {', '.join(changed)}; "
                              "use a new --out (or delete it) to evaluate these weights")
    atomic_write_text(path, json.dumps({**recorded, **digests}, indent=2) + "\n")


def _run(plan, dataset, items: list[_Item], log: ResultsLog, suite: MetricSuite, *, seed: int,
         tile: int | None, precision: str, outputs: Path | None, progress: bool, desc: str) -> None:
    """Restore and score every (plan entry, item) not yet in ``log``, appending one row per image."""
    todo = [(item, entry) for item in items for entry in plan if (entry[0], entry[2].label, item.name) not in log]
    bar = tqdm(total=len(items) * len(plan), initial=len(items) * len(plan) - len(todo), desc=desc,
               disable=not progress, unit="img")
    restorers = {label: Restorer(method, precision=precision) for label, method, _ in plan}
    cached = None
    for item, (label, _, mode) in todo:
        if cached is None or cached[0] != item.index:
            cached = (item.index, dataset[item.index])
        sample = cached[1]
        restored, seconds = restore_timed(restorers[label], sample["blur"], mode, seed=seed, tile=tile or 0)
        if outputs is not None:
            write_image(outputs / _slug(label) / mode.slug / item.file_name, restored)
        metrics = suite.compute_image_metrics(restored, sample["sharp"])
        log.append({"model": label, "mode": mode.label, "image": item.name, "steps": mode.steps or 0,
                    "average": mode.average, "sampler": mode.sampler, "seed": seed, "height": restored.shape[-2],
                    "width": restored.shape[-1], "seconds": seconds, **metrics})
        bar.update(1)
    bar.close()


def _aggregate(log: ResultsLog, label: str, mode: Mode, items: list[_Item]) -> dict[str, Any]:
    rows = [log.rows[(label, mode.label, item.name)] for item in items if (label, mode.label, item.name) in log]
    summary: dict[str, Any] = {"model": label, "mode": mode.label, "images": len(rows), "steps": mode.steps or 0,
                               "average": mode.average, "sampler": mode.sampler}
    for name in (*IMAGE_METRICS, "seconds"):
        summary[name] = mean_or_none([_number(row[name]) for row in rows])
    return summary


def _distribution(suite: MetricSuite, dataset, items: list[_Item], outputs: Path, label: str, mode: Mode,
                  first: bool) -> dict[str, float | None]:
    if not suite.is_available("fid"):
        return {"fid": None, "kid": None}
    for item in items:
        path = outputs / _slug(label) / mode.slug / item.file_name
        if path.is_file():
            suite.update_distribution(read_image(path), dataset[item.index]["sharp"] if first else None)
    return suite.finalize()


def evaluate(models: Sequence[tuple[str, nn.Module]], dataset, modes: Sequence[Mode], out_dir: str | Path,
             limit: int | None = None, seed: int = 0, tile: int | None = None, progress: bool = True,
             grid_images: int = 4, suite: MetricSuite | None = None, precision: str = "auto") -> list[dict[str, Any]]:
    """Evaluate every model under every mode; write per_image.csv, summary.md/.csv and grid.png.

    Args:
        models: ``(label, method)`` pairs; methods follow ``methods/base.py`` (GANs run once, as "predictor").
        dataset: items ``{"blur", "sharp", "name"}`` in [-1, 1] (e.g. ``PairedDataset``, ``PhotoPairs``).
        modes: inference settings, e.g. ``parse_modes("predictor; steps=10,average=4; steps=500")``.
        out_dir: output directory; re-running with the same arguments resumes (the same weights per label:
            other weights under a known label raise :class:`EvaluationError`).
        limit: evaluate only the first ``limit`` images.
        seed, tile: passed to ``restore`` (same seed for every image).
        precision: of :class:`~stochdeblur.restorer.Restorer` ("auto", "no", "bf16", "fp16"; see
            ``utils.pick_precision``).
        grid_images: rows of ``grid.png``.
        suite: metrics to use (default: a new :class:`MetricSuite` on the first model's device).

    Returns:
        One dict per model × mode (the rows of summary.md, metrics ``None`` where unavailable).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    items = _select(dataset, limit)
    plan = _plan(models, modes)
    check_same_weights(out, models)
    suite = suite or MetricSuite(_method_device(models[0][1]), seed=seed)
    log = ResultsLog(out / "per_image.csv")
    _run(plan, dataset, items, log, suite, seed=seed, tile=tile, precision=precision, outputs=out / "outputs",
         progress=progress, desc="evaluate")
    summary = []
    for position, (label, _, mode) in enumerate(plan):
        row = _aggregate(log, label, mode, items)
        row.update(_distribution(suite, dataset, items, out / "outputs", label, mode, first=position == 0))
        summary.append(row)
    write_summary(out, summary, suite.unavailable)
    write_grid(out / "grid.png", dataset, items[:grid_images], plan, out / "outputs", log)
    return summary


# ---------------------------------------------------------------------------------------------------------
# summary.md / summary.csv
# ---------------------------------------------------------------------------------------------------------


def _write_csv(path: Path, columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([_cell(row.get(c)) for c in columns] for row in rows)
    atomic_write_text(path, buffer.getvalue())


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
    _write_csv(out / "summary.csv", SUMMARY_COLUMNS, rows)


# ---------------------------------------------------------------------------------------------------------
# grid.png
# ---------------------------------------------------------------------------------------------------------


def _crop(image: Tensor, size: int) -> np.ndarray:
    h, w = image.shape[-2:]
    s = min(size, h, w)
    top, left = (h - s) // 2, (w - s) // 2
    patch = image[:, top:top + s, left:left + s]
    return ((patch.clamp(-1, 1) + 1) / 2).permute(1, 2, 0).numpy()


def write_grid(path: Path, dataset, items: list[_Item], plan, outputs: Path, log: ResultsLog,
               crop: int = 192) -> None:
    """Centre crops, one row per image: blurry | each model × mode (with its PSNR) | sharp."""
    if not items:
        return
    titles = ["blurry", *[f"{label}\n{mode.label}" for label, _, mode in plan], "sharp"]
    fig = Figure(figsize=(2.0 * len(titles), 2.2 * len(items)), dpi=100)
    axes = fig.subplots(len(items), len(titles), squeeze=False)
    for r, item in enumerate(items):
        sample = dataset[item.index]
        panels = [(sample["blur"], "")]
        for label, _, mode in plan:
            out_path = outputs / _slug(label) / mode.slug / item.file_name
            row = log.rows.get((label, mode.label, item.name))
            note = f"{float(row['psnr']):.2f} dB" if row and row["psnr"] else ""
            panels.append((read_image(out_path) if out_path.is_file() else torch.zeros_like(sample["blur"]), note))
        panels.append((sample["sharp"], item.name))
        for c, (image, note) in enumerate(panels):
            ax = axes[r][c]
            ax.imshow(_crop(image, crop))
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel(note, fontsize=8)
            if r == 0:
                ax.set_title(titles[c], fontsize=8)
    fig.tight_layout()
    _save_figure(fig, path)


def _save_figure(fig: Figure, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")


# ---------------------------------------------------------------------------------------------------------
# perception–distortion sweep
# ---------------------------------------------------------------------------------------------------------

SWEEP_COLUMNS = ("steps", "average", "mode", "images", *IMAGE_METRICS, "seconds")


def sweep(method: nn.Module, dataset, out_dir: str | Path, steps: Sequence[int] = (1, 2, 5, 10, 50, 500),
          averages: Sequence[int] = (1, 2, 4, 8), limit: int | None = None, seed: int = 0, tile: int | None = None,
          progress: bool = True, label: str = "model", suite: MetricSuite | None = None,
          precision: str = "auto") -> list[dict[str, Any]]:
    """Perception–distortion sweep over (steps, average) plus the predictor alone -> sweep.csv + sweep.png.

    Per-image results go to ``sweep_per_image.csv`` (resumable like :func:`evaluate`). The plot has
    x = PSNR and y = each available perceptual measure (LPIPS, HaarPSI, gradient-energy ratio); one line per
    ``average``, points labelled with their step count; the predictor is a star.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    items = _select(dataset, limit)
    modes = [Mode(), *[Mode(s, a, "ddpm", _canonical_label(s, a, "ddpm")) for a in averages for s in steps]]
    plan = [(label, method, mode) for mode in modes]
    check_same_weights(out, [(label, method)])
    suite = suite or MetricSuite(_method_device(method), distribution=False, seed=seed)
    log = ResultsLog(out / "sweep_per_image.csv")
    _run(plan, dataset, items, log, suite, seed=seed, tile=tile, precision=precision, outputs=None,
         progress=progress, desc="sweep")
    rows = []
    for mode in modes:
        row = _aggregate(log, label, mode, items)
        rows.append({**row, "steps": mode.steps or 0, "average": mode.average})
    _write_csv(out / "sweep.csv", SWEEP_COLUMNS, rows)
    plot_sweep(rows, out / "sweep.png", title=f"{label}: perception–distortion ({len(items)} images)")
    return rows


_SWEEP_AXES = (("lpips", "LPIPS ↓"), ("haarpsi", "HaarPSI ↑"), ("grad_ratio", "gradient energy / sharp (1 = ideal)"))


def plot_sweep(rows: Sequence[dict[str, Any]], path: Path, title: str = "perception–distortion") -> None:
    """Plot sweep rows: x = PSNR, one panel per available perceptual measure, one line per average."""
    metrics = [(k, t) for k, t in _SWEEP_AXES if any(r.get(k) is not None for r in rows)]
    fig = Figure(figsize=(5.0 * len(metrics), 4.2), dpi=100)
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    averages = sorted({r["average"] for r in rows if r["steps"]})
    for ax, (key, axis_title) in zip(axes, metrics, strict=True):
        for average in averages:
            line = sorted((r for r in rows if r["steps"] and r["average"] == average), key=lambda r: r["steps"])
            line = [r for r in line if r["psnr"] is not None and r[key] is not None]
            ax.plot([r["psnr"] for r in line], [r[key] for r in line], marker="o", label=f"average {average}")
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
    _save_figure(fig, path)


# ---------------------------------------------------------------------------------------------------------
# W&B
# ---------------------------------------------------------------------------------------------------------


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _table_rows(rows: list[dict[str, str]], columns: Sequence[str]) -> Iterator[list[Any]]:
    for row in rows:
        yield [row[c] if c in _TEXT_COLUMNS else _number(row[c]) for c in columns]


def _thumbnail(path: Path, size: int = 256):
    import wandb
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        im.thumbnail((size, size))
        return wandb.Image(np.asarray(im))


def write_wandb_run(out_dir: str | Path, *, project: str = "stochdeblur", name: str | None = None,
                    mode: str | None = None, image_rows: int = 64, config: dict[str, Any] | None = None) -> Path:
    """Log an evaluation directory as one W&B run (offline unless ``mode``/``WANDB_MODE`` say otherwise).

    Logs the summary table, the per-image table with a thumbnail column (the first ``image_rows`` rows),
    grid.png and sweep.png, and the CSV tables as an ``evaluation`` artifact; the run lives under
    ``out_dir/wandb``. Returns the run directory (``wandb sync <dir>`` uploads it).
    """
    import wandb

    out = Path(out_dir)
    mode = mode or os.environ.get("WANDB_MODE", "offline")
    run = wandb.init(project=project, name=name or out.name, dir=str(out), mode=mode, config=config or {},
                     job_type="evaluation", reinit="create_new", settings=wandb.Settings(quiet=True))
    try:
        summary = _read_csv(out / "summary.csv")
        if summary:
            run.log({"summary": wandb.Table(columns=list(SUMMARY_COLUMNS),
                                            data=list(_table_rows(summary, SUMMARY_COLUMNS)))})
            for row in summary:
                for key in ("psnr", "ssim", "lpips", "fid", "kid", "haarpsi", "grad_ratio", "seconds"):
                    if row.get(key):
                        run.summary[f"{row['model']}/{row['mode']}/{key}"] = float(row[key])
        run.log({"per_image": _per_image_table(out, image_rows)})
        for artefact in ("grid", "sweep"):
            if (out / f"{artefact}.png").is_file():
                run.log({artefact: wandb.Image(str(out / f"{artefact}.png"))})
        sweep_rows = _read_csv(out / "sweep.csv")
        if sweep_rows:
            run.log({"sweep_table": wandb.Table(columns=list(SWEEP_COLUMNS),
                                                data=list(_table_rows(sweep_rows, SWEEP_COLUMNS)))})
        _log_tables_artifact(run, out, name or out.name)
        run_dir = Path(run.dir).parent
    finally:
        run.finish()
    return run_dir


EVAL_ARTIFACT_FILES = ("summary.csv", "summary.md", "per_image.csv", "sweep.csv", "models.json")


def _log_tables_artifact(run, out: Path, name: str) -> None:
    """The evaluation's tables as artifact ``eval-<name>``; metadata ``models``: label → weight digest, the
    digest a training run's model artifact carries, so runs, models and their scores can be matched."""
    models_json = out / "models.json"
    models = json.loads(models_json.read_text()) if models_json.is_file() else {}
    files = [out / f for f in EVAL_ARTIFACT_FILES if (out / f).is_file()]
    trackers.log_artifact(run, f"eval-{name}", "evaluation", files, {"models": models})


def _per_image_table(out: Path, image_rows: int):
    import wandb

    rows = _read_csv(out / "per_image.csv")
    columns = [*CSV_COLUMNS, "restored"]
    table = wandb.Table(columns=columns)
    for n, (row, values) in enumerate(zip(rows, _table_rows(rows, CSV_COLUMNS), strict=True)):
        path = out / "outputs" / _slug(row["model"]) / _slug(row["mode"]) / _Item(0, row["image"]).file_name
        table.add_data(*values, _thumbnail(path) if n < image_rows and path.is_file() else None)
    return table
