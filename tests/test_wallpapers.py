"""Wallpaper photographs as training content: listed and licensed, never an evaluation photo, seeded crops."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stochdeblur.config import ConfigError, DataConfig
from stochdeblur.data import build_dataset, wallpapers
from stochdeblur.data.photos import available_photos
from stochdeblur.data.synth import SyntheticPairs
from stochdeblur.data.textures import load_training_images
from stochdeblur.data.wallpapers import (
    WALLPAPERS,
    WallpapersUnavailable,
    load_wallpapers,
    wallpaper_crop,
    wallpaper_files,
)

installed = pytest.mark.skipif(
    not wallpaper_files(), reason="no wallpaper photo installed (make photos installs them)"
)
SMALL = (0.125, 0.0625)  # coarse scales, loaded once for all tests: crops of up to 64 px fit every photo


def _thumbnail(image: Image.Image | np.ndarray) -> np.ndarray:
    """A 32x32 gray thumbnail (aspect ignored), zero-mean and unit-norm, for correlating pixel content."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(np.asarray(image)[..., :3])
    image.draft("RGB", (64, 64))  # JPEG: decode at reduced size
    gray = np.asarray(image.convert("L").resize((32, 32), Image.Resampling.BOX), np.float64).ravel()
    gray -= gray.mean()
    return gray / (np.linalg.norm(gray) + 1e-9)


def test_list_is_unique_and_licensed() -> None:
    names = [w.name for w in WALLPAPERS]
    assert len(names) == len(set(names)) == 22
    assert {w.licence for w in WALLPAPERS} == {"LGPL-3", "GPL-2+"}
    assert not set(names) & set(available_photos())


@installed
def test_no_training_wallpaper_is_an_evaluation_photo() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        evaluation = {name: _thumbnail(load()) for name, load in available_photos().items()}
    assert evaluation
    for name, path in wallpaper_files().items():
        with Image.open(path) as im:
            thumb = _thumbnail(im)
        scores = {other: float(thumb @ t) for other, t in evaluation.items()}
        assert max(scores.values()) < 0.9, (name, scores)
    # The comparison does catch a photo: a wallpaper against its own downscaled copy.
    name = next(iter(wallpaper_files()))
    with Image.open(wallpaper_files()[name]) as im:
        thumb = _thumbnail(im)
    assert thumb @ _thumbnail(load_wallpapers(SMALL)[name][0]) > 0.99


@installed
def test_loaded_at_each_scale_as_read_only_uint8() -> None:
    photos = load_wallpapers(SMALL)
    assert set(photos) == set(wallpaper_files())
    name, (coarse, coarser) = next(iter(photos.items()))
    with Image.open(wallpaper_files()[name]) as im:
        width, height = im.size
    assert coarse.dtype == np.uint8 and coarse.shape == (round(height / 8), round(width / 8), 3)
    assert coarser.shape[:2] == (round(height / 16), round(width / 16))
    assert not coarse.flags.writeable
    assert load_wallpapers(SMALL) is photos  # cached: loaded once per process
    with pytest.raises(ValueError, match="scales"):
        load_wallpapers((0.0,))


@installed
@pytest.mark.parametrize("size", [32, 64])
def test_crops_are_seeded_in_range_and_varied(size: int) -> None:
    crop, name = wallpaper_crop(size, np.random.default_rng(3), scales=SMALL)
    again, same = wallpaper_crop(size, np.random.default_rng(3), scales=SMALL)
    assert crop.shape == (size, size, 3) and crop.dtype == np.float32 and crop.flags.c_contiguous
    assert 0.0 <= crop.min() and crop.max() <= 1.0
    np.testing.assert_array_equal(crop, again)
    assert name == same and name in wallpaper_files()
    names = {wallpaper_crop(size, np.random.default_rng(s), scales=SMALL)[1] for s in range(20)}
    assert len(names) > 3
    with pytest.raises(ValueError, match="short side"):
        wallpaper_crop(4096, np.random.default_rng(0), scales=SMALL)


