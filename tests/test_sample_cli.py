"""scripts/sample.py end to end: a folder with odd sizes, RGBA and a corrupt file; model errors; modes, samples,
the σ map and the kernel files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stochdeblur import baselines, hub
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
def presets(tmp_path: Path) -> Path:
    """A tiny model with cheap presets: average = 2 steps × 3 samples, perceptual = 3 steps × 1 sample."""
    cfg = load_config(overrides=["predictor.base_channels=8", "denoiser.base_channels=8", "predictor.channel_mults=[1,2]",
                                 "denoiser.channel_mults=[1,2]", "sample.steps=2", "sample.average=3",
                                 "sample.modes.perceptual.steps=3"])
    return save_pretrained(build_method(cfg), tmp_path / "presets", cfg)


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


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im, dtype=np.float64) / 255


def test_modes_pick_presets_and_explicit_steps_draw_one_sample(presets: Path, inputs: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    def run(name: str, *flags: str) -> list[str]:
        argv = ["--input", str(inputs / "odd.png"), "--output", str(tmp_path / name), "--checkpoint", str(presets),
                "--save-samples", "--precision", "no", *flags]
        assert main(argv) == 0
        return sorted(p.name for p in (tmp_path / name).glob("odd_sample*.png"))

    assert run("default") == ["odd_sample0.png", "odd_sample1.png", "odd_sample2.png"]
    assert "mode average: 2 steps × 3 samples" in capsys.readouterr().out
    assert run("steps", "--steps", "3") == ["odd_sample0.png"]  # not the config's 3 samples averaged
    assert run("perceptual", "--mode", "perceptual") == ["odd_sample0.png"]
    assert np.array_equal(_pixels(tmp_path / "steps" / "odd.png"), _pixels(tmp_path / "perceptual" / "odd.png"))
    assert len(run("perceptual4", "--mode", "perceptual", "--average", "4")) == 4
    assert len(run("average2", "--average", "2")) == 2
    assert run("predictor", "--predictor-only") == run("predictor_mode", "--mode", "predictor") == ["odd_sample0.png"]
    assert np.array_equal(_pixels(tmp_path / "predictor" / "odd.png"),
                          _pixels(tmp_path / "predictor_mode" / "odd.png"))
    capsys.readouterr()
    assert main(["--input", str(inputs), "--output", str(tmp_path / "x"), "--checkpoint", str(presets),
                 "--predictor-only", "--mode", "perceptual"]) == 2
    assert "--predictor-only contradicts --mode perceptual" in capsys.readouterr().err
    assert main(["--input", str(inputs), "--output", str(tmp_path / "x"), "--checkpoint", str(presets),
                 "--mode", "sharpest"]) == 2
    assert "unknown mode 'sharpest'; this model has predictor, average, perceptual" in capsys.readouterr().err


def test_uncertainty_is_the_spread_of_the_saved_samples(presets: Path, inputs: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["--input", str(inputs / "odd.png"), "--output", str(out), "--checkpoint", str(presets),
                 "--save-samples", "--uncertainty", "--precision", "no"]) == 0
    sigma = np.load(out / "odd_sigma.npy")
    assert sigma.dtype == np.float32 and sigma.shape == (37, 53) and sigma.max() > 0
    samples = np.stack([_pixels(out / f"odd_sample{k}.png") for k in range(3)])  # 8-bit: within 0.5/255 each
    assert np.allclose(sigma, np.sqrt(samples.var(axis=0).mean(axis=-1)), atol=1 / 255)
    assert np.allclose(samples.mean(axis=0), _pixels(out / "odd.png"), atol=1.01 / 255)
    with Image.open(out / "odd_sigma.png") as im:
        assert im.mode == "RGB" and im.size == (53, 37)
    capsys.readouterr()
    assert main(["--input", str(inputs / "odd.png"), "--output", str(tmp_path / "one"), "--checkpoint", str(presets),
                 "--mode", "perceptual", "--uncertainty"]) == 0
    assert "the σ map is zero" in capsys.readouterr().err
    assert not np.load(tmp_path / "one" / "odd_sigma.npy").any()


def test_save_kernel_writes_the_classical_estimate(inputs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    kernel = torch.zeros(9, 9)
    kernel[4, 2:7] = 0.2  # a 5-px horizontal shake
    autocast_on = []

    def blind_deconvolve(image: torch.Tensor, size: int, **_: float) -> tuple[torch.Tensor, torch.Tensor]:
        autocast_on.append(torch.is_autocast_enabled("cpu"))
        return image.clamp(-1, 1), kernel

    monkeypatch.setattr(baselines, "blind_deconvolve", blind_deconvolve, raising=False)
    out = tmp_path / "out"
    assert main(["--input", str(inputs / "odd.png"), "--output", str(out), "--checkpoint", "classical",
                 "--save-kernel", "--steps", "5", "--precision", "bf16"]) == 0
    assert autocast_on == [False]  # one estimate, reused by restore; float32 although the CLI autocasts
    assert "deblurs in one shot; --steps ignored" in capsys.readouterr().err
    assert np.array_equal(np.load(out / "odd_kernel.npy"), kernel.numpy())
    with Image.open(out / "odd_kernel.png") as im:
        assert im.mode == "L" and im.size == (72, 72)  # 9 taps × 8
        codes = np.asarray(im)
    assert (codes[32:40, 16:56] == 255).all() and codes[:32].max() == 0 and codes[40:].max() == 0


def test_save_kernel_notes_once_when_the_model_estimates_none(checkpoint: Path, inputs: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--input", str(inputs), "--output", str(tmp_path / "out"), "--checkpoint", str(checkpoint),
                 "--predictor-only", "--save-kernel"]) == 1  # broken.png fails
    assert capsys.readouterr().err.count("estimates no blur kernel") == 1
    assert not list((tmp_path / "out").glob("*_kernel*"))


def test_model_set_changes_the_saved_config_and_a_bad_key_is_refused(presets: Path, inputs: Path, tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--input", str(inputs / "odd.png"), "--checkpoint", str(presets), "--save-samples", "--precision", "no"]
    assert main([*args, "--output", str(tmp_path / "a")]) == 0
    assert len(list((tmp_path / "a").glob("odd_sample*.png"))) == 3  # the saved average preset: 2 steps × 3
    assert main([*args, "--output", str(tmp_path / "b"), "--model-set", "sample.average=2"]) == 0
    assert len(list((tmp_path / "b").glob("odd_sample*.png"))) == 2
    assert main([*args, "--output", str(tmp_path / "c"), "--model-set", "sample.no_such_key=1"]) == 2
    assert "overrides" in capsys.readouterr().err and not (tmp_path / "c").exists()
