"""Paired datasets: layouts built here load, broken ones give one message with every problem, crops align."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from stochdeblur.config import DataConfig
from stochdeblur.data import build_dataset
from stochdeblur.data.paired import (
    LayoutError,
    PairedDataset,
    folder_pairs,
    gopro_pairs,
    hide_pairs,
    realblur_pairs,
)
from stochdeblur.data.transforms import paired_augment, paired_random_crop, reflect_pad_to


def _png(path: Path, h: int = 20, w: int = 24, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
    return path


def _gopro(root: Path, split: str = "train", seqs: int = 2, frames: int = 2) -> Path:
    for s in range(seqs):
        for f in range(frames):
            for sub in ("blur", "blur_gamma", "sharp"):
                _png(root / split / f"SEQ{s}" / sub / f"{f:06d}.png", seed=10 * s + f)
    return root


def test_gopro_layout_loads(tmp_path: Path) -> None:
    pairs = gopro_pairs(_gopro(tmp_path), "train")
    assert [p.name for p in pairs] == ["SEQ0_000000", "SEQ0_000001", "SEQ1_000000", "SEQ1_000001"]
    assert pairs[0].blur == tmp_path / "train/SEQ0/blur/000000.png"
    assert pairs[0].sharp == tmp_path / "train/SEQ0/sharp/000000.png"
    gamma = gopro_pairs(tmp_path, "train", blur_dir="blur_gamma")
    assert gamma[0].blur == tmp_path / "train/SEQ0/blur_gamma/000000.png"


def test_broken_gopro_layout_lists_every_problem_in_one_error(tmp_path: Path) -> None:
    base = tmp_path / "train"
    _png(base / "A/blur/1.png")  # A: no sharp folder
    _png(base / "B/blur/1.png")
    _png(base / "B/blur/2.png")  # B: 2.png has no partner
    _png(base / "B/sharp/1.png", h=10)  # B: size mismatch
    _png(base / "B/sharp/3.png")  # B: 3.png has no blurry partner
    (base / "C/blur").mkdir(parents=True)  # C: empty blur folder (its sharp files are not listed again)
    _png(base / "C/sharp/1.png")
    with pytest.raises(LayoutError) as info:
        gopro_pairs(tmp_path, "train")
    message, problems = str(info.value), info.value.problems
    assert message.startswith(f"{base}: 5 layout problem(s):")
    expected = [
        f"{base / 'A/sharp'}: missing folder",
        f"{base / 'B/blur/2.png'}: no sharp partner",
        f"{base / 'B/sharp/3.png'}: no blurry partner",
        f"{base / 'B/blur/1.png'}: size 24x20 differs from its sharp partner",
        f"{base / 'C/blur'}: empty folder",
    ]
    for text in expected:
        assert text in message
    assert len(problems) == len(expected)


def test_missing_split_folder(tmp_path: Path) -> None:
    with pytest.raises(LayoutError, match="missing folder"):
        gopro_pairs(tmp_path, "test")


def test_generic_folders_match_by_stem(tmp_path: Path) -> None:
    _png(tmp_path / "blur/a.jpg")
    _png(tmp_path / "sharp/a.png")
    _png(tmp_path / "blur/b.png")
    _png(tmp_path / "sharp/b.png")
    pairs = folder_pairs(tmp_path)
    assert [(p.name, p.blur.name, p.sharp.name) for p in pairs] == [
        ("a", "a.jpg", "a.png"),
        ("b", "b.png", "b.png"),
    ]


def test_generic_layout_missing_sharp(tmp_path: Path) -> None:
    _png(tmp_path / "blur/a.png")
    with pytest.raises(LayoutError, match="sharp: missing folder"):
        folder_pairs(tmp_path)


def test_hide_layout(tmp_path: Path) -> None:
    for sub, names in {
        "train": ["t1"],
        "test/test-close-ups": ["c1"],
        "test/test-long-shot": ["l1", "l2"],
    }.items():
        for n in names:
            _png(tmp_path / sub / f"{n}.png")
            _png(tmp_path / "GT" / f"{n}.png")
    assert [p.name for p in hide_pairs(tmp_path, "test")] == [
        "test-close-ups_c1",
        "test-long-shot_l1",
        "test-long-shot_l2",
    ]
    assert [p.sharp for p in hide_pairs(tmp_path, "train")] == [tmp_path / "GT/t1.png"]
    (tmp_path / "GT/l2.png").unlink()
    with pytest.raises(LayoutError, match="l2.png: no sharp partner"):
        hide_pairs(tmp_path, "test-long-shot")


def test_realblur_list_files(tmp_path: Path) -> None:
    scene = "RealBlur-J_ECC_IMCORR_centroid_itensity_ref/scene001"
    _png(tmp_path / scene / "gt/gt_1.png")
    _png(tmp_path / scene / "blur/blur_1.png")
    (tmp_path / "RealBlur_J_test_list.txt").write_text(f"{scene}/gt/gt_1.png {scene}/blur/blur_1.png\n\n")
    pairs = realblur_pairs(tmp_path, "test")
    assert [(p.name, p.sharp.name) for p in pairs] == [("scene001_blur_1", "gt_1.png")]
    (tmp_path / "RealBlur_R_test_list.txt").write_text(
        f"{scene}/gt/gt_2.png {scene}/blur/blur_2.png\nonly_one\n"
    )
    with pytest.raises(LayoutError, match="need exactly one list file"):
        realblur_pairs(tmp_path, "test")
    with pytest.raises(LayoutError) as info:
        realblur_pairs(tmp_path, "RealBlur_R_test_list.txt")
    assert "missing file(s)" in str(info.value) and ":2: expected '<gt path> <blur path>'" in str(info.value)


def test_crops_and_flips_of_an_identical_pair_stay_identical(tmp_path: Path) -> None:
    """sharp = blur shifted by 0: after any crop/flip/rot90 the two tensors must still be equal."""
    _png(tmp_path / "blur/x.png", h=30, w=41)
    _png(tmp_path / "sharp/x.png", h=30, w=41)
    dataset = PairedDataset(folder_pairs(tmp_path), crop_size=16, augment=True, seed=0)
    for epoch in range(6):
        dataset.set_epoch(epoch)
        item = dataset[0]
        assert item["blur"].shape == (3, 16, 16)
        assert torch.equal(item["blur"], item["sharp"])


def test_crop_window_is_the_same_for_both_images() -> None:
    blur = torch.arange(2 * 9 * 11, dtype=torch.float32).reshape(2, 9, 11)
    sharp = blur + 1000.0
    for seed in range(5):
        rng = np.random.default_rng(seed)
        a, b = paired_augment(paired_random_crop([blur, sharp], 5, rng), rng)
        assert torch.equal(a + 1000.0, b)


def test_augment_draws_all_eight_symmetries() -> None:
    image = torch.arange(9, dtype=torch.float32).reshape(1, 3, 3)
    rng = np.random.default_rng(0)
    seen = {tuple(paired_augment([image], rng)[0].flatten().tolist()) for _ in range(200)}
    assert len(seen) == 8


def test_reflect_pad_matches_numpy_for_any_width() -> None:
    image = torch.arange(3 * 4, dtype=torch.float32).reshape(1, 3, 4)
    (padded,) = reflect_pad_to([image], (17, 11))
    expected = np.pad(image.numpy(), ((0, 0), (7, 7), (3, 4)), mode="reflect")
    assert np.array_equal(padded.numpy(), expected)


def test_paired_dataset_full_images_and_determinism(tmp_path: Path) -> None:
    _gopro(tmp_path, seqs=1, frames=3)
    pairs = gopro_pairs(tmp_path, "train")
    full = PairedDataset(pairs, crop_size=None, augment=False, seed=0)[1]
    assert full["blur"].shape == (3, 20, 24) and full["name"] == "SEQ0_000001"
    dataset = PairedDataset(pairs, crop_size=8, augment=True, seed=5)
    serial = [b["blur"] for b in DataLoader(dataset, batch_size=2, num_workers=0)]
    parallel = [b["blur"] for b in DataLoader(dataset, batch_size=2, num_workers=2)]
    assert all(torch.equal(a, b) for a, b in zip(serial, parallel, strict=True))
    other_seed = PairedDataset(pairs, crop_size=8, augment=True, seed=6)
    assert not all(torch.equal(dataset[i]["blur"], other_seed[i]["blur"]) for i in range(3))


def test_build_dataset_gopro_train_and_val(tmp_path: Path) -> None:
    _gopro(tmp_path, "train")
    _gopro(tmp_path, "test", seqs=1, frames=3)
    cfg = DataConfig(kind="gopro", root=str(tmp_path), crop_size=16, val_crop_size=0, val_images=2)
    train, val = build_dataset(cfg, "train", seed=0), build_dataset(cfg, "val", seed=0)
    assert len(train) == 4 and train[0]["blur"].shape == (3, 16, 16)
    assert len(val) == 2 and val[0]["blur"].shape == (3, 20, 24)
    cfg.val_crop_size = 8
    assert build_dataset(cfg, "val", seed=0)[0]["blur"].shape == (3, 8, 8)
