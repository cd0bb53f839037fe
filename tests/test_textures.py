"""CC0 texture crops mixed into the synthetic training data: licensed set, never an evaluation photo, seeded."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from stochdeblur.config import ConfigError, DataConfig
from stochdeblur.data import build_dataset
from stochdeblur.data.photos import available_photos
from stochdeblur.data.synth import SyntheticPairs
from stochdeblur.data.textures import TRAINING_IMAGES, load_training_images, texture_crop

pytest.importorskip("skimage")


def test_training_images_are_rgb_uint8_and_none_is_an_evaluation_photo() -> None:
    images = load_training_images()
    assert set(images) == set(TRAINING_IMAGES)
    eval_photos = [np.asarray(load()) for load in available_photos().values()]
    for name, image in images.items():
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3, name
        for photo in eval_photos:
            assert image.shape != photo.shape[:2] + (3,) or not np.array_equal(image, photo[..., :3]), name
    assert not set(TRAINING_IMAGES) & set(available_photos())


def test_without_scikit_image_the_error_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "skimage" else real(name, *a))
    with pytest.raises(ConfigError, match="pip install scikit-image, or set data.texture_prob=0"):
        load_training_images()


def test_unknown_or_unlicensed_name_is_refused() -> None:
    with pytest.raises(ValueError, match="astronaut"):
        load_training_images(["camera", "astronaut"])


@pytest.mark.parametrize("size", [64, 160, 300])
def test_crop_is_seeded_in_range_and_tints_gray(size: int) -> None:
    images = list(load_training_images(["camera"]).values())
    a = texture_crop(images, size, np.random.default_rng(5))
    b = texture_crop(images, size, np.random.default_rng(5))
    assert a.shape == (size, size, 3) and a.dtype == np.float32
    assert 0.0 <= a.min() and a.max() <= 1.0
    np.testing.assert_array_equal(a, b)
    tints = {tuple(np.round(texture_crop(images, size, np.random.default_rng(s)).mean((0, 1)) /
                            texture_crop(images, size, np.random.default_rng(s)).mean(), 2)) for s in range(4)}
    assert len(tints) > 1  # gray content comes back in different colours


def test_texture_prob_mixes_crops_into_dead_leaves_and_zero_changes_nothing() -> None:
    images = list(load_training_images().values())
    plain = SyntheticPairs(40, 32, kernel_size_min=3, kernel_size_max=9, seed=1)
    off = SyntheticPairs(40, 32, kernel_size_min=3, kernel_size_max=9, seed=1, texture_images=images)
    mixed = SyntheticPairs(40, 32, kernel_size_min=3, kernel_size_max=9, seed=1, texture_images=images,
                           texture_prob=0.5)
    assert all(np.array_equal(plain.sample(i).sharp, off.sample(i).sharp) for i in range(40))
    sources = [mixed.sample(i).source for i in range(40)]
    assert {plain.sample(i).source for i in range(40)} == {"dead_leaves"}
    assert 8 <= sources.count("texture") <= 32 and sources.count("texture") + sources.count("dead_leaves") == 40
    np.testing.assert_array_equal(mixed.sample(7).blur, mixed.sample(7).blur)
    with pytest.raises(ValueError, match="sharp_dir"):
        SyntheticPairs(4, 32, sharp_dir="/any/folder", texture_images=images, texture_prob=0.5)


def test_config_key_builds_the_mixed_training_set_and_rejects_bad_values() -> None:
    cfg = DataConfig(kind="synthetic", crop_size=32, synthetic_length=4, texture_prob=1.0)
    train = build_dataset(cfg, "train", seed=0)
    assert train.texture_prob == 1.0 and len(train.texture_images) == len(TRAINING_IMAGES)
    assert build_dataset(cfg, "val", seed=0).texture_prob == 0.0
    with pytest.raises(ConfigError, match="texture_prob"):
        DataConfig(texture_prob=1.5)
    with pytest.raises(ConfigError, match="sharp_dir"):
        DataConfig(texture_prob=0.5, sharp_dir="/some/folder")
