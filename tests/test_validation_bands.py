"""benchmarks/validation_bands.py: two validation results compared pair by pair within bands."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import validation_bands  # noqa: E402


def _write(path: Path, blurry: list[float], predictor: list[float], average: list[float]) -> Path:
    path.write_text(json.dumps({"psnr_per_pair": {"blurry": blurry, "predictor": predictor, "average": average}}))
    return path


def test_bands_split_the_paired_difference_by_blur_and_by_the_classical_gain(tmp_path: Path) -> None:
    blurry = [20.0, 22.0, 31.0, 36.0]
    new = _write(tmp_path / "new.json", blurry, [21.0, 23.5, 30.0, 34.0], [21.0, 23.0, 30.5, 35.0])
    old = _write(tmp_path / "old.json", blurry, [20.5, 22.5, 30.5, 35.0], [20.5, 22.5, 30.0, 35.5])
    classical = _write(tmp_path / "classical.json", blurry, [23.0, 21.0, 32.0, 30.0], [23.0, 21.0, 32.0, 30.0])
    assert validation_bands.main([str(new), str(old), "--classical", str(classical), "--blurry-edges", "30",
                                  "--out", str(tmp_path)]) == 0
    tables = json.loads((tmp_path / "validation_bands.json").read_text())["tables"]
    low, high = tables["blurry PSNR"]
    assert (low["pairs"], high["pairs"]) == (2, 2)
    assert low["predictor"]["mean_diff"] == pytest.approx(0.75) and low["predictor"]["wins"] == 2
    assert low["predictor"]["std_error"] == pytest.approx(0.25)  # diffs 0.5, 1.0
    assert high["average"]["mean_diff"] == pytest.approx(0.0) and high["average"]["wins"] == 1
    worse, better = tables["classical gain over blurry"]  # gains +3, −1, +1, −6 against edge 0
    assert (worse["pairs"], better["pairs"]) == (2, 2)
    assert worse["predictor"]["mean_diff"] == pytest.approx(0.0)  # diffs +1.0, −1.0
    assert better["predictor"]["mean_diff"] == pytest.approx(0.0)  # diffs +0.5, −0.5
    assert "| < 30 | 2 | +0.750 (0.250), 2 |" in (tmp_path / "validation_bands.md").read_text()


def test_results_of_other_pairs_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    new = _write(tmp_path / "new.json", [20.0, 22.0], [21.0, 23.0], [21.0, 23.0])
    other = _write(tmp_path / "other.json", [20.0, 25.0], [21.0, 23.0], [21.0, 23.0])
    assert validation_bands.main([str(new), str(other), "--out", str(tmp_path)]) == 2
    assert "other pairs" in capsys.readouterr().err and not (tmp_path / "validation_bands.json").exists()
    (tmp_path / "old.json").write_text("{}")
    assert validation_bands.main([str(new), str(tmp_path / "old.json"), "--out", str(tmp_path)]) == 2
