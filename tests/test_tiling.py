"""Padding and overlapping-tile inference: exact when one tile covers the image, close otherwise."""

from __future__ import annotations

import pytest
import torch

from stochdeblur.config import load_config
from stochdeblur.methods import build_method
from stochdeblur.tiling import _ramp, pad_to_multiple, tile_starts, tiled_apply


def test_pad_to_multiple_reflects_and_falls_back_to_replicate() -> None:
    x = torch.arange(15.0).view(1, 1, 3, 5)
    padded, size = pad_to_multiple(x, 4)
    assert padded.shape == (1, 1, 4, 8) and size == (3, 5)
    assert torch.equal(padded[..., :3, :5], x)
    assert padded[0, 0, 0, 5] == x[0, 0, 0, 3]  # reflect
    tiny, _ = pad_to_multiple(torch.ones(1, 1, 1, 2), 8)  # reflect impossible: replicate
    assert tiny.shape == (1, 1, 8, 8) and torch.all(tiny == 1)


def test_tiles_cover_the_image_with_the_overlap() -> None:
    starts = tile_starts(100, 32, 8)
    assert starts[0] == 0 and starts[-1] == 68
    assert all(b - a <= 24 for a, b in zip(starts, starts[1:], strict=False))
    assert tile_starts(20, 32, 8) == [0]


def test_window_is_smooth_and_one_on_image_borders() -> None:
    w = _ramp(32, 8, rise=True, fall=True)
    assert w[0] == 0 and w[-1] == 0 and w[1:-1].min() > 0 and torch.all(w[8:24] == 1)
    assert torch.all(w[1:8] >= w[:7])
    assert torch.all(_ramp(32, 8, rise=False, fall=False) == 1)  # image borders keep weight 1


def test_pointwise_fn_is_reproduced_exactly(device: torch.device) -> None:
    x = torch.randn(2, 3, 70, 45).to(device)
    out = tiled_apply(lambda t: t * 2 + 1, [x], tile=16, overlap=4)
    assert out.device == x.device and torch.allclose(out, x * 2 + 1, atol=1e-6)


def test_local_conv_is_reproduced_when_overlap_covers_receptive_field() -> None:
    conv = torch.nn.Conv2d(6, 2, 3, padding=1)
    a, b = torch.randn(1, 3, 40, 56), torch.randn(1, 3, 40, 56)
    with torch.no_grad():
        full = conv(torch.cat([a, b], 1))
        tiled = tiled_apply(lambda u, v: conv(torch.cat([u, v], 1)), [a, b], tile=16, overlap=8)
    assert torch.allclose(tiled, full, atol=1e-5)


def _tiny_dvsr():
    cfg = load_config(overrides=["predictor.base_channels=8", "denoiser.base_channels=8", "sample.tile_overlap=16"])
    return build_method(cfg).eval()


def test_tile_larger_than_image_equals_untiled() -> None:
    model = _tiny_dvsr()
    y = torch.rand(1, 3, 37, 53) * 2 - 1
    for steps in (0, 3):
        assert torch.equal(model.restore(y, steps=steps, seed=2, tile=64), model.restore(y, steps=steps, seed=2))


@pytest.mark.parametrize("steps", [0, 4])
def test_tiled_close_to_untiled_on_128x96(steps: int) -> None:
    """Tolerance: mean |Δ| < 1e-3 and max |Δ| < 0.05 on [−1, 1] images (tile 64, overlap 16, width-8 nets)."""
    model = _tiny_dvsr()
    y = torch.rand(1, 3, 96, 128) * 2 - 1
    full = model.restore(y, steps=steps, seed=1)
    tiled = model.restore(y, steps=steps, seed=1, tile=64)
    diff = (full - tiled).abs()
    print(f"tiled vs untiled (steps={steps}): mean {diff.mean():.2e}, max {diff.max():.2e}")
    assert diff.mean() < 1e-3 and diff.max() < 0.05
