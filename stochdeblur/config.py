"""Typed run configuration: dataclass defaults, YAML overrides, CLI dotlist overrides.

The dataclasses below are the schema *and* the defaults. YAML files in ``configs/`` only override them, and
``key=value`` arguments on the command line override the YAML. Merging goes through
``OmegaConf.structured``, so an unknown key or a value of the wrong type fails loudly with the key's name
and the file it came from; library code then receives plain dataclasses, never ``DictConfig``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

# The names a config may use. Each has a builder registry elsewhere (config imports no model code); the tests
# check that the two list the same names (tests/test_config.py, tests/test_synth.py).
PREDICTOR_TYPES = ("unet", "unet_xy", "kernel_aware", "fpn_mobilenet", "fpn_inception", "fpn_mobilenet_dsc")
GENERATOR_TYPES = ("fpn_mobilenet", "fpn_inception", "fpn_mobilenet_dsc", "resnet_v1", "unet", "unet_xy")
DISCRIMINATOR_TYPES = ("double", "patch", "full")
METHODS = ("dvsr", "deblurganv2", "deblurgan_v1", "classical")
SAMPLER_TYPES = ("ddpm", "ddim", "dpmsolver")
INFERENCE_SCHEDULES = ("linear", "cosine")  # β shapes of the inference schedule (diffusion/schedule.py)
DATA_KINDS = ("synthetic", "gopro", "hide", "realblur", "pairs")
KERNEL_GENERATORS = ("boracchi", "gp")


class ConfigError(ValueError):
    """A configuration file or override is invalid (unknown key, wrong type, bad value)."""


def _check_choice(section: str, name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{section}.{name}={value!r} is not one of {', '.join(choices)}")


@dataclass
class PredictorConfig:
    """Initial predictor g: the DvSR UNet (width 64) or a DeblurGAN-v2 FPN generator."""

    type: str = "unet"
    base_channels: int = 64
    channel_mults: list[int] = field(default_factory=lambda: [1, 2, 3, 4])
    num_res_blocks: int = 3
    dropout: float = 0.0
    pretrained_backbone: bool = False
    # UNet only: x_init = y + UNet(y) with a zero-initialised head, so g starts as the identity (the FPN
    # generators of DeblurGAN-v2 add the input too). Off in the paper recipe; on for CPU-budget training.
    input_residual: bool = False
    # kernel_aware only (models/kernel_aware.py): base_channels is the refiner's width, estimator_channels the
    # kernel estimator's; kernel_size the largest kernel it estimates; the TV deconvolution between them runs
    # deconv_iterations unrolled ADMM steps (deconv_lam 0 = physics.nonblind's tuned default). The two loss
    # weights supervise the kernel estimate with the training pairs' true kernels (data must carry "kernel").
    kernel_size: int = 33
    estimator_channels: int = 16
    deconv_iterations: int = 30
    deconv_lam: float = 0.0
    kernel_loss_weight: float = 0.0
    reblur_loss_weight: float = 0.0
    # and the dense one: L1 between the gradients of E's sharp luminance and the sharp image's
    edge_loss_weight: float = 0.0
    # where k̂ comes from: "learned" (E + least squares) or "classical" (physics.estimate_kernel per image, no
    # E); with train_kernel "truth" the refiner trains on the pairs' own kernels, blurred by σ <= kernel_blur_max
    # px and with probability wrong_kernel_prob rotated 90°, so it sees estimate-like errors; with "estimated" and
    # the classical source, on each training item's classical estimate, made in the data workers
    kernel_source: str = "learned"
    train_kernel: str = "estimated"
    kernel_blur_max: float = 1.5
    wrong_kernel_prob: float = 0.2
    # the classical estimate's kernel fit uses only this share of pixels, those with the most salient blurry
    # edges (physics.estimate_kernel edge_fraction, Xu & Jia's r-map); 1 = all (the shipped default)
    edge_fraction: float = 1.0
    # the refiner also reads the re-blur residual y − k̂ ⊛ x_dec (where the kernel estimate fails to explain y);
    # a different refiner input: start it from 6-input weights with train.init_widen_inputs
    reblur_input: bool = False
    # with train_kernel "estimated" and the classical source: this share of training items is deconvolved with its
    # own kernel softened as for "truth" (never rotated) instead of its estimate, so the refiner also sees good
    # deconvolutions (128² training crops give worse estimates than whole photos)
    truth_mix: float = 0.0
    # stage 1 of the kernel-aware recipe: train only the kernel estimator on its supervision (no deconvolution,
    # refiner or denoiser in the step: ~10x cheaper per image); stage 2 starts from it with train.init_from.
    kernel_only: bool = False

    def __post_init__(self) -> None:
        _check_choice("predictor", "type", self.type, PREDICTOR_TYPES)
        if self.kernel_size < 3 or self.deconv_iterations < 1 or self.deconv_lam < 0:
            raise ConfigError(f"predictor: need kernel_size >= 3 ({self.kernel_size}), deconv_iterations >= 1 "
                              f"({self.deconv_iterations}) and deconv_lam >= 0 ({self.deconv_lam})")
        _check_choice("predictor", "kernel_source", self.kernel_source, ("learned", "classical"))
        if not 0.0 < self.edge_fraction <= 1.0:
            raise ConfigError(f"predictor.edge_fraction must be in (0, 1], got {self.edge_fraction}")
        if self.edge_fraction < 1.0 and self.kernel_source != "classical":
            raise ConfigError("predictor.edge_fraction applies to the classical estimate: set "
                              "predictor.kernel_source=classical")
        _check_choice("predictor", "train_kernel", self.train_kernel, ("estimated", "truth"))
        supervised = self.kernel_loss_weight or self.reblur_loss_weight or self.edge_loss_weight
        if self.kernel_source == "classical" and supervised:
            raise ConfigError("predictor.kernel_source=classical has no learned estimator: set the kernel/reblur/edge "
                              "loss weights to 0")
        if not 0.0 <= self.truth_mix <= 1.0:
            raise ConfigError(f"predictor.truth_mix must be in [0, 1], got {self.truth_mix}")
        if self.truth_mix and (self.kernel_source != "classical" or self.train_kernel != "estimated"):
            raise ConfigError("predictor.truth_mix mixes true kernels among the classical estimates of the training "
                              "items: set predictor.kernel_source=classical and predictor.train_kernel=estimated")
        if self.reblur_input and self.type != "kernel_aware":
            raise ConfigError("predictor.reblur_input is an input of the kernel-aware refiner: set "
                              "predictor.type=kernel_aware")
        if self.type != "kernel_aware" and (supervised or self.kernel_only):
            raise ConfigError("predictor.kernel_loss_weight/reblur_loss_weight/edge_loss_weight/kernel_only need "
                              "predictor.type=kernel_aware")
        if self.kernel_only and not supervised:
            raise ConfigError("predictor.kernel_only trains on the estimator's supervision: set kernel_loss_weight, "
                              "reblur_loss_weight and/or edge_loss_weight > 0")


@dataclass
class DenoiserConfig:
    """Residual denoiser f(z_t, sqrt(alpha_bar), y) -> eps_hat: the same UNet at width 32 with noise input."""

    base_channels: int = 32
    channel_mults: list[int] = field(default_factory=lambda: [1, 2, 3, 4])
    num_res_blocks: int = 3
    dropout: float = 0.0
    film: bool = False
    condition_on_init: bool = False
    noise_embed_scale: float = 1000.0


@dataclass
class DiffusionConfig:
    """Training noise schedule (continuous noise level) and the joint objective's options."""

    schedule: str = "linear"
    train_timesteps: int = 2000
    beta_start: float = 1e-6
    beta_end: float = 1e-2
    aux_predictor_weight: float = 0.0

    def __post_init__(self) -> None:
        _check_choice("diffusion", "schedule", self.schedule, ("linear", "cosine"))


