"""`make demo`, benchmarks/default_model.py and kernel_sizes.py end to end on a tiny random model; the deconvolution convention."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.ndimage import gaussian_filter

from stochdeblur import hub
from stochdeblur.baselines import richardson_lucy, wiener_deconvolve
from stochdeblur.cli.demo import main
from stochdeblur.config import load_config
from stochdeblur.data.photos import available_photos
from stochdeblur.data.synth import degrade, motion_kernel
from stochdeblur.hub import save_pretrained
from stochdeblur.methods import build_method
from stochdeblur.metrics import psnr

MODES = ("predictor", "average", "perceptual")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cfg = load_config(overrides=["predictor.base_channels=8", "denoiser.base_channels=8"])
    return save_pretrained(build_method(cfg), tmp_path_factory.mktemp("tiny") / "model", cfg)


def _benchmark_module(name: str = "default_model"):
    path = Path(__file__).parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"{name}_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_demo_writes_outputs_grid_and_summary(checkpoint: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    code = main(["--out", str(out), "--checkpoint", str(checkpoint), "--size", "32", "--perceptual-steps", "3",
                 "--precision", "no"])
    assert code == 0
    names = [*available_photos(), "clock_motion"]
    for folder in ("blurry", *MODES):
        for name in names:
            with Image.open(out / folder / f"{name}.png") as im:
                assert im.size == (32, 32) and im.mode == "RGB"
    assert sorted(p.stem for p in (out / "sharp").iterdir()) == sorted(available_photos())  # no truth for the clock
    with Image.open(out / "grid.png") as grid:
        assert grid.width > 5 * 100 and grid.height > len(names) * 100  # 5 columns, one row per image
    summary = (out / "summary.md").read_text()
    assert "| **mean** (5 images) |" in summary and "perceptual (3×1)" in summary and "average (10×4)" in summary
    assert "clock_motion (real blur, no ground truth) | n/a" in summary
    assert summary.split("# stochdeblur demo\n\n")[1].split("\n\nCells")[0] in capsys.readouterr().out


def test_demo_restores_only_the_modes_asked_for(checkpoint: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    assert main(["--out", str(out), "--checkpoint", str(checkpoint), "--size", "16", "--mode", "predictor",
                 "--precision", "no"]) == 0
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["blurry", "predictor", "sharp"]
    assert "| image | blurry | predictor |\n" in (out / "summary.md").read_text()
    assert main(["--out", str(tmp_path / "x"), "--checkpoint", str(checkpoint), "--mode", "sharpest"]) == 2
    assert "unknown mode name 'sharpest'" in capsys.readouterr().err


def test_demo_without_a_shipped_model_exits_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(hub, "DEFAULT_MODEL_DIR", tmp_path / "empty")
    assert main(["--out", str(tmp_path / "demo")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no default model is shipped") and "--checkpoint" in err
    assert "Traceback" not in err and err.count("\n") == 1
    assert not (tmp_path / "demo").exists()


def test_demo_rejects_a_crop_larger_than_the_photos(checkpoint: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--out", str(tmp_path / "demo"), "--checkpoint", str(checkpoint), "--size", "4000"]) == 2
    assert "smaller than the requested crop" in capsys.readouterr().err


def test_benchmark_writes_every_method_and_image(checkpoint: Path, tmp_path: Path) -> None:
    bench = _benchmark_module()
    gan_cfg = load_config(Path(__file__).parents[1] / "configs" / "deblurganv2_dsc_tiny.yaml")
    gan = save_pretrained(build_method(gan_cfg), tmp_path / "gan", gan_cfg)
    argv = ["--checkpoint", str(checkpoint), "--out", str(tmp_path), "--limit", "2", "--size", "32",
            "--perceptual-steps", "2", "--precision", "no", "--baseline", str(gan)]
    assert bench.main(argv) == 0
    result = json.loads((tmp_path / "default_model.json").read_text())
    methods = ["blurry", "wiener (true kernel)", "richardson-lucy (true kernel)", "oracle", "blind-classical",
               f"{gan} (one shot)", *MODES]
    assert result["methods"] == methods and len(result["images"]) == 2
    for row in result["images"]:
        assert all(row[m]["psnr"] is not None and row[m]["grad_ratio"] is not None for m in methods)
        assert row["average_margin_db"] == pytest.approx(row["average"]["psnr"] - row["blurry"]["psnr"])
        assert row["blurry"]["seconds"] is None and row["perceptual"]["seconds"] > 0
        assert 0 < row["blind-classical"]["kernel_ncc"] <= 1 and row["blind-classical"]["error_ratio"] > 0
        assert row["predictor"]["kernel_ncc"] is None  # a plain UNet estimates no kernel
    assert "--limit 2" in result["command"] and result["cpu"]
    table = (tmp_path / "default_model.md").read_text()
    assert all(f"| {m} |" in table for m in methods)
    assert all(f"| {row['name']} | {row['kernel_size']} |" in table for row in result["images"])


def test_kernel_size_benchmark_reports_a_gain_per_size(checkpoint: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    bench = _benchmark_module("kernel_sizes")
    argv = ["--checkpoint", str(checkpoint), "--out", str(tmp_path), "--sizes", "5,9", "--modes", "predictor",
            "--crop", "32", "--precision", "no"]
    assert bench.main(argv) == 0
    result = json.loads((tmp_path / "kernel_sizes.json").read_text())
    assert [r["kernel_size"] for r in result["rows"]] == [5, 9]
    for row in result["rows"]:
        assert set(row["gain_db"]) == {"predictor", "richardson-lucy (true kernel)", "oracle", "blind-classical"}
        assert row["images"] >= 1 and 0 < row["kernel_ncc"]["blind-classical"] <= 1
        assert all(isinstance(v, float) for v in row["gain_db"].values())
    assert "| 9 |" in (tmp_path / "kernel_sizes.md").read_text()
    assert bench.main([*argv, "--modes", "sharpest"]) == 2
    assert "bad --modes" in capsys.readouterr().err


def _smooth_image(size: int = 96) -> np.ndarray:
    image = gaussian_filter(np.random.default_rng(0).random((size, size, 3)), (1.5, 1.5, 0))
    return (image - image.min()) / (image.max() - image.min())


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float() * 2 - 1


@pytest.mark.parametrize("size", [9, 10])  # odd and even kernels: synth centres an even kernel at k // 2
@pytest.mark.parametrize("method", [wiener_deconvolve, richardson_lucy])
def test_deconvolution_with_the_true_kernel_inverts_the_synth_pipeline(size: int, method) -> None:
    kernel = motion_kernel(size, np.random.default_rng(size))
    blur, sharp = degrade(_smooth_image(), kernel, np.random.default_rng(1), quantize=False)
    options = {} if method is wiener_deconvolve else {"iterations": 60}
    restored = method(_to_tensor(blur), kernel, **options)
    c = 2 * size  # score away from the border, which valid convolution leaves unknown
    target = _to_tensor(sharp)[:, c:-c, c:-c]
    aligned = psnr(restored[:, c:-c, c:-c], target)
    assert aligned > psnr(_to_tensor(blur)[:, c:-c, c:-c], target) + 3
    for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1)):  # a convention mismatch shows as a one-pixel shift
        shifted = restored[:, c + dy:restored.shape[1] - c + dy, c + dx:restored.shape[2] - c + dx]
        assert aligned > psnr(shifted, target) + 1
