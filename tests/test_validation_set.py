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
