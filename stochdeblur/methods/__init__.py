"""Model families behind one contract (see :mod:`stochdeblur.methods.base`)."""

from __future__ import annotations

from collections.abc import Callable

from stochdeblur.config import RunConfig
from stochdeblur.methods.base import Method
from stochdeblur.methods.classical import ClassicalDeblurrer
from stochdeblur.methods.dvsr import DvSR
from stochdeblur.methods.gan import DeblurGAN

METHOD_BUILDERS: dict[str, Callable[[RunConfig], Method]] = {
    "dvsr": DvSR.from_config,
    "deblurganv2": DeblurGAN.from_config,
    "deblurgan_v1": DeblurGAN.from_config,
    "classical": ClassicalDeblurrer.from_config,
}


def build_method(cfg: RunConfig) -> Method:
    """The method named by ``cfg.method``, freshly initialised (``config.METHODS`` lists the same names)."""
    try:
        builder = METHOD_BUILDERS[cfg.method]
    except KeyError:
        raise ValueError(f"method={cfg.method!r} has no builder yet; available: {', '.join(METHOD_BUILDERS)}") from None
    return builder(cfg)
