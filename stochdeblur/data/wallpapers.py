"""Photographs shipped by Debian wallpaper packages, as sharp training content that looks like real photos.

Dead leaves and the scikit-image textures lack what photographs have: soft gradients, depth of field,
specular highlights, fine natural texture. Two Debian packages ship freely licensed photographs offline:
``plasma-workspace-wallpapers`` (KDE, each photo LGPL-3 per its ``metadata.json``) and ``mate-backgrounds``
(GPL-2+ per ``/usr/share/doc/mate-backgrounds/copyright``); ``make photos`` installs both. Only photographs
are listed (the packages' renders and paintings are left out), and none is an evaluation photo
(:mod:`stochdeblur.data.photos`; a test compares their pixels).

Each photo is kept at several downscale factors (default 0.5, 0.35, 0.25): an antialiased downscale removes
the photos' own slight blur, noise and JPEG artefacts, so crops are sharp targets. Images are decoded
lazily, once per process, and cached as uint8 (about 120 MB for the default scales); a DataLoader worker
loads them on its first photo item (~2 s).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from stochdeblur.config import ConfigError

DEFAULT_SCALES = (0.5, 0.35, 0.25)
SHARE = Path("/usr/share")  # where the packages install; tests point it elsewhere
PLASMA, MATE = "plasma-workspace-wallpapers", "mate-backgrounds"
INSTALL_HINT = f"run `make photos` (as root: apt-get install -y {PLASMA} {MATE})"


@dataclass(frozen=True)
class Wallpaper:
    """One training photograph: its name in the package, the package and the licence it is shipped under."""

    name: str
    package: str
    licence: str


# Plasma photos live in wallpapers/<name>/contents/images/ (several resolutions: the largest is used), MATE
# photos are backgrounds/mate/nature/<name>.jpg. Left out of mate's nature/: Storm.jpg, shot from a moving car
# (horizontal gradients ~14x weaker than vertical ones even at 1/4 scale): a motion-blurred "sharp" target.
WALLPAPERS = tuple(Wallpaper(name, PLASMA, "LGPL-3") for name in (
    "BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour", "EveningGlow", "FallenLeaf", "Grey", "Kite",
    "OneStandsOut", "Path", "summer_1am",
)) + tuple(Wallpaper(name, MATE, "GPL-2+") for name in (
    "Aqua", "Blinds", "Dune", "FreshFlower", "Garden", "GreenMeadow", "LadyBird", "RainDrops", "TwoWings",
    "Wood", "YellowFlower",
))

_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
# Colour jitter: brightness (gain), contrast (around the mean) and saturation (around gray), each U(1±a).
JITTER = 0.1


class WallpapersUnavailable(ConfigError):
    """No wallpaper photo is installed: a config error reported in one line that names the fix."""


def _photo_file(wallpaper: Wallpaper, share: Path) -> Path | None:
    """The installed file of ``wallpaper`` (the largest plasma resolution), or None."""
    if wallpaper.package == MATE:
        path = share / "backgrounds" / "mate" / "nature" / f"{wallpaper.name}.jpg"
        return path if path.is_file() else None
    folder = share / "wallpapers" / wallpaper.name / "contents" / "images"
    files = [p for p in folder.glob("*") if p.suffix.lower() in _IMAGE_SUFFIXES] if folder.is_dir() else []
    if not files:
        return None

    def area(path: Path) -> int:
        with Image.open(path) as im:  # reads the header only
            return im.width * im.height

    return max(files, key=area)


@lru_cache(maxsize=4)
def _find(share: Path) -> tuple[tuple[str, Path], ...]:
    found = ((w.name, _photo_file(w, share)) for w in WALLPAPERS)
    return tuple((name, path) for name, path in found if path is not None)


def wallpaper_files(share: str | Path | None = None) -> dict[str, Path]:
    """Name -> file of every listed photo that is installed (possibly none), in ``WALLPAPERS`` order.

    Looked up once per process and ``share`` folder (crops are drawn many times a second).
    """
    return dict(_find(Path(share) if share is not None else SHARE))


def require_wallpapers(share: str | Path | None = None) -> dict[str, Path]:
    """:func:`wallpaper_files`; raises :class:`WallpapersUnavailable` (naming the fix) if none is there."""
    files = wallpaper_files(share)
    if not files:
        root = Path(share) if share is not None else SHARE
        raise WallpapersUnavailable(f"data.photo_prob > 0 needs the wallpaper photographs, none found under "
                                    f"{root}: {INSTALL_HINT}, or set data.photo_prob=0")
    return files


def _check_scales(scales: Sequence[float]) -> tuple[float, ...]:
    scales = tuple(float(s) for s in scales)
    if not scales or not all(0.0 < s <= 1.0 for s in scales):
        raise ValueError(f"photo scales must be a non-empty list of factors in (0, 1], got {list(scales)}")
    return scales


def _load_one(path: Path, scales: tuple[float, ...]) -> tuple[np.ndarray, ...]:
    """``path`` at each scale (uint8 [H, W, 3], read-only), each Lanczos-downscaled from the next larger one.

    Chaining the resizes (largest scale first) is ~1.5x faster than resizing every scale from full size.
    """
    with Image.open(path) as im:
        image = im.convert("RGB")
    full, resized = image.size, {}
    for scale in sorted(set(scales), reverse=True):
        image = image.resize((max(1, round(full[0] * scale)), max(1, round(full[1] * scale))),
                             Image.Resampling.LANCZOS)
        resized[scale] = np.array(image, dtype=np.uint8)
        resized[scale].flags.writeable = False
    return tuple(resized[scale] for scale in scales)


@lru_cache(maxsize=4)
def _load(
    files: tuple[tuple[str, Path], ...], scales: tuple[float, ...]
) -> dict[str, tuple[np.ndarray, ...]]:
    """Decode and downscale every file (threads: PIL releases the GIL), once per process and argument set."""
    workers = min(8, os.cpu_count() or 1, len(files))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        loaded = list(pool.map(lambda item: _load_one(item[1], scales), files))
    return {name: images for (name, _), images in zip(files, loaded, strict=True)}


def load_wallpapers(
    scales: Sequence[float] = DEFAULT_SCALES, share: str | Path | None = None
) -> dict[str, tuple[np.ndarray, ...]]:
    """Name -> the photo at each of ``scales`` (uint8 [H, W, 3], read-only), cached in memory per process.

    Raises:
        WallpapersUnavailable: no listed photo is installed (the message says ``make photos``).
    """
    files = require_wallpapers(share)
    return _load(tuple(files.items()), _check_scales(scales))


def wallpaper_crop(
    size: int,
    rng: np.random.Generator,
    *,
    scales: Sequence[float] = DEFAULT_SCALES,
    share: str | Path | None = None,
) -> tuple[np.ndarray, str]:
    """A random ``size``² crop of a random installed photo at a random scale, flipped, rotated, jittered.

    The (photo, scale) pair is uniform among those at least ``size`` px on their short side; the crop gets a
    random horizontal flip, rot90 and a mild brightness/contrast/saturation jitter (±``JITTER``).

    Returns:
        (float32 [size, size, 3] in [0, 1], the photo's name).
    """
    photos = load_wallpapers(scales, share)
    choices = [(name, im) for name, images in photos.items() for im in images if min(im.shape[:2]) >= size]
    if not choices:
        raise ValueError(f"no wallpaper photo at scales {list(scales)} is {size} px on its short side")
    name, image = choices[int(rng.integers(len(choices)))]
    height, width = image.shape[:2]
    top, left = int(rng.integers(0, height - size + 1)), int(rng.integers(0, width - size + 1))
    crop = image[top : top + size, left : left + size].astype(np.float32) / 255.0
    if rng.integers(2):
        crop = crop[:, ::-1]
    crop = np.rot90(crop, k=int(rng.integers(4)))
    brightness, contrast, saturation = rng.uniform(1.0 - JITTER, 1.0 + JITTER, size=3)
    gray = crop @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    crop = gray[..., None] + saturation * (crop - gray[..., None])
    crop = gray.mean() + contrast * (crop - gray.mean())
    crop = np.clip(brightness * crop, 0.0, 1.0)
    return np.ascontiguousarray(crop, dtype=np.float32), name
