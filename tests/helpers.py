"""Test-only helpers: training a config in-process, reading an offline W&B run's logged history back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from stochdeblur.config import RunConfig
from stochdeblur.trackers import wandb_records
from stochdeblur.training import Trainer, initial_method


def train(cfg: RunConfig, out: Path, resume: str | None = None) -> dict[str, float]:
    """What ``scripts/train.py`` does: train ``initial_method(cfg)`` into ``out`` (resuming from ``resume``)."""
    return Trainer(cfg, initial_method(cfg), out).fit(resume=resume)


def read_wandb_history(path: str | Path) -> list[dict[str, Any]]:
    """The ``history`` rows (one dict per ``wandb.log`` call, with ``_step``) of a ``run-*.wandb`` file."""
    return [{item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in history.item}
            for history in wandb_records(path, "history")]
