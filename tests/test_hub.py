"""Save/load: identical outputs after a round trip, clear errors for every broken checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from stochdeblur import hub
from stochdeblur.config import RunConfig, load_config
from stochdeblur.hub import CheckpointError, load_default, load_pretrained, save_pretrained
from stochdeblur.methods import build_method

TINY = ["predictor.base_channels=8", "denoiser.base_channels=8"]


@pytest.fixture()
def saved(tmp_path: Path) -> tuple[Path, torch.nn.Module]:
    cfg = load_config(overrides=TINY)
    model = build_method(cfg).eval()
    return save_pretrained(model, tmp_path / "model", cfg), model


def test_save_load_gives_identical_output(saved: tuple[Path, torch.nn.Module]) -> None:
    directory, model = saved
    assert sorted(p.name for p in directory.iterdir()) == ["config.json", "model.safetensors", "run_config.json"]
    loaded, cfg = load_pretrained(directory)
    assert cfg == load_config(overrides=TINY) and not loaded.training
    y = torch.rand(1, 3, 24, 40) * 2 - 1
    assert torch.equal(loaded.restore(y, steps=3, seed=1), model.restore(y, steps=3, seed=1))
    meta = json.loads((directory / "config.json").read_text())["_meta"]
    assert meta["sha256"] == hub.sha256_file(directory / "model.safetensors")


def test_config_json_is_the_model_run_config_json_the_training(saved: tuple[Path, torch.nn.Module]) -> None:
    """config.json: the sections that define the networks and their inference; run_config.json: data/train/log.
    Without run_config.json the model still loads (those sections take their defaults)."""
    directory, model = saved
    model_part = json.loads((directory / "config.json").read_text())
    run_part = json.loads((directory / "run_config.json").read_text())
    assert set(run_part) == set(hub.RUN_SECTIONS) == {"data", "train", "log"}
    assert set(model_part) | set(run_part) == {*RunConfig.__dataclass_fields__, "_meta"}
    assert not set(model_part) & set(run_part)
    (directory / "run_config.json").unlink()
    loaded, cfg = load_pretrained(directory)
    assert cfg.denoiser.base_channels == 8 and cfg.train == RunConfig().train
    y = torch.rand(1, 3, 16, 24) * 2 - 1
    assert torch.equal(loaded.restore(y, steps=2, seed=1), model.restore(y, steps=2, seed=1))


def _as_one_config_json(directory: Path, into: Path) -> Path:
    """A copy of a model directory in the layout before run_config.json: every section in config.json (the
    weights linked, not copied)."""
    into.mkdir()
    (into / "model.safetensors").symlink_to((directory / "model.safetensors").resolve())
    full = {**json.loads((directory / "config.json").read_text()),
            **json.loads((directory / "run_config.json").read_text())}
    (into / "config.json").write_text(json.dumps(full, indent=2) + "\n")
    return into


def test_a_config_json_with_every_section_still_loads(saved: tuple[Path, torch.nn.Module], tmp_path: Path) -> None:
    directory, model = saved
    loaded, cfg = load_pretrained(_as_one_config_json(directory, tmp_path / "old"), verify_hash=True)
    assert cfg == load_pretrained(directory)[1]
    y = torch.rand(1, 3, 16, 24) * 2 - 1
    assert torch.equal(loaded.restore(y, steps=2, seed=1), model.restore(y, steps=2, seed=1))


@pytest.mark.parametrize("name", hub.shipped_models())
def test_shipped_model_loads_the_same_from_its_split_config_as_from_one_file(name: str, tmp_path: Path) -> None:
    """The shipped config.json files were split into config.json + run_config.json: the model, its config and
    its restorations are those of the single file it shipped with before."""
    shipped = hub.WEIGHTS_DIR / name
    model, cfg = load_default(name=name)
    old_model, old_cfg = load_pretrained(_as_one_config_json(shipped, tmp_path / name), verify_hash=True)
    assert cfg == old_cfg
    y = torch.rand(1, 3, 40, 56) * 2 - 1
    with torch.no_grad():
        assert torch.equal(model.restore(y), old_model.restore(y))
        assert torch.equal(model.restore(y, steps=2, average=2, seed=3), old_model.restore(y, steps=2, average=2, seed=3))


def test_missing_directory_or_weights(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_pretrained(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no model.safetensors"):
        load_pretrained(tmp_path / "empty")


def test_config_and_weights_mismatch_names_tensors(saved: tuple[Path, torch.nn.Module]) -> None:
    directory, _ = saved
    config = json.loads((directory / "config.json").read_text())
    config["denoiser"]["base_channels"] = 16
    (directory / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"shape mismatch.*denoiser\.down\.0\.conv1\.weight \(8, 8, 3, 3\) vs \(16, 16, 3, 3\)"):
        load_pretrained(directory)


def test_missing_and_unexpected_tensors_are_listed(saved: tuple[Path, torch.nn.Module]) -> None:
    directory, _ = saved
    state = load_file(str(directory / "model.safetensors"))
    state.pop("predictor.head.bias")
    state["extra.weight"] = torch.zeros(1)
    save_file(state, str(directory / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"missing: predictor\.head\.bias.*unexpected: extra\.weight"):
        load_pretrained(directory)


def test_bad_config_is_a_checkpoint_error(saved: tuple[Path, torch.nn.Module]) -> None:
    directory, _ = saved
    (directory / "config.json").write_text('{"predictor": {"no_such_key": 1}}')
    with pytest.raises(CheckpointError, match="config.json"):
        load_pretrained(directory)


def test_pt_file_is_read_without_unpickling(saved: tuple[Path, torch.nn.Module], tmp_path: Path) -> None:
    directory, model = saved
    torch.save(model.state_dict(), directory / "model.pt")
    loaded, _ = load_pretrained(directory / "model.pt")
    y = torch.rand(1, 3, 16, 16) * 2 - 1
    assert torch.equal(loaded.restore(y), model.restore(y))
    torch.save({"weights": object()}, directory / "evil.pt")
    with pytest.raises(CheckpointError, match="cannot read weights"):
        load_pretrained(directory / "evil.pt")


def test_load_default_without_shipped_model(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(hub, "DEFAULT_MODEL_DIR", tmp_path / "default")
    with pytest.raises(CheckpointError, match="no default model is shipped yet; pass --checkpoint DIR"):
        load_default()


def test_load_default_verifies_the_hash(monkeypatch: pytest.MonkeyPatch, saved: tuple[Path, torch.nn.Module]) -> None:
    directory, _ = saved
    monkeypatch.setattr(hub, "DEFAULT_MODEL_DIR", directory)
    load_default()
    config = json.loads((directory / "config.json").read_text())
    config["_meta"]["sha256"] = "0" * 64
    (directory / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="sha256"):
        load_default()


def test_load_resolves_paths_first_then_shipped_names(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                     saved: tuple[Path, torch.nn.Module]) -> None:
    directory, model = saved
    weights = tmp_path / "weights"
    monkeypatch.setattr(hub, "WEIGHTS_DIR", weights)
    monkeypatch.setattr(hub, "DEFAULT_MODEL_DIR", weights / "default")
    with pytest.raises(CheckpointError, match=r"nor a shipped model \(shipped: none;"):
        hub.load("fast")
    cfg = load_config(overrides=TINY)
    save_pretrained(model, weights / "fast", cfg)
    assert hub.shipped_models() == ["fast"]
    loaded, _ = hub.load("fast")
    y = torch.rand(1, 3, 16, 16) * 2 - 1
    assert torch.equal(loaded.restore(y), model.restore(y))
    with pytest.raises(CheckpointError, match=r"no shipped model named 'slow' \(shipped: fast\)"):
        load_default(name="slow")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "fast").mkdir()
    with pytest.raises(CheckpointError, match="no model.safetensors"):
        hub.load("fast")  # an existing folder of that name is read as a folder, not silently swapped
    config = json.loads((weights / "fast" / "config.json").read_text())
    config["_meta"]["sha256"] = "0" * 64
    (weights / "fast" / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="sha256"):
        load_default(name="fast")  # a shipped model is always hash-checked


@pytest.mark.parametrize("name", hub.shipped_models())
def test_every_shipped_model_passes_its_hash_and_restores(name: str) -> None:
    model, cfg = load_default(name=name)
    y = torch.rand(1, 3, 40, 56) * 2 - 1
    with torch.no_grad():
        x = model.restore(y)
    assert x.shape == y.shape and x.dtype == torch.float32 and x.abs().max() <= 1.0
    assert cfg.name


def test_init_modules_loads_only_the_named_submodules(saved: tuple[Path, torch.nn.Module]) -> None:
    path, source = saved
    torch.manual_seed(123)
    target = build_method(load_config(overrides=TINY))
    before = {k: v.clone() for k, v in target.predictor.state_dict().items()}
    hub.load_weights_into(target, path, ["denoiser"])
    assert all(torch.equal(a, b) for a, b in zip(target.denoiser.state_dict().values(),
                                                 source.denoiser.state_dict().values(), strict=True))
    assert all(torch.equal(before[k], v) for k, v in target.predictor.state_dict().items())
    with pytest.raises(CheckpointError, match="no submodule"):
        hub.load_weights_into(target, path, ["refiner"])


def test_classical_is_a_method_without_weights() -> None:
    model, cfg = hub.load("classical")
    assert cfg.method == "classical" and not list(model.parameters())
    with pytest.raises(ValueError, match="nothing to train|no parameters"):
        model.param_groups()


def test_overrides_change_an_inference_setting_of_the_saved_config(saved: tuple[Path, torch.nn.Module]) -> None:
    model, cfg = hub.load("default", overrides=["predictor.edge_fraction=1"])
    assert cfg.predictor.edge_fraction == 1.0 and model.predictor.edge_fraction == 1.0
    assert hub.load("default")[0].predictor.edge_fraction == 0.5  # the shipped setting, read from config.json
    directory, _ = saved
    _, cfg = load_pretrained(directory, overrides=["sample.steps=3"])
    assert cfg.sample.steps == 3
    with pytest.raises(CheckpointError, match="overrides"):
        load_pretrained(directory, overrides=["predictor.no_such_key=1"])
    with pytest.raises(CheckpointError, match="weights|tensor|shape"):
        load_pretrained(directory, overrides=["denoiser.base_channels=4"])  # the weights no longer fit
    assert hub.load("classical", overrides=["predictor.kernel_size=21"])[1].predictor.kernel_size == 21
    with pytest.raises(CheckpointError, match="invalid overrides"):
        hub.load("classical", overrides=["predictor.no_such_key=1"])
