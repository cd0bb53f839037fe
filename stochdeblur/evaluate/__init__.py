"""Evaluation: models × inference modes on a paired dataset -> CSV, Markdown table, crops, sweep, W&B.

Everything lands in one output directory::

    per_image.csv      one row per (model, mode, image); appended with flush + fsync after every image
    summary.md/.csv    one row per model × mode: PSNR, SSIM, LPIPS, FID, KID, weight-free proxies, s/image
    grid.png           centre crops: blurry | every model × mode | sharp, for the first few images
    outputs/           restored images (8-bit PNG), read back for FID/KID and the grid
    models.json        each label's weight digest (a resume over other weights is refused)
    sweep.csv/.png     perception–distortion sweep over (steps, average) (:func:`sweep`)
    wandb/             the same results as an offline W&B run (:func:`write_wandb_run`)

Modules, one job each: :mod:`~stochdeblur.evaluate.modes` (``Mode``, the ``--modes`` syntax),
:mod:`~stochdeblur.evaluate.runner` (plan, restore + score, the results log, aggregate),
:mod:`~stochdeblur.evaluate.reporting` (CSV, summary.md, comparison grids, the sweep plot) and
:mod:`~stochdeblur.evaluate.wandb_run` (the W&B run). The names below are the public API.
"""

from stochdeblur.evaluate.modes import EvaluationError, Mode, demo_modes, parse_mode, parse_modes
from stochdeblur.evaluate.reporting import TABLE_COLUMNS, Panel, markdown_table, write_grid
from stochdeblur.evaluate.runner import CSV_COLUMNS, ResultsLog, evaluate, restore_timed, sweep
from stochdeblur.evaluate.wandb_run import write_wandb_run

__all__ = ["CSV_COLUMNS", "TABLE_COLUMNS", "EvaluationError", "Mode", "Panel", "ResultsLog", "demo_modes",
           "evaluate", "markdown_table", "parse_mode", "parse_modes", "restore_timed", "sweep", "write_grid",
           "write_wandb_run"]
