"""Blur physics: the forward operator, kernel utilities, non-blind deconvolution and blind kernel estimation.

One concept per module, batched torch, images in [−1, 1], kernels ``[k, k]`` (or ``[B, k, k]``) non-negative and
summing to 1 in :func:`stochdeblur.data.synth.degrade`'s convention (true convolution, centre ``k // 2``, valid crop
offset ``k − 1 − k // 2``):

* :mod:`~stochdeblur.physics.operators` — valid and circular blur, OTFs;
* :mod:`~stochdeblur.physics.kernels` — normalise, centre, resize, prune, pad, compare (NCC);
* :mod:`~stochdeblur.physics.nonblind` — :func:`deconvolve` (TV / hyper-Laplacian / Wiener, boundary-exact ADMM);
* :mod:`~stochdeblur.physics.blind` — :func:`estimate_kernel` (coarse-to-fine blind estimation, Pan et al. 2014)
  and :func:`kernel_confidence` (a no-reference check of an estimate).
"""

from stochdeblur.physics.blind import estimate_kernel, kernel_confidence
from stochdeblur.physics.nonblind import PRIORS, deconvolve
from stochdeblur.physics.operators import blur_circular, blur_valid, psf2otf

__all__ = ["PRIORS", "blur_circular", "blur_valid", "deconvolve", "estimate_kernel", "kernel_confidence",
           "psf2otf"]
