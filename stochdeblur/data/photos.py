"""Real photos shipped inside installed packages, degraded by known random-trajectory blur (evaluation only).

A benchmark that needs no download: scikit-image's sample photos (astronaut, coffee, chelsea, rocket),
scikit-learn's ``china.jpg``/``flower.jpg`` when scikit-learn is installed, and matplotlib's
``grace_hopper.jpg``, each blurred by its own seeded camera-shake kernel plus Gaussian noise. The true
kernel comes with every item, for non-blind baselines. These photos are never used to train the default
model (DESIGN.md §5).
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from stochdeblur.data.synth import degrade, motion_kernel

SKIMAGE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")
KERNEL_MAX, NOISE = 33, 0.01  # the benchmark's synthetic blur: kernels of 7–33 px, noise σ = 0.01


def _skimage_loader(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import skimage.data

        return getattr(skimage.data, name)()

    return load


def _sklearn_loader(index: int) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from sklearn.datasets import load_sample_images

        return load_sample_images().images[index]

    return load


def _grace_hopper() -> np.ndarray:
    from matplotlib import cbook
    from PIL import Image

    with Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)) as im:
        return np.asarray(im.convert("RGB"))


def available_photos() -> dict[str, Callable[[], np.ndarray]]:
    """Name -> loader (uint8 [H, W, 3]) of every sample photo the installed packages provide offline."""
    photos: dict[str, Callable[[], np.ndarray]] = {}
    if importlib.util.find_spec("skimage") is not None:
        photos.update({name: _skimage_loader(name) for name in SKIMAGE_PHOTOS})
    if importlib.util.find_spec("sklearn") is not None:
        photos.update(china=_sklearn_loader(0), flower=_sklearn_loader(1))
    photos["grace_hopper"] = _grace_hopper
    return photos


def _center_crop(image: np.ndarray, size: int) -> np.ndarray:
    h, w = image.shape[:2]
    if h < size or w < size:
        raise ValueError(f"photo of {h}x{w} px is smaller than the requested crop {size}")
    top, left = (h - size) // 2, (w - size) // 2
    return image[top:top + size, left:left + size]


class PhotoPairs(Dataset):
    """Sample photos blurred by seeded random-trajectory kernels (sizes ``kernel_min..kernel_max``) + noise.

    Item ``i`` depends only on ``(seed, i)``. Blur uses valid convolution, so the pair is the photo minus a
    ``k - 1`` border (or exactly ``crop``² when ``crop`` is set: the centre crop is taken with that margin).

    Returns:
        ``{"blur": [3,H,W], "sharp": [3,H,W]`` in [-1, 1], ``"name": str, "kernel": [k, k]`` (sums to 1;
        left out with ``return_kernel=False`` so items of different kernel sizes batch together)``}``.
    """

    def __init__(self, kernel_max: int = KERNEL_MAX, noise: float = NOISE, seed: int = 0,
                 crop: int | None = None, kernel_min: int = 7, names: list[str] | None = None,
                 return_kernel: bool = True) -> None:
        if not 3 <= kernel_min <= kernel_max:
            raise ValueError(f"need 3 <= kernel_min <= kernel_max, got {kernel_min}, {kernel_max}")
        photos = available_photos()
        unknown = sorted(set(names or []) - set(photos))
        if unknown:
            raise ValueError(f"unknown or unavailable photos: {', '.join(unknown)} (have {', '.join(photos)})")
        self.names = list(names) if names else list(photos)
        self._loaders = photos
        self.kernel_min, self.kernel_max = kernel_min, kernel_max
        self.noise, self.seed, self.crop = noise, seed, crop
        self.return_kernel = return_kernel

    def __len__(self) -> int:
        return len(self.names)

    def item_name(self, index: int) -> str:
        """The name of photo ``index``, without loading it."""
        return self.names[index]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        name = self.names[index]
        rng = np.random.default_rng([self.seed, index])
        size = int(rng.integers(self.kernel_min, self.kernel_max + 1))
        kernel = motion_kernel(size, rng)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            photo = self._loaders[name]().astype(np.float32) / 255.0
        if self.crop is not None:
            photo = _center_crop(photo, self.crop + size - 1)
        blur, sharp = degrade(photo, kernel, rng, noise_sigma=self.noise)
        item = {"blur": _tensor(blur), "sharp": _tensor(sharp), "name": name}
        if self.return_kernel:
            item["kernel"] = torch.from_numpy(np.ascontiguousarray(kernel, dtype=np.float32))
        return item


def _tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))) * 2.0 - 1.0


def photo_pairs(kernel_max: int = KERNEL_MAX, noise: float = NOISE, seed: int = 0,
                crop: int | None = None) -> PhotoPairs:
    """The ``synthetic:photos`` benchmark: every available sample photo, blurred with a known kernel."""
    return PhotoPairs(kernel_max=kernel_max, noise=noise, seed=seed, crop=crop)
