"""Metrics: PSNR/SSIM agree with scikit-image, sharpness ratios point the right way, LPIPS/FID/KID use only
cached weights (unavailable without them, computed with a test-made weight file)."""

from __future__ import annotations

import importlib.util
import logging
import math

import pytest
import torch
import torch.nn.functional as F
from skimage.metrics import peak_signal_noise_ratio as sk_psnr
from skimage.metrics import structural_similarity as sk_ssim

from stochdeblur import metrics
from stochdeblur.metrics import (
    ALEXNET_FILE,
    INCEPTION_FILE,
    LOWER_IS_BETTER,
    MetricSuite,
    gradient_energy_ratio,
    highfreq_energy_ratio,
    patches,
    psnr,
    ssim,
)


def _pair(h: int, w: int, noise: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    target = torch.rand(3, h, w, generator=g) * 2 - 1
    pred = (target + noise * torch.randn(3, h, w, generator=g)).clamp(-1, 1)
    return pred, target


def _hwc01(image: torch.Tensor):
    return ((image + 1) / 2).permute(1, 2, 0).double().numpy()


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    """A torch hub cache with no weights in it, and no override variables."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(metrics.ALEXNET_ENV, raising=False)
    monkeypatch.delenv(metrics.INCEPTION_ENV, raising=False)
    metrics._SAID.clear()
    checkpoints = tmp_path / "torch" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    return checkpoints


@pytest.mark.parametrize(("h", "w", "seed"), [(48, 64, 0), (96, 80, 1), (128, 128, 2)])
def test_psnr_matches_skimage(h, w, seed):
    pred, target = _pair(h, w, 0.1, seed)
    expected = sk_psnr(_hwc01(target), _hwc01(pred), data_range=1)
    assert abs(psnr(pred, target) - expected) < 1e-3


@pytest.mark.parametrize(("h", "w", "seed"), [(48, 64, 0), (96, 80, 1), (128, 128, 2)])
def test_ssim_matches_skimage(h, w, seed):
    """Same Gaussian 11/1.5 SSIM; only the border differs: torchmetrics reflect-pads, skimage crops 5 px."""
    pred, target = _pair(h, w, 0.2, seed)
    expected = sk_ssim(_hwc01(pred), _hwc01(target), gaussian_weights=True, sigma=1.5,
                       use_sample_covariance=False, data_range=1, channel_axis=2)
    assert abs(ssim(pred, target, crop_border=True) - expected) < 1e-5
    assert abs(ssim(pred, target) - expected) < 1e-3


def test_identical_images_score_perfectly():
    image = _pair(64, 64, 0.0, 3)[1]
    assert math.isinf(psnr(image, image))
    assert ssim(image, image) == pytest.approx(1.0)
    assert gradient_energy_ratio(image, image) == pytest.approx(1.0)
    assert highfreq_energy_ratio(image, image) == pytest.approx(1.0)


def test_sharpness_ratios_tell_blurry_from_noisy():
    _, sharp = _pair(64, 64, 0.0, 4)
    sharp = F.avg_pool2d(sharp[None], 3, 1, 1)[0]  # some structure at every scale
    blurry = F.avg_pool2d(sharp[None], 5, 1, 2, count_include_pad=False)[0]
    noisy = (sharp + 0.1 * torch.randn(sharp.shape, generator=torch.Generator().manual_seed(5))).clamp(-1, 1)
    assert gradient_energy_ratio(blurry, sharp) < 0.7 < 1.3 < gradient_energy_ratio(noisy, sharp)
    assert highfreq_energy_ratio(blurry, sharp) < 0.7 < 1.3 < highfreq_energy_ratio(noisy, sharp)
    flat = torch.zeros(3, 32, 32)
    assert gradient_energy_ratio(flat, flat) is None


def test_patches_are_non_overlapping_and_centred():
    image = torch.arange(3 * 600 * 520, dtype=torch.float32).reshape(3, 600, 520)
    tiles = patches(image, 256)
    assert tiles.shape == (4, 3, 256, 256)
    top, left = (600 - 512) // 2, (520 - 512) // 2
    assert torch.equal(tiles[1], image[:, top:top + 256, left + 256:left + 512])
    assert patches(image[:, :100, :300], 256).shape == (1, 3, 100, 300)


def test_every_metric_declares_its_direction():
    assert set(MetricSuite().names) | {"fid", "kid"} <= set(LOWER_IS_BETTER)
    assert LOWER_IS_BETTER["psnr"] is False and LOWER_IS_BETTER["lpips"] is True
    assert LOWER_IS_BETTER["grad_ratio"] is None


def test_learned_metrics_unavailable_without_cached_weights(empty_cache, caplog):
    with caplog.at_level(logging.WARNING, logger="stochdeblur.metrics"):
        suite = MetricSuite()
    assert {"lpips", "fid", "kid"} <= set(suite.unavailable)
    assert "alexnet" in caplog.text.lower() and "unavailable" in caplog.text
    values = suite.compute_image_metrics(*_pair(64, 64, 0.1, 6), accumulate=True)
    assert values["lpips"] is None
    assert values["psnr"] > 0 and values["grad_ratio"] > 0
    assert suite.finalize() == {"fid": None, "kid": None}


def _save_random_alexnet(path) -> None:
    from torchvision.models import alexnet

    features = alexnet(weights=None).features.state_dict()
    torch.save({f"features.{k}": v for k, v in features.items()}, path)


def test_lpips_computes_with_a_cached_alexnet_file(empty_cache):
    _save_random_alexnet(empty_cache / ALEXNET_FILE)
    suite = MetricSuite(distribution=False)
    assert suite.is_available("lpips")
    pred, target = _pair(64, 64, 0.3, 7)
    value = suite.compute_image_metrics(pred, target)["lpips"]
    assert value is not None and math.isfinite(value) and value > 0
    assert suite.compute_image_metrics(target, target)["lpips"] == pytest.approx(0.0, abs=1e-6)


def test_lpips_rejects_a_file_that_is_not_alexnet(empty_cache, caplog):
    torch.save({"conv.weight": torch.zeros(1)}, empty_cache / ALEXNET_FILE)
    with caplog.at_level(logging.WARNING, logger="stochdeblur.metrics"):
        suite = MetricSuite(distribution=False)
    assert "not an AlexNet state_dict" in suite.unavailable["lpips"]
    assert suite.compute_image_metrics(*_pair(32, 32, 0.1, 8))["lpips"] is None


def test_lpips_weights_path_can_be_given_explicitly(empty_cache, tmp_path):
    weights = tmp_path / "my_alexnet.pth"
    _save_random_alexnet(weights)
    assert MetricSuite(lpips_weights=weights, distribution=False).is_available("lpips")


@pytest.mark.skipif(importlib.util.find_spec("torch_fidelity") is None, reason="torch-fidelity not installed")
def test_fid_kid_compute_with_a_cached_inception_file(empty_cache, monkeypatch):
    import torch_fidelity.feature_extractor_inceptionv3 as fe

    class RandomInception(fe.FeatureExtractorInceptionV3):
        def load_state_dict(self, *args, **kwargs):  # keep the random initialisation (test-made weights)
            return None

    monkeypatch.setattr(fe, "load_state_dict_from_url", lambda *a, **k: {})
    torch.save(RandomInception("inception-v3-compat", ["2048"]).state_dict(), empty_cache / INCEPTION_FILE)
    suite = MetricSuite(patch_size=32)
    assert suite.is_available("fid") and suite.is_available("kid")
    pred, target = _pair(64, 64, 0.3, 9)
    suite.update_distribution(pred, target)  # 4 patches of 32² on each side
    result = suite.finalize()
    assert math.isfinite(result["fid"]) and math.isfinite(result["kid"])
    suite.update_distribution(target)  # real statistics survive finalize()
    assert suite.finalize()["fid"] is not None


def test_metrics_ignore_a_callers_bf16_autocast() -> None:
    torch.manual_seed(0)
    sharp = torch.rand(3, 48, 48) * 2 - 1
    blurry = F.avg_pool2d(sharp.unsqueeze(0), 5, stride=1, padding=2)[0]
    expected = metrics.ssim(blurry, sharp), metrics.psnr(blurry, sharp)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the trainer validates inside autocast
        got = metrics.ssim(blurry, sharp), metrics.psnr(blurry, sharp)
    assert got == pytest.approx(expected, abs=1e-6)


_HAS_STLPIPS = importlib.util.find_spec("stlpips_pytorch") is not None


@pytest.mark.skipif(not _HAS_STLPIPS, reason="stlpips-pytorch not installed")
def test_stlpips_is_optional_offline_and_equals_the_packages_network(monkeypatch):
    """ST-LPIPS built here from the shipped state dict (weights_only) gives the reference network's values."""
    import sys
    import types

    suite = MetricSuite(distribution=False, extra=("stlpips",))
    assert suite.is_available("stlpips") and suite.names[-1] == "stlpips" and LOWER_IS_BETTER["stlpips"] is True
    pred, target = _pair(64, 64, 0.3, 9)
    values = suite.compute_image_metrics(pred, target)
    assert values["stlpips"] > 0 and suite.compute_image_metrics(target, target)["stlpips"] == pytest.approx(0.0)
    assert "stlpips" not in MetricSuite(distribution=False).compute_image_metrics(pred, target)  # only when asked
    # the package's own modules import IPython and torchsummary, which it does not declare: stub them
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(embed=None))
    monkeypatch.setitem(sys.modules, "torchsummary", types.SimpleNamespace(summary=None))
    from stlpips_pytorch import stlpips as reference

    net = reference.LPIPS(net="alex", variant="shift_tolerant", pretrained=True, verbose=False).eval()
    with torch.no_grad():
        want = float(net(pred.unsqueeze(0), target.unsqueeze(0)))
    assert values["stlpips"] == pytest.approx(want, rel=1e-5)


def test_stlpips_unavailable_is_reported_not_raised(tmp_path, monkeypatch, caplog):
    real = importlib.util.find_spec
    monkeypatch.setattr(metrics.importlib.util, "find_spec",
                        lambda name, *a: None if name == "stlpips_pytorch" else real(name, *a))
    monkeypatch.delenv(metrics.STLPIPS_ENV, raising=False)
    with caplog.at_level(logging.WARNING, logger="stochdeblur.metrics"):
        suite = MetricSuite(distribution=False, extra=("stlpips",))
    assert "stlpips-pytorch" in suite.unavailable["stlpips"] and "ST-LPIPS (shift-tolerant, AlexNet)" in caplog.text
    assert suite.compute_image_metrics(*_pair(32, 32, 0.1, 8))["stlpips"] is None
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    bad = MetricSuite(distribution=False, extra=("stlpips",), stlpips_weights=tmp_path / "bad.pth")
    assert "not the ST-LPIPS AlexNet state_dict" in bad.unavailable["stlpips"]
    with pytest.raises(ValueError, match="unknown optional metric"):
        MetricSuite(distribution=False, extra=("dists",))
