"""`make gpu-check`: what only a CUDA machine can check, in under 8 minutes; one line and exit 0 elsewhere.

    python scripts/gpu_check.py [--out runs/gpu_check]

1. ``tests``: the ``gpu``-marked tests (the ``cuda`` case of the ``device`` fixture), ``pytest -m gpu``.
2. ``training``: ``configs/dvsr_gopro.yaml`` (paper widths, batch 16 of 128²) on synthetic pairs in bf16 for
   two minutes of training, stopped (SIGTERM) and then resumed from its last checkpoint for a few steps, so
   checkpointing, exact resume, validation (10 steps × 4 samples) and export all run on the GPU.
3. ``sampler``: the DvSR sampler's cost on the GPU at paper widths (g 64, f 32): the predictor, averaging
   (10 steps × 4) and perceptual (500 steps) at 256² and at 1280×720 in 512² tiles, bf16 and fp32, the
   modes of ``benchmarks/sampler.py`` (which times the CPU).

Each stage has a time cap and the whole stays under :data:`BUDGET_S`. Writes ``OUT/summary.json`` (stages, the
sampler table) and ``OUT/sampler.md``; exit 0 when every stage passed, 1 otherwise (the failures named).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from stochdeblur.checkpointing import latest_checkpoint
from stochdeblur.config import load_config
from stochdeblur.methods.dvsr import DvSR
from stochdeblur.utils import atomic_write_text, autocast, inference_layout

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "dvsr_gopro.yaml"
BUDGET_S = 450  # all stages together (`make gpu-check` must end within 8 minutes, imports and start-up included)
TESTS_S, TRAINING_S, SAMPLER_S = 100, 230, 70  # caps of the stages; the sampler gets what is left, at least this
TRAIN_S, STARTUP_S = 120, 60  # seconds of training, and the allowance for the run to reach its first step
RESUME_STEPS, RESUME_S = 20, 50  # the resumed run: steps, and the time kept for it (start-up, validation, export)
SAMPLER_SIZES = {"256²": (256, 256), "1280×720": (720, 1280)}
SAMPLER_MODES = {"predictor": (0, 1), "average 10×4": (10, 4), "perceptual 500": (500, 1)}
_OFFLINE = {"HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}


@dataclasses.dataclass
class Stage:
    """The outcome of one check: passed or not, how long it took and what it found."""

    name: str
    ok: bool
    seconds: float
    detail: str

    def __str__(self) -> str:
        return f"{self.name} {'ok' if self.ok else 'FAILED'} ({self.seconds:.0f} s): {self.detail}"


def train_overrides(max_steps: int) -> list[str]:
    """``dvsr_gopro.yaml`` made runnable anywhere: synthetic pairs, bf16, frequent checkpoints, no tracker."""
    return ["data.kind=synthetic", "data.num_workers=12", "train.mixed_precision=bf16",
            f"train.max_steps={max_steps}", "train.checkpoint_every=100", "train.keep_last=1", "train.val_every=0",
            "train.log_every=10", "log.tracker=none"]


def _env() -> dict[str, str]:
    return {**os.environ, **_OFFLINE}


def run_tests(budget: float) -> Stage:
    """``pytest -m gpu`` (quiet), within ``budget`` seconds."""
    started = time.monotonic()
    cmd = [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider"]
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=budget)
    except subprocess.TimeoutExpired:
        return Stage("tests", False, time.monotonic() - started, f"pytest -m gpu ran past {budget:.0f} s")
    lines = proc.stdout.strip().splitlines()
    tail = lines[-1] if lines else proc.stderr.strip()[-300:]
    return Stage("tests", proc.returncode == 0, time.monotonic() - started, tail)


def _train_rows(run: Path) -> list[dict[str, Any]]:
    try:
        text = (run / "metrics.jsonl").read_text()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines() if line.endswith("}")]


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the training process and its data workers, SIGKILL if they are still there after 30 s."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def run_training(out: Path, budget: float, train_seconds: float = TRAIN_S, config: Path = CONFIG,
                 extra: tuple[str, ...] = ()) -> Stage:
    """Train ``config`` for ``train_seconds`` after its first logged step, stop it, resume the last checkpoint
    for :data:`RESUME_STEPS` steps to the end (validation, export); all within ``budget`` seconds. ``extra``:
    overrides after :func:`train_overrides` (the tests shrink the run with them)."""
    started = time.monotonic()
    run = out / "train"
    script = [sys.executable, str(ROOT / "scripts" / "train.py"), "--config", str(config), "--out", str(run)]
    with open(out / "train.log", "w") as log:
        proc = subprocess.Popen([*script, *train_overrides(10**6), *extra], cwd=ROOT, env=_env(), stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        first = None
        while proc.poll() is None and time.monotonic() - started < min(train_seconds + STARTUP_S, budget - RESUME_S):
            if first is None and _train_rows(run):
                first = time.monotonic()
            if first is not None and time.monotonic() - first >= train_seconds:
                break
            time.sleep(1)
        crashed = proc.poll() is not None
        _stop(proc)
    rows = [r for r in _train_rows(run) if "train/loss" in r]
    if crashed or not rows:
        return Stage("training", False, time.monotonic() - started, f"no training steps logged{_tail(out)}")
    trained = time.monotonic() - (first or started)
    checkpoint = latest_checkpoint(run / "checkpoints")
    if checkpoint is None:
        return Stage("training", False, time.monotonic() - started,
                     f"{rows[-1]['step']} steps in {trained:.0f} s but no complete checkpoint{_tail(out)}")
    step = int(checkpoint.name.split("_")[1])
    remaining = budget - (time.monotonic() - started)
    with open(out / "resume.log", "w") as log:
        try:
            resumed = subprocess.run([*script, "--resume", "latest", *train_overrides(step + RESUME_STEPS), *extra],
                                     cwd=ROOT, env=_env(), stdout=log, stderr=subprocess.STDOUT,
                                     timeout=max(remaining, 1))
        except subprocess.TimeoutExpired:
            return Stage("training", False, time.monotonic() - started, f"the resume ran past {remaining:.0f} s")
    losses = [r["train/loss"] for r in _train_rows(run) if "train/loss" in r]
    validated = [r for r in _train_rows(run) if "val/psnr" in r]
    ok = resumed.returncode == 0 and bool(validated) and all(math.isfinite(v) for v in losses)
    speed = next((r["images_per_s"] for r in reversed(rows) if "images_per_s" in r), float("nan"))
    detail = (f"{rows[-1]['step']} steps in {trained:.0f} s ({speed:.0f} images/s), stopped; resumed at step {step} "
              f"to {step + RESUME_STEPS}: rc {resumed.returncode}, loss {losses[0]:.4f} -> {losses[-1]:.4f}, "
              + (f"val/psnr {validated[-1]['val/psnr']:.2f} dB" if validated else "no validation")
              + ("" if ok else _tail(out, "resume.log")))
    return Stage("training", ok, time.monotonic() - started, detail)


def _tail(out: Path, name: str = "train.log") -> str:
    try:
        lines = (out / name).read_text(errors="replace").strip().splitlines()
    except FileNotFoundError:
        return ""
    return f"; {name}: {lines[-1]}" if lines else ""


def _synced(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_sampler(device: torch.device, deadline: float, widths: tuple[int, int] = (64, 32),
                 sizes: dict[str, tuple[int, int]] = SAMPLER_SIZES, modes: dict[str, tuple[int, int]] = SAMPLER_MODES,
                 tile: int = 512) -> list[dict[str, Any]]:
    """Seconds per image of each (size, mode, precision) on ``device``, random weights, batch 1, after a warm-up
    call per size and precision; cases left when ``time.monotonic()`` passes ``deadline`` are marked skipped."""
    cfg = load_config(overrides=[f"predictor.base_channels={widths[0]}", f"denoiser.base_channels={widths[1]}"])
    torch.manual_seed(0)
    rows = []
    for precision in ("bf16", "no"):
        model = inference_layout(DvSR.from_config(cfg).eval().to(device), precision)
        for size, (height, width) in sizes.items():
            blur = inference_layout(torch.rand(1, 3, height, width, device=device) * 2 - 1, precision)
            tiles = tile if max(height, width) > tile else None
            warm = False
            for mode, (steps, average) in modes.items():
                row = {"size": size, "mode": mode, "precision": precision, "tile": tiles}
                if time.monotonic() > deadline:
                    rows.append({**row, "seconds": None})
                    continue
                with torch.no_grad(), autocast(device, precision):
                    if not warm:
                        model.restore(blur, steps=1, average=average, tile=tiles)
                        warm = True
                    _synced(device)
                    start = time.perf_counter()
                    out = model.restore(blur, steps=steps, average=average, tile=tiles)
                    _synced(device)
                rows.append({**row, "seconds": time.perf_counter() - start,
                             "finite": bool(torch.isfinite(out).all())})
        del model
    return rows


def sampler_table(rows: list[dict[str, Any]], device_name: str) -> str:
    """The sampler rows as Markdown."""
    lines = [f"DvSR sampler on {device_name}, widths g=64 f=32, random weights, batch 1, torch {torch.__version__}.",
             "", "| size | mode | precision | s / image |", "|---|---|---|---:|"]
    for r in rows:
        size = r["size"] + (f", {r['tile']}² tiles" if r["tile"] else "")
        precision = "bf16 autocast + channels_last" if r["precision"] == "bf16" else "fp32"
        seconds = "skipped (time budget)" if r["seconds"] is None else f"{r['seconds']:.3f}"
        lines.append(f"| {size} | {r['mode']} | {precision} | {seconds} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the three checks on the CUDA device; returns 0 when all pass (or there is no CUDA device), else 1."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "gpu_check", help="output folder (replaced)")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu-check: no CUDA device on this machine (torch.cuda.is_available() is False); nothing to check")
        return 0
    deadline = time.monotonic() + BUDGET_S
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    stages = [run_tests(min(TESTS_S, deadline - time.monotonic() - TRAINING_S - SAMPLER_S))]
    print(f"gpu-check: {stages[-1]}", flush=True)
    stages.append(run_training(args.out, min(TRAINING_S, deadline - time.monotonic() - SAMPLER_S)))
    print(f"gpu-check: {stages[-1]}", flush=True)
    started, device = time.monotonic(), torch.device("cuda")
    rows = time_sampler(device, deadline)
    timed = [r for r in rows if r["seconds"] is not None]
    ok = bool(timed) and all(r["finite"] for r in timed)
    stages.append(Stage("sampler", ok, time.monotonic() - started,
                        f"{len(timed)} of {len(rows)} cases timed, outputs finite: {ok}"))
    print(f"gpu-check: {stages[-1]}", flush=True)
    table = sampler_table(rows, torch.cuda.get_device_name(device))
    print(table)
    atomic_write_text(args.out / "sampler.md", table)
    atomic_write_text(args.out / "summary.json", json.dumps(
        {"stages": [dataclasses.asdict(s) for s in stages], "sampler": rows}, indent=2) + "\n")
    failed = [s.name for s in stages if not s.ok]
    print(f"gpu-check: {'FAILED: ' + ', '.join(failed) if failed else 'all passed'} in "
          f"{BUDGET_S - (deadline - time.monotonic()):.0f} s; details in {args.out}")
    return 1 if failed else 0
