"""The perception–distortion knobs at inference (issue 17, item 3): the inference schedule's β shape and final
noise level ᾱ_T, and the sampler with DDIM's η — typed and validated in the config, per mode preset, through
restore(), the Restorer and scripts/sample.py; each reaches the sampler and changes the output, and the defaults
leave it bit for bit as before."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stochdeblur import Restorer
from stochdeblur.cli.sample import main as sample_main
from stochdeblur.config import ConfigError, ModePreset, SampleConfig, load_config, resolve_preset
from stochdeblur.diffusion import sampler as sampler_module
from stochdeblur.diffusion.sampler import make_scheduler, sample
from stochdeblur.diffusion.schedule import cosine_inference_betas, inference_betas, inference_schedule
from stochdeblur.hub import load, save_pretrained
from stochdeblur.methods import build_method

TINY = ["predictor.base_channels=8", "denoiser.base_channels=8", "predictor.channel_mults=[1,2]",
        "denoiser.channel_mults=[1,2]", "predictor.num_res_blocks=1", "denoiser.num_res_blocks=1"]


def _eps(z: torch.Tensor, level: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
    """A fixed non-trivial ε̂ of z_t, √ᾱ and the condition (no network)."""
    return torch.tanh(0.7 * z.flip(1) + 0.5 * cond - level[:, None, None, None])


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    cfg = load_config(overrides=TINY)
    return build_method(cfg).eval(), cfg


@pytest.fixture(scope="module")
def blur() -> torch.Tensor:
    return torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1


# --- schedule ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("steps", [1, 2, 10, 500])
@pytest.mark.parametrize("end", [1e-3, 0.05])
def test_cosine_inference_betas_end_exactly_at_the_final_noise_level(steps: int, end: float) -> None:
    betas = cosine_inference_betas(steps, end)
    assert betas.shape == (steps,) and betas.dtype == torch.float64
    assert torch.all(betas > 0) and torch.all(betas < 1)
    assert torch.prod(1 - betas).item() == pytest.approx(end, rel=1e-9)
    assert torch.all(betas[1:] >= betas[:-1])
    if steps > 1:  # the cosine shape spends more of the steps at low noise than the linear one does
        assert not torch.allclose(betas, inference_betas(steps, end))


def test_inference_schedule_dispatches_and_names_the_choices() -> None:
    assert torch.equal(inference_schedule(10), inference_betas(10))  # the default is the original grid
    assert torch.equal(inference_schedule(10, "cosine", 0.01), cosine_inference_betas(10, 0.01))
    assert torch.prod(1 - inference_schedule(7, "linear", 0.02)).item() == pytest.approx(0.02, rel=1e-6)
    with pytest.raises(ValueError, match="schedule='quadratic' is not one of linear, cosine"):
        inference_schedule(10, "quadratic")
    with pytest.raises(ValueError, match="alpha_bar_end must be in"):
        cosine_inference_betas(10, 1.0)


@pytest.mark.parametrize("name", ["ddpm", "ddim", "dpmsolver"])
def test_scheduler_is_built_on_the_requested_schedule(name: str) -> None:
    assert torch.allclose(make_scheduler(name, 10).betas.double(), inference_betas(10).float().double())
    cosine = make_scheduler(name, 10, schedule="cosine", alpha_bar_end=0.05)
    assert cosine.alphas_cumprod[-1].item() == pytest.approx(0.05, rel=1e-5)
    assert torch.allclose(cosine.betas.double(), cosine_inference_betas(10, 0.05).float().double())


# --- sampler -------------------------------------------------------------------------------------------------


def test_ddim_eta_one_is_the_ddpm_update_and_eta_zero_is_deterministic() -> None:
    y = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1
    ddpm = sample(_eps, y, y, 6, average=2, seed=3, sampler="ddpm")
    ancestral = sample(_eps, y, y, 6, average=2, seed=3, sampler="ddim", eta=1.0)
    assert torch.allclose(ddpm, ancestral, atol=1e-5)  # σ_t² = β_t(1−ᾱ_{t−1})/(1−ᾱ_t) either way
    default = sample(_eps, y, y, 6, average=2, seed=3, sampler="ddim")
    assert torch.equal(default, sample(_eps, y, y, 6, average=2, seed=3, sampler="ddim", eta=0.0))
    half = sample(_eps, y, y, 6, average=2, seed=3, sampler="ddim", eta=0.5)
    assert not torch.allclose(half, default, atol=1e-3) and not torch.allclose(half, ancestral, atol=1e-3)
    with pytest.raises(ValueError, match="eta must be in"):
        sample(_eps, y, y, 3, sampler="ddim", eta=1.5)


@pytest.mark.parametrize("name", ["ddpm", "ddim", "dpmsolver"])
def test_schedule_and_final_noise_level_change_every_samplers_output(name: str) -> None:
    y = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(2)) * 2 - 1
    base = sample(_eps, y, y, 5, seed=1, sampler=name)
    assert torch.equal(base, sample(_eps, y, y, 5, seed=1, sampler=name, schedule="linear", alpha_bar_end=1e-3))
    assert not torch.allclose(base, sample(_eps, y, y, 5, seed=1, sampler=name, schedule="cosine"), atol=1e-3)
    assert not torch.allclose(base, sample(_eps, y, y, 5, seed=1, sampler=name, alpha_bar_end=0.05), atol=1e-3)


# --- config --------------------------------------------------------------------------------------------------


def test_sample_section_and_presets_are_typed_validated_and_resolved() -> None:
    cfg = load_config(overrides=["sample.eta=0.25", "sample.schedule=cosine", "sample.modes.crisp.steps=20",
                                 "sample.modes.crisp.sampler=ddim", "sample.modes.crisp.alpha_bar_end=0.01"])
    s = cfg.sample
    assert (s.sampler, s.eta, s.schedule, s.alpha_bar_end) == ("ddpm", 0.25, "cosine", 1e-3)
    presets = s.presets()
    assert presets["crisp"] == ModePreset(20, 1, "ddim", 0.25, "cosine", 0.01)  # blanks from the section
    assert presets["average"] == ModePreset(10, 4, "ddpm", 0.25, "cosine", 1e-3)
    assert presets["perceptual"] == ModePreset(500, 1, "ddpm", 0.25, "cosine", 1e-3)  # the default mode stays
    defaults = SampleConfig()
    assert (defaults.sampler, defaults.eta, defaults.schedule, defaults.alpha_bar_end) == ("ddpm", 0.0, "linear", 1e-3)
    bad = {"sample.eta=1.5": "sample.eta=1.5 must be in", "sample.schedule=quadratic": "sample.schedule='quadratic'",
           "sample.alpha_bar_end=1.0": "sample.alpha_bar_end=1.0 must be in", "sample.sampler=euler": "sample.sampler",
           "sample.modes.x.eta=-0.1": "sample.modes.x.eta=-0.1 must be in",
           "sample.modes.x.schedule=sigmoid": "sample.modes.x.schedule='sigmoid'",
           "sample.modes.x.alpha_bar_end=0": "sample.modes.x.alpha_bar_end=0.0 must be in"}
    for override, message in bad.items():
        with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
            load_config(overrides=[override])
    with pytest.raises(ConfigError, match="sample.modes.x.eta=0.5 applies to DDIM only, but sample.modes.x.sampler=ddpm"):
        load_config(overrides=["sample.modes.x.sampler=ddpm", "sample.modes.x.eta=0.5"])
    with pytest.raises(ConfigError, match="could not be converted"):
        load_config(overrides=["sample.eta=lots"])


def test_resolution_order_explicit_then_mode_then_section() -> None:
    presets = SampleConfig(sampler="dpmsolver", modes={"crisp": ModePreset(20, 1, sampler="ddim", eta=1.0)}).presets()
    assert resolve_preset(presets, "crisp") == ModePreset(20, 1, "ddim", 1.0, "linear", 1e-3)
    assert resolve_preset(presets, "crisp", steps=500) == ModePreset(500, 1, "ddim", 1.0, "linear", 1e-3)
    assert resolve_preset(presets, "crisp", eta=0.0, schedule="cosine").eta == 0.0
    assert resolve_preset(presets, None, steps=3).sampler == "dpmsolver"  # no mode: the sample section's
    assert resolve_preset({}, None, steps=3) == ModePreset(3, 1, "ddpm", 0.0, "linear", 1e-3)  # one-shot methods
    with pytest.raises(ConfigError, match="eta=0.5 applies to the DDIM sampler only, not dpmsolver"):
        resolve_preset(presets, "average", eta=0.5)
    with pytest.raises(ConfigError, match="sampling.alpha_bar_end=2.0"):
        resolve_preset(presets, "crisp", alpha_bar_end=2.0)


def test_a_saved_config_that_names_perceptual_keeps_its_settings(tmp_path: Path, monkeypatch) -> None:
    """A model saved before the knobs existed (config.json: perceptual = 500 × 1, no sampler keys) loads with the
    sample section's sampler settings, not with those of a changed DEFAULT_MODES entry."""
    from stochdeblur import config

    monkeypatch.setitem(config.DEFAULT_MODES, "perceptual", ModePreset(10, 1, "ddim", 0.5, "cosine", 0.01))
    assert SampleConfig().presets()["perceptual"] == ModePreset(10, 1, "ddim", 0.5, "cosine", 0.01)
    torch.manual_seed(0)
    cfg = load_config(overrides=TINY)
    directory = save_pretrained(build_method(cfg), tmp_path / "m", cfg)
    path = directory / "config.json"
    import json

    payload = json.loads(path.read_text())
    payload["sample"] = {k: v for k, v in payload["sample"].items() if k not in ("eta", "schedule", "alpha_bar_end")}
    payload["sample"]["modes"] = {"perceptual": {"steps": 500, "average": 1}}
    path.write_text(json.dumps(payload))
    model, loaded = load(directory)
    assert model.modes["perceptual"] == ModePreset(500, 1, "ddpm", 0.0, "linear", 1e-3)


