"""benchmarks/decline.py: the rule picks its threshold on the tuning pairs, g is the predictor's, and the report."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import decline  # noqa: E402

from stochdeblur import metrics  # noqa: E402
from stochdeblur.config import load_config  # noqa: E402
from stochdeblur.data import build_dataset  # noqa: E402
from stochdeblur.hub import load  # noqa: E402

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "dvsr_kernel_aware.yaml"


def _pair(blurry: float, g: float, confidence: float) -> dict[str, float]:
    return {"blurry": blurry, "g": g, "confidence": confidence, "edges": 1.0, "change": 1.0}


def test_the_threshold_declines_exactly_where_it_pays_on_the_tuning_pairs() -> None:
    pairs = [_pair(30.0, 25.0, 0.2), _pair(31.0, 27.0, 0.4), _pair(20.0, 26.0, 0.9), _pair(22.0, 25.0, 1.3)]
    threshold, score = decline.best_threshold(pairs, "confidence")
    assert threshold == 0.9  # declines the two low-confidence pairs, keeps g on the others
    assert score == pytest.approx((30.0 + 31.0 + 26.0 + 25.0) / 4)
    assert decline.rule_psnr(pairs, "confidence", float("-inf")) == pytest.approx(25.75)  # never decline: g
    assert decline.rule_psnr(pairs, "confidence", math.inf) == pytest.approx(25.75)  # always: the blurry input
    summary = decline.summarise(pairs, pairs[::-1])
    assert summary["rules"]["confidence"]["validation"] == pytest.approx(score)
    assert summary["validation"]["oracle"] == pytest.approx(score)


def test_report_scores_g_as_the_predictor_runs_it(tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    assert decline.main(["--images", "2", "--crop", "64", "--out", str(out)]) == 0
    result = json.loads((out / "decline.json").read_text())
    assert len(result["tuning"]) == len(result["validation"]) == 2
    cfg = load_config(CONFIG, ["data.val_kind=wallpapers", "data.val_images=2", "data.val_crop_size=64"])
    item = build_dataset(cfg.data, "val", cfg.train.seed)[0]
    model, _ = load("default", "cpu")
    with torch.no_grad():
        image = model.eval().predictor.run(item["blur"][None]).image[0].clamp(-1, 1)
    assert result["validation"][0]["g"] == pytest.approx(metrics.psnr(image, item["sharp"]), abs=1e-4)
    assert result["validation"][0]["blurry"] == pytest.approx(metrics.psnr(item["blur"], item["sharp"]))
    assert "never decline" in (out / "decline.md").read_text()
    assert decline.main(["--checkpoint", "classical", "--out", str(out)]) == 2
    assert "classical kernel source" in capsys.readouterr().err
