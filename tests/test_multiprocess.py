"""Two gloo processes on the CPU through ``accelerate launch``: DDP training ends with identical weights."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from stochdeblur.checkpointing import COMPLETE_MARKER
from stochdeblur.hub import load_pretrained

ROOT = Path(__file__).resolve().parents[1]
ACCELERATE = Path(sys.executable).with_name("accelerate")


@pytest.mark.multiprocess
@pytest.mark.slow
def test_two_gloo_processes_finish_with_identical_weights(tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    cmd = [str(ACCELERATE), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", str(ROOT / "tests" / "ddp_train.py"),
           "--config", str(ROOT / "configs" / "dvsr_synthetic_tiny.yaml"), "--out", str(out),
           "train.max_steps=4", "train.checkpoint_every=2", "train.val_every=0"]
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    # torch 2.14.1+cu130 occasionally aborts (SIGABRT, "terminate called without an active exception") while
    # tearing down after training succeeded (ENVIRONMENT.md §6); scripts/train.py (which tests/ddp_train.py runs,
    # adding the weight digests) exits with os._exit to avoid it. Accept that exit status too and judge the run by
    # its artefacts, which are complete by then. (The launcher reports a child's SIGABRT as exit status 1.) The
    # hash files are written after training, checkpointing and export, so their presence proves the run finished.
    files = [out / f"rank{k}_weights.sha256" for k in range(2)]
    assert all(f.is_file() for f in files), f"exit status {proc.returncode}\n{proc.stderr[-3000:]}"
    assert proc.returncode == 0 or "SIGABRT" in proc.stderr or "Signal 6" in proc.stderr, proc.stderr[-3000:]
    hashes = [f.read_text() for f in files]
    assert hashes[0] == hashes[1], "ranks ended with different weights"
    step_dir = out / "checkpoints" / "step_4"
    assert (step_dir / COMPLETE_MARKER).is_file()
    assert {p.name for p in step_dir.glob("random_states_*.pkl")} == {"random_states_0.pkl", "random_states_1.pkl"}
    model, cfg = load_pretrained(out / "model")
    assert cfg.name == "dvsr_synthetic_tiny"
