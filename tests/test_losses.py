"""GAN losses: RaGAN-LS and WGAN-GP on hand-computed values, the gradient penalty vs finite differences, VGG."""

from __future__ import annotations

import pytest
import torch
from torchvision.models.vgg import cfgs, make_layers

from stochdeblur.losses import (
    PerceptualUnavailable,
    RaGANLS,
    VGGPerceptual,
    gradient_penalty,
    ragan_ls_d_loss,
    ragan_ls_g_loss,
    wgan_g_loss,
    wgan_gp_d_loss,
)

REAL = torch.tensor([2.0, 4.0])  # mean 3
FAKE = torch.tensor([-1.0, 1.0])  # mean 0


def test_ragan_ls_batch_means_by_hand() -> None:
    # D: ½[mean((r − 0 − 1)²) + mean((f − 3 + 1)²)] = ½[mean(1, 9) + mean(9, 1)] = 5
    assert ragan_ls_d_loss(REAL, FAKE).item() == pytest.approx(5.0)
    # G: ½[mean((r − 0 + 1)²) + mean((f − 3 − 1)²)] = ½[mean(9, 25) + mean(25, 9)] = 17
    assert ragan_ls_g_loss(REAL, FAKE).item() == pytest.approx(17.0)


def test_ragan_ls_with_given_means_by_hand() -> None:
    # real_mean 1, fake_mean 2: D = ½[mean((0−1)², (2−1)²) + mean((−1)², 1²)] = ½[1 + 1] = 1
    assert ragan_ls_d_loss(REAL, FAKE, torch.tensor(1.0), torch.tensor(2.0)).item() == pytest.approx(1.0)
    # G = ½[mean((2−2+1)², (4−2+1)²) + mean((−1−1−1)², (1−1−1)²)] = ½[5 + 5] = 5
    assert ragan_ls_g_loss(REAL, FAKE, torch.tensor(1.0), torch.tensor(2.0)).item() == pytest.approx(5.0)


def test_ragan_ls_perfect_discriminator_has_zero_loss() -> None:
    real, fake = torch.full((3, 1, 2, 2), 0.5), torch.full((3, 1, 2, 2), -0.5)
    assert ragan_ls_d_loss(real, fake).item() == 0.0
    assert ragan_ls_g_loss(real, fake).item() == pytest.approx(4.0)


def test_ragan_pool_means_span_past_batches_and_g_step_does_not_update() -> None:
    crit = RaGANLS(pool_size=3)
    crit.d_loss(REAL.view(2, 1), FAKE.view(2, 1))  # pools: real [2, 4], fake [−1, 1]
    second = crit.d_loss(torch.tensor([[6.0], [8.0]]), torch.tensor([[5.0], [7.0]]))
    # FIFO of 3 samples: real [4, 6, 8] → mean 6, fake [1, 5, 7] → mean 13/3
    fake_mean, real_mean = 13 / 3, 6.0
    expected = 0.5 * (((6 - fake_mean - 1) ** 2 + (8 - fake_mean - 1) ** 2) / 2
                      + ((5 - real_mean + 1) ** 2 + (7 - real_mean + 1) ** 2) / 2)
    assert second.item() == pytest.approx(expected)
    g = crit.g_loss(REAL.view(2, 1), FAKE.view(2, 1))
    assert g.item() == pytest.approx(ragan_ls_g_loss(REAL, FAKE, torch.tensor(real_mean), torch.tensor(fake_mean)).item())
    assert len(crit.real_pool) == 3
    restored = RaGANLS(pool_size=3)
    restored.load_state_dict(crit.state_dict())  # the pools travel with checkpoints (exact resume)
    assert restored.d_loss(REAL.view(2, 1), FAKE.view(2, 1)).item() == pytest.approx(
        crit.d_loss(REAL.view(2, 1), FAKE.view(2, 1)).item())


def test_ragan_pool_size_zero_uses_batch_means() -> None:
    crit = RaGANLS(pool_size=0)
    crit.d_loss(torch.tensor([100.0]), torch.tensor([-100.0]))
    assert crit.d_loss(REAL, FAKE).item() == pytest.approx(5.0)
    assert crit.g_loss(REAL, FAKE).item() == pytest.approx(17.0)


