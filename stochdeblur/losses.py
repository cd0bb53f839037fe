"""Losses of the GAN baselines (DESIGN §4, DEBLURGAN.md §2): VGG19 perceptual, RaGAN-LS and WGAN-GP.

Departures from the official DeblurGAN code, all deliberate:

- The perceptual loss ImageNet-normalises every batch element (upstream normalises element 0 only, issue #82).
- :func:`gradient_penalty` draws one α per sample and takes the gradient norm over all of a sample's pixels and
  channels (the WGAN-GP paper's definition); upstream uses one α per batch and a per-pixel norm over channels.
- RaGAN-LS's relativistic averages are detached means over an ``ImagePool`` of up to ``pool_size`` past
  per-sample prediction maps (upstream behaviour); ``pool_size=0`` uses the current batch's detached means.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

VGG19_FILE = "vgg19-dcbb9e9d.pth"
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class PerceptualUnavailable(ValueError):
    """The VGG19 ImageNet weights needed by the perceptual loss are not in the local torch hub cache."""


def vgg19_cache_path() -> Path:
    """Where torchvision keeps the VGG19 ImageNet weights (``$TORCH_HOME/hub/checkpoints/vgg19-dcbb9e9d.pth``)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / VGG19_FILE


class VGGPerceptual(nn.Module):
    """MSE between VGG19 conv3_3 features (pre-ReLU, ``features[:15]``) of two images in [-1, 1].

    Inputs are mapped to [0, 1] and ImageNet-normalised (every batch element). The network is frozen and loaded
    from the local torch hub cache only.

    Args:
        weights: path of torchvision's ``vgg19-dcbb9e9d.pth``; default :func:`vgg19_cache_path`.

    Raises:
        PerceptualUnavailable: the weight file is missing or unreadable.
    """

    def __init__(self, weights: str | Path | None = None) -> None:
        super().__init__()
        from torchvision.models.vgg import cfgs, make_layers

        path = Path(weights) if weights is not None else vgg19_cache_path()
        if not path.is_file():
            raise PerceptualUnavailable(
                f"VGG19 weights for the perceptual loss not found at {path}; place torchvision's {VGG19_FILE} "
                "there, or set gan.perceptual=none")
        self.features = make_layers(cfgs["E"][:9])[:15]  # conv1_1 … conv3_3, without the last ReLU
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            prefix = "features."
            used = {k[len(prefix):]: v for k, v in state.items()
                    if k.startswith(prefix) and int(k.split(".")[1]) < len(self.features)}
            self.features.load_state_dict(used)
        except (RuntimeError, OSError, ValueError, AttributeError, EOFError, pickle.UnpicklingError) as exc:
            raise PerceptualUnavailable(f"{path}: cannot load VGG19 weights ({exc}); set gan.perceptual=none") from None
        self.features.eval().requires_grad_(False)
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> VGGPerceptual:
        """Keep the frozen feature extractor in eval mode whatever the caller asks."""
        super().train(mode)
        self.features.eval()
        return self

    def _features(self, x: Tensor) -> Tensor:
        return self.features(((x + 1) / 2 - self.mean) / self.std)

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        """Feature MSE; gradients flow into ``pred`` only.

        Shape:
            pred, target [B, 3, H, W] in [-1, 1] → scalar.
        """
        with torch.no_grad():
            target_features = self._features(target)
        return F.mse_loss(self._features(pred), target_features)


def ragan_ls_d_loss(real_pred: Tensor, fake_pred: Tensor, real_mean: Tensor | None = None,
                    fake_mean: Tensor | None = None) -> Tensor:
    """Relativistic average LS loss of the discriminator.

    L_D = ½[mean((D(x) − E D(G(z)) − 1)²) + mean((D(G(z)) − E D(x) + 1)²)]; the expectations are
    ``real_mean``/``fake_mean`` (e.g. pool means) or, when None, the detached batch means.
    """
    real_mean = real_pred.detach().mean() if real_mean is None else real_mean
    fake_mean = fake_pred.detach().mean() if fake_mean is None else fake_mean
    return 0.5 * (torch.mean((real_pred - fake_mean - 1) ** 2) + torch.mean((fake_pred - real_mean + 1) ** 2))


def ragan_ls_g_loss(real_pred: Tensor, fake_pred: Tensor, real_mean: Tensor | None = None,
                    fake_mean: Tensor | None = None) -> Tensor:
    """Relativistic average LS loss of the generator: :func:`ragan_ls_d_loss` with the labels swapped.

    L_G = ½[mean((D(x) − E D(G(z)) + 1)²) + mean((D(G(z)) − E D(x) − 1)²)].
    """
    real_mean = real_pred.detach().mean() if real_mean is None else real_mean
    fake_mean = fake_pred.detach().mean() if fake_mean is None else fake_mean
    return 0.5 * (torch.mean((real_pred - fake_mean + 1) ** 2) + torch.mean((fake_pred - real_mean - 1) ** 2))


