"""Evaluation runner: models × inference modes on a paired dataset, restored, scored and logged image by image.

:func:`evaluate` and :func:`sweep` plan (model, mode) pairs, restore and score every image not yet in the
results log (:class:`ResultsLog`, ``per_image.csv``), then aggregate the log into the summary rows that
:mod:`~stochdeblur.evaluate.reporting` writes. The layout of ``out_dir`` is in :mod:`stochdeblur.evaluate`.

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
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from stochdeblur.checkpointing import tensors_digest
from stochdeblur.evaluate.modes import EvaluationError, Mode, SamplerGrid, check_unique, slug
from stochdeblur.evaluate.reporting import (
    SWEEP_COLUMNS,
    Panel,
    csv_cell,
    csv_number,
    plot_sweep,
    write_csv,
    write_grid,
    write_summary,
)
from stochdeblur.io import IMAGE_EXTENSIONS, quantize, read_image, write_image
from stochdeblur.metrics import IMAGE_METRICS, MetricSuite, mean_or_none
from stochdeblur.restorer import Restorer
from stochdeblur.utils import atomic_write_text

CSV_COLUMNS = ("model", "mode", "image", "steps", "average", "sampler", "seed", "height", "width", "seconds",
               *IMAGE_METRICS)


def restore_timed(restorer: Restorer, blur: Tensor, mode: Mode, *, seed: int = 0, tile: int | None = None,
                  progress: bool = False) -> tuple[Tensor, float]:
    """Restore one image in ``mode``; returns (8-bit-quantised output, wall seconds of the restoration).

    ``tile``: as :class:`~stochdeblur.restorer.Restorer` (None: the config's, 0: never).

    Shape: blur [3,H,W] in [-1,1] → [3,H,W] in [-1,1] (float32, CPU).
    """
    out, seconds = restorer.timed(blur, **mode.options(), seed=seed, tile=tile, progress=progress)
    return quantize(out[0].cpu()), seconds


def output_path(outputs: Path, label: str, mode_label: str, image: str) -> Path:
    """Where the restored ``image`` of (model ``label``, mode ``mode_label``) is written: ``outputs/<label>/<mode>/``
    plus the image name's parts slugged (an image suffix dropped) and ``.png``."""
    path = Path(image)
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        path = path.with_suffix("")
    name = "/".join(slug(p) for p in path.parts if p not in ("", ".", "..", "/")) + ".png"
    return outputs / slug(label) / slug(mode_label) / name


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
            write_csv(self.path, CSV_COLUMNS, list(self.rows.values()))

    def __contains__(self, key: tuple[str, str, str]) -> bool:
        return key in self.rows

    def append(self, record: dict[str, Any]) -> None:
        """Write one row durably (flush + fsync) and remember it."""
        row = {c: csv_cell(record.get(c)) for c in CSV_COLUMNS}
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerow([row[c] for c in CSV_COLUMNS])
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(buffer.getvalue())
            handle.flush()
            os.fsync(handle.fileno())
        self.rows[(row["model"], row["mode"], row["image"])] = row


# ---------------------------------------------------------------------------------------------------------
# plan, run, aggregate
# ---------------------------------------------------------------------------------------------------------


@dataclass
class _Item:
    index: int
    name: str


def _select(dataset, limit: int | None) -> list[_Item]:
    count = len(dataset) if limit is None else min(limit, len(dataset))
    items = [_Item(i, dataset.item_name(i)) for i in range(count)]
    check_unique([item.name for item in items], "image name")
    return items


def _plan(models: Sequence[tuple[str, nn.Module]], modes: Sequence[Mode]) -> list[tuple[str, nn.Module, Mode]]:
    if not models or not modes:
        raise EvaluationError("evaluate needs at least one model and one mode")
    check_unique([label for label, _ in models], "model label")
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
            write_image(output_path(outputs, label, mode.label, item.name), restored)
        metrics = suite.compute_image_metrics(restored, sample["sharp"])
        log.append({"model": label, "mode": mode.label, "image": item.name, "steps": mode.steps or 0,
                    "average": mode.average, "sampler": mode.rule, "seed": seed, "height": restored.shape[-2],
                    "width": restored.shape[-1], "seconds": seconds, **metrics})
        bar.update(1)
    bar.close()


def _aggregate(log: ResultsLog, label: str, mode: Mode, items: list[_Item]) -> dict[str, Any]:
    rows = [log.rows[(label, mode.label, item.name)] for item in items if (label, mode.label, item.name) in log]
    summary: dict[str, Any] = {"model": label, "mode": mode.label, "images": len(rows), "steps": mode.steps or 0,
                               "average": mode.average, "sampler": mode.rule}
    for name in (*IMAGE_METRICS, "seconds"):
        summary[name] = mean_or_none([csv_number(row[name]) for row in rows])
    return summary


def _distribution(suite: MetricSuite, dataset, items: list[_Item], outputs: Path, label: str, mode: Mode,
                  first: bool) -> dict[str, float | None]:
    if not suite.is_available("fid"):
        return {"fid": None, "kid": None}
    for item in items:
        path = output_path(outputs, label, mode.label, item.name)
        if path.is_file():
            suite.update_distribution(read_image(path), dataset[item.index]["sharp"] if first else None)
    return suite.finalize()


def _grid_rows(dataset, items: list[_Item], plan, outputs: Path, log: ResultsLog) -> list[list[Panel]]:
    """Per image: blurry | each model × mode (its saved output, with its PSNR; black when missing) | sharp."""
    rows = []
    for item in items:
        sample = dataset[item.index]
        row = [Panel(sample["blur"], "")]
        for label, _, mode in plan:
            path = output_path(outputs, label, mode.label, item.name)
            record = log.rows.get((label, mode.label, item.name))
            note = f"{float(record['psnr']):.2f} dB" if record and record["psnr"] else ""
            row.append(Panel(read_image(path) if path.is_file() else torch.zeros_like(sample["blur"]), note))
        rows.append([*row, Panel(sample["sharp"], item.name)])
    return rows


def evaluate(models: Sequence[tuple[str, nn.Module]], dataset, modes: Sequence[Mode], out_dir: str | Path,
             limit: int | None = None, seed: int = 0, tile: int | None = None, progress: bool = True,
             grid_images: int = 4, suite: MetricSuite | None = None, precision: str = "auto") -> list[dict[str, Any]]:
    """Evaluate every model under every mode; write per_image.csv, summary.md/.csv and grid.png.

    Args:
        models: ``(label, method)`` pairs; methods follow ``methods/base.py`` (GANs run once, as "predictor").
        dataset: items ``{"blur", "sharp", "name"}`` in [-1, 1] and ``item_name(i)`` (the name without loading the
            item): ``PairedDataset``, ``PhotoPairs``, ``SyntheticPairs``.
        modes: inference settings, e.g. ``parse_modes("predictor; steps=10,average=4; steps=500")``.
        out_dir: output directory; re-running with the same arguments resumes (the same weights per label:
            other weights under a known label raise :class:`EvaluationError`).
        limit: evaluate only the first ``limit`` images.
        seed, tile: passed to ``restore`` (same seed for every image).
        precision: of :class:`~stochdeblur.restorer.Restorer` ("auto", "no", "bf16", "fp16"; see
            ``utils.pick_precision``).
        grid_images: rows of ``grid.png`` (centre crops of 192 px).
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
    titles = ["blurry", *[f"{label}\n{mode.label}" for label, _, mode in plan], "sharp"]
    write_grid(out / "grid.png", titles, _grid_rows(dataset, items[:grid_images], plan, out / "outputs", log),
               crop=192)
    return summary


def sweep(method: nn.Module, dataset, out_dir: str | Path, grid: SamplerGrid | None = None,
          limit: int | None = None, seed: int = 0, tile: int | None = None, progress: bool = True,
          label: str = "model", suite: MetricSuite | None = None, precision: str = "auto") -> list[dict[str, Any]]:
    """Perception–distortion sweep over ``grid`` (steps × average × sampler settings; default
    :class:`SamplerGrid`'s) plus the predictor alone -> sweep.csv + sweep.png.

    Per-image results go to ``sweep_per_image.csv`` (resumable like :func:`evaluate`). The plot has
    x = PSNR and y = each available perceptual measure (LPIPS, HaarPSI, gradient-energy ratio); one line per
    (sampler settings, ``average``), points labelled with their step count; the predictor is a star.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    items = _select(dataset, limit)
    modes = (grid or SamplerGrid()).modes()
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
    write_csv(out / "sweep.csv", SWEEP_COLUMNS, rows)
    plot_sweep(rows, out / "sweep.png", title=f"{label}: perception–distortion ({len(items)} images)")
    return rows
