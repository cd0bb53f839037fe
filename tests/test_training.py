"""Training loop: EMA, LR schedule, data position, checkpoints, exact resume, crash recovery, CLI, W&B offline."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from accelerate.state import AcceleratorState
from helpers import read_wandb_history, train
from PIL import Image
from safetensors.torch import load_file
from torch import nn

from stochdeblur.checkpointing import COMPLETE_MARKER, latest_checkpoint
from stochdeblur.cli import sample as sample_cli
from stochdeblur.cli import train as train_cli
from stochdeblur.config import TrainConfig, load_config
from stochdeblur.data import SyntheticPairs
from stochdeblur.ema import EMA
from stochdeblur.hub import CheckpointError
from stochdeblur.io import write_image
from stochdeblur.trackers import wandb_run_files
from stochdeblur.training import ShardedBatches, Trainer, initial_method, lr_factor

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "dvsr_synthetic_tiny.yaml"


@pytest.fixture(autouse=True)
def _fresh_accelerate_state():
    """Each in-process run builds its own Accelerator (accelerate keeps process-wide singletons)."""
    yield
    AcceleratorState._reset_state(True)


def _train(out: Path, *overrides: str, resume: str | None = None) -> dict[str, float]:
    return train(load_config(TINY, list(overrides)), out, resume=resume)


def _losses(out: Path) -> dict[int, float]:
    """Step → train/loss from metrics.jsonl (a resumed run's own lines win)."""
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["train/loss"] for r in rows if "train/loss" in r}


def _reached(out: Path) -> int:
    """Last step logged so far by a running training process (0 before its first line)."""
    try:
        return max(_losses(out), default=0)
    except (FileNotFoundError, json.JSONDecodeError):  # not created yet, or a line being written
        return 0


def test_ema_averages_swaps_and_round_trips() -> None:
    net = nn.Linear(2, 1)
    ema = EMA(net, decay=0.5)
    with torch.no_grad():
        start = net.weight.clone()
        net.weight.add_(1.0)
    ema.update(net, step=1)  # warm-up: min(0.5, 1/10) = 0.1 → shadow = 0.1·old + 0.9·new
    torch.testing.assert_close(ema.shadow["weight"], start + 0.9)
    with ema.swapped_in(net):
        torch.testing.assert_close(net.weight, start + 0.9)
    torch.testing.assert_close(net.weight, start + 1.0)
    other = EMA(nn.Linear(2, 1), decay=0.9)
    other.load_state_dict(ema.state_dict())
    assert other.num_updates == 1 and other.decay == 0.5
    torch.testing.assert_close(other.shadow["weight"], ema.shadow["weight"])


def test_lr_factor_warmup_cosine_step() -> None:
    cosine = TrainConfig(lr_schedule="cosine", warmup_steps=10, max_steps=110, min_lr_ratio=0.1)
    assert lr_factor(cosine, 0) == pytest.approx(0.1) and lr_factor(cosine, 9) == pytest.approx(1.0)
    assert [lr_factor(cosine, s) for s in (10, 60, 110)] == pytest.approx([1.0, 0.55, 0.1])
    step = TrainConfig(lr_schedule="step", warmup_steps=0, max_steps=100, min_lr_ratio=0.0)
    assert [lr_factor(step, s) for s in (0, 49, 50, 75)] == pytest.approx([1.0, 1.0, 0.1, 0.01])
    assert lr_factor(TrainConfig(lr_schedule="constant", warmup_steps=0, max_steps=100), 99) == 1.0


def test_sharded_batches_are_disjoint_and_resume_mid_epoch() -> None:
    data = SyntheticPairs(8, 8, kernel_size_min=3, kernel_size_max=3, seed=1)
    ranks = [ShardedBatches(data, 2, seed=1, rank=r, world=2) for r in range(2)]
    assert not set(ranks[0].indices(0)) & set(ranks[1].indices(0))
    assert ranks[0].indices(0) != ranks[0].indices(1)  # reshuffled each epoch
    names = [b["name"] for _, b in zip(range(5), ranks[0].iterate(0), strict=False)]  # 2 batches/epoch
    resumed = [b["name"] for _, b in zip(range(2), ranks[0].iterate(3), strict=False)]
    assert resumed == names[3:5] and names[2][0].startswith("synth_s1_e1_")


def test_latest_checkpoint_skips_half_written(tmp_path: Path) -> None:
    for name, complete in (("step_4", True), ("step_12", False), (".step_16.tmp", True), ("step_8", True)):
        (tmp_path / name).mkdir()
        if complete:
            (tmp_path / name / COMPLETE_MARKER).write_text("ok")
    assert latest_checkpoint(tmp_path) == tmp_path / "step_8"
    assert latest_checkpoint(tmp_path / "missing") is None


