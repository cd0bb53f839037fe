"""Blur synthesis: kernels, dead leaves, the degradation pipeline and the on-the-fly dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from stochdeblur.config import KERNEL_GENERATORS, ConfigError, DataConfig
from stochdeblur.data import build_dataset, synth
from stochdeblur.data.synth import (
    GP_LENGTH_SCALES,
    SyntheticPairs,
    dead_leaves,
    degrade,
    gp_motion_kernel,
    motion_kernel,
    pad_kernel,
)


@pytest.mark.parametrize("size", [7, 8, 21, 64, 65])
def test_kernel_is_a_normalised_centred_psf(size: int) -> None:
    kernel = motion_kernel(size, np.random.default_rng(size))
    assert kernel.shape == (size, size) and kernel.dtype == np.float32
    assert kernel.min() >= 0 and kernel.sum() == pytest.approx(1.0, abs=1e-5)
    rows, cols = np.mgrid[0:size, 0:size]
    # Centre of mass on pixel size // 2: blur and the cropped sharp image are aligned on average.
    assert (rows * kernel).sum() == pytest.approx(size // 2, abs=1e-3)
    assert (cols * kernel).sum() == pytest.approx(size // 2, abs=1e-3)


def test_kernel_reproducible_by_seed() -> None:
    a = motion_kernel(33, np.random.default_rng(7))
    b = motion_kernel(33, np.random.default_rng(7))
    c = motion_kernel(33, np.random.default_rng(8))
    assert np.array_equal(a, b) and not np.allclose(a, c)


def test_kernel_spans_its_size() -> None:
    """The trajectory is scaled so its farthest point reaches the border: size is the blur extent."""
    kernel = motion_kernel(31, np.random.default_rng(3), exposure=1.0)
    rows, cols = np.nonzero(kernel > 0)
    assert min(rows.min(), cols.min()) == 0 or max(rows.max(), cols.max()) >= 29


def test_zero_anxiety_gives_linear_blur() -> None:
    """Without shake or jerks the trajectory is a straight line (Boracchi & Foi's rectilinear blur)."""
    kernel = motion_kernel(25, np.random.default_rng(0), exposure=1.0, anxiety=0.0).astype(np.float64)
    rows, cols = np.mgrid[0:25, 0:25]
    coords = np.stack([rows.ravel(), cols.ravel()])
    mean = coords @ kernel.ravel()
    centred = coords - mean[:, None]
    cov = (centred * kernel.ravel()) @ centred.T
    small, large = np.linalg.eigvalsh(cov)
    assert small < 0.05 * large


def test_kernel_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="at least 3"):
        motion_kernel(2, np.random.default_rng(0))
    with pytest.raises(ValueError, match="exposure"):
        motion_kernel(9, np.random.default_rng(0), exposure=0.0)


@pytest.mark.parametrize("k", [7, 8])
def test_blur_of_a_delta_image_is_the_kernel(k: int) -> None:
    """Convention: true convolution. A point at (k-1, k-1) of a (2k-1)^2 image shows the kernel unflipped."""
    kernel = motion_kernel(k, np.random.default_rng(1))
    sharp = np.zeros((2 * k - 1, 2 * k - 1, 3), np.float32)
    sharp[k - 1, k - 1] = 1.0
    blur, target = degrade(sharp, kernel, np.random.default_rng(0), quantize=False)
    assert blur.shape == target.shape == (k, k, 3)
    for c in range(3):
        np.testing.assert_allclose(blur[..., c], kernel, atol=1e-6)


