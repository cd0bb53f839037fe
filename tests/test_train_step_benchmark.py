"""benchmarks/train_step.py: times both layouts of a config and writes the table it reports."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import train_step  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def test_times_nchw_and_nhwc_and_writes_results(tmp_path: Path) -> None:
    out = tmp_path / "train_step"
    assert train_step.main(["--config", str(ROOT / "configs/dvsr_tiny.yaml"), "--steps", "1", "--out", str(out)]) == 0
    rows = json.loads(out.with_suffix(".json").read_text())["rows"]
    assert [r["channels_last"] for r in rows[:2]] == [False, True] and rows[0]["precision"] == "fp32"
    assert all(r["seconds"] > 0 and r["images_per_s"] > 0 for r in rows)
    table = out.with_suffix(".md").read_text()
    assert "| NCHW | fp32 |" in table and "| NHWC (channels_last) | fp32 |" in table and "1.00×" in table
