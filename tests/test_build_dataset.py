"""build_dataset: the real-photo validation option batches and never touches the training split."""

import pytest
import torch
from torch.utils.data import DataLoader

from stochdeblur.config import load_config
from stochdeblur.data import SyntheticPairs, build_dataset


def test_val_photos_batch_together_and_train_stays_synthetic() -> None:
    cfg = load_config(None, ["data.val_kind=photos", "data.val_crop_size=64"])
    val = build_dataset(cfg.data, "val", seed=0)
    batch = next(iter(DataLoader(val, batch_size=len(val))))
    assert batch["blur"].shape[1:] == (3, 64, 64) and batch["sharp"].shape == batch["blur"].shape
    assert "kernel" not in batch and "astronaut" in batch["name"]
    assert isinstance(build_dataset(cfg.data, "train", seed=0), SyntheticPairs)


def test_val_wallpapers_are_held_out_crops_of_the_training_photos() -> None:
    from stochdeblur.data.wallpapers import wallpaper_files

    if not wallpaper_files():
        pytest.skip("no wallpaper photos installed (make photos)")
    cfg = load_config(None, ["data.val_kind=wallpapers", "data.val_crop_size=48", "data.val_images=3"])
    val, again = build_dataset(cfg.data, "val", seed=0), build_dataset(cfg.data, "val", seed=0)
    train = build_dataset(cfg.data, "train", seed=0)
    assert len(val) == 3 and val[0]["blur"].shape == (3, 48, 48)
    assert torch.equal(val[1]["blur"], again[1]["blur"])  # a fixed validation set
    assert isinstance(train, SyntheticPairs) and train.seed != val.seed  # drawn from other seeds than training
    assert val.photo_prob == 1.0
