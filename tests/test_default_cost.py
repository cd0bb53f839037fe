"""benchmarks/default_cost.py and the blind estimate's thread setting."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import default_cost as dc  # noqa: E402

from stochdeblur.data.synth import dead_leaves, degrade, motion_kernel  # noqa: E402
from stochdeblur.physics.blind import estimate_kernel  # noqa: E402


def test_the_estimate_does_not_depend_on_its_thread_count() -> None:
    rng = __import__("numpy").random.default_rng(0)
    kernel = motion_kernel(7, rng)
    blur, _ = degrade(dead_leaves(70, 70, rng), kernel, rng, noise_sigma=0.01)
    y = torch.from_numpy(blur.transpose(2, 0, 1).copy()) * 2 - 1
    threads = torch.get_num_threads()
    one, _ = estimate_kernel(y, 9)
    assert torch.get_num_threads() == threads  # restored
    torch.testing.assert_close(estimate_kernel(y, 9, threads=None)[0], one, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="threads"):
        estimate_kernel(y, 9, threads=0)


def test_report_splits_the_averaging_seconds(tmp_path: Path, capsys) -> None:
    assert dc.main(["--size", "64", "--repeats", "1", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "default_cost.json").read_text())
    s = result["seconds"]
    assert all(s[key] > 0 for key in ("estimate", "kernel_1_thread", "kernel_all_threads", "predictor", "average"))
    assert result["evaluations"] == 40 and set(result["denoiser"]) == {"1", "2", "4"}
    assert "averaging − predictor" in (tmp_path / "default_cost.md").read_text()
    assert dc.main(["--checkpoint", "classical", "--out", str(tmp_path)]) == 2
    assert "classical kernel source" in capsys.readouterr().err