def check_sampling(where: str, sampler: str, eta: float | None, schedule: str, alpha_bar_end: float | None,
                   *, blank: bool = False) -> None:
    """Validate the sampler settings of ``where`` (``sample`` or ``sample.modes.NAME``); with ``blank``, "" and
    None (= the ``sample`` section's value) are allowed too.

    Raises:
        ConfigError: an unknown sampler or schedule, η outside [0, 1], ᾱ_T outside (0, 1), or an η set on a
            mode whose own sampler is not DDIM.
    """
    if not (blank and sampler == ""):
        _check_choice(where, "sampler", sampler, SAMPLER_TYPES)
    if not (blank and schedule == ""):
        _check_choice(where, "schedule", schedule, INFERENCE_SCHEDULES)
    if eta is not None and not 0.0 <= eta <= 1.0:
        raise ConfigError(f"{where}.eta={eta} must be in [0, 1] (DDIM: 0 = deterministic, 1 = ancestral like DDPM)")
    if eta is not None and blank and sampler not in ("", "ddim"):
        raise ConfigError(f"{where}.eta={eta} applies to DDIM only, but {where}.sampler={sampler}")
    if alpha_bar_end is not None and not 0.0 < alpha_bar_end < 1.0:
        raise ConfigError(f"{where}.alpha_bar_end={alpha_bar_end} must be in (0, 1) (ᾱ_T, the final noise level)")


