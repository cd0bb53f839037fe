"""The method contract as a whole: every shipped config builds a method that declares it, each tiny config is its
full twin shrunk, one step of every group (and restore) runs on every device, and the trainer needs nothing else."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from accelerate.state import AcceleratorState
from torch import Tensor, nn

from stochdeblur import training
from stochdeblur.config import RunConfig, load_config, to_dict
from stochdeblur.diffusion.sampler import Restoration
from stochdeblur.methods import build_method
from stochdeblur.methods.base import Method, OptimizerGroup

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
ALL = sorted(p.stem for p in CONFIGS.glob("*.yaml"))
TINY = [name for name in ALL if name.endswith("_tiny")]
TWIN = {"dvsr_tiny": "dvsr_gopro"}  # otherwise <name>_tiny.yaml shrinks <name>.yaml

# What a *_tiny.yaml may change in its full twin, and why. Everything else (architecture, losses and their
# weights, discriminator, schedules, optimiser betas, clipping, ...) must be the same.
TINY_MAY_CHANGE = {
    "size": {
        "predictor.base_channels", "predictor.channel_mults", "predictor.num_res_blocks", "predictor.kernel_size",
        "predictor.deconv_iterations", "denoiser.base_channels", "denoiser.channel_mults",
        "denoiser.num_res_blocks", "data.crop_size", "data.val_crop_size", "data.batch_size", "data.val_images",
        "data.kernel_size_min", "data.kernel_size_max", "data.synthetic_length", "data.num_workers",
        "sample.steps", "sample.average", "log.image_panels",
    },
    "steps and cadence of a run of a few steps": {
        "train.max_steps", "train.warmup_steps", "train.checkpoint_every", "train.val_every", "train.log_every",
        "train.keep_last", "gan.freeze_backbone_steps",
        # a few steps at toy size: a larger LR to move at all, a short EMA, fp32 (bf16 warm-up costs more)
        "train.lr", "train.min_lr_ratio", "train.ema_decay", "train.mixed_precision",
    },
    "offline, on any CPU (no dataset, photos, pretrained weights or tracker service)": {
        "name", "data.kind", "data.root", "data.val_kind", "data.texture_prob", "data.photo_prob", "data.noise_max",
        "gan.pretrained_backbone", "gan.perceptual", "log.tracker",
    },
}


@pytest.fixture(autouse=True)
def _fresh_accelerate_state():
    yield
    AcceleratorState._reset_state(True)


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict) and key != "modes":
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def _check_declares_the_contract(method: Method, cfg: RunConfig) -> None:
    assert isinstance(method, Method)
    assert method.samples == (cfg.method == "dvsr")  # the diffusion family samples, the GANs are one shot
    groups = method.optimizer_groups()
    assert groups and all(g.params and g.lr > 0 for g in groups.values())
    assert set(method.step_schedule()) == set(groups)
    assert bool(method.modes) == method.samples


@pytest.mark.filterwarnings("ignore::stochdeblur.models.fpn.PretrainedWeightsMissing")
@pytest.mark.parametrize("name", ALL)
def test_every_config_loads_and_builds_a_method_declaring_the_contract(name: str, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # no VGG19 here: paper GAN configs must say so up front
    cfg = load_config(CONFIGS / f"{name}.yaml")
    if name in TINY:
        method = build_method(cfg)
        assert all(isinstance(note, str) for note in method.requirements())
    else:
        with torch.device("meta"):  # paper size: the structure without allocating or initialising weights
            method = build_method(cfg)
    _check_declares_the_contract(method, cfg)
    if not method.samples and cfg.gan.perceptual == "vgg19":
        with pytest.raises(ValueError, match="gan.perceptual=none"):
            method.requirements()


@pytest.mark.parametrize("tiny", TINY)
def test_tiny_configs_differ_from_their_full_twin_only_in_size_keys(tiny: str) -> None:
    full = TWIN.get(tiny, tiny.removesuffix("_tiny"))
    small, big = (_flat(to_dict(load_config(CONFIGS / f"{n}.yaml"))) for n in (tiny, full))
    changed = {key for key in small if small[key] != big[key]}
    allowed = set().union(*TINY_MAY_CHANGE.values())
    assert changed - allowed == set(), {k: (big[k], small[k]) for k in changed - allowed}


def _batch(size: int, device: torch.device) -> dict[str, Tensor]:
    g = torch.Generator().manual_seed(0)
    sharp = torch.rand(2, 3, size, size, generator=g) * 2 - 1
    blur = (sharp + 0.1 * torch.randn(sharp.shape, generator=g)).clamp(-1, 1)
    return {"blur": blur.to(device), "sharp": sharp.to(device)}


@pytest.mark.parametrize("name", ["dvsr_tiny", "deblurganv2_mobilenet_tiny", "deblurgan_v1_tiny"])
def test_one_step_of_every_group_then_restore_on_each_device(name: str, device: torch.device) -> None:
    """What the trainer does with a method, by hand: each group of the schedule steps its own optimizer, with the
    training noise drawn from a generator on the device; then restore, with samples where the method samples."""
    method = build_method(load_config(CONFIGS / f"{name}.yaml")).to(device)
    groups = method.optimizer_groups()
    optimizers = {k: torch.optim.AdamW(g.params, lr=g.lr) for k, g in groups.items()}
    before = {k: [p.detach().clone() for p in g.params] for k, g in groups.items()}
    batch, noise = _batch(32, device), torch.Generator(device=device)
    for k, group in enumerate(method.step_schedule()):
        method.on_step(0)
        for opt in optimizers.values():
            opt.zero_grad(set_to_none=True)
        out = method(batch, group, generator=noise.manual_seed(k))
        assert torch.isfinite(out["loss"]) and out["loss"].device.type == device.type
        out["loss"].backward()
        optimizers[group].step()
    for k, g in groups.items():
        assert any(not torch.equal(b, p) for b, p in zip(before[k], g.params, strict=True)), k
    method.eval()
    blur = batch["blur"][:, :, :30, :27]  # any size
    result = method.restore(blur, steps=2, average=2, return_samples=True)
    assert isinstance(result, Restoration) and result.image.shape == blur.shape
    assert result.image.device.type == device.type and result.image.abs().max() <= 1
    assert result.samples.shape[0] == (2 if method.samples else 1)


class Recorder(Method):
    """A two-group method that records what the trainer asks of it."""

    samples = False

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 3, 1), nn.Conv2d(3, 3, 1)
        self.calls: list[tuple[str, bool]] = []
        self.steps: list[int] = []

    def optimizer_groups(self) -> dict[str, OptimizerGroup]:
        return {"a": OptimizerGroup(list(self.a.parameters()), 0.1),
                "b": OptimizerGroup(list(self.b.parameters()), 0.01)}

    def step_schedule(self) -> list[str]:
        return ["b", "a", "b"]

    def requirements(self) -> list[str]:
        return ["the recorder is no real method"]

    def on_step(self, step: int) -> None:
        self.steps.append(step)

    def forward(self, batch: dict[str, Tensor], group: str,
                generator: torch.Generator | None = None) -> dict[str, Tensor]:
        self.calls.append((group, isinstance(generator, torch.Generator)))
        net = self.a if group == "a" else self.b
        return {"loss": F.l1_loss(net(batch["blur"]), batch["sharp"])}

    def restore(self, blur: Tensor, **kwargs: Any) -> Tensor:
        return self.b(self.a(blur)).clamp(-1, 1)

    def validation_images(self, blur: Tensor) -> dict[str, Tensor]:
        return {"x_init": self.a(blur).clamp(-1, 1)}


def test_the_trainer_uses_only_the_declared_contract(tmp_path, capsys) -> None:
    recorder = Recorder()
    cfg = load_config(CONFIGS / "dvsr_tiny.yaml", ["train.max_steps=2", "train.lr_schedule=constant",
                                                   "train.warmup_steps=0", "train.checkpoint_every=0",
                                                   "train.val_every=0"])
    result = training.Trainer(cfg, recorder, tmp_path / "run").fit()
    assert recorder.steps == [0, 1]
    assert recorder.calls == [("b", True), ("a", True), ("b", True)] * 2
    assert capsys.readouterr().out.count("note: the recorder is no real method") == 1
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["lr/a"] == pytest.approx(0.1) and rows[0]["lr/b"] == pytest.approx(0.01)
    assert "train/b/loss" in rows[0] and "train/a/loss" in rows[0]
    assert "val/psnr_init" in result  # validation_images' x_init is scored


def test_a_group_stepped_twice_per_step_has_the_lr_of_the_step(tmp_path) -> None:
    """The LR is a function of the training step, so warm-up and decay do not run faster for "b", which steps twice
    per training step (as a GAN's critic does with gan.d_steps_per_g > 1)."""
    cfg = load_config(CONFIGS / "dvsr_tiny.yaml", ["train.max_steps=2", "train.lr_schedule=constant",
                                                   "train.warmup_steps=4", "train.checkpoint_every=0",
                                                   "train.val_every=0", "train.log_every=1"])
    training.Trainer(cfg, Recorder(), tmp_path / "run").fit()
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    lrs = {row["step"]: (row["lr/a"], row["lr/b"]) for row in rows if "lr/a" in row}
    assert lrs == {1: pytest.approx((0.1 / 4, 0.01 / 4)), 2: pytest.approx((0.1 / 2, 0.01 / 2))}


def test_a_failed_requirement_stops_the_trainer_before_it_writes_anything(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    cfg = load_config(CONFIGS / "deblurgan_v1_tiny.yaml", ["gan.perceptual=vgg19"])
    with pytest.raises(ValueError, match="gan.perceptual=none"):
        training.Trainer(cfg, build_method(cfg), tmp_path / "run")
    assert not (tmp_path / "run").exists()
    classical = dataclasses.replace(cfg, method="classical")
    with pytest.raises(ValueError, match="method=classical has no parameters to train"):
        training.Trainer(classical, build_method(classical), tmp_path / "run")
