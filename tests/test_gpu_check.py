"""`make gpu-check` (stochdeblur/cli/gpu_check.py): one line without CUDA, and its stages run on a CPU at toy size."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch

from stochdeblur.cli import gpu_check
from stochdeblur.config import load_config
from stochdeblur.methods import build_method

ROOT = Path(__file__).resolve().parents[1]


def test_without_cuda_it_says_so_in_one_line_and_passes(monkeypatch, capsys, tmp_path) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main(["--out", str(tmp_path / "out")]) == 0
    (line,) = capsys.readouterr().out.strip().splitlines()
    assert line.startswith("gpu-check: no CUDA device") and not (tmp_path / "out").exists()


def test_the_training_stage_is_dvsr_gopro_on_synthetic_data_in_bf16() -> None:
    cfg = load_config(gpu_check.CONFIG, gpu_check.train_overrides(500))
    assert (cfg.name, cfg.data.kind, cfg.train.mixed_precision, cfg.train.max_steps) == ("dvsr_gopro", "synthetic",
                                                                                          "bf16", 500)
    assert (cfg.predictor.base_channels, cfg.denoiser.base_channels, cfg.data.batch_size) == (64, 32, 16)
    with torch.device("meta"):
        assert build_method(cfg).samples


def test_sampler_timings_and_their_table_at_toy_size() -> None:
    modes = {"predictor": (0, 1), "average 2×2": (2, 2)}
    sizes = {"48²": (48, 48), "72×80": (72, 80)}
    rows = gpu_check.time_sampler(torch.device("cpu"), time.monotonic() + 600, (8, 8), sizes, modes, tile=64)
    assert len(rows) == 2 * 2 * 2 and all(r["finite"] and r["seconds"] > 0 for r in rows)
    assert [r["tile"] for r in rows[:4]] == [None, None, 64, 64]
    skipped = gpu_check.time_sampler(torch.device("cpu"), time.monotonic() - 1, (8, 8), sizes, modes)
    assert all(r["seconds"] is None for r in skipped)
    table = gpu_check.sampler_table(rows + skipped[:1], "a CPU")
    assert "| 72×80, 64² tiles | average 2×2 | fp32 |" in table and "skipped (time budget)" in table


@pytest.mark.slow
def test_the_training_stage_stops_a_run_then_resumes_its_last_checkpoint(tmp_path: Path) -> None:
    shrink = ("data.num_workers=0", "train.mixed_precision=no", "train.checkpoint_every=2", "train.log_every=1")
    stage = gpu_check.run_training(tmp_path, budget=200, train_seconds=3, config=ROOT / "configs" / "dvsr_tiny.yaml",
                                   extra=shrink)
    assert stage.ok, stage.detail
    assert "stopped; resumed at step" in stage.detail and "val/psnr" in stage.detail
    rows = [json.loads(line) for line in (tmp_path / "train" / "metrics.jsonl").read_text().splitlines()]
    last = max(r["step"] for r in rows)
    assert any("val/psnr" in r for r in rows) and (tmp_path / "train" / "model" / "model.safetensors").is_file()
    assert "resumed from" in (tmp_path / "resume.log").read_text() and last % 2 == 0