@dataclass
class ModePreset:
    """One named inference mode of ``sample.modes``: ``steps`` reverse steps, ``average`` samples averaged, and
    optionally its own sampler settings; "" / None (the defaults) take the ``sample`` section's value.

    :meth:`SampleConfig.presets` returns them resolved (every field set).
    """

    steps: int = 10
    average: int = 1
    sampler: str = ""  # ddpm, ddim, dpmsolver; "" = sample.sampler
    eta: float | None = None  # DDIM's η; None = sample.eta
    schedule: str = ""  # linear, cosine; "" = sample.schedule
    alpha_bar_end: float | None = None  # ᾱ_T; None = sample.alpha_bar_end


BUILTIN_MODES = ("predictor", "average")  # predictor = steps 0; average = sample.steps × sample.average
# named modes every config has unless its sample.modes names them (a named mode replaces the default one whole).
# Added by SampleConfig.presets(), not stored in sample.modes: OmegaConf builds its schema from SampleConfig(), so a
# stored default would be merged field by field into a saved config's own "perceptual" (its steps, our sampler).
# perceptual_500 is the paper's 500-step DDPM sample; "perceptual" falls back to it for models whose config
# names no faster preset (the kernel-aware configs do: benchmarks/perceptual_nfe.py).
DEFAULT_MODES = {"perceptual": ModePreset(steps=500, average=1),
                 "perceptual_500": ModePreset(steps=500, average=1, sampler="ddpm")}


