"""Training/validation datasets of ``{"blur", "sharp", "name"}`` in [-1, 1], built from ``cfg.data``.

Synthetic pairs also carry their true ``"kernel"`` (zero-padded to a common odd size).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Protocol

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor
from torch.utils.data import Dataset

from stochdeblur.config import DataConfig
from stochdeblur.data.paired import ImagePair, LayoutError, PairedDataset, find_pairs
from stochdeblur.data.photos import PhotoPairs
from stochdeblur.data.synth import SyntheticPairs
from stochdeblur.data.textures import load_training_images

VAL_SEED_OFFSET = 1_000_003  # validation pairs come from other seeds than any training item of the run

__all__ = ["CycledEpochs", "ItemExtras", "LayoutError", "PairedDataset", "SyntheticPairs", "WithExtras", "build_dataset"]


class ItemExtras(Protocol):
    """Per-item work for :class:`WithExtras`: ``extras(item)`` returns the entries to add; ``cache_key`` names the
    settings the entries depend on, so an extras cache never serves entries made with other settings."""

    cache_key: str

    def __call__(self, item: dict[str, Any]) -> dict[str, Tensor]: ...


class WithExtras(Dataset):
    """``dataset`` whose items gain the entries ``extras(item)`` returns (computed in the DataLoader workers).

    A method declares per-item work that belongs beside the data loading rather than in the training step (the
    classical kernel estimate of each blurry crop: CPU-bound, no gradient) through ``Method.training_dataset``.
    ``set_epoch`` is passed through, so items stay a pure function of (seed, epoch, index).

    With ``cache_dir`` the extras of each item are kept there (one safetensors file per item, written
    atomically) and read back when the same item comes again — with ``data.distinct_epochs`` the items repeat,
    so after the first pass the estimates cost nothing. The file is keyed by a hash of the item's tensors and of
    ``extras.cache_key``, so a changed item or extras setting never reads a stale entry.
    """

    def __init__(self, dataset: SyntheticPairs | PairedDataset | CycledEpochs,
                 extras: ItemExtras, cache_dir: str | Path | None = None) -> None:
        self.dataset, self.extras = dataset, extras
        self.cache_dir = Path(cache_dir) if cache_dir else None
        if self.cache_dir is not None:
            self.cache_dir.mkdir(parents=True, exist_ok=True)

    def __len__(self) -> int:
        return len(self.dataset)

    def set_epoch(self, epoch: int) -> None:
        """Select the wrapped training dataset's epoch (``SyntheticPairs``, ``PairedDataset``)."""
        self.dataset.set_epoch(epoch)

    def _key(self, item: dict[str, Any]) -> str:
        digest = hashlib.sha1(self.extras.cache_key.encode())
        for name in sorted(item):
            value = item[name]
            if isinstance(value, Tensor):
                digest.update(name.encode())
                digest.update(value.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()[:24]

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.dataset[index]
        if self.cache_dir is None:
            return {**item, **self.extras(item)}
        path = self.cache_dir / f"{self._key(item)}.safetensors"
        if path.is_file():
            return {**item, **load_file(path)}
        extras = self.extras(item)
        partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        save_file({name: torch.as_tensor(value).contiguous() for name, value in extras.items()}, partial)
        os.replace(partial, path)
        return {**item, **extras}


class CycledEpochs(Dataset):
    """``dataset`` whose items repeat every ``period`` epochs: epoch ``e`` gives the items of epoch
    ``e mod period`` (``data.distinct_epochs``), so per-item work cached by :class:`WithExtras` is reused."""

    def __init__(self, dataset: SyntheticPairs | PairedDataset, period: int) -> None:
        if period < 1:
            raise ValueError(f"period must be >= 1, got {period}")
        self.dataset, self.period = dataset, int(period)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.dataset[index]

    def set_epoch(self, epoch: int) -> None:
        """Select epoch ``epoch mod period`` of the wrapped dataset."""
        self.dataset.set_epoch(epoch % self.period)


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
      checkpoints and settings without looking at the evaluation photos. ``val_max_blurry_psnr`` > 0 keeps only
      visibly blurred synthetic validation pairs (``SyntheticPairs(max_blurry_psnr=...)``); ``max_blurry_psnr``
      does the same for the synthetic training pairs.
    * ``distinct_epochs`` > 0: the training items repeat every that many epochs (:class:`CycledEpochs`), so
      the per-item extras a method adds can be cached (``data.extras_cache``, :class:`WithExtras`).
    """
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    if split == "val" and cfg.val_kind == "photos":
        return PhotoPairs(seed=seed, crop=cfg.val_crop_size or None, return_kernel=False)
    if cfg.kind == "synthetic" or (split == "val" and cfg.val_kind == "wallpapers"):
        return _synthetic(cfg, split, seed)
    if split == "train":
        pairs = find_pairs(cfg.kind, cfg.root, cfg.train_split, cfg.blur_dir)
        return _cycled(cfg, PairedDataset(pairs, cfg.crop_size, augment=True, seed=seed))
    pairs = _evenly_spaced(
        find_pairs(cfg.kind, cfg.val_root or cfg.root, cfg.val_split, cfg.blur_dir), cfg.val_images
    )
    crop = cfg.val_crop_size if cfg.val_crop_size > 0 else None
    return PairedDataset(pairs, crop, augment=False, seed=seed, center=True)


def _cycled(cfg: DataConfig, dataset: SyntheticPairs | PairedDataset) -> SyntheticPairs | PairedDataset | CycledEpochs:
    """The training set, its items repeating every ``cfg.distinct_epochs`` epochs when that is set."""
    return CycledEpochs(dataset, cfg.distinct_epochs) if cfg.distinct_epochs > 0 else dataset


def _synthetic(cfg: DataConfig, split: str, seed: int) -> SyntheticPairs | CycledEpochs:
    common = {
        "kernel_size_min": cfg.kernel_size_min,
        "kernel_size_max": cfg.kernel_size_max,
        "noise_max": cfg.noise_max,
        "jpeg_prob": cfg.jpeg_prob,
        "kernel_generators": cfg.kernel_generators,
    }
    if split == "train":
        textures = list(load_training_images().values()) if cfg.texture_prob > 0 else []
        return _cycled(cfg, SyntheticPairs(
            cfg.synthetic_length, cfg.crop_size, sharp_dir=cfg.sharp_dir or None, seed=seed,
            texture_images=textures, texture_prob=cfg.texture_prob, photo_prob=cfg.photo_prob,
            photo_scales=cfg.photo_scales, max_blurry_psnr=cfg.max_blurry_psnr,
            max_blurry_share=cfg.max_blurry_share, **common
        ))
    wallpapers = cfg.val_kind == "wallpapers"
    return SyntheticPairs(
        max(1, cfg.val_images),
        cfg.val_crop_size if cfg.val_crop_size > 0 else cfg.crop_size,
        sharp_dir=None if wallpapers else cfg.val_root or cfg.sharp_dir or None,
        seed=seed + VAL_SEED_OFFSET,
        photo_prob=1.0 if wallpapers else 0.0,
        photo_scales=cfg.photo_scales,
        max_blurry_psnr=cfg.val_max_blurry_psnr,
        **common,
    )


def _evenly_spaced(pairs: list[ImagePair], count: int) -> list[ImagePair]:
    if count <= 0 or count >= len(pairs):
        return pairs
    step = len(pairs) / count
    return [pairs[int(i * step)] for i in range(count)]
