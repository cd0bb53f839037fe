"""The kernel-aware predictor: least-squares kernel fit, start as the identity, kernel supervision, training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stochdeblur.baselines import blind_deconvolve, checked_deconvolution
from stochdeblur.config import ConfigError, load_config
from stochdeblur.data.synth import SyntheticPairs, dead_leaves, degrade, motion_kernel, pad_kernel
from stochdeblur.hub import CheckpointError, load_weights_into, save_pretrained
from stochdeblur.methods import build_method
from stochdeblur.metrics import psnr
from stochdeblur.models import build_predictor
from stochdeblur.models.kernel_aware import (
    REBLUR_GAIN,
    ClassicalDeconvolution,
    KernelAwarePredictor,
    least_squares_kernel,
    reblur_residual,
)
from stochdeblur.physics import deconvolve
from stochdeblur.physics import kernels as K
from stochdeblur.physics.operators import luminance

TINY = "configs/dvsr_kernel_aware_tiny.yaml"


def _tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image.transpose(2, 0, 1).copy())[None] * 2 - 1


def _pair(seed: int, ksize: int, side: int = 96):
    rng = np.random.default_rng(seed)
    kernel = motion_kernel(ksize, rng)
    sharp = dead_leaves(side + ksize - 1, side + ksize - 1, rng, texture=True)
    blur, target = degrade(sharp, kernel, rng, noise_sigma=0.01)
    return _tensor(blur), _tensor(target), kernel


@pytest.mark.parametrize("ksize", [9, 21])
def test_least_squares_kernel_from_the_sharp_image_is_the_true_kernel(ksize: int) -> None:
    blur, sharp, kernel = _pair(ksize, ksize)
    estimate = least_squares_kernel(luminance(blur), luminance(sharp), 25)[0]
    assert estimate.shape == (25, 25) and float(estimate.min()) >= 0
    assert float(estimate.sum()) == pytest.approx(1.0, abs=1e-5)
    assert K.ncc(estimate, torch.from_numpy(kernel)) > 0.95
    oracle = psnr(deconvolve(blur, torch.from_numpy(kernel)).clamp(-1, 1)[0], sharp[0])
    fitted = psnr(deconvolve(blur, estimate).clamp(-1, 1)[0], sharp[0])
    assert fitted > oracle - 1.0  # the floor removes the least-squares noise that would cost dB


def test_untrained_predictor_starts_near_the_identity() -> None:
    blur, _, _ = _pair(1, 9, side=64)
    model = KernelAwarePredictor(9, estimator_channels=8, refiner_channels=16, channel_mults=(1, 2),
                                 num_res_blocks=1, deconv_iterations=10)
    out = model.run(blur)
    assert out.kernel.shape == (1, 9, 9)
    assert K.ncc(out.kernel[0], K.delta(9)) > 0.9  # x̂ = y gives a (nearly) delta kernel
    assert psnr(out.image.clamp(-1, 1)[0], blur[0]) > 30.0


def test_config_builds_the_kernel_aware_predictor_and_refuses_misuse() -> None:
    cfg = load_config(TINY)
    assert isinstance(build_predictor(cfg.predictor), KernelAwarePredictor)
    with pytest.raises(ValueError, match="kernel_aware"):
        load_config(TINY, ["predictor.type=unet"])
    with pytest.raises(ValueError, match="input_residual"):
        build_predictor(load_config(TINY, ["predictor.input_residual=true"]).predictor)


def test_kernel_supervision_needs_kernels_in_the_batch() -> None:
    model = build_method(load_config(TINY))
    blur, sharp, _ = _pair(2, 9, side=48)
    with pytest.raises(ValueError, match="no 'kernel'"):
        model({"blur": blur, "sharp": sharp})


def test_kernel_losses_fall_when_overfitting_one_batch() -> None:
    torch.manual_seed(0)
    model = build_method(load_config(TINY))
    pairs = [_pair(s, 9, side=48) for s in (3, 4)]
    batch = {"blur": torch.cat([p[0] for p in pairs]), "sharp": torch.cat([p[1] for p in pairs]),
             "kernel": torch.stack([torch.from_numpy(pad_kernel(p[2], 9)) for p in pairs])}
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    history = []
    for _ in range(30):
        out = model(batch, generator=gen)
        optimizer.zero_grad()
        out["loss"].backward()
        optimizer.step()
        history.append({k: float(v.detach()) for k, v in out.items()})
    first, last = history[0], np.mean([h["kernel_l1"] for h in history[-5:]])
    assert set(first) >= {"loss", "eps_l1", "aux_l1", "kernel_l1", "reblur_l1"}
    assert last < 0.8 * first["kernel_l1"]
    assert np.mean([h["aux_l1"] for h in history[-5:]]) < first["aux_l1"]


def test_restore_runs_tiled_with_a_kernel_per_tile() -> None:
    model = build_method(load_config(TINY)).eval()
    blur = torch.rand(1, 3, 80, 72) * 2 - 1
    whole = model.restore(blur, steps=None)
    tiled = model.restore(blur, steps=None, tile=48)
    assert whole.shape == tiled.shape == blur.shape
    assert torch.isfinite(tiled).all()


def test_classical_kernel_source_trains_the_refiner_on_perturbed_true_kernels(monkeypatch) -> None:
    overrides = ["predictor.kernel_source=classical", "predictor.train_kernel=truth",
                 "predictor.kernel_loss_weight=0", "predictor.reblur_loss_weight=0"]
    model = build_method(load_config(TINY, overrides))
    assert model.predictor.estimator is None  # no learned estimator to train
    blur, sharp, kernel = _pair(5, 9, side=48)
    batch = {"blur": blur, "sharp": sharp, "kernel": torch.from_numpy(pad_kernel(kernel, 9))[None]}
    given = []
    real_run = model.predictor.run
    monkeypatch.setattr(model.predictor, "_classical", lambda blur: pytest.fail("estimated a kernel in the step"))
    monkeypatch.setattr(model.predictor, "run", lambda blur, kernel=None, **kw: given.append(kernel) or real_run(
        blur, kernel, **kw))
    out = model(batch, generator=torch.Generator().manual_seed(0))
    assert set(out) == {"loss", "eps_l1", "aux_l1"}
    assert K.ncc(given[0][0], torch.from_numpy(kernel)) > 0.8  # the pair's own kernel, perturbed
    out["loss"].backward()
    assert all(p.grad is not None for p in model.predictor.refiner.parameters())
    with pytest.raises(ValueError, match="loss weights to 0"):
        load_config(TINY, ["predictor.kernel_source=classical", "predictor.kernel_loss_weight=1"])


def test_classical_estimates_are_made_per_item_in_the_data_and_refined_in_the_step() -> None:
    overrides = ["predictor.kernel_source=classical", "predictor.train_kernel=estimated",
                 "predictor.kernel_loss_weight=0", "predictor.reblur_loss_weight=0"]
    model = build_method(load_config(TINY, overrides))
    pairs = SyntheticPairs(2, 48, kernel_size_min=5, kernel_size_max=9, seed=3)
    items = model.training_dataset(pairs)
    item = items[1]
    expected, _ = blind_deconvolve(pairs[1]["blur"], 9)
    assert torch.equal(item["deconvolved"], expected) and torch.equal(item["blur"], pairs[1]["blur"])
    items.set_epoch(1)
    assert not torch.equal(items[1]["blur"], item["blur"])  # the epoch reaches the wrapped dataset
    batch = {key: item[key][None] for key in ("blur", "sharp", "deconvolved")}
    with torch.no_grad():
        model.predictor.refiner.head.weight.zero_()  # R = 0: x_init is the item's deconvolution
        model.predictor.refiner.head.bias.zero_()
        x_init = model.predictor.run(batch["blur"], deconvolved=batch["deconvolved"]).image
    assert torch.allclose(x_init, batch["deconvolved"], atol=1e-6)
    out = model(batch, generator=torch.Generator().manual_seed(0))
    out["loss"].backward()
    assert all(p.grad is not None for p in model.predictor.refiner.parameters())
    with pytest.raises(ValueError, match="training_dataset"):
        model({"blur": batch["blur"], "sharp": batch["sharp"]}, generator=torch.Generator().manual_seed(0))
    assert build_method(load_config(TINY)).training_dataset(pairs) is pairs  # learned source: data as it is


def test_edge_fraction_reaches_the_classical_estimate_and_keys_the_extras_cache() -> None:
    overrides = ["predictor.kernel_source=classical", "predictor.kernel_loss_weight=0",
                 "predictor.reblur_loss_weight=0", "predictor.edge_fraction=0.5"]
    model = build_method(load_config(TINY, overrides))
    pairs = SyntheticPairs(1, 48, kernel_size_min=5, kernel_size_max=9, seed=3)
    blur = pairs[0]["blur"]
    expected, _ = blind_deconvolve(blur, 9, edge_fraction=0.5)
    assert not torch.equal(expected, blind_deconvolve(blur, 9)[0])  # the option changes the estimate
    assert torch.equal(model.training_dataset(pairs)[0]["deconvolved"], expected)  # training items
    assert torch.equal(model.predictor.run(blur[None]).deconvolved[0], expected)  # inference
    assert ClassicalDeconvolution(33).cache_key != ClassicalDeconvolution(33, 0.5).cache_key
    with pytest.raises(ValueError, match="edge_fraction must be in"):
        load_config(TINY, [*overrides[:-1], "predictor.edge_fraction=0"])
    with pytest.raises(ValueError, match="applies to the classical estimate"):
        load_config(TINY, ["predictor.edge_fraction=0.5"])


def test_perturbed_kernels_stay_kernels_and_rotate_when_wrong() -> None:
    predictor = build_method(load_config(TINY)).predictor
    kernel = torch.zeros(1, 9, 9)
    kernel[0, 4, 1:8] = 1 / 7  # horizontal streak
    predictor.kernel_blur_max, predictor.wrong_kernel_prob = 0.0, 1.0
    rotated = predictor.perturb_kernels(kernel, torch.Generator().manual_seed(0))
    assert float(rotated.sum()) == pytest.approx(1.0) and K.ncc(rotated[0], kernel[0].T, max_shift=0) > 0.99
    predictor.kernel_blur_max, predictor.wrong_kernel_prob = 1.5, 0.0
    soft = predictor.perturb_kernels(kernel.expand(8, 9, 9), torch.Generator().manual_seed(0))
    assert soft.min() >= 0 and torch.allclose(soft.sum((-2, -1)), torch.ones(8))
    assert 0.7 < min(K.ncc(k, kernel[0]) for k in soft)
    assert float(soft.amax(dim=(-2, -1)).mean()) < 0.9 * float(kernel.amax())  # blurred on average


def test_reblur_residual_is_small_for_the_true_kernel_and_large_for_a_wrong_one() -> None:
    """Away from the border band, ``y − k ⊛ x`` is the noise for the true kernel and x (σ = 0.01, ×REBLUR_GAIN),
    edges for the kernel turned by 90°."""
    blur, sharp, kernel = _pair(5, 15)
    truth = torch.from_numpy(kernel)[None].float()
    inner = (..., slice(8, -8), slice(8, -8))
    right = reblur_residual(blur, sharp, truth)[inner]
    wrong = reblur_residual(blur, sharp, truth.transpose(-2, -1))[inner]
    assert float(right.pow(2).mean().sqrt()) < REBLUR_GAIN * 0.03 < float(wrong.pow(2).mean().sqrt())


def test_reblur_input_refiner_trains_on_cached_kernels_and_starts_from_six_input_weights(tmp_path) -> None:
    """The classical training items carry their estimate's kernel, a ``predictor.reblur_input`` step reads the
    residual, and 6-input weights load only with ``init_widen_inputs`` — into a model
    that then computes what the saved one did."""
    base = ["predictor.kernel_source=classical", "predictor.train_kernel=estimated",
            "predictor.kernel_loss_weight=0", "predictor.reblur_loss_weight=0"]
    torch.manual_seed(0)
    plain = build_method(load_config(TINY, base))
    torch.nn.init.normal_(plain.predictor.refiner.head.weight, std=0.1)  # R ≠ 0, so the comparison means something
    directory = save_pretrained(plain, tmp_path / "plain", load_config(TINY, base))
    model = build_method(load_config(TINY, [*base, "predictor.reblur_input=true"]))
    with pytest.raises(CheckpointError, match="stem"):
        load_weights_into(model, directory)
    load_weights_into(model, directory, widen_inputs=True)
    pairs = SyntheticPairs(1, 48, kernel_size_min=5, kernel_size_max=9, seed=3)
    item = model.training_dataset(pairs)[0]
    expected, kernel = blind_deconvolve(pairs[0]["blur"], 9)
    assert torch.equal(item["kernel_estimate"], kernel) and torch.equal(item["deconvolved"], expected)
    batch = {key: item[key][None] for key in ("blur", "sharp", "deconvolved", "kernel_estimate")}
    with torch.no_grad():
        widened = model.predictor.run(batch["blur"], batch["kernel_estimate"], batch["deconvolved"]).image
        saved = plain.predictor.run(batch["blur"], deconvolved=batch["deconvolved"]).image
    torch.testing.assert_close(widened, saved)
    out = model(batch, generator=torch.Generator().manual_seed(0))
    out["loss"].backward()
    assert model.predictor.refiner.stem.weight.grad[:, 6:].abs().sum() > 0  # the residual channels learn
    with pytest.raises(ValueError, match="reblur_input"):
        model.predictor.run(batch["blur"], deconvolved=batch["deconvolved"])
    with pytest.raises(ValueError, match="reblur_input"):
        load_config("configs/dvsr_default.yaml", ["predictor.reblur_input=true"])


def test_truth_mix_deconvolves_chosen_items_with_their_own_kernel(monkeypatch) -> None:
    """``predictor.truth_mix``: the chosen training items reach the refiner deconvolved by their own (here
    unsoftened) kernel, checked as at inference, and that deconvolution is much sharper than the useless estimate
    it replaces; with the key at 0 the items' estimates pass unchanged."""
    base = ["predictor.kernel_source=classical", "predictor.train_kernel=estimated", "predictor.kernel_loss_weight=0",
            "predictor.reblur_loss_weight=0", "predictor.reblur_input=true", "predictor.kernel_blur_max=0"]
    pairs = [_pair(seed, 9, side=64) for seed in (4, 5)]
    blur, sharp = torch.cat([pair[0] for pair in pairs]), torch.cat([pair[1] for pair in pairs])
    truth = torch.stack([torch.from_numpy(pair[2]).float() for pair in pairs])
    batch = {"blur": blur, "sharp": sharp, "kernel": truth, "deconvolved": blur.clone(),
             "kernel_estimate": K.delta(9).expand(2, 9, 9).clone()}
    seen = {}
    for mix in (0, 1):
        model = build_method(load_config(TINY, [*base, f"predictor.truth_mix={mix}"]))
        run = model.predictor.run

        def spy(y, kernel, deconvolved, mix=mix, run=run):
            seen[mix] = (kernel, deconvolved)
            return run(y, kernel, deconvolved=deconvolved)

        monkeypatch.setattr(model.predictor, "run", spy)
        model(batch, generator=torch.Generator().manual_seed(0))["loss"].backward()
    assert torch.equal(seen[0][0], batch["kernel_estimate"]) and torch.equal(seen[0][1], batch["deconvolved"])
    kernels, deconvolved = seen[1]
    torch.testing.assert_close(kernels, truth, atol=1e-4, rtol=0)
    for index in range(2):
        torch.testing.assert_close(deconvolved[index], checked_deconvolution(blur[index], truth[index]).restored,
                                   atol=1e-3, rtol=0)
        assert psnr(deconvolved[index], sharp[index]) > psnr(blur[index], sharp[index]) + 5.0  # +7.7 / +7.2 dB
    with pytest.raises(ConfigError, match="truth_mix"):
        load_config(TINY, ["predictor.train_kernel=truth", "predictor.truth_mix=0.5"])