@dataclass
class SampleConfig:
    """Inference defaults and the named modes of ``--mode`` (:meth:`presets`, :func:`resolve_mode`).

    ``steps`` × ``average`` is the averaging mode, the default of the CLIs and of validation during training.
    ``sampler``, ``eta``, ``schedule`` and ``alpha_bar_end`` are the perception–distortion knobs of the reverse
    process (DvSR §4): the update rule, DDIM's η (0 = deterministic after z_T, 1 = ancestral, the DDPM update),
    the β shape of the inference schedule and its final noise level ᾱ_T (``diffusion/schedule.py``); a mode
    preset may set its own. The defaults reproduce the original sampler bit for bit.
    """

    steps: int = 10
    average: int = 4
    # further named modes for --mode / restore(mode=...); "predictor" and "average" are built in (BUILTIN_MODES),
    # presets() adds DEFAULT_MODES (perceptual) unless named here (a named mode replaces the default one whole)
    modes: dict[str, ModePreset] = field(default_factory=dict)
    sampler: str = "ddpm"
    eta: float = 0.0
    schedule: str = "linear"
    alpha_bar_end: float = 1e-3
    seed: int = 0
    tile: int = 512
    tile_overlap: int = 32
    # most samples per denoiser call in averaging mode; 0 = auto (all K on a GPU; on a CPU as many as fit
    # 256² pixels per call, since there a K-row batch costs more than K single rows: benchmarks/sampler.py)
    average_chunk: int = 0
    # method=classical (blind kernel estimation + TV deconvolution, no network): the largest blur it estimates
    kernel_size: int = 33

    def __post_init__(self) -> None:
        if self.kernel_size < 3:
            raise ConfigError(f"sample.kernel_size={self.kernel_size} must be >= 3")
        if self.average_chunk < 0:
            raise ConfigError(f"sample.average_chunk={self.average_chunk} must be >= 0 (0 = auto)")
        check_sampling("sample", self.sampler, self.eta, self.schedule, self.alpha_bar_end)
        if self.steps < 0 or self.average < 1:
            raise ConfigError(f"sample: need steps >= 0 ({self.steps}) and average >= 1 ({self.average})")
        for name, preset in self.modes.items():
            if name in BUILTIN_MODES:
                raise ConfigError(f"sample.modes.{name}: '{name}' is built in (predictor = 0 steps, average = "
                                  "sample.steps × sample.average); set those instead")
            if preset.steps < 0 or preset.average < 1:
                raise ConfigError(f"sample.modes.{name}: need steps >= 0 ({preset.steps}) and average >= 1 "
                                  f"({preset.average})")
            check_sampling(f"sample.modes.{name}", preset.sampler, preset.eta, preset.schedule, preset.alpha_bar_end,
                           blank=True)

    def resolved(self, preset: ModePreset) -> ModePreset:
        """``preset`` with its blank sampler settings ("" / None) taken from this section."""
        return fill_preset(preset, ModePreset(self.steps, self.average, self.sampler, self.eta, self.schedule,
                                              self.alpha_bar_end))

    def presets(self) -> dict[str, ModePreset]:
        """Every named mode, resolved: predictor (0 steps), average (``steps`` × ``average``), the
        :data:`DEFAULT_MODES` that ``modes`` does not name, and ``modes``."""
        defaults = {name: self.modes.get(name, preset) for name, preset in DEFAULT_MODES.items()}
        named = {"predictor": ModePreset(0, 1), "average": ModePreset(self.steps, self.average), **defaults,
                 **self.modes}  # the default names keep their place when a config replaces one
        return {name: self.resolved(preset) for name, preset in named.items()}


SAMPLING_DEFAULTS = ModePreset(10, 4, "ddpm", 0.0, "linear", 1e-3)  # = SampleConfig()'s averaging mode


def fill_preset(preset: ModePreset, base: ModePreset) -> ModePreset:
    """``preset`` with each blank sampler setting ("" / None) taken from ``base``."""
    return dataclasses.replace(
        preset, sampler=preset.sampler or base.sampler, eta=base.eta if preset.eta is None else preset.eta,
        schedule=preset.schedule or base.schedule,
        alpha_bar_end=base.alpha_bar_end if preset.alpha_bar_end is None else preset.alpha_bar_end)