def test_unknown_config_key_exits_2_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert train_cli.main(["--config", str(TINY), "train.no_such_key=1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "train.no_such_key" in err[0]


def test_resume_equals_uninterrupted_and_ignores_half_written(tmp_path: Path) -> None:
    # 8 items / batch 2 = 4 batches per epoch: the resumed half crosses an epoch boundary.
    common = ("data.synthetic_length=8", "train.lr_schedule=constant", "train.checkpoint_every=3",
              "train.val_every=0")
    _train(tmp_path / "full", "train.max_steps=6", *common)
    _train(tmp_path / "split", "train.max_steps=3", *common)
    ckpts = tmp_path / "split" / "checkpoints"
    (ckpts / "step_5").mkdir()  # a crash mid-save: no marker, no weights
    (ckpts / ".step_6.tmp").mkdir()
    result = _train(tmp_path / "split", "train.max_steps=6", *common, resume="latest")
    assert result["step"] == 6
    full, split = _losses(tmp_path / "full"), _losses(tmp_path / "split")
    assert sorted(split) == list(range(1, 7))
    assert [split[s] for s in range(1, 7)] == pytest.approx([full[s] for s in range(1, 7)], rel=1e-5, abs=1e-6)
    for rel in ("model/model.safetensors", "checkpoints/step_6/model.safetensors"):
        a, b = load_file(tmp_path / "full" / rel), load_file(tmp_path / "split" / rel)
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)
    assert not (ckpts / ".step_6.tmp").exists()


def test_resume_follows_the_config_lr_schedule_not_the_checkpoints(tmp_path: Path) -> None:
    """Extending max_steps (or changing lr) at resume stretches the cosine: the LR is a function of the step and
    the config the run resumes with; a checkpoint holds no schedule."""
    common = ("data.synthetic_length=8", "train.lr_schedule=cosine", "train.checkpoint_every=4", "train.val_every=0")

    def lrs(out: Path) -> dict[int, float]:
        rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        return {r["step"]: r["lr/model"] for r in rows if "lr/model" in r}

    _train(tmp_path / "long", "train.max_steps=8", *common)
    AcceleratorState._reset_state(True)
    _train(tmp_path / "extended", "train.max_steps=4", *common)
    AcceleratorState._reset_state(True)
    _train(tmp_path / "extended", "train.max_steps=8", *common, resume="latest")
    long, extended = lrs(tmp_path / "long"), lrs(tmp_path / "extended")
    assert [extended[s] for s in range(5, 9)] == pytest.approx([long[s] for s in range(5, 9)], rel=1e-6)
    old_schedule, new_schedule = (TrainConfig(lr_schedule="cosine", warmup_steps=2, max_steps=n, min_lr_ratio=0.01)
                                  for n in (4, 8))
    assert extended[5] == pytest.approx(1e-3 * lr_factor(new_schedule, 4))
    assert lr_factor(new_schedule, 4) > 50 * lr_factor(old_schedule, 4)


def test_channels_last_layout_trains_the_same_model(tmp_path: Path) -> None:
    common = ("train.max_steps=4", "train.lr_schedule=constant", "train.val_every=0", "train.checkpoint_every=0")
    _train(tmp_path / "nhwc", *common, "train.channels_last=true")
    AcceleratorState._reset_state(True)
    _train(tmp_path / "nchw", *common, "train.channels_last=false")
    nhwc, nchw = _losses(tmp_path / "nhwc"), _losses(tmp_path / "nchw")
    assert [nhwc[s] for s in sorted(nchw)] == pytest.approx([nchw[s] for s in sorted(nchw)], rel=1e-4)
    a = load_file(tmp_path / "nhwc" / "model" / "model.safetensors")
    b = load_file(tmp_path / "nchw" / "model" / "model.safetensors")
    for key in b:
        torch.testing.assert_close(a[key], b[key], rtol=1e-3, atol=1e-4)


def test_tiny_cli_run_leaves_a_model_sample_py_accepts(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert train_cli.main(["--config", str(ROOT / "configs" / "dvsr_tiny.yaml"), "--out", str(out)]) == 0
    assert (out / "config.yaml").is_file() and (out / "model" / "config.json").is_file()
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_10", "step_5"]
    image = tmp_path / "in" / "odd.png"
    write_image(image, torch.rand(3, 37, 45) * 2 - 1)
    assert sample_cli.main(["--input", str(image.parent), "--output", str(tmp_path / "out"),
                            "--checkpoint", str(out / "model"), "--steps", "2", "--average", "1"]) == 0
    assert (tmp_path / "out" / "odd.png").is_file()


def test_wandb_offline_run_can_be_read_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))  # restored after the test; the trainer points it at out
    out = tmp_path / "run"
    _train(out, "log.tracker=wandb", "train.max_steps=2", "train.val_every=2")
    (run_file,) = wandb_run_files(out)
    rows = read_wandb_history(run_file)
    logged = {r["_step"]: r["train/loss"] for r in rows if "train/loss" in r}
    assert logged == pytest.approx(_losses(out))
    assert any("val/psnr" in r and "val/panels" in str(r) for r in rows)


