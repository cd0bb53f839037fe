"""Paired (blurry, sharp) datasets on disk: GoPro, HIDE, RealBlur list files and generic folders.

Layouts (``root`` is the folder you downloaded/unpacked):

* **GoPro** — ``root/<split>/<SEQ>/{blur,blur_gamma,sharp}/*.png`` (``split`` = ``train`` or ``test``).
  ``blur_dir`` picks ``blur`` (linear averaging, the standard benchmark) or ``blur_gamma``.
* **HIDE** — blurry images in ``root/train/*.png`` and ``root/test/test-close-ups/*.png``,
  ``root/test/test-long-shot/*.png``; every sharp image is in ``root/GT/`` under the same file name.
  ``split`` is ``train``, ``test`` (both test folders), ``test-close-ups`` or ``test-long-shot``.
* **RealBlur-J/R** — list files such as ``root/RealBlur_J_test_list.txt`` whose lines read
  ``<gt path> <blur path> [...]`` relative to ``root``. ``split`` is a list file name (or path), or
  ``train``/``test`` when exactly one ``*_<split>_list.txt`` lies in ``root``.
* **Generic** — ``root/blur/*`` and ``root/sharp/*`` matched by file stem (``a.png`` pairs ``a.jpg``).

Every layout is validated up front: all problems (missing folders, empty folders, blurry images without
a sharp partner and vice versa, size mismatches read from the headers only) are collected into one
:class:`LayoutError`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from stochdeblur.data.transforms import paired_augment, paired_center_crop, paired_random_crop
from stochdeblur.io import ImageReadError, image_size, list_images, read_image

_MAX_LISTED = 50
HIDE_TEST_DIRS = ("test-close-ups", "test-long-shot")


class LayoutError(ValueError):
    """A dataset folder does not have the expected layout; ``problems`` lists every problem found."""

    def __init__(self, where: str | Path, problems: Sequence[str]) -> None:
        self.where = str(where)
        self.problems = list(problems)
        shown = self.problems[:_MAX_LISTED]
        more = len(self.problems) - len(shown)
        lines = [f"{where}: {len(self.problems)} layout problem(s):"] + [f"  - {p}" for p in shown]
        if more:
            lines.append(f"  ... and {more} more (see LayoutError.problems)")
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class ImagePair:
    """Paths of one blurry image and its sharp ground truth, with a unique flat name for outputs."""

    blur: Path
    sharp: Path
    name: str


def _match(
    blur_files: Iterable[Path], sharp_files: Iterable[Path], prefix: str, problems: list[str]
) -> list[ImagePair]:
    """Pair files by stem; record partners missing on either side and duplicate stems."""
    by_stem: dict[str, dict[str, Path]] = {"blur": {}, "sharp": {}}
    for side, files in (("blur", blur_files), ("sharp", sharp_files)):
        for f in files:
            if f.stem in by_stem[side]:
                problems.append(
                    f"{f}: two {side} files share the name '{f.stem}' ({by_stem[side][f.stem].name})"
                )
            by_stem[side][f.stem] = f
    blur, sharp = by_stem["blur"], by_stem["sharp"]
    problems.extend(f"{blur[s]}: no sharp partner" for s in sorted(blur.keys() - sharp.keys()))
    problems.extend(f"{sharp[s]}: no blurry partner" for s in sorted(sharp.keys() - blur.keys()))
    return [ImagePair(blur[s], sharp[s], f"{prefix}{s}") for s in sorted(blur.keys() & sharp.keys())]


def _images_in(directory: Path, problems: list[str]) -> list[Path]:
    if not directory.is_dir():
        problems.append(f"{directory}: missing folder")
        return []
    files = list_images(directory)
    if not files:
        problems.append(f"{directory}: empty folder (no .png/.jpg/.tif/.webp/.bmp images)")
    return files


def _check_sizes(pairs: Sequence[ImagePair], problems: list[str]) -> None:
    for pair in pairs:
        try:
            size_b, size_s = image_size(pair.blur), image_size(pair.sharp)
        except ImageReadError as exc:
            problems.append(str(exc))
            continue
        if size_b != size_s:
            problems.append(
                f"{pair.blur}: size {size_b[0]}x{size_b[1]} differs from its sharp partner "
                f"{pair.sharp} ({size_s[0]}x{size_s[1]})"
            )


def _finish(
    where: Path | str, pairs: list[ImagePair], problems: list[str], check_sizes: bool
) -> list[ImagePair]:
    if check_sizes:
        _check_sizes(pairs, problems)
    if not pairs and not problems:
        problems.append("no image pairs found")
    if problems:
        raise LayoutError(where, problems)
    return pairs


def gopro_pairs(
    root: str | Path, split: str = "train", blur_dir: str = "blur", *, check_sizes: bool = True
) -> list[ImagePair]:
    """Pairs of a GoPro-layout dataset: ``root/<split>/<SEQ>/{blur_dir,sharp}/*``; names ``<SEQ>_<stem>``.

    Raises:
        LayoutError: listing every problem (missing split/SEQ/blur/sharp folders, unmatched files, sizes).
    """
    base = Path(root) / split
    problems: list[str] = []
    if not base.is_dir():
        raise LayoutError(
            base, [f"{base}: missing folder (expected {root}/<split>/<SEQ>/{{{blur_dir},sharp}}/)"]
        )
    sequences = sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not sequences:
        problems.append(f"{base}: no sequence folders (expected {base}/<SEQ>/{{{blur_dir},sharp}}/)")
    pairs: list[ImagePair] = []
    for seq in sequences:
        blur = _images_in(seq / blur_dir, problems)
        sharp = _images_in(seq / "sharp", problems)
        if blur and sharp:  # a missing or empty folder is one problem, not one per file
            pairs += _match(blur, sharp, f"{seq.name}_", problems)
    return _finish(base, pairs, problems, check_sizes)


def hide_pairs(root: str | Path, split: str = "test", *, check_sizes: bool = True) -> list[ImagePair]:
    """Pairs of HIDE: blurry images under ``train/`` or ``test/<subset>/``, sharp ones in ``GT/`` by file name.

    Raises:
        LayoutError: listing every problem.
    """
    root = Path(root)
    subsets = {"train": ["train"], "test": [f"test/{d}" for d in HIDE_TEST_DIRS]}
    subsets.update({d: [f"test/{d}"] for d in HIDE_TEST_DIRS})
    if split not in subsets:
        raise LayoutError(root, [f"unknown HIDE split {split!r}; use one of {', '.join(subsets)}"])
    problems: list[str] = []
    sharp = _images_in(root / "GT", problems)
    sharp_by_name = {f.name: f for f in sharp}
    pairs: list[ImagePair] = []
    for sub in subsets[split]:
        for blur in _images_in(root / sub, problems):
            if blur.name in sharp_by_name:
                pairs.append(ImagePair(blur, sharp_by_name[blur.name], f"{Path(sub).name}_{blur.stem}"))
            elif sharp:
                problems.append(f"{blur}: no sharp partner {root / 'GT' / blur.name}")
    return _finish(root, pairs, problems, check_sizes)


def _realblur_list(root: Path, split: str) -> Path:
    direct = Path(split) if Path(split).is_absolute() else root / split
    if direct.is_file():
        return direct
    matches = sorted(root.glob(f"*_{split}_list.txt"))
    if len(matches) != 1:
        found = ", ".join(m.name for m in matches) or "none"
        raise LayoutError(
            root,
            [
                f"need exactly one list file '*_{split}_list.txt' (found: {found}); set the split to a list file name"
            ],
        )
    return matches[0]


def realblur_pairs(root: str | Path, split: str = "test", *, check_sizes: bool = True) -> list[ImagePair]:
    """Pairs of RealBlur-J/R from a list file whose lines are ``<gt path> <blur path>`` relative to ``root``.

    Names are ``<scene>_<blur stem>`` (e.g. ``scene230_blur_1``).

    Raises:
        LayoutError: listing every problem (missing files, malformed lines, sizes).
    """
    root = Path(root)
    if not root.is_dir():
        raise LayoutError(root, [f"{root}: missing folder"])
    list_file = _realblur_list(root, split)
    problems: list[str] = []
    pairs: list[ImagePair] = []
    for number, line in enumerate(list_file.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if len(fields) < 2:
            problems.append(f"{list_file}:{number}: expected '<gt path> <blur path>', got {line.strip()!r}")
            continue
        sharp, blur = root / fields[0], root / fields[1]
        missing = [str(p) for p in (sharp, blur) if not p.is_file()]
        if missing:
            problems.append(f"{list_file}:{number}: missing file(s) {', '.join(missing)}")
            continue
        pairs.append(ImagePair(blur, sharp, f"{blur.parent.parent.name}_{blur.stem}"))
    return _finish(list_file, pairs, problems, check_sizes)


def folder_pairs(
    root: str | Path, *, blur_dir: str = "blur", sharp_dir: str = "sharp", check_sizes: bool = True
) -> list[ImagePair]:
    """Pairs of a generic ``root/blur`` + ``root/sharp`` folder matched by file stem; names are the stems.

    Raises:
        LayoutError: listing every problem.
    """
    root = Path(root)
    problems: list[str] = []
    blur = _images_in(root / blur_dir, problems)
    sharp = _images_in(root / sharp_dir, problems)
    pairs = _match(blur, sharp, "", problems) if blur and sharp else []
    return _finish(root, pairs, problems, check_sizes)


def find_pairs(kind: str, root: str | Path, split: str, blur_dir: str = "blur") -> list[ImagePair]:
    """Dispatch on the dataset kind (``gopro``, ``hide``, ``realblur``, ``pairs``) and validate the layout.

    For ``pairs``, ``root/<split>`` is used when it exists, else ``root`` itself.
    """
    if kind == "gopro":
        return gopro_pairs(root, split, blur_dir)
    if kind == "hide":
        return hide_pairs(root, split)
    if kind == "realblur":
        return realblur_pairs(root, split)
    if kind == "pairs":
        base = Path(root) / split if (Path(root) / split).is_dir() else Path(root)
        return folder_pairs(base, blur_dir=blur_dir)
    raise ValueError(f"unknown paired dataset kind {kind!r}; use gopro, hide, realblur or pairs")


class PairedDataset(Dataset):
    """(blur, sharp) pairs read from disk, with identical crops and flips/rot90 for both images.

    Item ``i`` depends only on ``(seed, epoch, i)`` (never on global RNG state or the worker), so it is
    deterministic with any ``num_workers``. Call :meth:`set_epoch` each epoch for new crops (workers see
    it when ``persistent_workers=False``, the DataLoader default).

    Args:
        pairs: from :func:`find_pairs` or the ``*_pairs`` functions.
        crop_size: side of the training crop; ``None`` returns full images (evaluation).
        augment: apply one of the 8 flips/rotations.
        seed: base seed.
        center: take the central crop instead of a random one (validation previews).

    Returns:
        ``{"blur": [3, h, w], "sharp": [3, h, w], "name": str}``, float32 in [-1, 1].
    """

    def __init__(
        self,
        pairs: Sequence[ImagePair],
        crop_size: int | None,
        augment: bool,
        seed: int,
        *,
        center: bool = False,
    ) -> None:
        if not pairs:
            raise ValueError("PairedDataset needs at least one image pair")
        self.pairs = list(pairs)
        self.crop_size, self.augment, self.seed, self.center = crop_size, augment, int(seed), center
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.pairs)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose crops/augmentations are returned."""
        self.epoch = int(epoch)

    def item_name(self, index: int) -> str:
        """The name of pair ``index``, without reading its images."""
        return self.pairs[index].name

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        pair = self.pairs[index]
        blur, sharp = read_image(pair.blur), read_image(pair.sharp)
        if blur.shape != sharp.shape:
            raise LayoutError(
                pair.blur,
                [
                    f"size {blur.shape[2]}x{blur.shape[1]} differs from {pair.sharp} ({sharp.shape[2]}x{sharp.shape[1]})"
                ],
            )
        rng = np.random.default_rng([self.seed, self.epoch, index])
        images = [blur, sharp]
        if self.crop_size is not None:
            images = (
                paired_center_crop(images, self.crop_size)
                if self.center
                else paired_random_crop(images, self.crop_size, rng)
            )
        if self.augment:
            images = paired_augment(images, rng)
        return {"blur": images[0].contiguous(), "sharp": images[1].contiguous(), "name": pair.name}
