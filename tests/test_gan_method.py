"""The DeblurGAN method: one G/D step on CPU with two optimizers, gradient hygiene, freezing, requirements."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from stochdeblur.config import load_config
from stochdeblur.losses import PerceptualUnavailable
from stochdeblur.methods import build_method
from stochdeblur.methods.gan import DeblurGAN
from stochdeblur.models.discriminator import DoubleScaleDiscriminator
from stochdeblur.models.resnet_gen import ResnetGenerator

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def batch(size: int = 32) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    sharp = torch.rand(2, 3, size, size, generator=g) * 2 - 1
    return {"blur": (sharp + 0.1 * torch.randn(sharp.shape, generator=g)).clamp(-1, 1), "sharp": sharp}


def small_v1() -> DeblurGAN:
    return DeblurGAN(ResnetGenerator(ngf=8, n_blocks=1), DoubleScaleDiscriminator(("patch",), ndf=8),
                     adv_loss="wgan-gp", mse_weight=0.0, perceptual="none", adv_weight=1.0)


@pytest.fixture(scope="module")
def v2() -> DeblurGAN:
    return build_method(load_config(CONFIGS / "deblurganv2_dsc_tiny.yaml"))


def grads(params: list[torch.nn.Parameter]) -> list[torch.Tensor | None]:
    return [None if p.grad is None else p.grad.clone() for p in params]


@pytest.mark.parametrize("name", ["deblurganv2_mobilenet_tiny", "deblurganv2_dsc_tiny", "deblurgan_v1_tiny",
                                  "deblurganv2_mobilenet", "deblurgan_v1"])
def test_configs_build_the_method(name: str) -> None:
    cfg = load_config(CONFIGS / f"{name}.yaml", ["gan.pretrained_backbone=false"])
    method = build_method(cfg)
    assert isinstance(method, DeblurGAN) and set(method.param_groups()) == {"g", "d"}
    assert cfg.gan.d_steps_per_g == (5 if "v1" in name else 1)


def test_one_gan_step_updates_g_and_d_and_g_step_leaves_d_grads_alone(v2: DeblurGAN) -> None:
    groups = v2.param_groups()
    opt = {k: torch.optim.Adam(v, lr=1e-3) for k, v in groups.items()}
    before = {k: [p.detach().clone() for p in v] for k, v in groups.items()}
    data = batch()

    out = v2(data, "d")
    assert {"loss", "d_adv"} <= set(out) and out["loss"].requires_grad
    out["loss"].backward()
    assert all(p.grad is None for p in groups["g"])  # G ran under no_grad
    assert all(p.grad is not None for p in groups["d"])
    d_grads = grads(groups["d"])
    opt["d"].step()

    out = v2(data, "g")
    assert {"loss", "mse", "adv"} <= set(out) and "perceptual" not in out
    out["loss"].backward()
    assert all(p.grad is not None for p in groups["g"])
    for old, p in zip(d_grads, groups["d"], strict=True):  # not polluted by the G step
        assert torch.equal(old, p.grad)
    assert all(p.requires_grad for p in groups["d"])  # flags restored
    opt["g"].step()

    for k in ("g", "d"):
        assert any(not torch.equal(b, p) for b, p in zip(before[k], groups[k], strict=True)), k
    assert len(v2.ragan["patch"].real_pool) == 2 and len(v2.ragan["full"].fake_pool) == 2


def test_wgan_gp_step_reports_the_penalty_and_trains() -> None:
    method = small_v1()
    out = method(batch(), "d", generator=torch.Generator().manual_seed(0))
    assert out["gp"].item() >= 0 and torch.isfinite(out["loss"])
    out["loss"].backward()
    assert all(p.grad is not None for p in method.discriminator.parameters())
    g_out = method(batch(), "g")
    assert g_out["loss"].item() == pytest.approx(g_out["adv"].item())  # mse and perceptual weights are 0


def test_a_pretrained_backbone_is_frozen_for_the_first_steps(pretrained_backbone_cache) -> None:
    method = build_method(load_config(CONFIGS / "deblurganv2_dsc_tiny.yaml", ["gan.pretrained_backbone=true"]))
    assert method.freeze_backbone_steps == 2 and method.requirements() == []
    assert torch.equal(method.generator.encoder[0][0].weight, pretrained_backbone_cache["conv_stem.weight"])
    backbone = method.generator.backbone_parameters()
    method.on_step(0)
    method(batch(), "g")["loss"].backward()
    assert all(p.grad is None for p in backbone)
    assert method.generator.final[1].weight.grad is not None
    method.zero_grad(set_to_none=True)
    method.on_step(2)
    method(batch(), "g")["loss"].backward()
    assert all(p.grad is not None for p in backbone)


def test_a_random_backbone_is_never_frozen_and_a_note_says_so(v2: DeblurGAN) -> None:
    assert v2.freeze_backbone_steps == 2 and not v2.generator.backbone_pretrained
    (note,) = v2.requirements()
    assert note.startswith("gan.freeze_backbone_steps=2 ignored: no pretrained backbone weights were loaded")
    v2.zero_grad(set_to_none=True)
    v2.on_step(0)
    v2(batch(), "g")["loss"].backward()
    assert all(p.grad is not None for p in v2.generator.backbone_parameters())


def test_restore_is_the_generator_output_any_size(v2: DeblurGAN) -> None:
    v2.eval()
    blur = torch.rand(1, 3, 37, 45) * 2 - 1
    out = v2.restore(blur, steps=10, average=4)  # diffusion arguments are ignored
    with torch.no_grad():
        assert torch.equal(out, v2.generator(blur))
    assert out.shape == blur.shape and out.abs().max() <= 1
    tiled = v2.restore(blur, tile=32)
    assert tiled.shape == blur.shape and (tiled - out).abs().mean() < 0.5


def test_missing_vgg_weights_fail_the_requirements_with_a_clear_message(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    method = small_v1()
    assert method.requirements() == []  # perceptual="none" needs no VGG
    method.perceptual, method.perceptual_weight = "vgg19", 100.0
    with pytest.raises(PerceptualUnavailable, match=r"vgg19-dcbb9e9d\.pth there, or set gan.perceptual=none"):
        method.requirements()
    with pytest.raises(PerceptualUnavailable):  # and the G step, outside the trainer
        method(batch(), "g")


def test_wgan_checkpoint_holds_generator_and_discriminator_only() -> None:
    method = small_v1()
    prefixes = {key.split(".")[0] for key in method.state_dict()}
    assert prefixes == {"generator", "discriminator"}  # WGAN-GP: no pools


def test_unknown_group_is_rejected() -> None:
    with pytest.raises(ValueError, match="'g' and 'd'"):
        small_v1()(batch(), "model")


def test_unet_xy_generator_builds_and_steps() -> None:
    cfg = load_config(CONFIGS / "deblurganv2_mobilenet_tiny.yaml",
                      ["gan.generator=unet_xy", "predictor.base_channels=8", "predictor.channel_mults=[1,2]",
                       "predictor.num_res_blocks=1", "gan.discriminator=patch"])
    method = build_method(cfg)
    out = method(batch(), "g")
    out["loss"].backward()
    assert all(p.grad is not None for p in method.generator.parameters())
