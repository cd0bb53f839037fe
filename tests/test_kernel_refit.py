"""benchmarks/kernel_refit.py: round 0 is the predictor itself, later rounds re-fit real kernels, and the report."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import kernel_refit as kr  # noqa: E402

from stochdeblur.config import load_config  # noqa: E402
from stochdeblur.data import build_dataset  # noqa: E402
from stochdeblur.hub import load  # noqa: E402

TINY = Path(__file__).resolve().parents[1] / "configs" / "dvsr_kernel_aware_tiny.yaml"


def test_rounds_start_from_the_predictor_and_refit_kernels() -> None:
    model, _ = load("default", "cpu")
    model.eval()
    item = build_dataset(load_config(TINY, ["data.val_images=1"]).data, "val", 0)[0]
    blur = item["blur"][None]
    with torch.no_grad():
        rounds = kr.refit_rounds(model.predictor, blur, 2)
        direct = model.predictor.run(blur)
    assert len(rounds) == 3
    assert torch.equal(rounds[0]["image"], direct.image.clamp(-1, 1))
    for r in rounds[1:]:
        kernel = r["kernel"][0]
        assert kernel.shape == direct.kernel.shape[1:] and float(kernel.min()) >= 0
        assert abs(float(kernel.sum()) - 1.0) < 1e-4
        assert r["image"].shape == blur.shape and not torch.equal(r["image"], rounds[0]["image"])


def test_report_names_every_round_and_refuses_other_models(tmp_path: Path, capsys) -> None:
    args = ["--config", str(TINY), "--set", "data.val_images=2", "--rounds", "1", "--out", str(tmp_path)]
    assert kr.main(args) == 0
    result = json.loads((tmp_path / "kernel_refit.json").read_text())
    assert result["images"] == 2 and len(result["mean"]["rounds"]) == 2
    assert all(len(p["rounds"]) == 2 and 0 <= p["rounds"][0]["ncc"] <= 1 for p in result["pairs"])
    assert "least squares from round 0" in (tmp_path / "kernel_refit.md").read_text()
    assert kr.main(["--checkpoint", "classical", "--config", str(TINY), "--out", str(tmp_path)]) == 2
    assert "classical kernel source" in capsys.readouterr().err
