"""Image I/O: every bad file is an ImageReadError naming it; grey/RGBA/16-bit/EXIF read as documented."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from stochdeblur.io import ImageReadError, image_size, list_images, read_image, to_uint8, write_image
from stochdeblur.utils import atomic_dir, atomic_write_text


def _rgb(h: int = 12, w: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def _as01(t: torch.Tensor) -> np.ndarray:
    return ((t + 1.0) / 2.0).permute(1, 2, 0).numpy()


def test_rgb_png_round_trip_is_exact(tmp_path: Path) -> None:
    codes = _rgb()
    Image.fromarray(codes).save(tmp_path / "a.png")
    image = read_image(tmp_path / "a.png")
    assert image.shape == (3, 12, 16) and image.dtype == torch.float32
    assert image.min() >= -1 and image.max() <= 1
    write_image(tmp_path / "b.png", image)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "b.png")), codes)


def test_grey_becomes_rgb(tmp_path: Path) -> None:
    grey = _rgb()[..., 0]
    Image.fromarray(grey, mode="L").save(tmp_path / "g.png")
    out = _as01(read_image(tmp_path / "g.png"))
    assert np.allclose(out, np.repeat(grey[..., None], 3, axis=2) / 255.0, atol=1e-6)


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_alpha_is_composited_on_white_or_dropped(tmp_path: Path, mode: str) -> None:
    """Row 0 is fully transparent (its colour is (200, 0, 0) for P, 40 otherwise), the rest opaque grey 40."""
    if mode == "P":
        im = Image.new("P", (4, 4), 0)
        im.putpalette([40, 40, 40, 200, 0, 0])
        im.paste(1, (0, 0, 4, 1))
        im.save(tmp_path / "a.png", transparency=1)
    else:
        rgba = np.full((4, 4, 4), 40, np.uint8)
        rgba[0, :, 3], rgba[1:, :, 3] = 0, 255
        Image.fromarray(rgba, mode="RGBA").convert(mode).save(tmp_path / "a.png")
    white = _as01(read_image(tmp_path / "a.png", alpha="white"))
    dropped = _as01(read_image(tmp_path / "a.png", alpha="drop"))
    assert np.allclose(white[0], 1.0) and np.allclose(white[1:], 40 / 255, atol=1e-6)
    assert np.allclose(dropped[1:], 40 / 255, atol=1e-6)
    assert np.allclose(dropped[0], [200 / 255, 0, 0] if mode == "P" else 40 / 255, atol=1e-6)


def test_half_transparent_pixel_is_blended(tmp_path: Path) -> None:
    Image.fromarray(np.array([[[0, 0, 0, 102]]], np.uint8), mode="RGBA").save(tmp_path / "a.png")
    assert np.allclose(_as01(read_image(tmp_path / "a.png")), 1.0 - 102 / 255, atol=1e-6)


def test_16bit_rgb_png_round_trip_keeps_full_depth(tmp_path: Path) -> None:
    values = torch.linspace(-1, 1, 3 * 5 * 7).reshape(3, 5, 7)
    write_image(tmp_path / "a.png", values, bits=16)
    back = read_image(tmp_path / "a.png")
    expected = torch.floor((values + 1) * 65535 / 2 + 0.5) / 65535 * 2 - 1
    assert torch.allclose(back, expected, atol=1e-6)
    assert (back - values).abs().max() < 2 / 65535  # far finer than 8-bit steps


def test_16bit_grey_png_keeps_full_depth(tmp_path: Path) -> None:
    grey = np.array([[0, 1, 3007, 65535]], np.uint16)
    Image.fromarray(grey).save(tmp_path / "g.png")
    out = _as01(read_image(tmp_path / "g.png"))
    assert np.allclose(out[..., 1], grey / 65535.0, atol=1e-7)


def test_16bit_rgb_tiff_keeps_full_depth(tmp_path: Path) -> None:
    tifffile = pytest.importorskip("tifffile")
    data = np.arange(2 * 3 * 3, dtype=np.uint16).reshape(2, 3, 3) * 3001
    tifffile.imwrite(tmp_path / "a.tif", data)
    assert np.allclose(_as01(read_image(tmp_path / "a.tif")), data / 65535.0, atol=1e-7)


@pytest.mark.parametrize("suffix", [".jpg", ".webp", ".tif"])
def test_other_formats_read(tmp_path: Path, suffix: str) -> None:
    codes = np.full((8, 8, 3), 100, np.uint8)
    Image.fromarray(codes).save(tmp_path / f"a{suffix}")
    assert np.allclose(_as01(read_image(tmp_path / f"a{suffix}")), 100 / 255, atol=3 / 255)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pil(tmp_path: Path, orientation: int) -> None:
    im = Image.fromarray(_rgb(5, 7))
    exif = Image.Exif()
    exif[0x0112] = orientation
    im.save(tmp_path / "a.png", exif=exif)
    with Image.open(tmp_path / "a.png") as reopened:
        expected = np.asarray(ImageOps.exif_transpose(reopened).convert("RGB")) / 255.0
    assert np.allclose(_as01(read_image(tmp_path / "a.png")), expected, atol=1e-6)


def _truncated_png(path: Path) -> None:
    Image.fromarray(_rgb(64, 64)).save(path)
    path.write_bytes(path.read_bytes()[:300])


def _truncated_jpeg(path: Path) -> None:
    Image.fromarray(_rgb(64, 64)).save(path, quality=90)
    path.write_bytes(path.read_bytes()[:400])


BAD_FILES = {
    "missing": (lambda p: None, "file not found"),
    "empty": (lambda p: p.write_bytes(b""), "empty file"),
    "not an image": (lambda p: p.write_text("hello, I am text"), "not an image"),
    "truncated png": (_truncated_png, "truncated or corrupt"),
    "truncated jpeg": (_truncated_jpeg, "truncated or corrupt"),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_bad_files_raise_image_read_error_naming_the_file(tmp_path: Path, case: str) -> None:
    make, reason = BAD_FILES[case]
    path = tmp_path / ("bad.jpg" if "jpeg" in case else "bad.png")
    make(path)
    with pytest.raises(ImageReadError, match=reason) as info:
        read_image(path)
    assert str(path) in str(info.value) and info.value.path == path


def test_directory_is_not_an_image(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match="not a regular file"):
        read_image(tmp_path)


def test_pixel_budget_is_checked_from_the_header(tmp_path: Path) -> None:
    Image.fromarray(_rgb(40, 50)).save(tmp_path / "big.png")
    with pytest.raises(ImageReadError, match=r"too large: 50x40 = 2000 pixels exceeds max_pixels=1999"):
        read_image(tmp_path / "big.png", max_pixels=1999)
    assert read_image(tmp_path / "big.png", max_pixels=2000).shape == (3, 40, 50)
    assert read_image(tmp_path / "big.png", max_pixels=None).shape == (3, 40, 50)


def test_pil_pixel_limit_is_lifted_only_while_this_module_opens_a_file(tmp_path: Path, monkeypatch) -> None:
    """Importing stochdeblur.io leaves PIL's limit alone; read_image/image_size ignore it (max_pixels replaces
    it) and put it back, so other code opening images keeps PIL's protection."""
    assert Image.MAX_IMAGE_PIXELS is not None  # this module imported stochdeblur.io long ago
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 900)  # 50x40 = 2000 > 2 x 900: PIL alone refuses it
    Image.fromarray(_rgb(40, 50)).save(tmp_path / "big.png")
    with pytest.raises(Image.DecompressionBombError):
        Image.open(tmp_path / "big.png")
    assert read_image(tmp_path / "big.png").shape == (3, 40, 50)
    assert image_size(tmp_path / "big.png") == (50, 40)
    assert Image.MAX_IMAGE_PIXELS == 900


