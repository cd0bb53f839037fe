"""Experiment trackers for training: W&B (offline by default), TensorBoard or none, and reading W&B back.

An offline W&B run is ``<dir>/wandb/offline-run-<time>-<id>/run-<id>.wandb``: a LevelDB-style log (7-byte
header ``:W&B``, 0xBEE1, 0; 32 KiB blocks; records with a ``<IHB>`` crc/length/type header, split across
blocks as FIRST/MIDDLE/LAST) of ``wandb_internal_pb2.Record`` protobufs. :func:`wandb_records` parses it with
wandb's own ``Record`` class; :func:`read_wandb_run` and :func:`read_wandb_artifacts` (what ``scripts/report.py``
reads) give a run's identity and its artifacts (their manifests) without a W&B server.
"""

from __future__ import annotations

import json
import os
import re
import struct
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from accelerate import Accelerator
from accelerate.utils import is_tensorboard_available

from stochdeblur.config import ConfigError, LogConfig

_MAGIC = b":W&B"
_HEADER_SIZE = 7
_BLOCK = 32 * 1024
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def configure(cfg: LogConfig, out_dir: str | Path) -> str | None:
    """Accelerate's ``log_with`` for ``cfg.tracker``; W&B: WANDB_MODE from config unless set, WANDB_DIR=out_dir."""
    if cfg.tracker == "none":
        return None
    if cfg.tracker == "tensorboard" and not is_tensorboard_available():
        raise ConfigError("log.tracker=tensorboard needs the tensorboard package (pip install tensorboard)")
    if cfg.tracker == "wandb":
        os.environ.setdefault("WANDB_MODE", cfg.wandb_mode)
        os.environ["WANDB_DIR"] = str(out_dir)
    return cfg.tracker


def flat_config(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config dict → ``{"train.lr": 1e-4, ...}`` with lists as strings (TensorBoard hparams need scalars)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flat_config(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = str(value) if isinstance(value, list) else value
    return out


def log_image(accelerator: Accelerator, tracker: str, key: str, image: np.ndarray, step: int) -> None:
    """Log one [H, W, 3] uint8 image to the active tracker (no-op for ``"none"``)."""
    if tracker == "wandb":
        accelerator.get_tracker("wandb").log_images({key: [image]}, step=step)
    elif tracker == "tensorboard":
        accelerator.get_tracker("tensorboard").log_images({key: image[None]}, step=step, dataformats="NHWC")


def wandb_run_files(directory: str | Path) -> list[Path]:
    """Every ``run-*.wandb`` file under ``directory`` (e.g. a training run's out_dir), oldest run first."""
    return sorted(Path(directory).glob("wandb/*run-*/run-*.wandb"))


def _payloads(data: bytes, source: str) -> Iterator[bytes]:
    """Reassembled record payloads of a LevelDB-style log."""
    if data[:4] != _MAGIC:
        raise ValueError(f"{source}: not a W&B run file (missing ':W&B' header)")
    pos, chunks = _HEADER_SIZE, []
    while pos + _HEADER_SIZE <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < _HEADER_SIZE:  # a block's tail too short for a header is zero padding
            pos += left
            continue
        _crc, length, kind = struct.unpack_from("<IHB", data, pos)
        payload = data[pos + _HEADER_SIZE: pos + _HEADER_SIZE + length]
        pos += _HEADER_SIZE + length
        if kind == _FULL:
            yield payload
        elif kind == _FIRST:
            chunks = [payload]
        elif kind == _MIDDLE:
            chunks.append(payload)
        elif kind == _LAST:
            yield b"".join([*chunks, payload])


def wandb_records(path: str | Path, kind: str) -> Iterator[Any]:
    """The ``Record`` protobufs of one type (``history``, ``run``, ``artifact``, ...) in a ``run-*.wandb``."""
    from wandb.proto.wandb_internal_pb2 import Record

    path = Path(path)
    for payload in _payloads(path.read_bytes(), str(path)):
        record = Record()
        record.ParseFromString(payload)
        if record.WhichOneof("record_type") == kind:
            yield getattr(record, kind)


def read_wandb_run(path: str | Path) -> dict[str, str]:
    """The run of a ``run-*.wandb`` file: its ``id``, ``project``, ``entity``, ``name`` and ``job_type``."""
    run = next(wandb_records(path, "run"), None)
    if run is None:
        raise ValueError(f"{path}: no run record")
    return {"id": run.run_id, "project": run.project, "entity": run.entity, "name": run.display_name,
            "job_type": run.job_type}


def read_wandb_artifacts(path: str | Path) -> list[dict[str, Any]]:
    """The artifacts a run logged (from its ``run-*.wandb`` file): name, type, digest, aliases, metadata and
    the manifest's files (path, size, digest): what ``wandb sync`` would upload."""
    return [{"name": a.name, "type": a.type, "digest": a.digest, "aliases": list(a.aliases),
             "metadata": json.loads(a.metadata) if a.metadata else {},
             "files": [{"path": f.path, "size": f.size, "digest": f.digest} for f in a.manifest.contents]}
            for a in wandb_records(path, "artifact")]


def artifact_name(text: str) -> str:
    """``text`` as a W&B artifact name (letters, digits, ``-``, ``_`` and ``.`` only)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "unnamed"


def log_artifact(run: Any, name: str, kind: str, files: Iterable[Path], metadata: dict[str, Any],
                 aliases: Sequence[str] = ()) -> None:
    """Log ``files`` (copied into W&B's staging area, so later rewrites cannot change it) as one artifact.

    Offline, the artifact and its manifest are recorded in the run file and uploaded by ``wandb sync``.
    """
    import wandb

    artifact = wandb.Artifact(artifact_name(name), type=kind, metadata=metadata)
    for path in files:
        artifact.add_file(str(path), name=path.name)
    run.log_artifact(artifact, aliases=list(aliases))