def resolve_preset(presets: dict[str, ModePreset], mode: str | None = None, steps: int | None = None,
                   average: int | None = None, *, sampler: str | None = None, eta: float | None = None,
                   schedule: str | None = None, alpha_bar_end: float | None = None) -> ModePreset:
    """The complete setting of a request: the preset named ``mode`` with every explicit argument replacing its
    value; without a mode, ``steps`` (None = 0 = predictor only) × ``average`` (None = one sample). Sampler
    settings neither given nor set by the preset come from the "average" preset (the ``sample`` section), else
    :data:`SAMPLING_DEFAULTS`. Zero steps give one sample.

    Raises:
        ValueError: ``mode`` is not in ``presets`` (the message lists them), steps < 0 / average < 1, or a bad
            sampler setting (:class:`ConfigError`, naming it; an explicit ``eta`` needs the DDIM sampler).
    """
    if mode is not None and mode not in presets:
        raise ValueError(f"unknown mode {mode!r}; this model has {', '.join(presets)}")
    base = fill_preset(presets.get("average", SAMPLING_DEFAULTS), SAMPLING_DEFAULTS)
    preset = fill_preset(presets[mode] if mode is not None else ModePreset(0, 1), base)
    steps = preset.steps if steps is None else steps
    average = preset.average if average is None else average
    if steps < 0 or average < 1:
        raise ValueError(f"need steps >= 0 and average >= 1, got steps={steps}, average={average}")
    preset = dataclasses.replace(
        preset, steps=steps, average=average if steps else 1, sampler=sampler or preset.sampler,
        eta=preset.eta if eta is None else eta, schedule=schedule or preset.schedule,
        alpha_bar_end=preset.alpha_bar_end if alpha_bar_end is None else alpha_bar_end)
    check_sampling("sampling", preset.sampler, preset.eta, preset.schedule, preset.alpha_bar_end)
    if eta is not None and preset.steps and preset.sampler != "ddim":
        raise ConfigError(f"eta={eta} applies to the DDIM sampler only, not {preset.sampler}")
    return preset


def resolve_mode(presets: dict[str, ModePreset], mode: str | None = None, steps: int | None = None,
                 average: int | None = None) -> tuple[int, int]:
    """(steps, average) of a request: the preset named ``mode`` with an explicit ``steps``/``average`` replacing
    its value; without a mode, ``steps`` (None = 0 = predictor only) × ``average`` (None = one sample).
    :func:`resolve_preset` also gives the sampler settings.

    Raises:
        ValueError: ``mode`` is not in ``presets`` (the message lists them), or steps < 0 / average < 1.
    """
    preset = resolve_preset(presets, mode, steps, average)
    return preset.steps, preset.average


@dataclass
class GANConfig:
    """DeblurGAN generator/discriminator choice and loss weights (0.5 MSE + 0.006 perceptual + 0.01 adv)."""

    generator: str = "fpn_mobilenet"
    pretrained_backbone: bool = False
    discriminator: str = "double"
    adv_loss: str = "ragan-ls"
    mse_weight: float = 0.5
    perceptual: str = "vgg19"
    perceptual_weight: float = 0.006
    adv_weight: float = 0.01
    gp_weight: float = 10.0
    d_steps_per_g: int = 1
    freeze_backbone_steps: int = 0
    d_lr: float = 1e-4
    pool_size: int = 50

    def __post_init__(self) -> None:
        _check_choice("gan", "generator", self.generator, GENERATOR_TYPES)
        _check_choice("gan", "discriminator", self.discriminator, DISCRIMINATOR_TYPES)
        _check_choice("gan", "adv_loss", self.adv_loss, ("ragan-ls", "wgan-gp"))
        _check_choice("gan", "perceptual", self.perceptual, ("vgg19", "none"))


