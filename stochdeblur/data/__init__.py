"""Training/validation datasets of ``{"blur", "sharp", "name"}`` in [-1, 1], built from ``cfg.data``.

Synthetic pairs also carry their true ``"kernel"`` (zero-padded to a common odd size).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch.utils.data import Dataset

from stochdeblur.config import DataConfig
from stochdeblur.data.paired import ImagePair, LayoutError, PairedDataset, find_pairs
from stochdeblur.data.photos import PhotoPairs
from stochdeblur.data.synth import SyntheticPairs
from stochdeblur.data.textures import load_training_images

VAL_SEED_OFFSET = 1_000_003  # validation pairs come from other seeds than any training item of the run

__all__ = ["LayoutError", "PairedDataset", "SyntheticPairs", "WithExtras", "build_dataset"]


class WithExtras(Dataset):
    """``dataset`` whose items gain the entries ``extras(item)`` returns (computed in the DataLoader workers).

    A method declares per-item work that belongs beside the data loading rather than in the training step (the
    classical kernel estimate of each blurry crop: CPU-bound, no gradient) through ``Method.training_dataset``.
    ``set_epoch`` is passed through, so items stay a pure function of (seed, epoch, index).
    """

    def __init__(self, dataset: SyntheticPairs | PairedDataset, extras: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        self.dataset, self.extras = dataset, extras

    def __len__(self) -> int:
        return len(self.dataset)

    def set_epoch(self, epoch: int) -> None:
        """Select the wrapped training dataset's epoch (``SyntheticPairs``, ``PairedDataset``)."""
        self.dataset.set_epoch(epoch)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.dataset[index]
        return {**item, **self.extras(item)}


def build_dataset(cfg: DataConfig, split: str, seed: int) -> Dataset:
    """The dataset for ``split`` ("train" or "val") described by ``cfg``.

    * ``synthetic``: train = :class:`SyntheticPairs` of ``synthetic_length`` items at ``crop_size`` (dead
      leaves, or crops of ``sharp_dir``); val = a fixed set of ``val_images`` items at ``val_crop_size``
      from seed ``seed + VAL_SEED_OFFSET`` (sharp images from ``val_root`` when set). ``texture_prob`` of the
      training items (not validation) crop scikit-image's CC0 images instead (:mod:`stochdeblur.data.textures`).
      Before that, ``photo_prob`` of them crop Debian wallpaper photographs (training only,
      :mod:`stochdeblur.data.wallpapers`). Kernels come from ``kernel_generators`` (train and val alike).
    * ``gopro``/``hide``/``realblur``/``pairs``: train = random ``crop_size`` crops of ``root/train_split``
      with flips/rot90; val = ``val_images`` evenly spaced pairs (0 = all) of ``(val_root or root)/val_split``,
      centre-cropped to ``val_crop_size`` (0 = full images).
    * ``val_kind="photos"``: val = the sample photos of installed packages (:mod:`stochdeblur.data.photos`)
      blurred as in the ``synthetic:photos`` benchmark (kernels ≤ 33 px, σ = 0.01), to watch the real-photo
      curve while training on synthetic data. They are monitored, never trained on.
    * ``val_kind="wallpapers"``: val = ``val_images`` crops of the training photographs (Debian wallpapers) at
      ``val_crop_size``, blurred from the validation seed: held-out pairs of the training distribution, to choose
      checkpoints and settings without looking at the evaluation photos.
    """
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    if split == "val" and cfg.val_kind == "photos":
        return PhotoPairs(seed=seed, crop=cfg.val_crop_size or None, return_kernel=False)
    if cfg.kind == "synthetic" or (split == "val" and cfg.val_kind == "wallpapers"):
        return _synthetic(cfg, split, seed)
    if split == "train":
        pairs = find_pairs(cfg.kind, cfg.root, cfg.train_split, cfg.blur_dir)
        return PairedDataset(pairs, cfg.crop_size, augment=True, seed=seed)
    pairs = _evenly_spaced(
        find_pairs(cfg.kind, cfg.val_root or cfg.root, cfg.val_split, cfg.blur_dir), cfg.val_images
    )
    crop = cfg.val_crop_size if cfg.val_crop_size > 0 else None
    return PairedDataset(pairs, crop, augment=False, seed=seed, center=True)


def _synthetic(cfg: DataConfig, split: str, seed: int) -> SyntheticPairs:
    common = {
        "kernel_size_min": cfg.kernel_size_min,
        "kernel_size_max": cfg.kernel_size_max,
        "noise_max": cfg.noise_max,
        "jpeg_prob": cfg.jpeg_prob,
        "kernel_generators": cfg.kernel_generators,
    }
    if split == "train":
        textures = list(load_training_images().values()) if cfg.texture_prob > 0 else []
        return SyntheticPairs(
            cfg.synthetic_length, cfg.crop_size, sharp_dir=cfg.sharp_dir or None, seed=seed,
            texture_images=textures, texture_prob=cfg.texture_prob, photo_prob=cfg.photo_prob,
            photo_scales=cfg.photo_scales, **common
        )
    wallpapers = cfg.val_kind == "wallpapers"
    return SyntheticPairs(
        max(1, cfg.val_images),
        cfg.val_crop_size if cfg.val_crop_size > 0 else cfg.crop_size,
        sharp_dir=None if wallpapers else cfg.val_root or cfg.sharp_dir or None,
        seed=seed + VAL_SEED_OFFSET,
        photo_prob=1.0 if wallpapers else 0.0,
        photo_scales=cfg.photo_scales,
        **common,
    )


def _evenly_spaced(pairs: list[ImagePair], count: int) -> list[ImagePair]:
    if count <= 0 or count >= len(pairs):
        return pairs
    step = len(pairs) / count
    return [pairs[int(i * step)] for i in range(count)]
