"""benchmarks/kernel_hypotheses.py: the selection rules and the no-reference sparsity feature, and an end-to-end run
on two small dead-leaves pairs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import kernel_hypotheses as kh  # noqa: E402

from stochdeblur.baselines import BLIND_TRUST  # noqa: E402
from stochdeblur.data.synth import dead_leaves, degrade, motion_kernel  # noqa: E402
from stochdeblur.physics.operators import unit_luminance  # noqa: E402


def _hypothesis(name: str, confidence: float, sparsity: float) -> kh.Hypothesis:
    return kh.Hypothesis(name, torch.zeros(3, 3), torch.zeros(3, 4, 4), {"confidence": confidence,
                                                                         "sparsity": sparsity})


def test_selection_rules_pick_as_documented() -> None:
    hyps = [_hypothesis("a", 1.2, 0.40), _hypothesis("b", 0.9, 0.30), _hypothesis("identity", 10.0, 0.70)]
    assert kh.select_hypothesis(hyps, "sparsest").name == "b"
    assert kh.select_hypothesis(hyps, "sparsest-trusted").name == "a"  # b is sparser but not trusted
    assert kh.select_hypothesis(hyps, "sparsest-trusted-0.8").name == "b"
    assert kh.select_hypothesis(hyps, "most-confident").name == "a"  # the identity is never "confident"
    assert kh.select_hypothesis(hyps[1:], "sparsest-trusted").name == "identity"  # none trusted: no deblurring
    with pytest.raises(ValueError, match="unknown selection rule"):
        kh.select_hypothesis(hyps, "best")


def test_variants_parse_into_estimator_options() -> None:
    assert kh.parse_variants("default; mu_rate=4; iterations=3,mu_rate=4") == (
        ("default", 33, {}), ("mu_rate=4", 33, {"mu_rate": 4.0}),
        ("iterations=3,mu_rate=4", 33, {"iterations": 3, "mu_rate": 4.0}), ("identity", 1, {}))


def test_sharp_images_are_sparser_than_blurred_ones() -> None:
    rng = np.random.default_rng(0)
    sharp = dead_leaves(80, 80, rng)
    blur, target = degrade(sharp, motion_kernel(17, rng), rng, noise_sigma=0.01)
    gray = lambda a: unit_luminance(torch.from_numpy(a.transpose(2, 0, 1).copy()) * 2 - 1)  # noqa: E731
    assert kh._normalised_sparsity(gray(target), 4) < kh._normalised_sparsity(gray(blur), 4) - 0.05


def test_benchmark_runs_end_to_end(tmp_path: Path) -> None:
    code = kh.main(["--count", "2", "--content", "deadleaves", "--size", "64", "--window", "15",
                    "--lams", "4e-3,1.6e-2", "--out", str(tmp_path)])
    assert code == 0
    result = json.loads((tmp_path / "kernel_hypotheses_deadleaves_seed0_lams.json").read_text())
    summary = result["summary"]
    assert list(summary["alone"]) == ["lam=0.004", "lam=0.016", "identity"] and summary["alone"]["identity"] == 0
    assert summary["best_pick"] >= max(summary["alone"].values())
    assert len(result["rows"]) == 2 and "CPU:" in (tmp_path / "kernel_hypotheses_deadleaves_seed0_lams.md").read_text()
    # every estimate also as blind_deconvolve would use it: itself when trusted, half-way to the input when not
    assert {f"{n}, mixed with the input when untrusted (blind_deconvolve)" for n in ("lam=0.004", "lam=0.016")} <= set(
        summary["rules"])
    for row in result["rows"]:
        for h in (row["hypotheses"][n] for n in ("lam=0.004", "lam=0.016")):
            if h["confidence"] >= BLIND_TRUST:
                assert h["mix_gain"] == h["gain"]
            else:
                assert h["mix_gain"] != h["gain"]
