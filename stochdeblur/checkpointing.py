"""Run-directory conventions for training checkpoints: completeness marker, latest, pruning, resume.

A checkpoint is ``<run>/checkpoints/step_<N>/`` holding Accelerate's ``save_state`` files plus
``config.yaml``, ``trainer_state.json`` and a ``COMPLETE`` marker. It is assembled in a hidden
``.step_<N>.tmp`` directory and renamed into place after the marker is written, so a crash leaves either
a complete checkpoint or a temp dir that :func:`latest_checkpoint` never picks.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path

from torch import Tensor

from stochdeblur.utils import atomic_write_text

COMPLETE_MARKER = "COMPLETE"
_STEP_DIR = re.compile(r"^step_(\d+)$")


class ResumeError(ValueError):
    """``--resume`` names no usable (complete) checkpoint."""


class TrainState:
    """The optimizer-step counter, saved in every checkpoint (data position and noise derive from it)."""

    def __init__(self) -> None:
        self.step = 0

    def state_dict(self) -> dict[str, int]:
        """``{"step": N}``."""
        return {"step": self.step}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Restore the step counter."""
        self.step = int(state["step"])


def complete_checkpoints(checkpoint_dir: str | Path) -> list[Path]:
    """Complete ``step_<N>`` directories, oldest first; temp dirs and dirs without the marker are skipped."""
    checkpoint_dir = Path(checkpoint_dir)
    if not checkpoint_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in checkpoint_dir.iterdir()
             if (m := _STEP_DIR.match(p.name)) and (p / COMPLETE_MARKER).is_file()]
    return [p for _, p in sorted(found)]


def latest_checkpoint(checkpoint_dir: str | Path) -> Path | None:
    """The complete checkpoint with the largest step, or None."""
    done = complete_checkpoints(checkpoint_dir)
    return done[-1] if done else None


def resolve_resume(resume: str | None, checkpoint_dir: Path) -> Path | None:
    """``None`` → fresh start; ``"latest"`` → newest complete checkpoint (fresh when none); else a path.

    Raises:
        ResumeError: an explicit path that is not a complete checkpoint.
    """
    if resume is None:
        return None
    if resume == "latest":
        return latest_checkpoint(checkpoint_dir)
    path = Path(resume)
    if not (path / COMPLETE_MARKER).is_file():
        raise ResumeError(f"--resume {path}: not a complete checkpoint directory (no {COMPLETE_MARKER} marker)")
    return path


def publish(tmp: Path, final: Path, step: int, config_yaml: str, world_size: int) -> Path:
    """Add config, trainer state and the marker to ``tmp``, then rename it to ``final`` (replacing it)."""
    (tmp / "config.yaml").write_text(config_yaml)
    (tmp / "trainer_state.json").write_text(json.dumps({"step": step, "world_size": world_size}))
    (tmp / COMPLETE_MARKER).write_text(f"step {step}\n")
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final


def prune(checkpoint_dir: Path, keep_last: int) -> None:
    """Keep the newest ``keep_last`` (at least 1) complete checkpoints; remove temp dirs of crashed saves."""
    for stale in checkpoint_dir.glob(".step_*.tmp"):
        shutil.rmtree(stale, ignore_errors=True)
    done = complete_checkpoints(checkpoint_dir)
    for path in done[: max(0, len(done) - max(1, keep_last))]:
        shutil.rmtree(path, ignore_errors=True)


def _step_of(line: str) -> float:
    """The ``step`` of a metrics.jsonl line; +inf for a line that is not valid JSON (cut short by a crash)."""
    try:
        return json.loads(line)["step"]
    except (json.JSONDecodeError, KeyError, TypeError):
        return math.inf


def truncate_metrics(path: Path, step: int) -> None:
    """Drop lines of a metrics.jsonl after ``step`` (and broken lines), so a resumed curve has no duplicates."""
    if path.is_file():
        keep = [line for line in path.read_text().splitlines() if _step_of(line) <= step]
        atomic_write_text(path, "".join(f"{line}\n" for line in keep))


def tensors_digest(named: Iterable[tuple[str, Tensor]]) -> str:
    """sha256 over (name, float32 bytes) of tensors sorted by name: equal digests mean equal weights."""
    h = hashlib.sha256()
    for name, tensor in sorted(named, key=lambda item: item[0]):
        h.update(name.encode())
        h.update(tensor.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()
