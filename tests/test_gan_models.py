"""DeblurGAN-v2/v1 generators, discriminators and the XYDeblur wrapper: shapes, parameter counts, weights."""

from __future__ import annotations

import warnings

import pytest
import timm
import torch

from stochdeblur.config import PredictorConfig
from stochdeblur.models import MODEL_ZOO, build_predictor
from stochdeblur.models.discriminator import DoubleScaleDiscriminator
from stochdeblur.models.fpn import FPNGenerator, PretrainedWeightsMissing
from stochdeblur.models.resnet_gen import ResnetGenerator
from stochdeblur.models.unet import UNet
from stochdeblur.models.xy import XYDeblur

# Official "params used" (DEBLURGAN.md §1, §2, §5).
OFFICIAL_PARAMS = {
    "fpn_mobilenet": 2_106_627,
    "fpn_inception": 35_840_099,
    "deblurgan_v1": 11_378_179,
    "discriminator_patch": 2_764_737,
    "discriminator_full": 11_154_369,
}


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def tiny_unet() -> UNet:
    return UNet(3, 3, base_channels=8, channel_mults=(1, 2), num_res_blocks=1)


@pytest.fixture(scope="module")
def generators() -> dict[str, torch.nn.Module]:
    return {
        "fpn_mobilenet": FPNGenerator("mobilenet_v2"),
        "fpn_mobilenet_dsc": FPNGenerator("mobilenet_dsc"),
        "fpn_inception": FPNGenerator("inception_resnet_v2"),
        "deblurgan_v1": ResnetGenerator(ngf=8, n_blocks=2),
        "unet_xy": XYDeblur(tiny_unet()),
    }


@pytest.mark.parametrize("name", ["fpn_mobilenet", "fpn_mobilenet_dsc", "fpn_inception", "deblurgan_v1", "unet_xy"])
def test_generators_keep_odd_sizes(generators: dict[str, torch.nn.Module], name: str) -> None:
    x = torch.rand(2, 3, 33, 47) * 2 - 1
    with torch.no_grad():
        y = generators[name].eval()(x)
    assert y.shape == x.shape
    assert torch.isfinite(y).all()
    if name != "unet_xy":  # the XY UNet is unbounded like the UNet; the GAN generators clamp
        assert y.min() >= -1 and y.max() <= 1


@pytest.mark.parametrize("name", sorted(OFFICIAL_PARAMS))
def test_parameter_counts_match_official(name: str) -> None:
    count = n_params(MODEL_ZOO[name].build())
    assert abs(count - OFFICIAL_PARAMS[name]) <= 0.02 * OFFICIAL_PARAMS[name]


def test_double_scale_discriminator_counts_and_outputs() -> None:
    disc = DoubleScaleDiscriminator()
    assert n_params(disc.branches["patch"]) == OFFICIAL_PARAMS["discriminator_patch"]
    assert n_params(disc.branches["full"]) == OFFICIAL_PARAMS["discriminator_full"]
    out = disc(torch.zeros(2, 3, 64, 64))
    assert set(out) == {"patch", "full"}
    assert out["patch"].shape == (2, 1, 11, 11) and out["full"].shape == (2, 1, 5, 5)
    assert set(DoubleScaleDiscriminator(("patch",))(torch.zeros(1, 3, 32, 32))) == {"patch"}
    with pytest.raises(ValueError, match="branches"):
        DoubleScaleDiscriminator(("huge",))


@pytest.mark.parametrize(("backbone", "channels"), [("mobilenet_v2", (16, 24, 32, 64, 160)),
                                                    ("inception_resnet_v2", (32, 64, 192, 1088, 2080))])
def test_backbone_taps_match_official_strides_and_channels(generators: dict[str, torch.nn.Module],
                                                           backbone: str, channels: tuple[int, ...]) -> None:
    model = generators["fpn_mobilenet" if backbone == "mobilenet_v2" else "fpn_inception"]
    x = torch.zeros(1, 3, 32, 64)
    with torch.no_grad():
        for i, stage in enumerate(model.encoder):
            x = stage(x)
            assert x.shape[1:] == (channels[i], 32 >> (i + 1), 64 >> (i + 1))


def test_fpn_is_a_global_residual() -> None:
    model = FPNGenerator("mobilenet_v2").eval()
    torch.nn.init.zeros_(model.final.weight)
    torch.nn.init.zeros_(model.final.bias)
    x = torch.rand(1, 3, 40, 40) * 2 - 1
    with torch.no_grad():
        assert torch.equal(model(x), x)  # tanh(0) + x