@pytest.mark.parametrize("k", [7, 8])
def test_delta_kernel_keeps_blur_aligned_with_the_sharp_crop(k: int) -> None:
    sharp = np.random.default_rng(0).uniform(size=(20, 23, 3)).astype(np.float32)
    delta = np.zeros((k, k), np.float32)
    delta[k // 2, k // 2] = 1.0
    blur, target = degrade(sharp, delta, np.random.default_rng(0), quantize=False)
    assert blur.shape == (20 - k + 1, 23 - k + 1, 3)
    np.testing.assert_allclose(blur, target, atol=1e-6)


def test_noise_jpeg_and_8bit_rounding() -> None:
    sharp = np.full((40, 40, 3), 0.5, np.float32)
    delta = np.zeros((3, 3), np.float32)
    delta[1, 1] = 1.0
    blur, target = degrade(sharp, delta, np.random.default_rng(0), noise_sigma=0.05)
    assert np.std(blur - target) == pytest.approx(0.05, rel=0.1)
    assert np.allclose(blur * 255, np.round(blur * 255), atol=1e-4)  # 8-bit codes
    shot, _ = degrade(sharp, delta, np.random.default_rng(0), poisson_peak=100.0)
    assert np.std(shot) == pytest.approx(np.sqrt(50) / 100, rel=0.15)
    jpeg, _ = degrade(sharp, delta, np.random.default_rng(0), noise_sigma=0.05, jpeg_quality=30)
    assert jpeg.shape == blur.shape and not np.array_equal(jpeg, blur)


def test_dead_leaves_any_size_seeded() -> None:
    a = dead_leaves(37, 50, np.random.default_rng(4))
    assert a.shape == (37, 50, 3) and a.dtype == np.float32
    assert 0.0 <= a.min() and a.max() <= 1.0
    assert np.array_equal(a, dead_leaves(37, 50, np.random.default_rng(4)))
    assert len(np.unique(a.reshape(-1, 3), axis=0)) > 20  # many occluding leaves, not a flat image
    textured = dead_leaves(37, 50, np.random.default_rng(4), texture=True)
    assert not np.array_equal(a, textured)
    discs = dead_leaves(37, 50, np.random.default_rng(4), shapes=["disc"])
    assert discs.shape == a.shape
    with pytest.raises(ValueError, match="shapes"):
        dead_leaves(8, 8, np.random.default_rng(0), shapes=["star"])


def test_synthetic_pairs_items_have_crop_size_and_range() -> None:
    pairs = SyntheticPairs(4, 24, kernel_size_min=5, kernel_size_max=9, noise_max=0.02, jpeg_prob=0.5, seed=3)
    item = pairs[1]
    assert item["blur"].shape == item["sharp"].shape == (3, 24, 24)
    assert item["blur"].min() >= -1 and item["blur"].max() <= 1
    assert item["name"] == "synth_s3_e0_0000001"
    assert torch.equal(pairs[1]["blur"], item["blur"])
    pairs.set_epoch(1)
    assert not torch.equal(pairs[1]["blur"], item["blur"])
    with pytest.raises(IndexError):
        pairs.sample(4)


def test_synthetic_pairs_deterministic_with_two_workers() -> None:
    pairs = SyntheticPairs(6, 16, kernel_size_min=3, kernel_size_max=7, seed=11)
    serial = [b["blur"] for b in DataLoader(pairs, batch_size=3, num_workers=0)]
    parallel = [b["blur"] for b in DataLoader(pairs, batch_size=3, num_workers=2)]
    assert all(torch.equal(a, b) for a, b in zip(serial, parallel, strict=True))


def test_synthetic_pairs_from_a_folder_of_small_images(tmp_path: Path) -> None:
    for i in range(2):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (10, 12, 3), dtype=np.uint8)).save(
            tmp_path / f"{i}.png"
        )
    pairs = SyntheticPairs(3, 16, kernel_size_min=3, kernel_size_max=5, sharp_dir=tmp_path)
    assert pairs[2]["sharp"].shape == (3, 16, 16)  # mirror-padded up to crop + kernel - 1
    with pytest.raises(ValueError, match="no images"):
        SyntheticPairs(3, 16, sharp_dir=_empty(tmp_path))


def _empty(tmp_path: Path) -> Path:
    (tmp_path / "empty").mkdir()
    return tmp_path / "empty"


def test_build_dataset_synthetic_val_differs_from_train() -> None:
    cfg = DataConfig(crop_size=16, val_crop_size=24, val_images=2, kernel_size_min=3, kernel_size_max=5)
    train, val = build_dataset(cfg, "train", seed=0), build_dataset(cfg, "val", seed=0)
    assert len(train) == cfg.synthetic_length and len(val) == 2
    assert train[0]["blur"].shape[-1] == 16 and val[0]["blur"].shape[-1] == 24
    assert train[0]["name"] != val[0]["name"]
    with pytest.raises(ValueError, match="split"):
        build_dataset(cfg, "test", seed=0)


