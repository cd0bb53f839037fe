"""Image-quality metrics, one pinned implementation each (DESIGN.md §6).

Conventions (all functions take package tensors: RGB, [3, H, W] or [1, 3, H, W], values in [-1, 1]; they
are mapped to [0, 1] and compared with ``data_range=1``):

- **PSNR** — torchmetrics, on the full RGB image (MSE over all three channels), per image.
- **SSIM** — torchmetrics, RGB (mean over channels), Gaussian window 11×11 with σ=1.5, K1=0.01, K2=0.03, on the
  full image. torchmetrics reflect-pads the image and averages the SSIM map over *every* pixel; scikit-image
  (``gaussian_weights=True, use_sample_covariance=False``) crops a 5-pixel border instead. With
  ``crop_border=True`` :func:`ssim` follows scikit-image exactly; the pinned default is torchmetrics'.
- **LPIPS** — the ``lpips`` package, AlexNet, v0.1, mean over non-overlapping 256² patches of an image.
- **ST-LPIPS (shift-tolerant, AlexNet)** — optional (``MetricSuite(extra=("stlpips",))``): Ghildyal & Liu's
  shift-tolerant LPIPS (ECCV 2022), the anti-aliased AlexNet trunk + linear heads shipped, trunk included, in the
  ``stlpips-pytorch`` package (``stlpips_pytorch/weights/vST0.0/alex_shift_tolerant.pth``). The network is built
  here (:class:`ShiftTolerantLPIPS`; the package's own modules import IPython and torchsummary) and its state dict
  read with ``torch.load(weights_only=True)``; same patches as LPIPS. Works offline; "unavailable" without the
  package (``pip install stochdeblur[metrics]``). Not LPIPS: its values are not comparable with LPIPS'.
- **FID / KID** — torchmetrics on Inception-v3 (torch-fidelity) features of non-overlapping 256² patches,
  over a whole dataset (:meth:`MetricSuite.finalize`).
- **Weight-free proxies** that always work offline: HaarPSI, MDSI and GMSD (``piq``), and two hand-made
  sharpness ratios (:func:`gradient_energy_ratio`, :func:`highfreq_energy_ratio`): output / sharp, where
  > 1 means sharper or noisier than the ground truth and < 1 blurrier; 1 is ideal.

LPIPS and FID/KID need ImageNet weights that cannot be downloaded here. They are taken from the local torch
hub cache only (``$TORCH_HOME/hub/checkpoints``), or from a file given explicitly; when absent the metric is
reported as ``None`` ("unavailable") with one line saying why — never computed with random weights.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import math
import os
import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ParamSpec, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")

ALEXNET_FILE = "alexnet-owt-7be5be79.pth"
INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
ALEXNET_ENV = "STOCHDEBLUR_ALEXNET_WEIGHTS"
INCEPTION_ENV = "STOCHDEBLUR_INCEPTION_WEIGHTS"

STLPIPS_ENV = "STOCHDEBLUR_STLPIPS_WEIGHTS"
STLPIPS_PACKAGE_FILE = ("weights", "vST0.0", "alex_shift_tolerant.pth")  # inside the stlpips_pytorch package
STLPIPS_LABEL = "ST-LPIPS (shift-tolerant, AlexNet)"

IMAGE_METRICS = ("psnr", "ssim", "lpips", "haarpsi", "mdsi", "gmsd", "grad_ratio", "hf_ratio")
OPTIONAL_METRICS = ("stlpips",)  # per-image metrics computed only when asked for: MetricSuite(extra=...)
DATASET_METRICS = ("fid", "kid")
# True: lower is better; False: higher is better; None: 1 is ideal (sharpness ratios).
LOWER_IS_BETTER: dict[str, bool | None] = {
    "psnr": False, "ssim": False, "lpips": True, "haarpsi": False, "mdsi": True, "gmsd": True,
    "grad_ratio": None, "hf_ratio": None, "fid": True, "kid": True, "stlpips": True,
}
METRIC_LABELS = {"psnr": "PSNR (dB)", "ssim": "SSIM", "lpips": "LPIPS (AlexNet)", "haarpsi": "HaarPSI",
                 "mdsi": "MDSI", "gmsd": "GMSD", "grad_ratio": "gradient-energy ratio",
                 "hf_ratio": "high-frequency energy ratio", "fid": "FID", "kid": "KID", "stlpips": STLPIPS_LABEL}
_LUMA = (0.299, 0.587, 0.114)
_SAID: set[str] = set()


def _say_once(message: str) -> None:
    if message not in _SAID:
        _SAID.add(message)
        log.warning(message)


def _unit(image: Tensor) -> Tensor:
    """[3,H,W] or [1,3,H,W] in [-1,1] -> [1,3,H,W] float32 in [0,1]."""
    if image.dim() == 3:
        image = image.unsqueeze(0)
    if image.dim() != 4 or image.shape[:2] != (1, 3):
        raise ValueError(f"expected one RGB image [3,H,W] or [1,3,H,W], got shape {tuple(image.shape)}")
    return ((image.detach().float().clamp(-1, 1) + 1) / 2).contiguous()


def _pair(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    pred, target = _unit(pred), _unit(target)
    if pred.shape != target.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in size")
    return pred, target.to(pred.device)


def in_fp32(fn: Callable[P, R]) -> Callable[P, R]:
    """Run a metric with autocast off: under a caller's bf16 autocast, SSIM's variance terms lose all precision."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with torch.autocast("cpu", enabled=False), torch.autocast("cuda", enabled=False):
            return fn(*args, **kwargs)

    return wrapper


