"""Image files in and out: 8/16-bit PNG/JPEG/TIFF/WebP to RGB tensors in [-1, 1] and back, atomically.

Reading never shows a bare PIL traceback: every failure (missing, empty, truncated, not an image, larger
than the pixel budget, unsupported mode) is an :class:`ImageReadError` naming the file and the reason.

Conventions:
    * Grey images are repeated to RGB. Alpha is composited on white (``alpha="white"``) or dropped
      (``alpha="drop"``); palette images with a transparent colour count as having alpha.
    * EXIF orientation is applied, so the tensor is the picture as a viewer shows it.
    * 16-bit PNGs (grey, grey+alpha, RGB, RGBA) are decoded by torchvision at full depth (PIL would cut
      RGB to 8 bits); 16-bit RGB TIFFs need the optional ``tifffile`` package. Mode ``I`` is read as 16-bit,
      mode ``F`` as linear values clipped to [0, 1].
    * ``max_pixels`` replaces PIL's decompression-bomb limit and is checked from the header, before any pixel
      is decoded; PIL's limit is lifted only while this module opens a file (:func:`_open`), never process-wide.
"""

from __future__ import annotations

import contextlib
import struct
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from stochdeblur.utils import atomic_path

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp")
_WRITE_FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
}
_EXIF_ORIENTATION = 0x0112
_TIFF_BITS_PER_SAMPLE = 258
_PIL_LIMIT_LOCK = threading.Lock()  # Image.MAX_IMAGE_PIXELS is process-wide: one open at a time lifts it


@contextlib.contextmanager
def _open(path: Path) -> Iterator[Image.Image]:
    """``Image.open(path)`` with PIL's pixel limit lifted for the open only (the callers check ``max_pixels``
    from the header themselves) and restored before the block runs; the image is closed after it."""
    with _PIL_LIMIT_LOCK:
        limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            im = Image.open(path)
        finally:
            Image.MAX_IMAGE_PIXELS = limit
    with im:
        yield im