@pytest.mark.parametrize("size", [3, 8, 21, 33])
def test_gp_kernel_is_a_normalised_centred_psf_unlike_boracchi(size: int) -> None:
    kernel = gp_motion_kernel(size, np.random.default_rng(size))
    assert kernel.shape == (size, size) and kernel.dtype == np.float32
    assert kernel.min() >= 0 and kernel.sum() == pytest.approx(1.0, abs=1e-5)
    rows, cols = np.mgrid[0:size, 0:size]
    assert abs((rows * kernel).sum() - size // 2) < 1 and abs((cols * kernel).sum() - size // 2) < 1
    np.testing.assert_array_equal(kernel, gp_motion_kernel(size, np.random.default_rng(size)))
    assert not np.allclose(kernel, motion_kernel(size, np.random.default_rng(size)))


def test_gp_kernels_span_their_size_and_follow_the_length_scale() -> None:
    """Every path reaches the border; a long length scale gives a nearly straight (elongated) blur."""
    def elongation(kernel: np.ndarray) -> float:
        rows, cols = np.mgrid[0 : kernel.shape[0], 0 : kernel.shape[1]]
        coords = np.stack([rows.ravel(), cols.ravel()]).astype(np.float64)
        centred = coords - (coords @ kernel.ravel())[:, None]
        small, large = np.linalg.eigvalsh((centred * kernel.ravel()) @ centred.T)
        return small / large

    low, high = GP_LENGTH_SCALES
    smooth, wiggly = [], []
    for seed in range(6):
        kernel = gp_motion_kernel(31, np.random.default_rng(seed), length_scale=high)
        rows, cols = np.nonzero(kernel > 0)
        assert min(rows.min(), cols.min()) == 0 or max(rows.max(), cols.max()) >= 29
        smooth.append(elongation(kernel))
        wiggly.append(elongation(gp_motion_kernel(31, np.random.default_rng(seed), length_scale=low)))
    assert np.median(smooth) < np.median(wiggly)
    with pytest.raises(ValueError, match="at least 3"):
        gp_motion_kernel(2, np.random.default_rng(0))


@pytest.mark.parametrize("k", [3, 4, 8, 9])
def test_pad_kernel_keeps_the_centre_and_the_blur(k: int) -> None:
    kernel = motion_kernel(k, np.random.default_rng(k))
    padded = pad_kernel(kernel, 11)
    top = 11 // 2 - k // 2
    assert padded.shape == (11, 11) and padded.dtype == kernel.dtype
    assert padded[11 // 2, 11 // 2] == kernel[k // 2, k // 2] and padded.sum() == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_array_equal(padded[top : top + k, top : top + k], kernel)
    # Blurring with the padded kernel is blurring with the original (same pixels, same alignment).
    sharp = np.random.default_rng(0).uniform(size=(20, 20, 3)).astype(np.float32)
    blur, target = degrade(sharp, padded, np.random.default_rng(0), quantize=False)
    bottom = 11 - k - top
    small_blur, small_target = degrade(sharp[bottom:, bottom:][: 10 + k - 1, : 10 + k - 1], kernel,
                                       np.random.default_rng(0), quantize=False)
    np.testing.assert_allclose(blur, small_blur, atol=1e-6)
    np.testing.assert_array_equal(target, small_target)
    with pytest.raises(ValueError, match="odd"):
        pad_kernel(kernel, 12)
    with pytest.raises(ValueError, match="odd"):
        pad_kernel(kernel, k - 2 + k % 2)


def test_default_stream_is_unchanged_by_the_new_options() -> None:
    """Without photos and with boracchi kernels only, item i draws exactly what it drew before the options."""
    pairs = SyntheticPairs(4, 24, kernel_size_min=3, kernel_size_max=11, noise_max=0.02, jpeg_prob=0.5,
                           seed=4, photo_prob=0.0, kernel_generators=["boracchi"])
    pairs.set_epoch(2)
    for i in range(4):
        rng = np.random.default_rng([4, 2, i])
        k = int(rng.integers(3, 12))
        kernel = motion_kernel(k, rng)
        sharp = dead_leaves(24 + k - 1, 24 + k - 1, rng, texture=True)
        sigma = float(rng.uniform(0.0, 0.02))
        quality = int(rng.integers(40, 96)) if rng.uniform() < 0.5 else None
        blur, target = degrade(sharp, kernel, rng, noise_sigma=sigma, jpeg_quality=quality)
        sample = pairs.sample(i)
        np.testing.assert_array_equal(sample.kernel, kernel)
        np.testing.assert_array_equal(sample.blur, blur)
        np.testing.assert_array_equal(sample.sharp, target)
        assert sample.jpeg_quality == quality and sample.source == "dead_leaves"


def test_kernel_generators_are_drawn_per_item_and_kernels_batch_together() -> None:
    names = ["boracchi", "gp"]
    pairs = SyntheticPairs(8, 16, kernel_size_min=3, kernel_size_max=10, seed=6, kernel_generators=names)
    used = set()
    for i in range(8):
        rng = np.random.default_rng([6, 0, i])
        k = int(rng.integers(3, 11))
        name = names[int(rng.integers(2))]
        used.add(name)
        np.testing.assert_array_equal(pairs.sample(i).kernel, synth.KERNEL_GENERATORS[name](k, rng))
    assert used == set(names)
    batch = next(iter(DataLoader(pairs, batch_size=8)))
    assert batch["kernel"].shape == (8, 11, 11) and batch["kernel"].dtype == torch.float32
    assert torch.allclose(batch["kernel"].sum((1, 2)), torch.ones(8), atol=1e-5)
    with pytest.raises(ValueError, match="kernel_generators"):
        SyntheticPairs(2, 16, kernel_generators=["levin"])


def test_kernel_generator_config_key() -> None:
    assert set(KERNEL_GENERATORS) == set(synth.KERNEL_GENERATORS)
    cfg = DataConfig(crop_size=16, val_crop_size=16, val_images=1, kernel_size_min=3, kernel_size_max=33,
                     kernel_generators=["gp"])
    train, val = build_dataset(cfg, "train", seed=0), build_dataset(cfg, "val", seed=0)
    assert train.kernel_generators == val.kernel_generators == ["gp"]
    assert train[0]["kernel"].shape == (33, 33)
    with pytest.raises(ConfigError, match="kernel_generators"):
        DataConfig(kernel_generators=["boracchi", "levin"])
    with pytest.raises(ConfigError, match="kernel_generators"):
        DataConfig(kernel_generators=[])


def test_max_blurry_psnr_redraws_only_the_pairs_that_are_too_little_blurred() -> None:
    """Items already blurred enough are the very pairs drawn without the option; the others get new content
    under the same kernel until they are (or the most blurred of ``REDRAWS`` draws); the val config key reaches
    the validation split only, the training key the training split only."""
    common = {"kernel_size_min": 3, "kernel_size_max": 9, "noise_max": 0.01, "seed": 2}
    plain, picky = SyntheticPairs(12, 24, **common), SyntheticPairs(12, 24, max_blurry_psnr=22.0, **common)

    def blurry_psnr(sample: synth.SyntheticSample) -> float:
        return 10 * np.log10(1 / np.mean((sample.blur.astype(np.float64) - sample.sharp) ** 2))

    kept = redrawn = 0
    for i in range(12):
        before, after = plain.sample(i), picky.sample(i)
        np.testing.assert_array_equal(before.kernel, after.kernel)
        if blurry_psnr(before) <= 22.0:
            np.testing.assert_array_equal(before.blur, after.blur)
            kept += 1
        else:
            assert blurry_psnr(after) < blurry_psnr(before)
            redrawn += 1
    assert kept and redrawn  # this seed has both kinds, so both branches are exercised
    cfg = DataConfig(crop_size=16, val_crop_size=24, val_images=2, kernel_size_min=3, kernel_size_max=5,
                     val_max_blurry_psnr=25.0)
    assert build_dataset(cfg, "val", seed=0).max_blurry_psnr == 25.0
    assert build_dataset(cfg, "train", seed=0).max_blurry_psnr == 0.0
    cfg = DataConfig(crop_size=16, val_crop_size=24, val_images=2, kernel_size_min=3, kernel_size_max=5,
                     max_blurry_psnr=27.0)
    assert build_dataset(cfg, "train", seed=0).max_blurry_psnr == 27.0
    assert build_dataset(cfg, "val", seed=0).max_blurry_psnr == 0.0
    for key in ("val_max_blurry_psnr", "max_blurry_psnr"):
        with pytest.raises(ConfigError, match=key):
            DataConfig(**{key: -1.0})
    with pytest.raises(ValueError, match="max_blurry_psnr"):
        SyntheticPairs(2, 16, max_blurry_psnr=-1.0)


def test_max_blurry_share_redraws_only_that_share_of_the_items() -> None:
    """With ``max_blurry_share`` the chosen items are those of the full redraw and the others those drawn without
    the key; both kinds occur, and the config key reaches the training split."""
    common = {"kernel_size_min": 3, "kernel_size_max": 9, "noise_max": 0.01, "seed": 2}
    plain, every = SyntheticPairs(16, 24, **common), SyntheticPairs(16, 24, max_blurry_psnr=22.0, **common)
    half = SyntheticPairs(16, 24, max_blurry_psnr=22.0, max_blurry_share=0.5, **common)
    changed = [i for i in range(16) if not np.array_equal(plain.sample(i).blur, every.sample(i).blur)]
    as_full = [i for i in changed if np.array_equal(half.sample(i).blur, every.sample(i).blur)]
    as_plain = [i for i in changed if np.array_equal(half.sample(i).blur, plain.sample(i).blur)]
    assert as_full and as_plain and sorted(as_full + as_plain) == changed
    cfg = DataConfig(crop_size=16, kernel_size_min=3, kernel_size_max=5, max_blurry_psnr=27.0, max_blurry_share=0.25)
    assert build_dataset(cfg, "train", seed=0).max_blurry_share == 0.25
    with pytest.raises(ValueError, match="max_blurry_share"):
        SyntheticPairs(2, 16, max_blurry_share=1.5)
    with pytest.raises(ConfigError, match="max_blurry_share"):
        DataConfig(max_blurry_share=-0.1)