class PredictionPool(nn.Module):
    """FIFO of the last ``size`` per-sample prediction maps, as upstream's ``ImagePool``, kept as buffers.

    Only the pool mean is ever used, so each map is stored as its (sum, element count): the pool is small,
    lives in the model's ``state_dict`` and is restored exactly by ``--resume``.
    """

    def __init__(self, size: int) -> None:
        super().__init__()
        self.register_buffer("sums", torch.zeros(size, dtype=torch.float64))
        self.register_buffer("counts", torch.zeros(size, dtype=torch.float64))
        self.register_buffer("added", torch.zeros((), dtype=torch.long))  # maps added so far

    def __len__(self) -> int:
        return int(min(int(self.added), self.sums.numel()))

    @torch.no_grad()
    def add(self, pred: Tensor) -> None:
        """Store each sample of ``pred`` [B, ...], dropping the oldest beyond ``size``."""
        size = self.sums.numel()
        flat = pred.detach().double().flatten(1)
        kept = flat[-size:]  # a batch larger than the pool keeps its last ``size`` maps
        first = int(self.added) + flat.shape[0] - kept.shape[0]
        slots = (first + torch.arange(kept.shape[0])) % size
        self.sums[slots] = kept.sum(1).to(self.sums.device)
        self.counts[slots] = float(kept.shape[1])
        self.added += flat.shape[0]

    def mean(self) -> Tensor | None:
        """Mean over every stored element (maps may differ in size), or None when empty."""
        n = len(self)
        if n == 0:
            return None
        return (self.sums[:n].sum() / self.counts[:n].sum()).float()


class RaGANLS(nn.Module):
    """RaGAN-LS with upstream's prediction pools (one per instance: use one per discriminator branch).

    The D step adds the current predictions to the pools, then uses the pool means; the G step only reads
    them (falling back to batch means while the pools are empty). ``pool_size=0``: plain batch means.
    """

    def __init__(self, pool_size: int = 50) -> None:
        super().__init__()
        self.pool_size = pool_size
        self.real_pool = PredictionPool(pool_size)
        self.fake_pool = PredictionPool(pool_size)

    def _means(self) -> tuple[Tensor | None, Tensor | None]:
        if self.pool_size == 0:
            return None, None
        return self.real_pool.mean(), self.fake_pool.mean()

    def d_loss(self, real_pred: Tensor, fake_pred: Tensor) -> Tensor:
        """Discriminator loss; updates the pools. Shape: prediction maps [B, 1, h, w] → scalar."""
        if self.pool_size:
            self.real_pool.add(real_pred)
            self.fake_pool.add(fake_pred)
        return ragan_ls_d_loss(real_pred, fake_pred, *self._means())

    def g_loss(self, real_pred: Tensor, fake_pred: Tensor) -> Tensor:
        """Generator loss; reads the pools without updating them. Shape: maps [B, 1, h, w] → scalar."""
        return ragan_ls_g_loss(real_pred, fake_pred, *self._means())


def wgan_gp_d_loss(real_pred: Tensor, fake_pred: Tensor) -> Tensor:
    """Wasserstein critic loss E[D(G(z))] − E[D(x)] (add :func:`gradient_penalty`)."""
    return fake_pred.mean() - real_pred.mean()


def wgan_g_loss(fake_pred: Tensor) -> Tensor:
    """Wasserstein generator loss −E[D(G(z))]."""
    return -fake_pred.mean()


def gradient_penalty(critic: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor, *,
                     generator: torch.Generator | None = None, weight: float = 10.0) -> Tensor:
    """WGAN-GP penalty λ·E[(‖∇D(x̂)‖₂ − 1)²] at x̂ = α·real + (1 − α)·fake, one α ~ U[0, 1] per sample.

    The norm runs over each sample's whole gradient (C·H·W values). ``generator`` draws α on its own device
    (torch's default CPU generator when None).

    Shape:
        real, fake [B, C, H, W] → scalar; ``critic`` maps [B, C, H, W] → any-shape scores (summed).
    """
    device = generator.device if generator is not None else torch.device("cpu")
    alpha = torch.rand(real.shape[0], 1, 1, 1, generator=generator, dtype=real.dtype, device=device).to(real.device)
    mixed = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    scores = critic(mixed)
    (grad,) = torch.autograd.grad(scores.sum(), mixed, create_graph=True)
    norms = grad.flatten(1).norm(dim=1)
    return weight * torch.mean((norms - 1) ** 2)
