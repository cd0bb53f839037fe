"""CC0 / public-domain images shipped by scikit-image, as sharp training content beside dead leaves.

Dead leaves teach edges and occlusions but no natural texture (grass, gravel, brick, fabric, text). These
images add them without a download. None of them is an evaluation photo (:mod:`stochdeblur.data.photos`);
a test checks that. Gray images are tinted by a random colour per crop, every crop is randomly rescaled
(0.5–1×, antialiased) and flipped/rotated, so eight images give many distinct training crops.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence

import numpy as np
from PIL import Image

from stochdeblur.config import ConfigError

# name in skimage.data -> licence as its docstring states it (all usable for training and redistribution).
# Left out although CC0: retina and cell (mostly smooth or empty, little to learn from per crop).
TRAINING_IMAGES = {
    "camera": "CC0 (Lav Varshney)",
    "brick": "CC0 (CC0Textures)",
    "grass": "CC0 (CC0Textures)",
    "gravel": "CC0 (CC0Textures)",
    "coins": "no known copyright restrictions",
    "text": "public domain",
    "hubble_deep_field": "public domain (NASA)",
    "immunohistochemistry": "no known copyright restrictions",
}


class TexturesUnavailable(ConfigError):
    """scikit-image (which ships the images) is not installed: a config error, reported in one line."""


def load_training_images(names: Sequence[str] = tuple(TRAINING_IMAGES)) -> dict[str, np.ndarray]:
    """Name -> uint8 [H, W, 3] of each requested image (gray replicated to 3 channels)."""
    if importlib.util.find_spec("skimage") is None:
        raise TexturesUnavailable("data.texture_prob > 0 needs scikit-image, which ships the texture images "
                                  "(pip install scikit-image, or set data.texture_prob=0)")
    import skimage.data

    unknown = sorted(set(names) - set(TRAINING_IMAGES))
    if unknown:
        raise ValueError(f"not CC0/public-domain training images: {unknown}; choose from {list(TRAINING_IMAGES)}")
    images = {}
    for name in names:
        image = np.asarray(getattr(skimage.data, name)())
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        images[name] = np.ascontiguousarray(image[..., :3], dtype=np.uint8)
    return images


def texture_crop(images: Sequence[np.ndarray], size: int, rng: np.random.Generator) -> np.ndarray:
    """A random ``size``² crop of a random image: rescaled 0.5–1×, flipped/rotated, gray ones tinted.

    Returns float32 [size, size, 3] in [0, 1].
    """
    image = images[int(rng.integers(len(images)))]
    height, width = image.shape[:2]
    scale = max(float(rng.uniform(0.5, 1.0)), size / min(height, width))
    window = min(height, width, int(np.ceil(size / scale)))
    top, left = int(rng.integers(0, height - window + 1)), int(rng.integers(0, width - window + 1))
    region = image[top : top + window, left : left + window]
    gray = np.array_equal(region[..., 0], region[..., 1]) and np.array_equal(region[..., 1], region[..., 2])
    patch = Image.fromarray(region).resize((size, size), Image.Resampling.LANCZOS)
    crop = np.asarray(patch, dtype=np.float32) / 255.0
    if rng.integers(2):
        crop = crop[:, ::-1]
    crop = np.rot90(crop, k=int(rng.integers(4)))
    if gray:
        tint = rng.uniform(0.55, 1.0, size=3).astype(np.float32)
        crop = crop * (tint / tint.max())
    return np.clip(np.ascontiguousarray(crop), 0.0, 1.0)
