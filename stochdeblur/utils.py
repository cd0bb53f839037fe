"""Small shared helpers: atomic file writes and run-time precision choice."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import torch

ModuleOrTensor = TypeVar("ModuleOrTensor", torch.nn.Module, torch.Tensor)


def _umask_mode(base: int) -> int:
    """``base`` (0o666 for files, 0o777 for folders) minus the process umask: what ``open`` would give."""
    umask = os.umask(0)
    os.umask(umask)
    return base & ~umask


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    Readers never see a half-written file: a crash leaves at most a ``*.tmp`` file behind. The file gets the
    permissions a plain ``open`` would give (``mkstemp`` alone makes it private, 0600).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, _umask_mode(0o666))
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temp file + rename)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_report(stem: str | Path, data: Any, text: str) -> None:
    """A benchmark's results: ``stem.json`` (``data``) and ``stem.md`` (``text``), both atomic; prints ``text``."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(stem.parent / f"{stem.name}.json", json.dumps(data, indent=2) + "\n")
    atomic_write_text(stem.parent / f"{stem.name}.md", text)
    print(text)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file + rename)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary directory beside ``path``; rename it onto ``path`` when the block succeeds.

    An existing ``path`` is replaced. A crash leaves only a hidden ``.<name>.tmp-*`` directory, which
    readers (e.g. ``--resume latest``) ignore.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, _umask_mode(0o777))
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def cpu_has_fast_bf16() -> bool:
    """True where bf16 matmuls are native on this CPU (AVX-512 with AMX/BF16), false on AVX2-only CPUs.

    On AVX2-only machines bf16 autocast is 10-20x *slower* than fp32 (measured, ENVIRONMENT.md §8).
    """
    capability = torch.backends.cpu.get_cpu_capability()
    if "AVX512" not in capability:
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def pick_precision(device: torch.device | str, requested: str = "auto") -> str:
    """Resolve ``"auto"`` to ``"bf16"`` or ``"no"`` for the device; explicit choices pass through.

    CUDA: bf16 where supported. CPU: bf16 only where it is native (:func:`cpu_has_fast_bf16`).
    """
    if requested != "auto":
        return requested
    device = torch.device(device)
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_has_fast_bf16() else "no"


def autocast(device: torch.device | str, precision: str) -> contextlib.AbstractContextManager:
    """An autocast context for ``precision`` ("bf16", "fp16" or "no") on ``device``."""
    device = torch.device(device)
    if precision == "no":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def inference_layout(obj: ModuleOrTensor, precision: str) -> ModuleOrTensor:
    """NHWC (channels_last) under bf16, the fast layout for oneDNN and tensor cores; unchanged otherwise.

    ``obj``: a model or a 4-D image batch, so a model and its inputs get the same layout from one rule.
    """
    if precision != "bf16":
        return obj
    if isinstance(obj, torch.nn.Module):
        return obj.to(memory_format=torch.channels_last)
    return obj.contiguous(memory_format=torch.channels_last)


def describe_cpu() -> str:
    """CPU model name and torch's capability string, for every reported timing."""
    name = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name} ({torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads)"
