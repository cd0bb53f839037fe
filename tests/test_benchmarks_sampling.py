"""benchmarks/perceptual_nfe.py and benchmarks/uncertainty.py end to end on a tiny model (one 32² photo)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from stochdeblur import Restorer
from stochdeblur.config import load_config
from stochdeblur.hub import save_pretrained
from stochdeblur.methods import build_method

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import perceptual_nfe  # noqa: E402
import uncertainty  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
needs_photos = pytest.mark.skipif(importlib.util.find_spec("skimage") is None, reason="scikit-image not installed")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    cfg = load_config(ROOT / "configs/dvsr_tiny.yaml")
    return save_pretrained(build_method(cfg), tmp_path_factory.mktemp("tiny") / "model", cfg)


def test_memoised_predictor_leaves_the_pixels_as_they_were(checkpoint: Path) -> None:
    blur = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    plain = Restorer.from_pretrained(checkpoint, device="cpu", precision="no")
    memo = perceptual_nfe.memoize_predictor(Restorer.from_pretrained(checkpoint, device="cpu", precision="no"))
    for options in ({"steps": 0}, {"steps": 3, "sampler": "ddim", "eta": 0.5}, {"steps": 2, "sampler": "dpmsolver"}):
        assert torch.equal(plain(blur, seed=1, **options), memo(blur, seed=1, **options))
    other = blur.flip(-1)
    assert torch.equal(plain(other, steps=2), memo(other, steps=2))  # a new input is not served the old g(y)


def test_sampler_specs_parse_and_reject() -> None:
    parsed = perceptual_nfe.parse_samplers("ddpm, ddim, ddim:0.5, dpmsolver")
    assert [s.label for s in parsed] == ["DDPM", "DDIM η=0", "DDIM η=0.5", "DPM-Solver++(2M)"]
    assert parsed[2].options == {"sampler": "ddim", "eta": 0.5} and parsed[0].options == {"sampler": "ddpm"}
    with pytest.raises(ValueError, match="not ddpm, ddim"):
        perceptual_nfe.parse_samplers("euler")


@needs_photos
def test_perceptual_nfe_runs_end_to_end(checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    code = perceptual_nfe.main(["--checkpoint", str(checkpoint), "--limit", "1", "--crop", "32", "--nfe", "1,2",
                                "--reference-steps", "3", "--samplers", "ddpm,ddim:0.5,dpmsolver", "--sample-seeds",
                                "0,1", "--out", str(out), "--precision", "no"])
    assert code == 0
    result = json.loads((out / "perceptual_nfe.json").read_text())
    keys = [r["key"] for r in result["runs"]]
    assert keys == ["predictor", "reference", "DDPM@1", "DDPM@2", "DDIM η=0.5@1", "DDIM η=0.5@2",
                    "DPM-Solver++(2M)@1", "DPM-Solver++(2M)@2"]
    assert len(result["images"]) == 1 and result["decision"]["candidates"] and result["seeds"] == [0, 1]
    assert len(result["images"][0]["DDPM@2"]["per_seed"]) == 2 and len(result["images"][0]["predictor"]["per_seed"]) == 1
    assert result["seed_std"]["DDPM@2"]["psnr"] is not None and result["seed_std"]["predictor"]["psnr"] is None
    for key in keys:
        scores = result["mean"][key]
        assert scores["psnr"] > 0 and scores["grad_ratio"] > 0 and 0 <= scores["haarpsi"] <= 1
        assert scores["stlpips"] is None or scores["stlpips"] >= 0
    table = (out / "perceptual_nfe.md").read_text()
    assert "CPU:" in table and "benchmarks/perceptual_nfe.py --checkpoint" in table and "ST-LPIPS" in table
    assert "| **DDPM 3 steps** (reference) | 3 |" in table and " ± " in table
    assert (out / "perceptual_nfe.png").stat().st_size > 0


def test_perceptual_nfe_refuses_a_one_shot_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert perceptual_nfe.main(["--checkpoint", "classical", "--out", str(tmp_path)]) == 2
    assert "one-shot model" in capsys.readouterr().err


def test_correlations_see_a_sigma_that_tracks_the_error() -> None:
    rng = np.random.default_rng(0)
    sharp = torch.zeros(3, 16, 16)
    offset = torch.from_numpy(rng.uniform(0, 0.5, (16, 16))).float()
    samples = torch.stack([sharp + offset, sharp - offset, sharp + 3 * offset])  # mean = sharp + offset
    image = samples.mean(0)
    m = uncertainty.maps(samples, image, (samples / 2).var(0, correction=0).mean(0).sqrt(), sharp)
    assert uncertainty.correlations(m["sigma"], m["error"])["pearson"] == pytest.approx(1.0)
    assert uncertainty.correlations(m["luma_sigma"], m["luma_error"])["spearman"] == pytest.approx(1.0)
    assert uncertainty.correlations(np.zeros(4), np.arange(4.0)) == {"pearson": None, "spearman": None}
    quintiles = uncertainty.by_quantile(m["sigma"], m["error"])
    assert len(quintiles) == 5 and [q["mean_error"] for q in quintiles] == sorted(q["mean_error"] for q in quintiles)


@needs_photos
def test_uncertainty_runs_end_to_end(checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "results"
    code = uncertainty.main(["--checkpoint", str(checkpoint), "--limit", "1", "--crop", "32", "--steps", "2",
                             "--average", "3", "--out", str(out), "--precision", "no"])
    assert code == 0
    result = json.loads((out / "uncertainty.json").read_text())
    row = result["images"][0]
    for key in ("sigma_vs_error", "luma_sigma_vs_error", "gradient_vs_error"):
        assert -1 <= row[key]["pearson"] <= 1 and -1 <= row[key]["spearman"] <= 1
    assert row["mean_sigma"] > 0 and len(result["quantiles"]) == 5
    table = (out / "uncertainty.md").read_text()
    assert "CPU:" in table and "benchmarks/uncertainty.py --checkpoint" in table and "**pooled**" in table
    assert (out / "uncertainty_example.png").stat().st_size > 0
    assert uncertainty.main(["--checkpoint", str(checkpoint), "--average", "1", "--out", str(out)]) == 2
    assert "--average >= 2" in capsys.readouterr().err
