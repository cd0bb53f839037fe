"""UNet: any H×W round-trips, the noise level matters, paper-width parameter counts match DvSR."""

from __future__ import annotations

import json

import pytest
import torch

from stochdeblur.cli import models as models_cli
from stochdeblur.config import DenoiserConfig, PredictorConfig
from stochdeblur.models import MODEL_ZOO, PREDICTOR_BUILDERS, build_denoiser, build_predictor
from stochdeblur.models.unet import UNet


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("size", [(37, 53), (32, 32), (8, 5), (1, 1)])
def test_any_size_round_trips(size: tuple[int, int]) -> None:
    net = UNet(6, 3, base_channels=8, noise_embed=True).eval()
    x = torch.randn(2, 6, *size)
    out = net(x, torch.rand(2))
    assert out.shape == (2, 3, *size)
    assert torch.isfinite(out).all()


def test_crop_back_keeps_content_aligned() -> None:
    """A padded odd-size image gives the same top-left output as a network run on its padded version."""
    net = UNet(3, 3, base_channels=8).eval()
    x = torch.randn(1, 3, 37, 53)
    padded = torch.nn.functional.pad(x, (0, 3, 0, 3), mode="reflect")
    with torch.no_grad():
        assert torch.allclose(net(x), net(padded)[..., :37, :53], atol=1e-6)


def test_noise_level_changes_output_and_is_required() -> None:
    net = UNet(6, 3, base_channels=8, noise_embed=True).eval()
    x = torch.randn(1, 6, 16, 16)
    with torch.no_grad():
        assert not torch.allclose(net(x, torch.tensor([0.1])), net(x, torch.tensor([0.9])))
    with pytest.raises(ValueError, match="noise_level"):
        net(x)


def test_film_variant_runs() -> None:
    net = UNet(6, 3, base_channels=8, noise_embed=True, film=True)
    assert net(torch.randn(2, 6, 16, 24), torch.rand(2)).shape == (2, 3, 16, 24)


def test_no_attention_or_normalization_layers() -> None:
    net = UNet(6, 3, base_channels=8, noise_embed=True)
    banned = (torch.nn.GroupNorm, torch.nn.BatchNorm2d, torch.nn.InstanceNorm2d, torch.nn.LayerNorm,
              torch.nn.MultiheadAttention)
    assert not any(isinstance(m, banned) for m in net.modules())
    assert net.size_multiple == 8


def test_paper_width_parameter_counts() -> None:
    """g (3→3, C=64) ≈ 26.8M and f (6→3, C=32, noise input) ≈ 6.8M, within 10% (DESIGN.md §3)."""
    g, f = build_predictor(PredictorConfig()), build_denoiser(DenoiserConfig())
    n_g, n_f = _params(g), _params(f)
    print(f"predictor g: {n_g / 1e6:.2f}M parameters, denoiser f: {n_f / 1e6:.2f}M parameters")
    assert abs(n_g - 26.8e6) / 26.8e6 < 0.10
    assert abs(n_f - 6.8e6) / 6.8e6 < 0.10
    assert f.in_channels == 6 and g.in_channels == 3
    assert build_denoiser(DenoiserConfig(condition_on_init=True)).in_channels == 9
    assert set(MODEL_ZOO) >= {"dvsr_predictor", "dvsr_denoiser"}


def test_predictor_type_without_builder_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(PREDICTOR_BUILDERS, "unet")
    with pytest.raises(ValueError, match="predictor.type='unet'"):
        build_predictor(PredictorConfig(type="unet"))


def test_models_cli_json_lists_the_zoo(capsys: pytest.CaptureFixture[str]) -> None:
    """scripts/models.py --json: exact MAC counts on the meta device (720p f ≈ 0.61 TMAC, DESIGN.md §3)."""
    assert models_cli.main(["--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["dvsr_denoiser"]["params"] == _params(build_denoiser(DenoiserConfig()))
    assert rows["dvsr_predictor"]["gmacs_256"] == pytest.approx(173.8, rel=0.01)
    assert models_cli.describe("dvsr_denoiser", MODEL_ZOO["dvsr_denoiser"])["gmacs_720p"] == pytest.approx(612, rel=0.01)


def test_input_residual_predictor_starts_as_identity_and_learns() -> None:
    torch.manual_seed(0)
    cfg = PredictorConfig(base_channels=8, num_res_blocks=1, input_residual=True)
    g = build_predictor(cfg)
    y = torch.rand(2, 3, 37, 53) * 2 - 1
    torch.testing.assert_close(g(y), y)
    (g(y) - torch.zeros_like(y)).abs().mean().backward()
    assert g.head.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="input_residual"):
        build_predictor(PredictorConfig(type="unet_xy", input_residual=True))