@dataclass
class DataConfig:
    """Where training/validation pairs come from and how they are cropped and batched."""

    kind: str = "synthetic"
    root: str = ""
    val_root: str = ""
    train_split: str = "train"
    val_split: str = "test"
    blur_dir: str = "blur"
    crop_size: int = 128
    batch_size: int = 8
    num_workers: int = 0
    val_images: int = 8
    val_crop_size: int = 256
    val_kind: str = ""
    # synthetic validation pairs only: redraw the sharp content until the blurry crop is at most this many dB
    # from its target (a visibly blurred photo; SyntheticPairs max_blurry_psnr); 0 = every pair as drawn
    val_max_blurry_psnr: float = 0.0
    # the same for the synthetic training pairs: R then learns from pairs as blurred as the photos it is asked
    # to deblur, not mostly from smooth crops the blur barely changes; 0 = every pair as drawn
    max_blurry_psnr: float = 0.0
    # the share of training items that redraw applies to (the rest as drawn, barely blurred crops included)
    max_blurry_share: float = 1.0
    # Synthetic pairs (dead leaves or a folder of sharp images + random-trajectory kernels).
    sharp_dir: str = ""
    kernel_size_min: int = 7
    kernel_size_max: int = 33
    noise_max: float = 0.01
    jpeg_prob: float = 0.0
    synthetic_length: int = 100_000
    # fraction of synthetic training items whose sharp content is a crop of scikit-image's CC0 /
    # public-domain images (stochdeblur.data.textures) instead of dead leaves; 0 = dead leaves only.
    texture_prob: float = 0.0
    # fraction of synthetic training items cropped from the Debian wallpaper photographs
    # (stochdeblur.data.wallpapers; `make photos` installs them) at these downscale factors; texture_prob then
    # applies to the remaining items. Validation items never use them.
    photo_prob: float = 0.0
    photo_scales: list[float] = field(default_factory=lambda: [0.5, 0.35, 0.25])
    # camera-shake kernel families, drawn uniformly per item: "boracchi" (DeblurGAN-v1 random trajectories),
    # "gp" (Gaussian-process trajectories, stochdeblur.data.synth.gp_motion_kernel)
    kernel_generators: list[str] = field(default_factory=lambda: ["boracchi"])
    # training items repeat every this many epochs (0 = fresh items every epoch); with extras_cache, the
    # per-item work a method adds (the classical kernel estimate of predictor.train_kernel=estimated) is made
    # once per item and read back afterwards (one safetensors file per item in that folder)
    distinct_epochs: int = 0
    extras_cache: str = ""

    def __post_init__(self) -> None:
        _check_choice("data", "kind", self.kind, DATA_KINDS)
        if self.distinct_epochs < 0:
            raise ConfigError(f"data.distinct_epochs={self.distinct_epochs} must be >= 0")
        _check_choice("data", "val_kind", self.val_kind, ("", "photos", "wallpapers"))
        for key in ("max_blurry_psnr", "val_max_blurry_psnr"):
            if getattr(self, key) < 0:
                raise ConfigError(f"data.{key}={getattr(self, key)} must be >= 0 (0 = off)")
        if not 0.0 <= self.max_blurry_share <= 1.0:
            raise ConfigError(f"data.max_blurry_share={self.max_blurry_share} must be in [0, 1]")
        if self.crop_size % 8:
            raise ConfigError(f"data.crop_size={self.crop_size} must be a multiple of 8")
        if not 0.0 <= self.texture_prob <= 1.0:
            raise ConfigError(f"data.texture_prob={self.texture_prob} must be in [0, 1]")
        if self.texture_prob > 0 and self.sharp_dir:
            raise ConfigError("data.texture_prob mixes textures into dead leaves; it cannot be used with data.sharp_dir")
        if not 0.0 <= self.photo_prob <= 1.0:
            raise ConfigError(f"data.photo_prob={self.photo_prob} must be in [0, 1]")
        if self.photo_prob > 0 and self.sharp_dir:
            raise ConfigError("data.photo_prob mixes photos into dead leaves; not usable with data.sharp_dir")
        if not self.photo_scales or not all(0.0 < s <= 1.0 for s in self.photo_scales):
            raise ConfigError(f"data.photo_scales={list(self.photo_scales)} must be factors in (0, 1]")
        if not self.kernel_generators:
            raise ConfigError("data.kernel_generators must name at least one of boracchi, gp")
        for name in self.kernel_generators:
            _check_choice("data", "kernel_generators", name, KERNEL_GENERATORS)


