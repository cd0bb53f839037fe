"""benchmarks/doc_grid.py: the README's small copy of the demo grid."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import doc_grid  # noqa: E402


def test_half_size_palette_copy_keeps_the_picture(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 255, 64, dtype=np.float32)
    rgba = np.stack([np.add.outer(ramp, ramp) / 2, np.tile(ramp, (64, 1)), np.tile(ramp[:, None], (1, 64)),
                     np.full((64, 64), 255.0)], -1)
    rgba[:, :, :3] += rng.normal(0, 3, (64, 64, 3))
    source = tmp_path / "grid.png"
    Image.fromarray(rgba.clip(0, 255).astype(np.uint8), "RGBA").save(source)
    out = tmp_path / "docs" / "demo_grid.png"
    out.parent.mkdir()
    assert doc_grid.main([str(source), str(out)]) == 0
    with Image.open(out) as small:
        assert small.mode == "P" and small.size == (32, 32)
        restored = np.asarray(small.convert("RGB"), dtype=np.float32)
    reference = np.asarray(Image.open(source).convert("RGB").reduce(2), dtype=np.float32)
    assert np.abs(restored - reference).mean() < 4.0


def test_unreadable_grid_is_exit_2_and_writes_nothing(tmp_path: Path) -> None:
    broken = tmp_path / "grid.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    out = tmp_path / "demo_grid.png"
    assert doc_grid.main([str(broken), str(out)]) == 2
    assert not out.exists()
