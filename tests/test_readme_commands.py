"""Every README command of scripts/sample.py, evaluate.py and demo.py (and the Python example) runs, as written,
on a tiny random model.

Only what would take minutes is shrunk: images are 16 px (``--crop``/``--size``; inputs 24×32), evaluations score one image
(``--limit 1``) without the W&B run, ``make_dataset.py`` writes two pairs; the paths the README names (checkpoints,
inputs, GoPro) are created in a temporary working directory and ``classical``'s deconvolution is a stub.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stochdeblur import baselines, hub
from stochdeblur.cli import demo, evaluate, make_dataset, sample
from stochdeblur.config import load_config
from stochdeblur.methods import build_method

README = Path(__file__).resolve().parents[1] / "README.md"
SCRIPTS: dict[str, Callable[[list[str]], int]] = {"sample": sample.main, "evaluate": evaluate.main,
                                                  "demo": demo.main, "make_dataset": make_dataset.main}
SHRINK = {"--crop": "16", "--size": "16", "--count": "2"}
GOPRO = "/data/GOPRO_Large"
TINY = ["predictor.base_channels=4", "denoiser.base_channels=4", "predictor.channel_mults=[1]",
        "denoiser.channel_mults=[1]", "predictor.num_res_blocks=1", "denoiser.num_res_blocks=1"]


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.S)


def readme_commands() -> list[list[list[str]]]:
    """Per bash block of the README, its ``python scripts/{sample,evaluate,demo}.py`` commands as argv lists,
    with the ``make_dataset.py`` commands of the same block (they make the data the evaluation reads)."""
    blocks = []
    for block in _blocks("bash"):
        commands = [shlex.split(line, comments=True) for line in block.replace("\\\n", " ").splitlines()]
        commands = [c for c in commands if len(c) > 1 and c[0] == "python" and c[1].startswith("scripts/")]
        if any(Path(c[1]).stem in ("sample", "evaluate", "demo") for c in commands):
            blocks.append(commands)
    return blocks


def _shrink(command: list[str], gopro: Path) -> tuple[str, list[str]]:
    script, argv = Path(command[1]).stem, [a.replace(GOPRO, str(gopro)) for a in command[2:]]
    argv = [SHRINK.get(argv[i - 1], a) if i else a for i, a in enumerate(argv)]
    if script == "evaluate":
        argv += [*(["--limit", "1"] if "--limit" not in argv else []), "--no-wandb"]
    if script == "demo" and "--size" not in argv:
        argv += ["--size", SHRINK["--size"]]
    return script, argv


@pytest.fixture()
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory holding every path the README commands name, a tiny model as the shipped default."""
    monkeypatch.chdir(tmp_path)
    cfg = load_config(overrides=TINY)
    model = build_method(cfg).eval()
    for argv in (c for block in readme_commands() for c in block):
        for flag, value in zip(argv, argv[1:], strict=False):
            if flag == "--checkpoint" and "/" in value:
                hub.save_pretrained(model, tmp_path / value, cfg)
            elif flag == "--input":
                files = [Path(value) / "a.png", Path(value) / "b.jpg"] if value.endswith("/") else [Path(value)]
                for k, path in enumerate(files):
                    path.parent.mkdir(parents=True, exist_ok=True)
                    pixels = np.random.default_rng(k).integers(0, 256, (24, 32, 3), dtype=np.uint8)
                    Image.fromarray(pixels).save(path)
    hub.save_pretrained(model, tmp_path / "weights" / "default", cfg)
    monkeypatch.setattr(hub, "WEIGHTS_DIR", tmp_path / "weights")
    monkeypatch.setattr(hub, "DEFAULT_MODEL_DIR", tmp_path / "weights" / "default")
    monkeypatch.setattr(baselines, "blind_deconvolve", lambda image, size, **_: (image, torch.eye(size) / size),
                        raising=False)
    assert make_dataset.main(["--dead-leaves", "--count", "2", "--size", "32", "--split", "test",
                              "--out", str(tmp_path / "gopro")]) == 0
    return tmp_path


def test_the_readme_shows_the_modes() -> None:
    scripts = [Path(c[1]).stem for block in readme_commands() for c in block]
    assert scripts.count("sample") >= 5 and scripts.count("evaluate") >= 4 and "demo" in scripts
    flags = {a for block in readme_commands() for c in block for a in c}
    assert {"--mode", "--save-samples", "--uncertainty", "--save-kernel", "--modes", "--perceptual-steps"} <= flags


@pytest.mark.slow  # ~25 s on 2 shared cores: the 500-step demo and the README's 24-point sweep
def test_every_readme_command_runs(workdir: Path) -> None:
    for block in readme_commands():
        for command in block:
            script, argv = _shrink(command, workdir / "gopro")
            assert SCRIPTS[script](argv) == 0, f"{shlex.join(command)} (run as {script} {shlex.join(argv)})"
    restored = {p.name for p in (workdir / "restored").iterdir()}
    assert {"shake.png", "shake_sample3.png", "shake_sigma.npy", "shake_kernel.png", "a.png", "a_compare.png"} <= restored
    assert (workdir / "runs" / "eval_synth" / "summary.md").is_file()


def test_the_python_example_runs(workdir: Path) -> None:
    Image.fromarray(np.zeros((24, 32, 3), dtype=np.uint8)).save(workdir / "shake.png")
    (example,) = [block for block in _blocks("python") if "Restorer" in block]
    namespace: dict[str, object] = {}
    exec(compile(example, str(README), "exec"), namespace)
    assert namespace["x"].shape == (1, 3, 24, 32)
    assert namespace["r"].samples.shape == (4, 1, 3, 24, 32) and namespace["r"].sigma.shape == (1, 24, 32)
    assert (workdir / "sharp.png").is_file()