def test_unsupported_layout(tmp_path: Path) -> None:
    tifffile = pytest.importorskip("tifffile")
    tifffile.imwrite(tmp_path / "five.tif", np.zeros((4, 4, 5), np.uint8), planarconfig="contig")
    with pytest.raises(ImageReadError, match="five.tif"):
        read_image(tmp_path / "five.tif")


def test_write_rounds_and_clamps(tmp_path: Path) -> None:
    image = torch.tensor([-2.0, -1.0, 0.0, 1.0, 5.0, -1 + 2 * 10.4 / 255, -1 + 2 * 10.6 / 255]).reshape(
        1, 1, 7
    )
    write_image(tmp_path / "a.png", image.expand(3, 1, 7))
    assert np.asarray(Image.open(tmp_path / "a.png"))[0, :, 0].tolist() == [0, 0, 128, 255, 255, 10, 11]


def test_write_is_atomic_and_validates(tmp_path: Path) -> None:
    write_image(tmp_path / "sub" / "a.jpg", torch.zeros(3, 4, 4))
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["a.jpg"]  # no temp file left behind
    with pytest.raises(ValueError, match="16-bit output is only written as PNG"):
        write_image(tmp_path / "a.jpg", torch.zeros(3, 4, 4), bits=16)
    with pytest.raises(ValueError, match=r"expected a \[3, H, W\] tensor"):
        write_image(tmp_path / "a.png", torch.zeros(4, 4))
    with pytest.raises(ValueError, match="NaN"):
        write_image(tmp_path / "a.png", torch.full((3, 2, 2), float("nan")))
    with pytest.raises(ValueError, match="cannot write '.gif'"):
        write_image(tmp_path / "a.gif", torch.zeros(3, 2, 2))
    assert not (tmp_path / "a.png").exists()


def test_list_images_sorted_by_extension(tmp_path: Path) -> None:
    for name in ["b.PNG", "a.jpg", "c.txt", ".hidden.png", "d.tiff"]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "dir.png").mkdir()
    assert [p.name for p in list_images(tmp_path)] == ["a.jpg", "b.PNG", "d.tiff"]
    with pytest.raises(ImageReadError, match="not a directory"):
        list_images(tmp_path / "nope")


def test_atomic_outputs_get_the_usual_permissions_not_private_ones(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        with atomic_dir(tmp_path / "folder") as folder:
            (folder / "b.txt").write_text("y")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "folder").stat().st_mode) == 0o755


def test_to_uint8_gives_the_codes_write_image_stores(tmp_path: Path) -> None:
    image = torch.rand(3, 5, 7, generator=torch.Generator().manual_seed(0)) * 2.2 - 1.1  # some values out of range
    write_image(tmp_path / "a.png", image)
    array = to_uint8(image)
    assert array.dtype == np.uint8 and array.shape == (5, 7, 3)
    assert np.array_equal(array, np.asarray(Image.open(tmp_path / "a.png").convert("RGB")))
