"""Config loading: defaults, YAML overrides, dotlist overrides, and loud failures naming the key."""

from pathlib import Path

import pytest

from stochdeblur import config
from stochdeblur.config import ConfigError, ModePreset, RunConfig, load_config, resolve_mode, to_yaml


def test_defaults_are_typed_dataclasses() -> None:
    cfg = load_config()
    assert isinstance(cfg, RunConfig)
    assert cfg.predictor.base_channels == 64 and cfg.denoiser.base_channels == 32
    assert cfg.predictor.channel_mults == [1, 2, 3, 4]


def test_yaml_and_dotlist_override(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("name: x\ntrain:\n  lr: 0.5\n")
    cfg = load_config(path, ["train.max_steps=7", "predictor.base_channels=8"])
    assert (cfg.name, cfg.train.lr, cfg.train.max_steps, cfg.predictor.base_channels) == ("x", 0.5, 7, 8)


def test_unknown_key_names_key_and_file(tmp_path: Path) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text("train:\n  learning_rate: 0.1\n")
    with pytest.raises(ConfigError, match=r"typo\.yaml.*learning_rate"):
        load_config(path)


def test_wrong_type_and_bad_choice_fail() -> None:
    with pytest.raises(ConfigError, match="train.max_steps"):
        load_config(None, ["train.max_steps=many"])
    with pytest.raises(ConfigError, match="predictor.type"):
        load_config(None, ["predictor.type=resnet9000"])


def test_yaml_round_trip(tmp_path: Path) -> None:
    cfg = load_config(None, ["name=rt", "data.crop_size=64"])
    path = tmp_path / "resolved.yaml"
    path.write_text(to_yaml(cfg))
    assert load_config(path) == cfg


def test_mode_presets_and_their_resolution(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("sample:\n  steps: 20\n  average: 2\n  modes:\n    fast: {steps: 3}\n")
    presets = load_config(path).sample.presets()

    def full(steps: int, average: int) -> ModePreset:  # resolved: the sample section's sampler settings
        return ModePreset(steps, average, "ddpm", 0.0, "linear", 1e-3)

    assert presets == {"predictor": full(0, 1), "average": full(20, 2), "perceptual": full(500, 1),
                       "perceptual_500": full(500, 1), "fast": full(3, 1)}
    assert resolve_mode(presets, "average") == (20, 2)
    assert resolve_mode(presets, "perceptual", average=4) == (500, 4)
    assert resolve_mode(presets, "average", steps=5) == (5, 2)
    assert resolve_mode(presets, None, steps=500) == (500, 1)  # explicit steps alone: one sample
    assert resolve_mode(presets) == resolve_mode(presets, "predictor", average=4) == (0, 1)
    with pytest.raises(ValueError, match="unknown mode 'x'; this model has predictor, average, perceptual, perceptual_500, fast"):
        resolve_mode(presets, "x")
    with pytest.raises(ConfigError, match="sample.modes.average: 'average' is built in"):
        load_config(overrides=["sample.modes.average.steps=5"])
    with pytest.raises(ConfigError, match="sample.modes.slow: need steps >= 0"):
        load_config(overrides=["sample.modes.slow.steps=-1"])


def test_config_names_are_the_builder_registries_names() -> None:
    """Each name a config accepts has a builder and each builder a name (config imports no model code)."""
    from stochdeblur.diffusion.sampler import SAMPLERS
    from stochdeblur.methods import METHOD_BUILDERS
    from stochdeblur.methods.gan import DISCRIMINATOR_BRANCHES, GENERATOR_BUILDERS
    from stochdeblur.models import PREDICTOR_BUILDERS

    assert set(config.PREDICTOR_TYPES) == set(PREDICTOR_BUILDERS)
    assert set(config.GENERATOR_TYPES) == set(GENERATOR_BUILDERS)
    assert set(config.DISCRIMINATOR_TYPES) == set(DISCRIMINATOR_BRANCHES)
    assert set(config.METHODS) == set(METHOD_BUILDERS)
    assert set(config.SAMPLER_TYPES) == set(SAMPLERS)