@in_fp32
def psnr(pred: Tensor, target: Tensor) -> float:
    """PSNR in dB of one RGB image pair (inputs in [-1, 1], compared in [0, 1] with data range 1)."""
    pred, target = _pair(pred, target)
    return float(peak_signal_noise_ratio(pred, target, data_range=1.0))


@in_fp32
def ssim(pred: Tensor, target: Tensor, crop_border: bool = False) -> float:
    """SSIM of one RGB pair: Gaussian 11/σ 1.5, data range 1, channel mean (torchmetrics).

    ``crop_border=True`` averages the SSIM map without its 5-pixel border, as scikit-image does.
    """
    pred, target = _pair(pred, target)
    value, full = structural_similarity_index_measure(
        pred, target, gaussian_kernel=True, sigma=1.5, kernel_size=11, data_range=1.0, return_full_image=True
    )
    if not crop_border:
        return float(value)
    return float(full[..., 5:-5, 5:-5].mean())


def _luma(image01: Tensor) -> Tensor:
    weights = torch.tensor(_LUMA, dtype=image01.dtype, device=image01.device).view(1, 3, 1, 1)
    return (image01 * weights).sum(1, keepdim=True)


def _gradient_energy(image01: Tensor) -> float:
    y = _luma(image01)
    dx = y[..., :, 1:] - y[..., :, :-1]
    dy = y[..., 1:, :] - y[..., :-1, :]
    return float(dx.pow(2).mean() + dy.pow(2).mean())


def _ratio(num: float, den: float) -> float | None:
    return num / den if den > 0 else None


@in_fp32
def gradient_energy_ratio(pred: Tensor, target: Tensor) -> float | None:
    """Mean squared luminance gradient of ``pred`` over that of ``target`` (>1 sharper/noisier, <1 blurrier).

    ``None`` when the target is flat (no gradient energy to compare with).
    """
    pred, target = _pair(pred, target)
    return _ratio(_gradient_energy(pred), _gradient_energy(target))


def _highfreq_energy(image01: Tensor, cutoff: float) -> float:
    y = _luma(image01)[0, 0].double()
    h, w = y.shape
    window = torch.outer(torch.hann_window(h, periodic=False, dtype=y.dtype, device=y.device),
                         torch.hann_window(w, periodic=False, dtype=y.dtype, device=y.device))
    power = torch.fft.fft2((y - y.mean()) * window).abs().pow(2)
    fy = torch.fft.fftfreq(h, device=y.device, dtype=y.dtype).view(-1, 1)
    fx = torch.fft.fftfreq(w, device=y.device, dtype=y.dtype).view(1, -1)
    return float(power[(fy.pow(2) + fx.pow(2)).sqrt() > cutoff].sum())


@in_fp32
def highfreq_energy_ratio(pred: Tensor, target: Tensor, cutoff: float = 0.25) -> float | None:
    """Spectral energy above ``cutoff`` cycles/pixel (Hann-windowed luminance), ``pred`` over ``target``.

    >1 means more high-frequency content than the sharp image (sharper or noisier), <1 blurrier.
    """
    pred, target = _pair(pred, target)
    return _ratio(_highfreq_energy(pred, cutoff), _highfreq_energy(target, cutoff))


