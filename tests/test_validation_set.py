"""benchmarks/validation_set.py: a model scored on a training config's validation set, as the trainer scores it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from stochdeblur import metrics
from stochdeblur.config import load_config
from stochdeblur.data import build_dataset
from stochdeblur.hub import save_pretrained
from stochdeblur.methods import build_method

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import validation_set  # noqa: E402

OVERRIDES = ["data.val_images=2", "data.val_crop_size=32", "data.batch_size=2"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    cfg = load_config(ROOT / "configs/dvsr_tiny.yaml")
    return save_pretrained(build_method(cfg), tmp_path_factory.mktemp("tiny") / "model", cfg)


def test_scores_the_trainer_s_validation_pairs(checkpoint: Path, tmp_path: Path) -> None:
    config = ROOT / "configs/dvsr_tiny.yaml"
    assert validation_set.main(["--checkpoint", str(checkpoint), "--config", str(config), "--set", *OVERRIDES,
                                "--precision", "no", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "validation_set.json").read_text())
    val = build_dataset(load_config(config, OVERRIDES).data, "val", 0)
    blurry = sum(metrics.psnr(val[i]["blur"], val[i]["sharp"]) for i in range(len(val))) / len(val)
    assert result["images"] == 2 and result["scores"]["blurry"]["psnr"] == pytest.approx(blurry)
    assert set(result["scores"]) == {"blurry", "predictor", "average"}
    for mode, values in result["psnr_per_pair"].items():
        assert len(values) == 2 and sum(values) / 2 == pytest.approx(result["scores"][mode]["psnr"])
    assert "| average |" in (tmp_path / "validation_set.md").read_text()


def test_a_missing_model_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = validation_set.main(["--checkpoint", str(tmp_path / "none"), "--config", str(ROOT / "configs/dvsr_tiny.yaml"),
                                "--out", str(tmp_path)])
    assert code == 2 and "error:" in capsys.readouterr().err


def test_baseline_gives_the_paired_difference_and_refuses_other_pairs(
        checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Against a baseline whose predictor is 0.5 dB lower on one pair and 0.1 dB higher on the other, the mean
    difference is +0.2 dB, standard error 0.3, 1 of 2 ahead; a baseline of other pairs is refused with the scores
    still written."""
    config = str(ROOT / "configs/dvsr_tiny.yaml")
    common = ["--checkpoint", str(checkpoint), "--config", config, "--set", *OVERRIDES, "--precision", "no"]
    assert validation_set.main([*common, "--out", str(tmp_path / "first")]) == 0
    first = json.loads((tmp_path / "first" / "validation_set.json").read_text())
    base = json.loads(json.dumps(first))
    base["psnr_per_pair"]["predictor"] = [v + d for v, d in zip(first["psnr_per_pair"]["predictor"], (-0.5, 0.1), strict=True)]
    (tmp_path / "base.json").write_text(json.dumps(base))
    assert validation_set.main([*common, "--baseline", str(tmp_path / "base.json"), "--out", str(tmp_path / "b")]) == 0
    versus = json.loads((tmp_path / "b" / "validation_set.json").read_text())["versus"]
    assert versus["predictor"]["mean_diff"] == pytest.approx(0.2, abs=1e-4)
    assert versus["predictor"]["std_error"] == pytest.approx(0.3, abs=1e-4) and versus["predictor"]["wins"] == 1
    assert versus["average"]["mean_diff"] == pytest.approx(0.0, abs=1e-6)
    base["psnr_per_pair"]["blurry"] = [v + 1.0 for v in first["psnr_per_pair"]["blurry"]]
    (tmp_path / "other.json").write_text(json.dumps(base))
    assert validation_set.main([*common, "--baseline", str(tmp_path / "other.json"), "--out", str(tmp_path / "o")]) == 2
    assert "other pairs" in capsys.readouterr().err and (tmp_path / "o" / "validation_set.json").exists()
