"""build_dataset: the real-photo validation option batches and never touches the training split."""

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