def patches(image: Tensor, size: int = 256) -> Tensor:
    """Non-overlapping ``size``² patches on a grid centred in the image; one whole-image patch if smaller.

    Shape: [3,H,W] or [1,3,H,W] -> [N,3,size,size] (or [1,3,H,W] when H or W < size); values unchanged.
    """
    if image.dim() == 3:
        image = image.unsqueeze(0)
    h, w = image.shape[-2:]
    if h < size or w < size:
        return image
    rows, cols = h // size, w // size
    top, left = (h - rows * size) // 2, (w - cols * size) // 2
    grid = image[..., top:top + rows * size, left:left + cols * size]
    grid = grid.unfold(2, size, size).unfold(3, size, size)  # [1,3,rows,cols,size,size]
    return grid.permute(0, 2, 3, 1, 4, 5).reshape(rows * cols, 3, size, size).contiguous()


def _cached(explicit: str | Path | None, env: str, filename: str) -> Path:
    if explicit is not None:
        return Path(explicit)
    if os.environ.get(env):
        return Path(os.environ[env])
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def alexnet_weights_path(explicit: str | Path | None = None) -> Path:
    """Where LPIPS looks for torchvision's AlexNet weights: argument, ``$STOCHDEBLUR_ALEXNET_WEIGHTS``, hub cache."""
    return _cached(explicit, ALEXNET_ENV, ALEXNET_FILE)


def inception_weights_path(explicit: str | Path | None = None) -> Path:
    """Where FID/KID look for torch-fidelity's Inception weights: argument, env var, hub cache."""
    return _cached(explicit, INCEPTION_ENV, INCEPTION_FILE)


class WeightsUnavailable(ValueError):
    """Pretrained weights a metric needs are missing or unreadable; the metric is reported as unavailable."""


def load_lpips(weights: str | Path | None = None, device: torch.device | str = "cpu") -> nn.Module:
    """LPIPS(AlexNet, v0.1): linear heads bundled with ``lpips``, AlexNet trunk from the local cache only.

    Raises:
        WeightsUnavailable: the AlexNet file is absent or is not an AlexNet ``state_dict``.
    """
    path = alexnet_weights_path(weights)
    if importlib.util.find_spec("lpips") is None:
        raise WeightsUnavailable("the 'lpips' package is not installed")
    if not path.is_file():
        raise WeightsUnavailable(f"AlexNet ImageNet weights not in the local cache ({path})")
    import lpips

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unreadable file is a cache problem for the user, not a crash
        raise WeightsUnavailable(f"{path}: not a readable state_dict ({exc.__class__.__name__})") from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False)
    trunk = {}
    for key in model.net.state_dict():
        source = "features." + key.split(".", 1)[1]  # "slice2.3.weight" holds features[3]
        if source not in state:
            raise WeightsUnavailable(f"{path}: not an AlexNet state_dict (missing {source})")
        trunk[key] = state[source]
    model.net.load_state_dict(trunk)
    return model.eval().requires_grad_(False).to(device)


