"""Test-only helpers: training a config in-process, reading an offline W&B run's logged history back."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from stochdeblur.config import RunConfig
from stochdeblur.trackers import wandb_records
from stochdeblur.training import Trainer, initial_method


def train(cfg: RunConfig, out: Path, resume: str | None = None) -> dict[str, float]:
    """What ``scripts/train.py`` does: train ``initial_method(cfg)`` into ``out`` (resuming from ``resume``)."""
    return Trainer(cfg, initial_method(cfg), out).fit(resume=resume)


def read_wandb_history(path: str | Path, timeout: float = 20.0) -> list[dict[str, Any]]:
    """The ``history`` rows (one dict per ``wandb.log`` call, with ``_step``) of a ``run-*.wandb`` file.

    W&B's service process may still be writing the file when ``finish()`` has returned (seen in 2 full-suite runs
    of this session: no history records yet), so an empty read is retried until ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        rows = [{item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in history.item}
                for history in wandb_records(path, "history")]
        if rows or time.monotonic() > deadline:
            return rows
        time.sleep(0.5)
