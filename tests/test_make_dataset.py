"""make_dataset CLI: writes a GoPro layout the GoPro loader reads back, with kernels and a preview."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stochdeblur.cli.make_dataset import main, parse_kernel_size
from stochdeblur.data.paired import PairedDataset, gopro_pairs


def _run(out: Path, *extra: str) -> int:
    args = ["--dead-leaves", "--count", "5", "--size", "32", "--kernel-size", "5-9", "--seq-size", "2"]
    return main([*args, "--out", str(out), *extra])


def test_dead_leaves_dataset_round_trips_through_the_gopro_loader(tmp_path: Path) -> None:
    preview = tmp_path / "preview.png"
    assert _run(tmp_path / "ds", "--preview", str(preview)) == 0
    pairs = gopro_pairs(tmp_path / "ds", "train")
    assert [p.name for p in pairs] == [
        "SEQ0000_000000",
        "SEQ0000_000001",
        "SEQ0001_000002",
        "SEQ0001_000003",
        "SEQ0002_000004",
    ]
    item = PairedDataset(pairs, crop_size=None, augment=False, seed=0)[4]
    assert item["blur"].shape == item["sharp"].shape == (3, 32, 32)
    kernel = np.load(tmp_path / "ds/train/SEQ0002/kernel/000004.npy")
    assert kernel.sum() == pytest.approx(1.0, abs=1e-5) and 5 <= kernel.shape[0] <= 9
    assert Image.open(tmp_path / "ds/train/SEQ0002/kernel/000004.png").size == kernel.shape[::-1]
    assert (tmp_path / "ds/train/manifest.csv").read_text().count("\n") == 6
    with Image.open(preview) as im:
        assert im.width > 6 * 32 and im.height > 3 * 32


def test_same_seed_same_files_and_no_silent_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(tmp_path / "a") == 0 and _run(tmp_path / "b") == 0
    for name in ("blur", "sharp"):
        a = (tmp_path / f"a/train/SEQ0001/{name}/000003.png").read_bytes()
        assert a == (tmp_path / f"b/train/SEQ0001/{name}/000003.png").read_bytes()
    assert _run(tmp_path / "a") == 2
    assert "pass --overwrite" in capsys.readouterr().err
    assert _run(tmp_path / "a", "--overwrite", "--seed", "1") == 0


def test_from_a_folder_of_sharp_images(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    Image.fromarray(np.full((40, 50, 3), 120, np.uint8)).save(tmp_path / "photos/p.png")
    code = main(
        ["--sharp", str(tmp_path / "photos"), "--count", "2", "--size", "16", "--out", str(tmp_path / "ds")]
    )
    assert code == 0 and len(gopro_pairs(tmp_path / "ds", "train")) == 2


def test_bad_arguments_exit_2_with_a_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(tmp_path / "ds", "--kernel-size", "9-5") == 2
    assert "--kernel-size" in capsys.readouterr().err
    assert main(["--sharp", str(tmp_path / "nope"), "--out", str(tmp_path / "ds")]) == 2
    assert "not a directory" in capsys.readouterr().err
    assert parse_kernel_size("33") == (7, 33) and parse_kernel_size("5") == (5, 5)


def test_texture_prob_mixes_cc0_crops_and_says_so_in_the_manifest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("skimage")
    assert _run(tmp_path / "mixed", "--count", "12", "--texture-prob", "0.5") == 0
    rows = (tmp_path / "mixed/train/manifest.csv").read_text().splitlines()
    sources = [row.rsplit(",", 1)[1] for row in rows[1:]]
    assert rows[0].endswith(",source") and len(sources) == 12
    assert set(sources) == {"texture", "dead_leaves"}
    assert _run(tmp_path / "bad", "--texture-prob", "2") == 2
    assert "--texture-prob" in capsys.readouterr().err


def test_photo_prob_and_kernels_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from stochdeblur.data.wallpapers import wallpaper_files

    if not wallpaper_files():
        pytest.skip("no wallpaper photo installed (make photos installs them)")
    assert _run(tmp_path / "ds", "--count", "8", "--photo-prob", "0.5", "--kernels", "boracchi,gp") == 0
    rows = (tmp_path / "ds/train/manifest.csv").read_text().splitlines()[1:]
    sources = [row.rsplit(",", 1)[1] for row in rows]
    assert any(s.startswith("wallpaper:") for s in sources) and "dead_leaves" in sources
    assert _run(tmp_path / "bad", "--kernels", "levin") == 2
    assert "kernel_generators" in capsys.readouterr().err
