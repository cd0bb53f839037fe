"""stochdeblur: blind motion deblurring with predict-and-refine diffusion (DvSR) and DeblurGAN baselines."""

__version__ = "0.1.0"

from stochdeblur.config import RunConfig, load_config  # noqa: E402  (hub reads __version__)
from stochdeblur.hub import load_default, load_pretrained  # noqa: E402
from stochdeblur.restorer import Restorer  # noqa: E402

__all__ = ["Restorer", "RunConfig", "load_config", "load_default", "load_pretrained", "__version__"]
