"""DeblurGAN-v2 and DeblurGAN v1 behind the method contract: groups ``"g"`` (generator) and ``"d"`` (critic).

One class serves both recipes; the config picks the parts (DESIGN §4, DEBLURGAN.md §2 and §5):

- v2 (``configs/deblurganv2_*.yaml``): FPN generator (or a UNet), double-scale PatchGAN, RaGAN-LS with
  prediction pools, L_G = 0.5·MSE + 0.006·perceptual + 0.01·adv, one D step per G step, backbone frozen for
  the first ``gan.freeze_backbone_steps`` steps when it starts from ImageNet weights (a randomly initialised
  backbone is never frozen: :meth:`DeblurGAN.requirements` says so in a note).
- v1 (``configs/deblurgan_v1.yaml``): ResNet generator, PatchGAN critic, WGAN-GP (λ=10), L_G = −E D(G(y)) +
  100·perceptual, five critic steps per G step.

Gradient hygiene: the ``"d"`` step runs G under ``no_grad`` (so G gets no gradient) and the ``"g"`` step runs D
with ``requires_grad`` switched off (so D's ``.grad`` stays untouched). Each step therefore leaves the other
group's parameters without gradient; under DDP the trainer must wrap with ``find_unused_parameters=True``.
Adversarial terms are averaged over the discriminator branches, each branch with its own RaGAN-LS pools.
The pixel MSE is taken on images mapped to [0, 1] as upstream (= MSE on [-1, 1] / 4). The VGG19 network is
loaded by :meth:`DeblurGAN.requirements` (before training starts, so missing weights stop the run before step
1) and kept outside the module tree, so checkpoints hold G and D only and inference never needs the VGG
weights.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stochdeblur.config import RunConfig
from stochdeblur.diffusion.sampler import Restoration
from stochdeblur.losses import RaGANLS, VGGPerceptual, gradient_penalty, wgan_g_loss, wgan_gp_d_loss
from stochdeblur.methods.base import Method, OptimizerGroup
from stochdeblur.models import build_predictor
from stochdeblur.models.discriminator import DoubleScaleDiscriminator
from stochdeblur.models.fpn import FPNGenerator
from stochdeblur.models.resnet_gen import ResnetGenerator
from stochdeblur.tiling import tiled_apply

DISCRIMINATOR_BRANCHES = {"double": ("patch", "full"), "patch": ("patch",), "full": ("full",)}
"""``gan.discriminator`` name → its branches (``config.DISCRIMINATOR_TYPES`` lists the same names)."""


@contextlib.contextmanager
def _frozen(module: nn.Module) -> Iterator[None]:
    """Switch ``requires_grad`` off for the block, restoring each parameter's previous flag."""
    flags = [(p, p.requires_grad) for p in module.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def _predictor(kind: str) -> Callable[[RunConfig], nn.Module]:
    """The predictor builder of ``kind`` (``models.PREDICTOR_BUILDERS``) with the ``gan`` section's backbone flag."""
    return lambda cfg: build_predictor(dataclasses.replace(cfg.predictor, type=kind,
                                                           pretrained_backbone=cfg.gan.pretrained_backbone))


GENERATOR_BUILDERS: dict[str, Callable[[RunConfig], nn.Module]] = {
    **{kind: _predictor(kind) for kind in ("fpn_mobilenet", "fpn_inception", "fpn_mobilenet_dsc", "unet", "unet_xy")},
    "resnet_v1": lambda cfg: ResnetGenerator(),
}
"""``gan.generator`` name → builder (``config.GENERATOR_TYPES`` lists the same names; a test checks)."""


def build_generator(cfg: RunConfig) -> nn.Module:
    """The generator named by ``cfg.gan.generator`` (FPN variants, v1 ResNet, or a DvSR-style UNet)."""
    return GENERATOR_BUILDERS[cfg.gan.generator](cfg)


class DeblurGAN(Method):
    """Generator + (multi-branch) discriminator with RaGAN-LS or WGAN-GP; groups ``"g"`` and ``"d"``.

    Args:
        generator: maps y [B,3,H,W] in [-1,1] to the restored image, any H×W.
        discriminator: maps an image to ``{branch: score map}``.
        adv_loss: ``"ragan-ls"`` or ``"wgan-gp"``.
        mse_weight, perceptual_weight, adv_weight: generator loss weights.
        perceptual: ``"vgg19"`` or ``"none"``.
        gp_weight: λ of the gradient penalty (WGAN-GP only).
        pool_size: RaGAN-LS prediction pool length (0: batch means).
        freeze_backbone_steps: steps during which the FPN generator's backbone gets no gradient, when it was
            loaded with pretrained weights (otherwise ignored, with a note from :meth:`requirements`).
        d_steps_per_g: critic steps before each generator step.
        lr, d_lr: base learning rates of ``"g"`` and ``"d"``.
        seed: seeds the generator of the gradient-penalty α draws.
        tile_overlap: overlap when :meth:`restore` runs tiled.
    """

    samples = False

    def __init__(self, generator: nn.Module, discriminator: nn.Module, *, adv_loss: str = "ragan-ls",
                 mse_weight: float = 0.5, perceptual: str = "vgg19", perceptual_weight: float = 0.006,
                 adv_weight: float = 0.01, gp_weight: float = 10.0, pool_size: int = 50,
                 freeze_backbone_steps: int = 0, d_steps_per_g: int = 1, lr: float = 1e-4, d_lr: float = 1e-4,
                 seed: int = 0, tile_overlap: int = 32) -> None:
        super().__init__()
        if adv_loss not in ("ragan-ls", "wgan-gp"):
            raise ValueError(f"gan.adv_loss={adv_loss!r} is not one of ragan-ls, wgan-gp")
        self.generator = generator
        self.discriminator = discriminator
        self.adv_loss = adv_loss
        self.mse_weight = mse_weight
        self.perceptual = perceptual
        self.perceptual_weight = perceptual_weight
        self.adv_weight = adv_weight
        self.gp_weight = gp_weight
        self.freeze_backbone_steps = freeze_backbone_steps
        self.backbone_pretrained = isinstance(generator, FPNGenerator) and generator.backbone_pretrained
        self.d_steps_per_g, self.lr, self.d_lr = d_steps_per_g, lr, d_lr
        self.tile_overlap = tile_overlap
        self.size_multiple = getattr(generator, "size_multiple", 1)
        branches = getattr(discriminator, "branches", {}) if adv_loss == "ragan-ls" else {}
        self.ragan = nn.ModuleDict({name: RaGANLS(pool_size) for name in branches})  # pools resume with the model
        self._gp_generator = torch.Generator().manual_seed(seed)
        object.__setattr__(self, "_vgg", None)  # built lazily, deliberately not a registered submodule

    @classmethod
    def from_config(cls, cfg: RunConfig) -> DeblurGAN:
        """Build generator, discriminator and losses from ``cfg.gan`` (v2 and v1 differ only by config)."""
        gan = cfg.gan
        disc = DoubleScaleDiscriminator(DISCRIMINATOR_BRANCHES[gan.discriminator])
        return cls(build_generator(cfg), disc, adv_loss=gan.adv_loss, mse_weight=gan.mse_weight,
                   perceptual=gan.perceptual, perceptual_weight=gan.perceptual_weight, adv_weight=gan.adv_weight,
                   gp_weight=gan.gp_weight, pool_size=gan.pool_size, freeze_backbone_steps=gan.freeze_backbone_steps,
                   d_steps_per_g=gan.d_steps_per_g, lr=cfg.train.lr, d_lr=gan.d_lr, seed=cfg.train.seed,
                   tile_overlap=cfg.sample.tile_overlap)

    def optimizer_groups(self) -> dict[str, OptimizerGroup]:
        """``{"g": generator at lr, "d": discriminator at d_lr}``."""
        return {"g": OptimizerGroup(list(self.generator.parameters()), self.lr),
                "d": OptimizerGroup(list(self.discriminator.parameters()), self.d_lr)}

    def step_schedule(self) -> list[str]:
        """``d_steps_per_g`` critic steps, then one generator step."""
        return ["d"] * self.d_steps_per_g + ["g"]

    @property
    def _uses_perceptual(self) -> bool:
        return self.perceptual != "none" and self.perceptual_weight > 0

    @property
    def _freezes_backbone(self) -> bool:
        return self.freeze_backbone_steps > 0 and self.backbone_pretrained

    def requirements(self) -> list[str]:
        """Load the VGG19 perceptual network now (``PerceptualUnavailable`` when its weights are not cached);
        a note when ``freeze_backbone_steps`` is set but there is no pretrained backbone to freeze."""
        if self._uses_perceptual:
            self._load_vgg()
        if self.freeze_backbone_steps > 0 and not self._freezes_backbone:
            return [f"gan.freeze_backbone_steps={self.freeze_backbone_steps} ignored: no pretrained backbone "
                    "weights were loaded (gan.pretrained_backbone=true and an FPN generator with its ImageNet "
                    "weights in the local cache), so the whole generator trains from step 1"]
        return []

    def on_step(self, step: int) -> None:
        """Freeze the pretrained backbone while ``step < freeze_backbone_steps``, then let it train."""
        if self._freezes_backbone:
            for p in self.generator.backbone_parameters():
                p.requires_grad_(step >= self.freeze_backbone_steps)

    def _load_vgg(self) -> VGGPerceptual:
        """The VGG19 perceptual network, loaded once (``PerceptualUnavailable`` when its weights are not cached)."""
        if self._vgg is None:
            object.__setattr__(self, "_vgg", VGGPerceptual())
        return self._vgg

    def _perceptual_loss(self, fake: Tensor, sharp: Tensor) -> Tensor:
        return self._load_vgg().to(fake.device)(fake, sharp)

    def forward(self, batch: dict[str, Tensor], group: str,
                generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """One training step's loss for ``group`` ("d": critic on detached G output; "g": generator).

        Args:
            batch: ``{"blur", "sharp"}`` [B,3,h,w] in [-1,1].
            group: ``"d"`` or ``"g"``.
            generator: draws the gradient-penalty α, on its device (the method's own seeded CPU one when None).

        Returns:
            scalar tensors: ``"loss"`` plus logged terms (``d_adv``/``gp``, or ``mse``/``perceptual``/``adv``).
        """
        if group == "d":
            return self._d_step(batch["blur"], batch["sharp"], generator or self._gp_generator)
        if group == "g":
            return self._g_step(batch["blur"], batch["sharp"])
        raise ValueError(f"DeblurGAN has parameter groups 'g' and 'd', got {group!r}")

    def _d_step(self, blur: Tensor, sharp: Tensor, generator: torch.Generator) -> dict[str, Tensor]:
        with torch.no_grad():
            fake = self.generator(blur)
        real_preds, fake_preds = self.discriminator(sharp), self.discriminator(fake)
        adv, penalty = [], []
        for name in real_preds:
            real_pred, fake_pred = real_preds[name].float(), fake_preds[name].float()
            if self.adv_loss == "ragan-ls":
                adv.append(self.ragan[name].d_loss(real_pred, fake_pred))
            else:
                adv.append(wgan_gp_d_loss(real_pred, fake_pred))
                branch = self.discriminator.branches[name]
                penalty.append(gradient_penalty(branch, sharp, fake, generator=generator, weight=self.gp_weight))
        d_adv = torch.stack(adv).mean()
        out = {"d_adv": d_adv.detach()}
        loss = d_adv
        if penalty:
            gp = torch.stack(penalty).mean()
            loss = loss + gp
            out["gp"] = gp.detach()
        out["loss"] = loss
        return out

    def _g_step(self, blur: Tensor, sharp: Tensor) -> dict[str, Tensor]:
        fake = self.generator(blur)
        mse = F.mse_loss((fake.float() + 1) / 2, (sharp.float() + 1) / 2)
        loss = self.mse_weight * mse
        out = {"mse": mse.detach()}
        if self._uses_perceptual:
            perceptual = self._perceptual_loss(fake, sharp)
            loss = loss + self.perceptual_weight * perceptual
            out["perceptual"] = perceptual.detach()
        with _frozen(self.discriminator):
            fake_preds = self.discriminator(fake)
            with torch.no_grad():
                real_preds = self.discriminator(sharp) if self.adv_loss == "ragan-ls" else {}
        adv = []
        for name, fake_pred in fake_preds.items():
            if self.adv_loss == "ragan-ls":
                adv.append(self.ragan[name].g_loss(real_preds[name].float(), fake_pred.float()))
            else:
                adv.append(wgan_g_loss(fake_pred.float()))
        g_adv = torch.stack(adv).mean()
        out["adv"] = g_adv.detach()
        out["loss"] = loss + self.adv_weight * g_adv
        return out

    @torch.no_grad()
    def restore(self, blur: Tensor, *, mode: str | None = None, steps: int | None = None, average: int | None = None,
                seed: int = 0, sampler: str | None = None, eta: float | None = None, schedule: str | None = None,
                alpha_bar_end: float | None = None, tile: int | None = None, progress: bool = False,
                return_samples: bool = False) -> Tensor | Restoration:
        """One-shot deblurring by the generator (mode and the diffusion arguments are ignored); tiled if ``tile``
        is set. ``return_samples=True`` wraps the output as its single sample (σ = 0).

        Shape: [B,3,H,W] in [-1,1], any H×W → [B,3,H,W] in [-1,1] (float32).
        """
        if tile is not None and max(blur.shape[-2:]) > tile:
            out = tiled_apply(self.generator, [blur], tile=tile, overlap=self.tile_overlap,
                              multiple=self.size_multiple)
        else:
            out = self.generator(blur)
        out = out.float().clamp(-1.0, 1.0)
        return Restoration.from_samples(out.unsqueeze(0), out) if return_samples else out