class ImageReadError(ValueError):
    """An image file cannot be read: the message names the file and the reason."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"cannot read image {path}: {reason}")


def read_image(path: str | Path, *, max_pixels: int | None = 80_000_000, alpha: str = "white") -> Tensor:
    """Read an image file as an RGB float tensor in [-1, 1] (grey→RGB, alpha handled, EXIF applied).

    Args:
        path: PNG, JPEG, TIFF, WebP or BMP file, 8 or 16 bits per channel.
        max_pixels: refuse images with more pixels than this (checked from the header); None = no limit.
        alpha: ``"white"`` composites transparent pixels on white; ``"drop"`` ignores the alpha channel.

    Shape:
        returns [3, H, W] float32 in [-1, 1].

    Raises:
        ImageReadError: missing, empty, truncated or corrupt file, not an image, too large, unsupported mode.
    """
    if alpha not in ("white", "drop"):
        raise ValueError(f"alpha={alpha!r} must be 'white' or 'drop'")
    path = Path(path)
    _check_file(path)
    try:
        with _open(path) as im:
            width, height = im.size
            if max_pixels is not None and width * height > max_pixels:
                raise ImageReadError(
                    path,
                    f"too large: {width}x{height} = {width * height} pixels exceeds max_pixels={max_pixels}",
                )
            orientation = _orientation(im)
            array = _decode(path, im)
    except ImageReadError:
        raise
    except UnidentifiedImageError:
        raise ImageReadError(path, "not an image or an unsupported format") from None
    except (OSError, SyntaxError, ValueError, RuntimeError, EOFError, struct.error) as exc:
        raise ImageReadError(path, f"truncated or corrupt file ({exc})") from None
    rgb = _to_rgb(array, alpha)
    rgb = _apply_orientation(rgb, orientation)
    tensor = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))
    return tensor.mul_(2.0).sub_(1.0)


def write_image(path: str | Path, image: Tensor, bits: int = 8) -> Path:
    """Write an RGB tensor in [-1, 1] to ``path`` atomically (temp file + rename); returns the path.

    The suffix picks the format (PNG when there is none; JPEG quality 95, lossless WebP). Values are
    clamped to [-1, 1] and rounded to the nearest code. ``bits=16`` writes a 16-bit RGB PNG.

    Shape:
        image: [3, H, W] (or [1, H, W] grey, repeated to RGB), any float dtype, values in [-1, 1].
    """
    path = Path(path)
    suffix = path.suffix.lower() or ".png"
    if suffix not in _WRITE_FORMATS:
        raise ValueError(f"{path}: cannot write '{suffix}' files; use one of {', '.join(_WRITE_FORMATS)}")
    if bits not in (8, 16):
        raise ValueError(f"{path}: bits={bits} must be 8 or 16")
    if bits == 16 and suffix != ".png":
        raise ValueError(f"{path}: 16-bit output is only written as PNG")
    codes = _quantize(path, image, bits)
    fmt = _WRITE_FORMATS[suffix]
    with atomic_path(path) as tmp:
        if bits == 16:
            tmp.write_bytes(_encode_png16(codes))
        else:
            options = {"quality": 95} if fmt == "JPEG" else {"lossless": True} if fmt == "WEBP" else {}
            Image.fromarray(codes).save(tmp, format=fmt, **options)
    return path


def list_images(directory: str | Path) -> list[Path]:
    """Image files directly inside ``directory`` (by extension, case-insensitive, hidden files skipped), sorted."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ImageReadError(directory, "not a directory")
    return sorted(
        p
        for p in directory.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS
    )


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of an image from its header only, without decoding pixels."""
    path = Path(path)
    _check_file(path)
    try:
        with _open(path) as im:
            width, height = im.size
            if _orientation(im) in (5, 6, 7, 8):
                width, height = height, width
            return width, height
    except UnidentifiedImageError:
        raise ImageReadError(path, "not an image or an unsupported format") from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
        raise ImageReadError(path, f"unreadable header ({exc})") from None


def _check_file(path: Path) -> None:
    if not path.exists():
        raise ImageReadError(path, "file not found")
    if not path.is_file():
        raise ImageReadError(path, "not a regular file")
    if path.stat().st_size == 0:
        raise ImageReadError(path, "empty file (0 bytes)")


def _orientation(im: Image.Image) -> int:
    try:
        value = int(im.getexif().get(_EXIF_ORIENTATION, 1))
    except Exception:  # a broken EXIF block must not make a readable picture unreadable
        return 1
    return value if 1 <= value <= 8 else 1


def _png_bit_depth(path: Path) -> int:
    with path.open("rb") as f:
        header = f.read(26)
    return header[24] if len(header) == 26 else 8


def _tiff_is_16bit_colour(im: Image.Image) -> bool:
    bits = getattr(im, "tag_v2", {}).get(_TIFF_BITS_PER_SAMPLE, 8)
    bits = bits if isinstance(bits, tuple) else (bits,)
    return im.mode in ("RGB", "RGBA") and max(bits) == 16


def _decode(path: Path, im: Image.Image) -> np.ndarray:
    """Decoded pixels as float32 [H, W, C] in [0, 1] with C in 1..4 (grey, grey+alpha, RGB, RGBA)."""
    if im.format == "PNG" and _png_bit_depth(path) == 16:
        return _decode_png16(path)
    if im.format == "TIFF" and _tiff_is_16bit_colour(im):
        return _decode_tiff16(path)
    im.load()
    return _pil_to_float(path, im)


def _decode_png16(path: Path) -> np.ndarray:
    from torchvision.io import ImageReadMode, decode_png, read_file

    data = decode_png(read_file(str(path)), mode=ImageReadMode.UNCHANGED)
    return data.permute(1, 2, 0).numpy().astype(np.float32) / 65535.0


def _decode_tiff16(path: Path) -> np.ndarray:
    try:
        import tifffile
    except ImportError:
        raise ImageReadError(
            path, "16-bit colour TIFF needs the 'tifffile' package (pip install tifffile)"
        ) from None
    array = np.asarray(tifffile.imread(path))
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[-1] not in (1, 2, 3, 4):
        raise ImageReadError(path, f"unsupported TIFF layout {array.shape}")
    return array.astype(np.float32) / float(np.iinfo(array.dtype).max if array.dtype.kind == "u" else 1.0)


def _pil_to_float(path: Path, im: Image.Image) -> np.ndarray:
    mode = im.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        return (np.asarray(im, dtype=np.float32) / 65535.0)[..., None]
    if mode == "I":
        return (np.clip(np.asarray(im, dtype=np.float32), 0, 65535) / 65535.0)[..., None]
    if mode == "F":
        return np.clip(np.asarray(im, dtype=np.float32), 0.0, 1.0)[..., None]
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif mode in ("PA", "RGBa", "RGBX"):
        im = im.convert("RGBA")
    elif mode in ("1", "La"):
        im = im.convert("L" if mode == "1" else "LA")
    elif mode not in ("L", "LA", "RGB", "RGBA"):
        try:
            im = im.convert("RGB")
        except (ValueError, OSError):
            raise ImageReadError(path, f"unsupported image mode {mode!r}") from None
    array = np.asarray(im, dtype=np.float32) / 255.0
    return array[..., None] if array.ndim == 2 else array


def _to_rgb(array: np.ndarray, alpha: str) -> np.ndarray:
    channels = array.shape[-1]
    colour = array[..., :-1] if channels in (2, 4) else array
    if channels in (2, 4) and alpha == "white":
        a = array[..., -1:]
        colour = colour * a + (1.0 - a)
    if colour.shape[-1] == 1:
        colour = np.repeat(colour, 3, axis=-1)
    return colour.astype(np.float32, copy=False)


def _apply_orientation(array: np.ndarray, orientation: int) -> np.ndarray:
    """Apply EXIF orientation 1-8 to an [H, W, C] array (same result as PIL's ``ImageOps.exif_transpose``)."""
    transposed = array.transpose(1, 0, 2)
    return {
        1: array,
        2: array[:, ::-1],
        3: array[::-1, ::-1],
        4: array[::-1],
        5: transposed,
        6: transposed[:, ::-1],
        7: transposed[::-1, ::-1],
        8: transposed[::-1],
    }[orientation]


def _quantize(path: Path, image: Tensor, bits: int) -> np.ndarray:
    if not isinstance(image, Tensor) or image.ndim != 3 or image.shape[0] not in (1, 3):
        shape = tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__
        raise ValueError(f"{path}: expected a [3, H, W] tensor in [-1, 1], got {shape}")
    image = image.detach().to(device="cpu", dtype=torch.float32)
    if not torch.isfinite(image).all():
        raise ValueError(f"{path}: image contains NaN or infinite values")
    codes = _codes(image, bits).expand(3, -1, -1).permute(1, 2, 0).numpy()
    return codes.astype(np.uint16 if bits == 16 else np.uint8)


def _codes(image: Tensor, bits: int) -> Tensor:
    """Clamp to [-1, 1] and round half up to the nearest of the 2^bits codes (float, 0 … 2^bits − 1)."""
    top = (1 << bits) - 1
    return torch.floor((image.float().clamp(-1.0, 1.0) + 1.0) * (top / 2.0) + 0.5)


def to_uint8(image: Tensor) -> np.ndarray:
    """[3, H, W] in [−1, 1] → [H, W, 3] uint8 array, the codes :func:`write_image` stores (for panels and the app)."""
    return _codes(image.detach().float().cpu(), 8).to(torch.uint8).permute(1, 2, 0).numpy()


def quantize(image: Tensor, bits: int = 8) -> Tensor:
    """``image`` as :func:`write_image` stores it: the codes it writes mapped back to [-1, 1], so scores of a
    quantised output match the saved file exactly.

    Shape: any, values in [-1, 1] → same shape, float32.
    """
    return _codes(image, bits) / (((1 << bits) - 1) / 2.0) - 1.0


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def _encode_png16(codes: np.ndarray) -> bytes:
    """A 16-bit RGB PNG (filter "Up" on every row, zlib level 6); PIL cannot write 16-bit colour PNGs."""
    height, width, _ = codes.shape
    rows = codes.astype(">u2").reshape(height, width * 3).view(np.uint8)
    up = rows - np.concatenate([np.zeros_like(rows[:1]), rows[:-1]])  # uint8 arithmetic wraps mod 256
    raw = np.concatenate([np.full((height, 1), 2, np.uint8), up], axis=1)
    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(raw.tobytes(), 6))
        + _png_chunk(b"IEND", b"")
    )
