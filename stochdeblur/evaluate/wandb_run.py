"""An evaluation directory as one W&B run (offline by default): tables, thumbnails, figures, an artifact."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from stochdeblur import trackers
from stochdeblur.evaluate.reporting import SUMMARY_COLUMNS, SWEEP_COLUMNS, csv_number, read_csv
from stochdeblur.evaluate.runner import CSV_COLUMNS, output_path

EVAL_ARTIFACT_FILES = ("summary.csv", "summary.md", "per_image.csv", "sweep.csv", "models.json")
_TEXT_COLUMNS = ("model", "mode", "image", "sampler")


def _table_rows(rows: list[dict[str, str]], columns: Sequence[str]) -> Iterator[list[Any]]:
    for row in rows:
        yield [row[c] if c in _TEXT_COLUMNS else csv_number(row[c]) for c in columns]


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
        summary = read_csv(out / "summary.csv")
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
        sweep_rows = read_csv(out / "sweep.csv")
        if sweep_rows:
            run.log({"sweep_table": wandb.Table(columns=list(SWEEP_COLUMNS),
                                                data=list(_table_rows(sweep_rows, SWEEP_COLUMNS)))})
        _log_tables_artifact(run, out, name or out.name)
        run_dir = Path(run.dir).parent
    finally:
        run.finish()
    return run_dir


def _log_tables_artifact(run, out: Path, name: str) -> None:
    """The evaluation's tables as artifact ``eval-<name>``; metadata ``models``: label → weight digest, the
    digest a training run's model artifact carries, so runs, models and their scores can be matched."""
    models_json = out / "models.json"
    models = json.loads(models_json.read_text()) if models_json.is_file() else {}
    files = [out / f for f in EVAL_ARTIFACT_FILES if (out / f).is_file()]
    trackers.log_artifact(run, f"eval-{name}", "evaluation", files, {"models": models})


def _per_image_table(out: Path, image_rows: int):
    import wandb

    rows = read_csv(out / "per_image.csv")
    columns = [*CSV_COLUMNS, "restored"]
    table = wandb.Table(columns=columns)
    for n, (row, values) in enumerate(zip(rows, _table_rows(rows, CSV_COLUMNS), strict=True)):
        path = output_path(out / "outputs", row["model"], row["mode"], row["image"])
        table.add_data(*values, _thumbnail(path) if n < image_rows and path.is_file() else None)
    return table
