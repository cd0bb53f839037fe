"""stochdeblur: blind motion deblurring with predict-and-refine diffusion (DvSR) and DeblurGAN baselines."""

from stochdeblur.config import RunConfig, load_config

__version__ = "0.1.0"

__all__ = ["RunConfig", "load_config", "__version__"]
