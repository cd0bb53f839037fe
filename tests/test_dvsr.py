"""DvSR method: the joint loss, its gradients into both nets, overfitting, and restore() modes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from stochdeblur.config import load_config
from stochdeblur.methods import build_method
from stochdeblur.methods.base import Method
from stochdeblur.methods.dvsr import DvSR


def _tiny(*overrides: str) -> DvSR:
    cfg = load_config(overrides=["predictor.base_channels=8", "denoiser.base_channels=8", *overrides])
    return build_method(cfg)


def _pairs(n: int = 4, size: int = 32, seed: int = 0) -> dict[str, torch.Tensor]:
    """Smooth random sharp images and their 5×5 box blur, in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, size // 8, size // 8, generator=g)
    sharp = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1) * 2 - 1
    blur = F.avg_pool2d(F.pad(sharp, (2, 2, 2, 2), mode="replicate"), 5, stride=1)
    return {"blur": blur, "sharp": sharp, "name": [f"p{i}" for i in range(n)]}


def test_method_contract_and_loss_keys() -> None:
    model = _tiny("diffusion.aux_predictor_weight=0.5")
    assert isinstance(model, Method)
    assert list(model.param_groups()) == ["model"]
    assert len(model.param_groups()["model"]) == len(list(model.parameters()))
    out = model(_pairs(2), "model", torch.Generator().manual_seed(0))
    assert set(out) == {"loss", "eps_l1", "aux_l1"}
    assert torch.isfinite(out["loss"])
    assert out["loss"].item() == pytest.approx(out["eps_l1"].item() + 0.5 * out["aux_l1"].item(), rel=1e-5)


def test_loss_is_seeded_by_the_generator() -> None:
    model, batch = _tiny(), _pairs(2)
    a = model.loss(batch, torch.Generator().manual_seed(3))["loss"]
    b = model.loss(batch, torch.Generator().manual_seed(3))["loss"]
    assert torch.equal(a, b)


def test_gradients_reach_the_predictor_through_the_residual() -> None:
    model = _tiny()
    model.loss(_pairs(2), torch.Generator().manual_seed(0))["loss"].backward()
    g_grad = sum(p.grad.abs().sum() for p in model.predictor.parameters() if p.grad is not None)
    f_grad = sum(p.grad.abs().sum() for p in model.denoiser.parameters() if p.grad is not None)
    assert g_grad > 0 and f_grad > 0


def test_tiny_dvsr_overfits_four_pairs() -> None:
    """100 Adam steps on 4 synthetic pairs: the ε-loss stays finite and drops clearly."""
    torch.manual_seed(0)
    model, batch = _tiny(), _pairs(4)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    generator = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(100):
        loss = model.loss(batch, generator)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    print(f"eps-L1 first 10 steps {first:.3f}, last 10 steps {last:.3f}")
    assert all(map(torch.isfinite, map(torch.tensor, losses)))
    assert last < 0.8 * first


def test_restore_modes_shapes_and_range() -> None:
    model = _tiny("denoiser.condition_on_init=true").eval()
    y = torch.rand(2, 3, 37, 53) * 2 - 1
    init = model.restore(y)
    assert init.shape == y.shape and init.abs().max() <= 1
    assert torch.equal(init, model.restore(y, steps=0))
    out = model.restore(y, steps=3, average=2, seed=5, sampler="ddim")
    assert out.shape == y.shape and out.abs().max() <= 1
    assert torch.equal(out, model.restore(y, steps=3, average=2, seed=5, sampler="ddim"))
    assert model.validation_images(y)["x_init"].shape == y.shape


def test_named_modes_follow_the_config_presets() -> None:
    model = _tiny("sample.steps=2", "sample.average=3", "sample.modes.perceptual.steps=4",
                  "sample.modes.quick.steps=1").eval()
    y = torch.rand(1, 3, 16, 16) * 2 - 1
    assert torch.equal(model.restore(y, mode="predictor"), model.restore(y))
    assert torch.equal(model.restore(y, mode="average", seed=1), model.restore(y, steps=2, average=3, seed=1))
    assert torch.equal(model.restore(y, mode="perceptual"), model.restore(y, steps=4))
    assert torch.equal(model.restore(y, mode="perceptual", average=2), model.restore(y, steps=4, average=2))
    assert torch.equal(model.restore(y, mode="quick"), model.restore(y, steps=1))
    with pytest.raises(ValueError, match="unknown mode 'sharpest'.*predictor, average, perceptual, perceptual_500, quick"):
        model.restore(y, mode="sharpest")


def test_return_samples_keeps_the_default_output_bit_for_bit() -> None:
    model = _tiny().eval()
    model.average_chunk = 2  # 3 samples over two denoiser calls
    y = torch.rand(2, 3, 24, 16) * 2 - 1
    result = model.restore(y, steps=2, average=3, seed=4, return_samples=True)
    assert torch.equal(result.image, model.restore(y, steps=2, average=3, seed=4))
    assert result.samples.shape == (3, 2, 3, 24, 16) and result.sigma.shape == (2, 24, 16)
    for k in range(3):  # sample k is the single sample of seed + k
        assert torch.allclose(result.samples[k], model.restore(y, steps=2, seed=4 + k), atol=1e-5)
    assert result.sigma.min() >= 0 and result.sigma.max() <= 0.5 and result.sigma.mean() > 0
    for one in (model.restore(y, steps=2, return_samples=True), model.restore(y, return_samples=True)):
        assert one.samples.shape[0] == 1 and torch.count_nonzero(one.sigma) == 0


@pytest.mark.parametrize("predictor", ["fpn_mobilenet_dsc", "unet_xy"])
def test_other_predictors_drop_in_for_g(predictor: str) -> None:
    """A DeblurGAN-v2 generator (or XYDeblur) as g: trains through the joint loss and restores odd sizes."""
    torch.manual_seed(0)
    model = _tiny(f"predictor.type={predictor}", "predictor.channel_mults=[1,2]", "predictor.num_res_blocks=1")
    out = model(_pairs(2), "model")
    out["loss"].backward()
    assert all(p.grad is not None for p in model.predictor.parameters() if p.requires_grad)
    with torch.no_grad():
        restored = model.eval().restore(torch.rand(1, 3, 37, 45) * 2 - 1, steps=2, average=2)
    assert restored.shape == (1, 3, 37, 45) and restored.abs().max() <= 1