@pytest.mark.slow
def test_kill_9_then_resume_latest_continues_the_loss_curve(tmp_path: Path) -> None:
    common = ["train.max_steps=60", "train.checkpoint_every=10", "train.val_every=0", "data.synthetic_length=16"]
    out = tmp_path / "killed"
    cmd = [sys.executable, str(ROOT / "scripts" / "train.py"), "--config", str(TINY), "--out", str(out), *common]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while proc.poll() is None and _reached(out) < 25:
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    reached = max(_losses(out))
    kept = latest_checkpoint(out / "checkpoints")
    assert kept is not None and int(kept.name.split("_")[1]) >= reached - 10  # at most one interval lost
    resumed = subprocess.run([*cmd, "--resume", "latest"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the subprocesses ran with one thread: same reduction order
    try:
        _train(tmp_path / "reference", *common)
    finally:
        torch.set_num_threads(threads)
    curve, reference = _losses(out), _losses(tmp_path / "reference")
    assert sorted(curve) == list(range(1, 61))
    assert [curve[s] for s in curve] == pytest.approx([reference[s] for s in curve], rel=1e-5, abs=1e-6)


def test_gan_config_trains_through_the_same_cli_and_serves_in_sample_py(tmp_path: Path) -> None:
    out = tmp_path / "gan"
    config = ROOT / "configs" / "deblurganv2_mobilenet_tiny.yaml"
    assert train_cli.main(["--config", str(config), "--out", str(out), "train.max_steps=2", "log.tracker=none"]) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert any("train/g/loss" in r for r in rows) and any("train/d/loss" in r for r in rows)
    with Image.open(out / "samples" / "step_0000002.png") as panels:  # blurry | output | sharp, no black x_init
        assert panels.width == 3 * 64 and panels.height % 64 == 0
    image = tmp_path / "in" / "odd.png"
    write_image(image, torch.rand(3, 37, 45) * 2 - 1)
    assert sample_cli.main(["--input", str(image), "--output", str(tmp_path / "out"),
                            "--checkpoint", str(out / "model")]) == 0
    assert (tmp_path / "out" / "odd.png").is_file()


def test_gan_resume_equals_uninterrupted(tmp_path: Path, pretrained_backbone_cache) -> None:
    """Two optimizers, the frozen-backbone phase (a loaded backbone, frozen for steps 1-2) and the
    RaGAN-LS pools all resume exactly."""
    config = ROOT / "configs" / "deblurganv2_mobilenet_tiny.yaml"
    common = ["data.synthetic_length=8", "train.lr_schedule=constant", "train.checkpoint_every=2",
              "train.val_every=0", "gan.pool_size=3", "gan.pretrained_backbone=true"]

    def run(out: Path, steps: int, resume: str | None = None) -> None:
        train(load_config(config, [*common, f"train.max_steps={steps}"]), out, resume=resume)
        AcceleratorState._reset_state(True)

    run(tmp_path / "full", 4)
    run(tmp_path / "split", 2)
    run(tmp_path / "split", 4, resume="latest")
    rows = {name: [json.loads(line) for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
            for name in ("full", "split")}
    curves = {name: {r["step"]: r["train/g/loss"] for r in rs if "train/g/loss" in r} for name, rs in rows.items()}
    assert sorted(curves["split"]) == [1, 2, 3, 4]
    assert [curves["split"][s] for s in range(1, 5)] == pytest.approx([curves["full"][s] for s in range(1, 5)],
                                                                     rel=1e-5, abs=1e-6)


def test_gan_paper_config_without_vgg_weights_exits_2_before_step_1(tmp_path: Path) -> None:
    """configs/deblurganv2_mobilenet.yaml needs VGG19 for its perceptual loss: one line naming the fix, no traceback,
    nothing written (the backbone's own missing-weights warning is kept out with gan.pretrained_backbone=false)."""
    out = tmp_path / "run"
    cmd = [sys.executable, str(ROOT / "scripts" / "train.py"), "--config",
           str(ROOT / "configs" / "deblurganv2_mobilenet.yaml"), "--out", str(out), "gan.pretrained_backbone=false"]
    proc = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "TORCH_HOME": str(tmp_path / "torch")},
                          capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr[-2000:]
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("error: VGG19 weights for the perceptual loss not found at ")
    assert line.endswith("or set gan.perceptual=none") and "Traceback" not in proc.stderr
    assert not out.exists()


def test_init_from_starts_a_run_from_saved_weights(tmp_path: Path) -> None:
    first = _train(tmp_path / "first", "train.max_steps=2", "train.val_every=0")
    assert first["step"] == 2
    cfg = load_config(TINY, [f"train.init_from={tmp_path / 'first' / 'model'}"])
    trainer = Trainer(cfg, initial_method(cfg), tmp_path / "second")
    saved = load_file(tmp_path / "first" / "model" / "model.safetensors")
    for name, tensor in trainer.unwrapped.state_dict().items():
        torch.testing.assert_close(tensor, saved[name])
    AcceleratorState._reset_state(True)
    with pytest.raises(CheckpointError, match="missing"):
        initial_method(load_config(TINY, [f"train.init_from={tmp_path / 'missing'}"]))