@installed
def test_photo_prob_mixes_photos_and_texture_prob_applies_to_the_rest() -> None:
    common = {"kernel_size_min": 3, "kernel_size_max": 9, "seed": 2, "photo_scales": SMALL}
    mixed = SyntheticPairs(24, 32, photo_prob=0.5, **common)
    sources = [mixed.sample(i).source for i in range(24)]
    photos = [s for s in sources if s.startswith("wallpaper:")]
    assert 4 <= len(photos) <= 20 and set(sources) - set(photos) == {"dead_leaves"}
    assert {s.split(":", 1)[1] for s in photos} <= set(wallpaper_files())
    item = mixed[sources.index(photos[0])]
    assert item["sharp"].shape == (3, 32, 32) and item["kernel"].shape == (9, 9)
    np.testing.assert_array_equal(mixed.sample(5).blur, mixed.sample(5).blur)
    textures = list(load_training_images(["brick"]).values())
    rest = SyntheticPairs(16, 32, photo_prob=0.5, texture_images=textures, texture_prob=1.0, **common)
    assert {rest.sample(i).source.split(":")[0] for i in range(16)} == {"wallpaper", "texture"}


@installed
def test_config_keys_build_photo_training_and_never_photo_validation() -> None:
    cfg = DataConfig(crop_size=32, val_crop_size=32, val_images=4, synthetic_length=4, kernel_size_min=3,
                     kernel_size_max=5, photo_prob=1.0, photo_scales=list(SMALL))
    train, val = build_dataset(cfg, "train", seed=0), build_dataset(cfg, "val", seed=0)
    assert train.sample(0).source.startswith("wallpaper:") and train.photo_scales == SMALL
    assert val.photo_prob == 0.0 and {val.sample(i).source for i in range(4)} == {"dead_leaves"}


def test_bad_photo_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="photo_prob"):
        DataConfig(photo_prob=1.5)
    with pytest.raises(ConfigError, match="sharp_dir"):
        DataConfig(photo_prob=0.5, sharp_dir="/some/folder")
    with pytest.raises(ConfigError, match="photo_scales"):
        DataConfig(photo_scales=[0.5, 0.0])


def test_without_the_packages_the_error_names_the_fix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(wallpapers, "SHARE", tmp_path)
    assert wallpaper_files() == {}
    with pytest.raises(WallpapersUnavailable, match="make photos") as err:
        load_wallpapers()
    assert "\n" not in str(err.value) and "apt-get install -y plasma-workspace-wallpapers" in str(err.value)
    with pytest.raises(WallpapersUnavailable, match="make photos"):
        SyntheticPairs(4, 32, photo_prob=0.5)
    with pytest.raises(WallpapersUnavailable, match="data.photo_prob=0"):
        build_dataset(DataConfig(crop_size=32, photo_prob=0.5), "train", seed=0)
    assert SyntheticPairs(4, 32).sample(0).source == "dead_leaves"  # photo_prob 0 needs no photo


@installed
def test_training_blur_benchmark_reports_more_blur_with_the_threshold(tmp_path) -> None:
    """benchmarks/training_blur.py: with ``data.max_blurry_psnr`` the pairs are more blurred (lower mean PSNR),
    for the mix and for the photos alone."""
    sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
    import training_blur

    assert training_blur.main(["--count", "4", "--thresholds", "0,15", "--out", str(tmp_path),
                               "--set", "data.crop_size=32", f"data.photo_scales={list(SMALL)}"]) == 0
    rows = json.loads((tmp_path / "training_blur.json").read_text())["rows"]
    by = {(r["max_blurry_psnr"], r["content"]): r for r in rows}
    for content in ("mix", "photos only"):
        assert by[(15.0, content)]["mean"] < by[(0.0, content)]["mean"]