# --- restore / Restorer / CLI --------------------------------------------------------------------------------


class _Spy:
    """Records the arguments of every scheduler the sampler builds and the η its steps get."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[dict] = []
        real = sampler_module.make_scheduler

        def spy(name: str, steps: int, **kwargs):
            scheduler = real(name, steps, **kwargs)
            call = {"sampler": name, "steps": steps, **kwargs, "eta": []}
            self.calls.append(call)
            step = scheduler.step

            def recorded_step(*args, **step_kwargs):
                call["eta"].append(step_kwargs.get("eta"))
                return step(*args, **step_kwargs)

            scheduler.step = recorded_step
            return scheduler

        monkeypatch.setattr(sampler_module, "make_scheduler", spy)

    def last(self) -> dict:
        call = self.calls[-1]
        return {**call, "eta": set(call["eta"])}


def test_each_setting_reaches_the_sampler_and_changes_the_output(model, blur, monkeypatch) -> None:
    method, _ = model
    spy = _Spy(monkeypatch)
    base = method.restore(blur, steps=4, seed=1)
    assert spy.last() == {"sampler": "ddpm", "steps": 4, "schedule": "linear", "alpha_bar_end": 1e-3, "eta": {None}}
    for options, seen in [({"schedule": "cosine"}, {"schedule": "cosine"}),
                          ({"alpha_bar_end": 0.05}, {"alpha_bar_end": 0.05}),
                          ({"sampler": "ddim"}, {"sampler": "ddim", "eta": {0.0}}),
                          ({"sampler": "ddim", "eta": 0.5}, {"sampler": "ddim", "eta": {0.5}}),
                          ({"sampler": "dpmsolver"}, {"sampler": "dpmsolver"})]:
        out = method.restore(blur, steps=4, seed=1, **options)
        got = spy.last()
        assert {k: got[k] for k in seen} == seen, options
        assert not torch.allclose(out, base, atol=1e-4), options


def test_restorer_uses_the_modes_sampler_settings(blur, monkeypatch) -> None:
    torch.manual_seed(0)
    cfg = load_config(overrides=[*TINY, "sample.modes.crisp.steps=3", "sample.modes.crisp.sampler=ddim",
                                 "sample.modes.crisp.eta=1.0", "sample.modes.crisp.schedule=cosine"])
    restorer = Restorer(build_method(cfg), cfg, device="cpu", precision="no")
    spy = _Spy(monkeypatch)
    crisp = restorer(blur, "crisp", seed=2)
    assert spy.last() == {"sampler": "ddim", "steps": 3, "schedule": "cosine", "alpha_bar_end": 1e-3, "eta": {1.0}}
    assert torch.equal(crisp, restorer.model.restore(blur, mode="crisp", seed=2))
    restorer(blur, "crisp", steps=5, seed=2, eta=0.0)  # explicit values replace the mode's, the rest stays
    assert spy.last() == {"sampler": "ddim", "steps": 5, "schedule": "cosine", "alpha_bar_end": 1e-3, "eta": {0.0}}
    restorer(blur, steps=2)  # no mode: the sample section's DDPM
    assert spy.last()["sampler"] == "ddpm" and spy.last()["schedule"] == "linear"
    with pytest.raises(ValueError, match="applies to the DDIM sampler only"):
        restorer(blur, "average", eta=0.3)


def test_defaults_are_the_explicit_original_settings_bit_for_bit(model, blur) -> None:
    method, cfg = model
    restorer = Restorer(method, cfg, device="cpu", precision="no")
    original = {"sampler": "ddpm", "schedule": "linear", "alpha_bar_end": 1e-3}
    assert torch.equal(restorer(blur), restorer(blur, "average", **original))
    assert torch.equal(method.restore(blur, mode="perceptual", steps=3, seed=4),
                       method.restore(blur, steps=3, seed=4, **original))
    for name in ("ddim", "dpmsolver"):
        explicit = {**original, "sampler": name, **({"eta": 0.0} if name == "ddim" else {})}
        assert torch.equal(method.restore(blur, steps=3, seed=4, sampler=name), method.restore(blur, steps=3, seed=4,
                                                                                               **explicit))


def test_sample_cli_flags(model, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    method, cfg = model
    checkpoint = save_pretrained(method, tmp_path / "ckpt", cfg)
    image = tmp_path / "in" / "x.png"
    image.parent.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 40, 3), dtype=np.uint8)).save(image)

    def run(name: str, *flags: str) -> np.ndarray:
        code = sample_main(["--input", str(image), "--output", str(tmp_path / name), "--checkpoint", str(checkpoint),
                            "--steps", "3", "--precision", "no", *flags])
        assert code == 0
        return np.asarray(Image.open(tmp_path / name / "x.png"))

    base = run("base")
    assert "3 steps × 1 sample (ddpm, linear β, ᾱ_T=0.001)" in capsys.readouterr().out
    assert np.array_equal(base, run("explicit", "--sampler", "ddpm", "--schedule", "linear", "--alpha-bar-end", "0.001"))
    capsys.readouterr()
    ddim = run("ddim", "--sampler", "ddim", "--eta", "0.5", "--schedule", "cosine", "--alpha-bar-end", "0.01")
    assert "3 steps × 1 sample (ddim η=0.5, cosine β, ᾱ_T=0.01)" in capsys.readouterr().out
    assert not np.array_equal(base, ddim)
    assert sample_main(["--input", str(image), "--output", str(tmp_path / "bad"), "--checkpoint", str(checkpoint),
                        "--steps", "3", "--eta", "0.5"]) == 2
    assert "eta=0.5 applies to the DDIM sampler only, not ddpm" in capsys.readouterr().err
    assert sample_main(["--input", str(image), "--output", str(tmp_path / "bad"), "--checkpoint", str(checkpoint),
                        "--alpha-bar-end", "1.5"]) == 2
    assert "alpha_bar_end=1.5 must be in (0, 1)" in capsys.readouterr().err