@dataclass
class TrainConfig:
    """Optimisation, precision, EMA, checkpointing and validation cadence."""

    max_steps: int = 100_000
    lr: float = 1e-4
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    warmup_steps: int = 1000
    lr_schedule: str = "cosine"
    min_lr_ratio: float = 0.01
    grad_clip: float = 1.0
    grad_accum: int = 1
    ema_decay: float = 0.999
    ema_start: int = 0
    mixed_precision: str = "auto"
    seed: int = 0
    checkpoint_every: int = 1000
    keep_last: int = 3
    val_every: int = 1000
    log_every: int = 50
    # a model directory (model.safetensors + config.json) whose weights start the run, e.g. to go on
    # training the shipped default: stochdeblur/weights/default. Optimizer and schedule start fresh.
    init_from: str = ""
    # with init_from: start only these submodules from it (prefixes of the state dict, e.g. [denoiser] to take
    # the residual denoiser f of a model with the same f while g starts fresh); empty = the whole model
    init_modules: list[str] = field(default_factory=list)
    # with init_from: a conv whose input channels grew since (predictor.reblur_input) takes the saved weights for
    # its first input channels and zeros for the new ones, so the run starts as the saved model
    init_widen_inputs: bool = False
    # submodules (prefixes of the state dict, e.g. [predictor]) kept as they are: no gradient, not optimised —
    # to train f alone on a fixed g
    freeze: list[str] = field(default_factory=list)
    # NHWC layout for the model's conv weights and every batch: 1.3x faster training steps on a CPU
    # (oneDNN), also the fast layout for tensor cores. Checkpoints and exports are layout-free.
    channels_last: bool = True

    def __post_init__(self) -> None:
        if self.mixed_precision in ("False", "false"):  # YAML 1.1 / dotlist parse a bare `no` as a boolean
            self.mixed_precision = "no"
        _check_choice("train", "lr_schedule", self.lr_schedule, ("cosine", "step", "constant"))
        _check_choice("train", "mixed_precision", self.mixed_precision, ("auto", "no", "bf16", "fp16"))


@dataclass
class LogConfig:
    """Experiment tracking: W&B (offline unless WANDB_MODE says otherwise), tensorboard, or none."""

    tracker: str = "wandb"
    project: str = "stochdeblur"
    wandb_mode: str = "offline"
    image_panels: int = 4

    def __post_init__(self) -> None:
        _check_choice("log", "tracker", self.tracker, ("wandb", "tensorboard", "none"))
        _check_choice("log", "wandb_mode", self.wandb_mode, ("offline", "online", "disabled"))


@dataclass
class RunConfig:
    """Everything a training run needs; saved beside every run and checkpoint."""

    name: str = "run"
    method: str = "dvsr"
    predictor: PredictorConfig = field(default_factory=PredictorConfig)
    denoiser: DenoiserConfig = field(default_factory=DenoiserConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    gan: GANConfig = field(default_factory=GANConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    log: LogConfig = field(default_factory=LogConfig)

    def __post_init__(self) -> None:
        _check_choice("run", "method", self.method, METHODS)


def _merge(base: DictConfig, other: Any, source: str) -> DictConfig:
    try:
        return OmegaConf.merge(base, other)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None) or "?"
        raise ConfigError(f"{source}: invalid key or value '{key}': {exc.msg}") from None


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Build a validated :class:`RunConfig` from the defaults, an optional YAML file and dotlist overrides.

    Raises:
        ConfigError: naming the offending key and its source (file or command line).
    """
    cfg = OmegaConf.structured(RunConfig)
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        cfg = _merge(cfg, OmegaConf.load(path), str(path))
    if overrides:
        cfg = _merge(cfg, OmegaConf.from_dotlist(list(overrides)), "command line")
    try:
        return OmegaConf.to_object(cfg)
    except ConfigError as exc:
        raise ConfigError(f"{path or 'defaults'}: {exc}") from None


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain nested dict of a config dataclass (for JSON/YAML and trackers)."""
    return dataclasses.asdict(cfg)


def to_yaml(cfg: RunConfig) -> str:
    """The resolved config as YAML text, loadable again with :func:`load_config`."""
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))