def test_ragan_g_loss_before_any_d_step_uses_batch_means() -> None:
    assert RaGANLS(pool_size=50).g_loss(REAL, FAKE).item() == pytest.approx(17.0)


def test_wgan_losses_by_hand() -> None:
    assert wgan_gp_d_loss(REAL, FAKE).item() == pytest.approx(0.0 - 3.0)
    assert wgan_g_loss(FAKE).item() == pytest.approx(0.0)
    assert wgan_g_loss(REAL).item() == pytest.approx(-3.0)


def test_gradient_penalty_of_a_linear_critic_is_exact() -> None:
    weight = torch.full((1, 2, 3, 3), 0.5)  # ∇ = weight everywhere: ‖∇‖ = √(18·0.25) per sample
    critic = lambda x: (x * weight).sum(dim=(1, 2, 3))  # noqa: E731
    real, fake = torch.randn(4, 2, 3, 3), torch.randn(4, 2, 3, 3)
    gp = gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(1))
    assert gp.item() == pytest.approx(10 * (18 ** 0.5 * 0.5 - 1) ** 2, rel=1e-5)


def test_gradient_penalty_matches_finite_differences() -> None:
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(2, 1, 3, padding=1).double()
    critic = lambda x: torch.tanh(conv(x)) ** 2  # noqa: E731  (a non-linear, per-pixel score map)
    real, fake = torch.randn(2, 2, 4, 4, dtype=torch.float64), torch.randn(2, 2, 4, 4, dtype=torch.float64)
    gp = gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(7), weight=10.0)

    alpha = torch.rand(2, 1, 1, 1, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    mixed = alpha * real + (1 - alpha) * fake
    eps, grad = 1e-6, torch.zeros_like(mixed)
    for idx in range(mixed.numel()):
        step = torch.zeros(mixed.numel(), dtype=torch.float64)
        step[idx] = eps
        step = step.view_as(mixed)
        grad.view(-1)[idx] = (critic(mixed + step).sum() - critic(mixed - step).sum()) / (2 * eps)
    expected = 10.0 * ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
    assert gp.item() == pytest.approx(expected.item(), rel=1e-6)


def test_gradient_penalty_is_differentiable_for_the_critic() -> None:
    conv = torch.nn.Conv2d(3, 1, 3)
    gp = gradient_penalty(conv, torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8))
    gp.backward()
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0


def test_perceptual_without_cached_weights_is_unavailable(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(PerceptualUnavailable, match="gan.perceptual=none") as info:
        VGGPerceptual()
    assert str(tmp_path / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth") in str(info.value)
    assert isinstance(info.value, ValueError)


def test_perceptual_with_corrupt_weights_is_unavailable(tmp_path) -> None:
    path = tmp_path / "vgg19.pth"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(PerceptualUnavailable, match="cannot load"):
        VGGPerceptual(path)


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory) -> str:
    """A torchvision-format VGG19 checkpoint holding only the conv1_1…conv3_3 weights (random values)."""
    torch.manual_seed(0)
    layers = make_layers(cfgs["E"][:9])
    path = tmp_path_factory.mktemp("vgg") / "vgg19.pth"
    torch.save({f"features.{k}": v for k, v in layers.state_dict().items()}, path)
    return str(path)


def test_perceptual_normalises_every_batch_element(vgg_file: str) -> None:
    # upstream issue #82: only element 0 was ImageNet-normalised, so a batch loss ≠ mean of per-image losses
    vgg = VGGPerceptual(vgg_file)
    pred, target = torch.rand(3, 3, 16, 16) * 2 - 1, torch.rand(3, 3, 16, 16) * 2 - 1
    per_image = torch.stack([vgg(pred[i:i + 1], target[i:i + 1]) for i in range(3)]).mean()
    assert vgg(pred, target).item() == pytest.approx(per_image.item(), rel=1e-5)
    assert vgg(target, target).item() == 0.0


def test_perceptual_gradients_reach_pred_only(vgg_file: str) -> None:
    vgg = VGGPerceptual(vgg_file).train()
    assert not vgg.features.training
    pred = (torch.rand(1, 3, 16, 16) * 2 - 1).requires_grad_(True)
    vgg(pred, torch.zeros(1, 3, 16, 16)).backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    assert all(p.grad is None for p in vgg.parameters())
