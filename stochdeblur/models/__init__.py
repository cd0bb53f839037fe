"""Network builders: the predictor/generator choice is an explicit dict (grep-able, no import side effects).

``PREDICTOR_BUILDERS`` maps ``PredictorConfig.type`` to a builder; families add their entry there.
``MODEL_ZOO`` lists every named network at its paper width for ``scripts/models.py``, with the inputs of one
forward pass.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from stochdeblur.config import DenoiserConfig, PredictorConfig
from stochdeblur.models.discriminator import NLayerDiscriminator
from stochdeblur.models.fpn import FPNGenerator
from stochdeblur.models.kernel_aware import KernelAwarePredictor
from stochdeblur.models.resnet_gen import ResnetGenerator
from stochdeblur.models.unet import UNet
from stochdeblur.models.xy import XYDeblur


def _unet_predictor(cfg: PredictorConfig) -> nn.Module:
    return UNet(in_channels=3, out_channels=3, base_channels=cfg.base_channels,
                channel_mults=tuple(cfg.channel_mults), num_res_blocks=cfg.num_res_blocks, dropout=cfg.dropout,
                input_residual=cfg.input_residual)


def _without_input_residual(cfg: PredictorConfig) -> PredictorConfig:
    """Only the plain UNet takes the flag (XYDeblur's halves never add the input; the kernel-aware refiner always
    adds the deconvolution): refuse it elsewhere."""
    if cfg.input_residual:
        raise ValueError("predictor.input_residual applies to predictor.type=unet only")
    return cfg


def _kernel_aware_predictor(cfg: PredictorConfig) -> nn.Module:
    _without_input_residual(cfg)  # the refiner always adds its input (the deconvolution)
    return KernelAwarePredictor(cfg.kernel_size, estimator_channels=cfg.estimator_channels,
                                refiner_channels=cfg.base_channels, channel_mults=tuple(cfg.channel_mults),
                                num_res_blocks=cfg.num_res_blocks, deconv_iterations=cfg.deconv_iterations,
                                deconv_lam=cfg.deconv_lam or None, kernel_source=cfg.kernel_source,
                                kernel_blur_max=cfg.kernel_blur_max, wrong_kernel_prob=cfg.wrong_kernel_prob,
                                edge_fraction=cfg.edge_fraction, reblur_input=cfg.reblur_input)


def _fpn_predictor(backbone: str) -> Callable[[PredictorConfig], nn.Module]:
    return lambda cfg: FPNGenerator(backbone, pretrained_backbone=cfg.pretrained_backbone)


PREDICTOR_BUILDERS: dict[str, Callable[[PredictorConfig], nn.Module]] = {
    "unet": _unet_predictor,
    "unet_xy": lambda cfg: XYDeblur(_unet_predictor(_without_input_residual(cfg))),
    "kernel_aware": _kernel_aware_predictor,
    "fpn_mobilenet": _fpn_predictor("mobilenet_v2"),
    "fpn_inception": _fpn_predictor("inception_resnet_v2"),
    "fpn_mobilenet_dsc": _fpn_predictor("mobilenet_dsc"),
}


def build_predictor(cfg: PredictorConfig) -> nn.Module:
    """The initial predictor g named by ``cfg.type``: maps y [B,3,H,W] in [-1,1] to x_init, any H×W."""
    try:
        builder = PREDICTOR_BUILDERS[cfg.type]
    except KeyError:
        raise ValueError(f"predictor.type={cfg.type!r} has no builder yet; available: "
                         f"{', '.join(PREDICTOR_BUILDERS)}") from None
    return builder(cfg)


def build_denoiser(cfg: DenoiserConfig) -> UNet:
    """The residual denoiser f: UNet on [y, z_t] (6 ch), or [y, g(y), z_t] (9 ch) with ``condition_on_init``."""
    return UNet(in_channels=9 if cfg.condition_on_init else 6, out_channels=3, base_channels=cfg.base_channels,
                channel_mults=tuple(cfg.channel_mults), num_res_blocks=cfg.num_res_blocks, dropout=cfg.dropout,
                noise_embed=True, film=cfg.film, noise_embed_scale=cfg.noise_embed_scale)


@dataclass(frozen=True)
class ZooEntry:
    """A named network: its constructor and what one forward pass takes, ``[1, in_channels, h, w]`` images
    plus, with ``noise_level``, a noise level ``[1]`` (the residual denoiser f)."""

    build: Callable[[], nn.Module]
    in_channels: int = 3
    noise_level: bool = False


MODEL_ZOO: dict[str, ZooEntry] = {
    "dvsr_predictor": ZooEntry(lambda: build_predictor(PredictorConfig())),
    "dvsr_denoiser": ZooEntry(lambda: build_denoiser(DenoiserConfig()), in_channels=6, noise_level=True),
    "kernel_aware_predictor": ZooEntry(lambda: build_predictor(PredictorConfig(type="kernel_aware", base_channels=32,
                                                                               num_res_blocks=2))),
    "fpn_mobilenet": ZooEntry(lambda: FPNGenerator("mobilenet_v2")),
    "fpn_inception": ZooEntry(lambda: FPNGenerator("inception_resnet_v2")),
    "fpn_mobilenet_dsc": ZooEntry(lambda: FPNGenerator("mobilenet_dsc")),
    "deblurgan_v1": ZooEntry(ResnetGenerator),
    "discriminator_patch": ZooEntry(lambda: NLayerDiscriminator(n_layers=3)),
    "discriminator_full": ZooEntry(lambda: NLayerDiscriminator(n_layers=5)),
}
"""Every named network at its paper width, for ``scripts/models.py``."""