def test_dsc_variant_has_only_separable_3x3_convs_outside_the_stem() -> None:
    model = FPNGenerator("mobilenet_dsc")
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Conv2d) and module.kernel_size != (1, 1) and name != "encoder.0.0":
            assert module.groups == module.in_channels, name
    assert n_params(model) < n_params(FPNGenerator("mobilenet_v2")) * 0.6


def test_missing_backbone_weights_warn_and_fall_back(tmp_path, monkeypatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    with pytest.warns(PretrainedWeightsMissing, match="random init") as record:
        model = FPNGenerator("mobilenet_v2", pretrained_backbone=True)
    assert len(record) == 1
    assert n_params(model) == OFFICIAL_PARAMS["fpn_mobilenet"]


def test_cached_backbone_weights_are_loaded(tmp_path, monkeypatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    reference = timm.create_model("mobilenetv2_100")
    url = timm.models.get_pretrained_cfg("mobilenetv2_100").url
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(reference.state_dict(), tmp_path / "hub" / "checkpoints" / url.rsplit("/", 1)[-1])
    with warnings.catch_warnings():
        warnings.simplefilter("error", PretrainedWeightsMissing)
        model = FPNGenerator("mobilenet_v2", pretrained_backbone=True)
    assert torch.equal(model.encoder[0][0].weight, reference.conv_stem.weight)
    assert torch.equal(model.encoder[4][2].conv_pwl.weight, reference.blocks[5][1].conv_pwl.weight)


def test_resnet_generator_is_v1_layout() -> None:
    model = ResnetGenerator(ngf=8, n_blocks=2)
    drop = [m for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    norms = [m for m in model.modules() if isinstance(m, torch.nn.InstanceNorm2d)]
    assert len(drop) == 2 and drop[0].p == 0.5 and len(norms) == 3 + 2 * 2 + 2


def test_predictor_types_build() -> None:
    for kind in ("fpn_mobilenet_dsc", "unet_xy"):
        model = build_predictor(PredictorConfig(type=kind, base_channels=8, channel_mults=[1, 2], num_res_blocks=1))
        assert model.size_multiple in (2, 32)


def test_xydeblur_adds_no_parameters_and_matches_its_formula() -> None:
    unet = tiny_unet()
    xy = XYDeblur(unet)
    assert n_params(xy) == n_params(unet)
    assert [n.removeprefix("unet.") for n, _ in xy.named_parameters()] == [n for n, _ in unet.named_parameters()]
    x = torch.rand(1, 3, 10, 14) * 2 - 1  # non-square, padded to 10×14 → even multiple of 2
    with torch.no_grad():
        h, skips, emb = unet.encode(x)
        expected = x + unet.decode(h, skips, emb) + torch.rot90(
            unet.decode(torch.rot90(h, 1, (2, 3)), [torch.rot90(s, 1, (2, 3)) for s in skips], emb), -1, (2, 3))
        assert torch.allclose(xy(x), expected, atol=1e-6)
        assert torch.allclose(unet(x), unet.decode(h, skips, emb), atol=1e-6)  # encode/decode split == forward


def _symmetrize(module: torch.nn.Module, rotations: tuple[int, ...]) -> None:
    """Average every 3×3 kernel over the given 90° rotations (makes the convs commute with them)."""
    with torch.no_grad():
        for conv in module.modules():
            if isinstance(conv, torch.nn.Conv2d) and conv.kernel_size == (3, 3):
                conv.weight.copy_(sum(torch.rot90(conv.weight, k, (2, 3)) for k in rotations) / len(rotations))


def test_xydeblur_is_rot90_equivariant_when_encoder_is_and_decoder_is_180_symmetric() -> None:
    # A single-level UNet has no stride-2 sampling and no padding, so symmetric kernels make E commute with
    # every rotation R and D with R² only; XYDeblur then commutes with R (module docstring), the bare UNet not.
    unet = UNet(3, 3, base_channels=8, channel_mults=(1,), num_res_blocks=1).double()
    _symmetrize(torch.nn.ModuleList([unet.stem, unet.down]), (0, 1, 2, 3))
    _symmetrize(torch.nn.ModuleList([unet.middle, unet.up, unet.head]), (0, 2))
    xy = XYDeblur(unet)
    x = torch.rand(2, 3, 12, 9, dtype=torch.float64) * 2 - 1
    rot = lambda t: torch.rot90(t, 1, (2, 3))  # noqa: E731
    with torch.no_grad():
        assert torch.allclose(xy(rot(x)), rot(xy(x)), atol=1e-10)
        assert not torch.allclose(unet(rot(x)), rot(unet(x)), atol=1e-4)
