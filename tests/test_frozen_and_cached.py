"""Training f alone on a fixed g (``train.freeze``) and per-item extras made once (``data.distinct_epochs`` +
``data.extras_cache``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import train
from safetensors.torch import load_file

from stochdeblur.config import ConfigError, load_config
from stochdeblur.data import CycledEpochs, SyntheticPairs, WithExtras, build_dataset
from stochdeblur.training import initial_method

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "dvsr_synthetic_tiny.yaml"
KERNEL_AWARE_TINY = ROOT / "configs" / "dvsr_kernel_aware_tiny.yaml"


class Counting:
    """Extras that count their calls: the mean of the blurry item, as a tensor."""

    cache_key = "Counting()"

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, item: dict) -> dict[str, torch.Tensor]:
        self.calls += 1
        return {"mean": item["blur"].mean(dim=(-2, -1))}


def test_cycled_epochs_repeat_the_items_of_the_period() -> None:
    items = CycledEpochs(SyntheticPairs(3, 32, kernel_size_min=3, kernel_size_max=7, seed=1), period=2)
    first = items[0]["blur"]
    items.set_epoch(1)
    assert not torch.equal(items[0]["blur"], first)
    items.set_epoch(2)
    assert torch.equal(items[0]["blur"], first)
    with pytest.raises(ValueError, match="period"):
        CycledEpochs(items.dataset, 0)
    cfg = load_config(TINY, ["data.distinct_epochs=2"]).data
    assert isinstance(build_dataset(cfg, "train", 0), CycledEpochs)
    with pytest.raises(ConfigError, match="distinct_epochs"):
        load_config(TINY, ["data.distinct_epochs=-1"])


def test_cached_extras_are_made_once_per_item_and_never_stale(tmp_path: Path) -> None:
    extras = Counting()
    items = WithExtras(CycledEpochs(SyntheticPairs(3, 32, kernel_size_min=3, kernel_size_max=7, seed=1), 1),
                       extras, tmp_path / "cache")
    first = [items[i] for i in range(3)]
    assert extras.calls == 3 and len(list((tmp_path / "cache").glob("*.safetensors"))) == 3
    items.set_epoch(5)  # the same items again: read back, not recomputed
    again = [items[i] for i in range(3)]
    assert extras.calls == 3
    for a, b in zip(first, again, strict=True):
        assert torch.equal(a["mean"], b["mean"]) and torch.equal(a["mean"], a["blur"].mean(dim=(-2, -1)))
    other = WithExtras(SyntheticPairs(3, 32, kernel_size_min=3, kernel_size_max=7, seed=2), extras, tmp_path / "cache")
    assert torch.equal(other[0]["mean"], other[0]["blur"].mean(dim=(-2, -1)))  # other items: computed anew
    assert extras.calls == 4
    assert not list((tmp_path / "cache").glob("*.tmp"))  # written atomically


def test_frozen_predictor_stays_as_it_started_while_f_learns(tmp_path: Path) -> None:
    overrides = ["train.freeze=[predictor]", "train.max_steps=3", "train.val_every=0", "train.checkpoint_every=0",
                 "train.ema_decay=0"]
    cfg = load_config(TINY, overrides)
    start = {k: v.clone() for k, v in initial_method(cfg).state_dict().items()}
    train(cfg, tmp_path / "run")
    trained = load_file(tmp_path / "run" / "model" / "model.safetensors")
    predictor = [k for k in start if k.startswith("predictor.")]
    denoiser = [k for k in start if k.startswith("denoiser.") and k.endswith("weight")]
    assert predictor and denoiser
    assert all(torch.equal(trained[k], start[k]) for k in predictor)
    assert any(not torch.equal(trained[k], start[k]) for k in denoiser)
    with pytest.raises(ConfigError, match="names no parameter"):
        initial_method(load_config(TINY, ["train.freeze=[predicter]"]))


def test_classical_estimates_are_cached_across_epochs_in_a_training_run(tmp_path: Path) -> None:
    overrides = ["predictor.kernel_source=classical", "predictor.train_kernel=estimated",
                 "predictor.kernel_loss_weight=0", "predictor.reblur_loss_weight=0", "train.freeze=[predictor]",
                 "data.synthetic_length=4", "data.distinct_epochs=1", f"data.extras_cache={tmp_path / 'extras'}",
                 "train.max_steps=4", "train.val_every=0", "train.checkpoint_every=0"]
    train(load_config(KERNEL_AWARE_TINY, overrides), tmp_path / "run")
    cached = sorted((tmp_path / "extras").glob("*.safetensors"))
    assert len(cached) == 4  # 4 steps × batch 2 = two passes over 4 items, each estimated once
    assert set(load_file(cached[0])) == {"deconvolved", "kernel_estimate"}
