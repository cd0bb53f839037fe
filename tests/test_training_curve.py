"""benchmarks/training_curve.py: the validation curve table and plot read back from a run's metrics.jsonl."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import training_curve  # noqa: E402


def test_curve_rows_table_and_plot(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    lines = [{"step": 1, "train/loss": 0.9, "images_per_s": 4.0}, {"step": 2, "train/loss": 0.7, "images_per_s": 6.0},
             {"step": 2, "val/psnr": 18.5, "val/psnr_init": 21.5, "val/psnr_blur": 21.4, "val/ssim": 0.2},
             {"step": 3, "train/loss": 0.5, "images_per_s": 5.0}, {"step": 4, "val/psnr": 19.0}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    assert training_curve.main([str(run), "--out", str(tmp_path / "curve")]) == 0
    rows = training_curve.read_rows(run)
    assert [r["step"] for r in rows] == [2, 4]
    assert rows[0]["train_loss"] == pytest.approx(0.8) and rows[1]["images_per_s"] == pytest.approx(5.0)
    table = (tmp_path / "curve.md").read_text()
    assert "| 2 | 18.50 | 21.50 | 21.40 | 0.200 | – | 0.800 | 5.0 |" in table
    assert (tmp_path / "curve.png").stat().st_size > 1000