class _BlurPool(nn.Module):
    """Zhang's anti-aliased downsampling as ST-LPIPS uses it: reflect-pad 2, [1,2,1]ᵀ[1,2,1]/16 per channel, stride 2."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        taps = torch.tensor([1.0, 2.0, 1.0])
        self.pad = nn.ReflectionPad2d(2)
        self.register_buffer("filt", (torch.outer(taps, taps) / 16).expand(channels, 1, 3, 3).clone())

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(self.pad(x), self.filt, stride=2, groups=x.shape[1])


def _layers(*modules: tuple[int, nn.Module]) -> nn.Sequential:
    return nn.Sequential(OrderedDict((str(index), module) for index, module in modules))


class _ShiftTolerantAlexNet(nn.Module):
    """The 'shift_tolerant' AlexNet trunk of stlpips_pytorch (conv1 at stride 1, blur-pooling after every
    stride), in five slices whose outputs are compared; module indices match the shipped state dict."""

    def __init__(self) -> None:
        super().__init__()
        self.slice1 = _layers((0, nn.Conv2d(3, 64, 11, stride=1, padding=2)), (1, _BlurPool(64)), (2, nn.ReLU()))
        self.slice2 = _layers((3, nn.MaxPool2d(3, stride=1)), (4, _BlurPool(64)), (5, nn.Conv2d(64, 192, 5, padding=2)),
                              (6, nn.ReLU()))
        self.slice3 = _layers((7, nn.MaxPool2d(3, stride=1)), (8, _BlurPool(192)),
                              (9, nn.Conv2d(192, 384, 3, padding=1)), (10, nn.ReLU()))
        self.slice4 = _layers((11, nn.Conv2d(384, 256, 3, padding=1)), (12, nn.ReLU()))
        self.slice5 = _layers((13, nn.Conv2d(256, 256, 3, padding=1)), (14, nn.ReLU()))

    def forward(self, x: Tensor) -> list[Tensor]:
        features = []
        for block in (self.slice1, self.slice2, self.slice3, self.slice4, self.slice5):
            x = block(x)
            features.append(x)
        return features


class ShiftTolerantLPIPS(nn.Module):
    """ST-LPIPS(AlexNet, shift-tolerant, v0.1 input scaling): Σ_l mean_hw w_l·(f̂_l(x) − f̂_l(y))² over the five
    trunk layers, f̂ unit-normalised over channels; inputs [N,3,H,W] in [−1, 1] → [N,1,1,1] (0 = identical).

    Load the shipped weights with :func:`load_stlpips`.
    """

    CHANNELS = (64, 192, 384, 256, 256)

    def __init__(self) -> None:
        super().__init__()
        self.scaling_layer = nn.Module()
        self.scaling_layer.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.scaling_layer.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))
        self.net = _ShiftTolerantAlexNet()
        for index, channels in enumerate(self.CHANNELS):
            head = _layers((0, nn.Dropout()), (1, nn.Conv2d(channels, 1, 1, bias=False)))
            self.add_module(f"lin{index}", nn.Sequential(OrderedDict([("model", head)])))

    def forward(self, in0: Tensor, in1: Tensor) -> Tensor:
        shift, scale = self.scaling_layer.shift, self.scaling_layer.scale
        feats0, feats1 = self.net((in0 - shift) / scale), self.net((in1 - shift) / scale)
        total = 0
        for index, (a, b) in enumerate(zip(feats0, feats1, strict=True)):
            a = a / (a.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
            b = b / (b.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
            total = total + getattr(self, f"lin{index}").model((a - b) ** 2).mean(dim=(2, 3), keepdim=True)
        return total


def stlpips_weights_path(explicit: str | Path | None = None) -> Path:
    """ST-LPIPS weights: the argument, ``$STOCHDEBLUR_STLPIPS_WEIGHTS``, else the file shipped in ``stlpips-pytorch``.

    Raises:
        WeightsUnavailable: none given and the package is not installed.
    """
    if explicit is not None:
        return Path(explicit)
    if os.environ.get(STLPIPS_ENV):
        return Path(os.environ[STLPIPS_ENV])
    spec = importlib.util.find_spec("stlpips_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsUnavailable("the 'stlpips-pytorch' package is not installed (pip install stochdeblur[metrics])")
    return Path(next(iter(spec.submodule_search_locations))).joinpath(*STLPIPS_PACKAGE_FILE)


def load_stlpips(weights: str | Path | None = None, device: torch.device | str = "cpu") -> ShiftTolerantLPIPS:
    """:class:`ShiftTolerantLPIPS` with the shipped weights (read as a plain state dict, never unpickled code).

    Raises:
        WeightsUnavailable: no package/file, or the file is not the ST-LPIPS AlexNet state dict.
    """
    path = stlpips_weights_path(weights)
    if not path.is_file():
        raise WeightsUnavailable(f"ST-LPIPS weights not found ({path})")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # an unreadable file is reported, not a crash
        raise WeightsUnavailable(f"{path}: not a readable state_dict ({exc.__class__.__name__})") from None
    model = ShiftTolerantLPIPS()
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise WeightsUnavailable(f"{path}: not the ST-LPIPS AlexNet state_dict ({reason})") from None
    return model.eval().requires_grad_(False).to(device)


class _Features(nn.Module):
    """Pass-through 'feature extractor' so FID and KID share one Inception forward per patch."""

    num_features = 2048

    def forward(self, features: Tensor) -> Tensor:
        return features


def load_inception(weights: str | Path | None = None, device: torch.device | str = "cpu") -> nn.Module:
    """torch-fidelity's FID Inception-v3 (2048-d pool features) from the local cache only.

    Raises:
        WeightsUnavailable: torch-fidelity is missing, or the weight file is absent or not a plain state_dict.
    """
    if importlib.util.find_spec("torch_fidelity") is None:
        raise WeightsUnavailable("torch-fidelity is not installed (pip install torch-fidelity)")
    path = inception_weights_path(weights)
    if not path.is_file():
        raise WeightsUnavailable(f"Inception-v3 FID weights not in the local cache ({path})")
    try:  # refuse pickled code before torch-fidelity loads the file without weights_only
        torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsUnavailable(f"{path}: not a readable state_dict ({exc.__class__.__name__})") from None
    from torchmetrics.image.fid import NoTrainInceptionV3

    try:
        model = NoTrainInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(path))
    except RuntimeError as exc:
        raise WeightsUnavailable(f"{path}: not the FID Inception-v3 state_dict ({exc})") from None
    return model.to(device)


class MetricSuite:
    """Per-image metrics plus dataset-level FID/KID, with unavailable metrics reported as ``None``.

    Args:
        device: where LPIPS/Inception run.
        lpips_weights: AlexNet ``state_dict`` file (default: ``$STOCHDEBLUR_ALEXNET_WEIGHTS`` or the hub cache).
        inception_weights: FID Inception file (default: ``$STOCHDEBLUR_INCEPTION_WEIGHTS`` or the hub cache).
        patch_size: side of the non-overlapping patches used by LPIPS and FID/KID.
        distribution: build FID/KID at all (off for sweeps, which only need per-image metrics).
        seed: seeds KID's random subsets, so :meth:`finalize` is reproducible.
        extra: optional per-image metrics to add (:data:`OPTIONAL_METRICS`: "stlpips"); unavailable ones are
            reported as ``None`` like the others.
        stlpips_weights: ST-LPIPS state dict file (default: ``$STOCHDEBLUR_STLPIPS_WEIGHTS`` or the package's).
    """

    def __init__(self, device: torch.device | str = "cpu", *, lpips_weights: str | Path | None = None,
                 inception_weights: str | Path | None = None, patch_size: int = 256,
                 distribution: bool = True, seed: int = 0, extra: Sequence[str] = (),
                 stlpips_weights: str | Path | None = None) -> None:
        unknown = [name for name in extra if name not in OPTIONAL_METRICS]
        if unknown:
            raise ValueError(f"unknown optional metric(s) {', '.join(unknown)}; known: {', '.join(OPTIONAL_METRICS)}")
        self.device = torch.device(device)
        self.patch_size = patch_size
        self.seed = seed
        self.extra = tuple(extra)
        self.unavailable: dict[str, str] = {}
        self._lpips = self._try("lpips", lambda: load_lpips(lpips_weights, self.device))
        self._stlpips = None
        if "stlpips" in self.extra:
            self._stlpips = self._try("stlpips", lambda: load_stlpips(stlpips_weights, self.device))
        self._piq = self._try("haarpsi", _import_piq)
        if self._piq is None:
            self.unavailable.update(mdsi=self.unavailable["haarpsi"], gmsd=self.unavailable["haarpsi"])
        self._inception = None
        if distribution:
            self._inception = self._try("fid", lambda: load_inception(inception_weights, self.device))
            if self._inception is not None:
                self._fid, self._kid = _distribution_metrics(self.device)
            else:
                self.unavailable["kid"] = self.unavailable["fid"]
        else:
            self.unavailable.update(fid="not computed (distribution=False)", kid="not computed (distribution=False)")

    def _try(self, name: str, build):
        try:
            return build()
        except WeightsUnavailable as exc:
            self.unavailable[name] = str(exc)
            label = {"haarpsi": "HaarPSI/MDSI/GMSD", "fid": "FID/KID", "stlpips": STLPIPS_LABEL}.get(name, name.upper())
            _say_once(f"{label} unavailable: {exc}; reported as unavailable")
            return None

    @property
    def names(self) -> tuple[str, ...]:
        """Names of the per-image metrics, in table order (the optional ones asked for last)."""
        return (*IMAGE_METRICS, *self.extra)

    def is_available(self, name: str) -> bool:
        """Whether ``name`` can be computed here (weights/packages present)."""
        return name not in self.unavailable

    @torch.no_grad()
    @in_fp32
    def compute_image_metrics(self, pred: Tensor, target: Tensor, accumulate: bool = False) -> dict[str, float | None]:
        """All per-image metrics of one pair (RGB in [-1, 1]); ``None`` for unavailable ones.

        ``accumulate=True`` also adds the pair's patches to the FID/KID statistics.
        """
        pred01, target01 = _pair(pred.to(self.device), target)
        out: dict[str, float | None] = {
            "psnr": psnr(pred, target), "ssim": ssim(pred, target),
            "lpips": self._lpips_value(pred01, target01), "haarpsi": None, "mdsi": None, "gmsd": None,
            "grad_ratio": gradient_energy_ratio(pred, target), "hf_ratio": highfreq_energy_ratio(pred, target),
        }
        if "stlpips" in self.extra:
            out["stlpips"] = self._patch_mean(self._stlpips, pred01, target01)
        if self._piq is not None:
            out["haarpsi"] = float(self._piq.haarpsi(pred01, target01, data_range=1.0))
            out["mdsi"] = float(self._piq.mdsi(pred01, target01, data_range=1.0))
            out["gmsd"] = float(self._piq.gmsd(pred01, target01, data_range=1.0))
        if accumulate:
            self.update_distribution(pred, target)
        return out

    def _lpips_value(self, pred01: Tensor, target01: Tensor) -> float | None:
        return self._patch_mean(self._lpips, pred01, target01)

    def _patch_mean(self, network: nn.Module | None, pred01: Tensor, target01: Tensor) -> float | None:
        if network is None:
            return None
        a, b = patches(pred01 * 2 - 1, self.patch_size), patches(target01 * 2 - 1, self.patch_size)
        return float(network(a, b).mean())

    @torch.no_grad()
    @in_fp32
    def update_distribution(self, pred: Tensor, target: Tensor | None = None) -> None:
        """Add one restored image's patches (and, if given, the sharp image's) to the FID/KID statistics.

        The real statistics survive :meth:`finalize`, so several models/modes on one dataset pass
        ``target`` only for the first of them.
        """
        if self._inception is None:
            return
        fake = self._features(pred)
        self._fid.update(fake, real=False)
        self._kid.update(fake, real=False)
        if target is not None:
            real = self._features(target)
            self._fid.update(real, real=True)
            self._kid.update(real, real=True)

    def _features(self, image: Tensor) -> Tensor:
        tiles = patches(_unit(image.to(self.device)), self.patch_size)
        return self._inception((tiles * 255).round().to(torch.uint8))

    @in_fp32
    def finalize(self) -> dict[str, float | None]:
        """FID and KID (mean over subsets) of everything added since the last call; resets the fake side.

        ``None`` when unavailable or when either side has fewer than 2 patches.
        """
        if self._inception is None:
            return {"fid": None, "kid": None}
        n_real = int(self._fid.real_features_num_samples)
        n_fake = int(self._fid.fake_features_num_samples)
        result: dict[str, float | None] = {"fid": None, "kid": None}
        if min(n_real, n_fake) < 2:
            _say_once(f"FID/KID need at least 2 patches on each side (got {n_real} real, {n_fake} restored)")
        else:
            result["fid"] = float(self._fid.compute())
            self._kid.subset_size = min(1000, n_real, n_fake)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)
                result["kid"] = float(self._kid.compute()[0])
        self._fid.reset()
        self._kid.reset()
        return result


def _import_piq():
    if importlib.util.find_spec("piq") is None:
        raise WeightsUnavailable("the 'piq' package is not installed (pip install piq)")
    import piq

    return piq


def _distribution_metrics(device: torch.device):
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # KID's "saves all features" notice
        fid = FrechetInceptionDistance(feature=_Features(), reset_real_features=False)
        kid = KernelInceptionDistance(feature=_Features(), reset_real_features=False, subset_size=1000)
    return fid.to(device), kid.to(device)


def format_value(name: str, value: float | None) -> str:
    """A table cell: ``unavailable`` for ``None``, otherwise a precision that suits the metric."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "unavailable"
    digits = {"psnr": 2, "fid": 2, "kid": 4, "seconds": 2}.get(name, 3 if name.endswith("ratio") else 4)
    return f"{value:.{digits}f}"


def mean_or_none(values: Sequence[float | None]) -> float | None:
    """Mean of the non-``None`` values, ``None`` if there are none."""
    kept = [v for v in values if v is not None and not math.isnan(v)]
    return sum(kept) / len(kept) if kept else None
