"""scripts/sample.py end to end: a folder with odd sizes, RGBA and a corrupt file; model errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stochdeblur import hub
from stochdeblur.cli.sample import main
from stochdeblur.config import load_config
from stochdeblur.hub import save_pretrained
from stochdeblur.io import read_image
from stochdeblur.methods import build_method


@pytest.fixture()
def checkpoint(tmp_path: Path) -> Path:
    cfg = load_config(overrides=["predictor.base_channels=8", "denoiser.base_channels=8"])
    return save_pretrained(build_method(cfg), tmp_path / "ckpt", cfg)


@pytest.fixture()
def inputs(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)).save(folder / "odd.png")
    Image.fromarray(rng.integers(0, 256, (24, 32, 4), dtype=np.uint8), mode="RGBA").save(folder / "alpha.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return folder


def test_folder_with_a_corrupt_file(checkpoint: Path, inputs: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    code = main(["--input", str(inputs), "--output", str(out), "--checkpoint", str(checkpoint),
                 "--steps", "2", "--average", "2", "--seed", "3", "--compare", "--precision", "no"])
    assert code == 1
    assert "broken.png" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["alpha.png", "alpha_compare.png", "odd.png", "odd_compare.png"]
    assert read_image(out / "odd.png").shape == (3, 37, 53)
    assert read_image(out / "odd_compare.png").shape == (3, 37, 106)
    assert read_image(out / "alpha.png").shape == (3, 24, 32)


def test_single_file_predictor_only_is_reproducible(checkpoint: Path, inputs: Path, tmp_path: Path) -> None:
    args = ["--input", str(inputs / "odd.png"), "--checkpoint", str(checkpoint), "--steps", "2", "--seed", "1",
            "--sampler", "dpmsolver", "--tile", "16"]
    assert main([*args, "--output", str(tmp_path / "a")]) == 0
    assert main([*args, "--output", str(tmp_path / "b")]) == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "a" / "odd.png")),
                          np.asarray(Image.open(tmp_path / "b" / "odd.png")))
    assert main(["--input", str(inputs / "odd.png"), "--output", str(tmp_path / "c"), "--checkpoint",
                 str(checkpoint), "--predictor-only"]) == 0
    assert (tmp_path / "c" / "odd.png").is_file()


def test_no_model_available(inputs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(hub, "DEFAULT_MODEL_DIR", tmp_path / "no_default")
    assert main(["--input", str(inputs), "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "no default model is shipped yet" in err and "Traceback" not in err
    assert main(["--input", str(inputs), "--output", str(tmp_path / "out"), "--checkpoint",
                 str(tmp_path / "missing")]) == 2


def test_missing_input_and_output_over_input(checkpoint: Path, inputs: Path, tmp_path: Path) -> None:
    assert main(["--input", str(tmp_path / "none"), "--output", str(tmp_path / "o"),
                 "--checkpoint", str(checkpoint)]) == 2
    assert main(["--input", str(inputs), "--output", str(inputs), "--checkpoint", str(checkpoint)]) == 2


def test_shipped_gan_model_by_name(inputs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    cfg = load_config(Path(__file__).resolve().parents[1] / "configs" / "deblurganv2_dsc_tiny.yaml")
    weights = tmp_path / "weights"
    save_pretrained(build_method(cfg).eval(), weights / "fast_gan", cfg)
    monkeypatch.setattr(hub, "WEIGHTS_DIR", weights)
    out = tmp_path / "out"
    code = main(["--input", str(inputs / "odd.png"), "--output", str(out), "--checkpoint", "fast_gan",
                 "--steps", "500", "--precision", "no"])
    assert code == 0
    assert "deblurs in one shot; --steps ignored" in capsys.readouterr().err
    assert read_image(out / "odd.png").shape == (3, 37, 53)
    assert main(["--input", str(inputs / "odd.png"), "--output", str(out), "--checkpoint", "slow_gan"]) == 2
    err = capsys.readouterr().err
    assert "nor a shipped model" in err and "fast_gan" in err
