"""Save and load trained methods: ``model.safetensors`` + ``config.json`` (+ ``run_config.json``) in one directory.

``config.json`` is the model's own config: the sections of the resolved :class:`~stochdeblur.config.RunConfig`
that define the networks and their inference (``name``, ``method``, ``predictor``, ``denoiser``, ``diffusion``,
``gan``, ``sample``) plus a ``"_meta"`` entry (package version, weights file name, its sha256).
``run_config.json`` holds the rest, how the weights were trained (:data:`RUN_SECTIONS`: ``data``, ``train``,
``log``); a model loads without it (those sections then take their defaults), and a ``config.json`` holding
every section (as saved before the split) loads as it always did. Loading rebuilds the method from the config
and checks the weights against it, naming every missing, unexpected or shape-mismatched tensor. Nothing is
unpickled: a ``.pt``/``.pth`` file is read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from stochdeblur import __version__
from stochdeblur.config import RunConfig, to_dict
from stochdeblur.methods import build_method
from stochdeblur.utils import atomic_dir

WEIGHTS_NAME = "model.safetensors"
CLASSICAL = "classical"  # the network-free method's name in load()
CONFIG_NAME = "config.json"
RUN_CONFIG_NAME = "run_config.json"
RUN_SECTIONS = ("data", "train", "log")  # of RunConfig: how a model was trained, not what it is
WEIGHTS_DIR = Path(__file__).parent / "weights"
DEFAULT_MODEL_DIR = WEIGHTS_DIR / "default"
_TORCH_SUFFIXES = (".pt", ".pth", ".bin")


class CheckpointError(ValueError):
    """A model directory or weights file is missing, unreadable or does not match its config."""


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_pretrained(method: nn.Module, directory: str | Path, cfg: RunConfig) -> Path:
    """Write ``method``'s weights, its model config (``config.json``) and the rest of ``cfg`` (``run_config.json``)
    to ``directory`` atomically (an existing directory is replaced)."""
    directory = Path(directory)
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in method.state_dict().items()}
    with atomic_dir(directory) as tmp:
        save_file(state, str(tmp / WEIGHTS_NAME), metadata={"format": "pt"})
        model = to_dict(cfg)
        run = {section: model.pop(section) for section in RUN_SECTIONS}
        model["_meta"] = {"stochdeblur_version": __version__, "weights": WEIGHTS_NAME,
                          "sha256": sha256_file(tmp / WEIGHTS_NAME)}
        (tmp / CONFIG_NAME).write_text(json.dumps(model, indent=2) + "\n")
        (tmp / RUN_CONFIG_NAME).write_text(json.dumps(run, indent=2) + "\n")
    return directory


def _read_json(path: Path) -> dict[str, Any]:
    try:
        payload = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: not a readable JSON config ({exc})") from None
    if not isinstance(payload, dict):
        raise CheckpointError(f"{path}: expected a JSON object, got {type(payload).__name__}")
    return payload


def _read_config(path: Path, overrides: list[str] | None = None) -> tuple[RunConfig, dict[str, Any]]:
    """The config of a model directory: ``config.json`` (its ``_meta`` apart) and ``run_config.json`` when there,
    then ``overrides`` (``key=value``, as on the command line) on top."""
    if not path.is_file():
        raise CheckpointError(f"{path}: config file not found (a model directory holds {WEIGHTS_NAME} + {CONFIG_NAME})")
    payload = _read_json(path)
    meta = payload.pop("_meta", {})
    run_path = path.parent / RUN_CONFIG_NAME
    parts = [(path, payload), *([(run_path, _read_json(run_path))] if run_path.is_file() else [])]
    if overrides:
        parts.append(("the overrides " + " ".join(overrides), OmegaConf.from_dotlist(list(overrides))))
    cfg = OmegaConf.structured(RunConfig)
    for source, part in parts:
        try:
            cfg = OmegaConf.merge(cfg, part)
        except OmegaConfBaseException as exc:
            raise CheckpointError(f"{source}: invalid config ({exc})".splitlines()[0]) from None
    try:
        return OmegaConf.to_object(cfg), meta
    except (OmegaConfBaseException, ValueError) as exc:
        sources = " + ".join(str(source) for source, _ in parts)
        raise CheckpointError(f"{sources}: invalid config ({exc})".splitlines()[0]) from None


def _read_weights(path: Path) -> dict[str, Tensor]:
    if not path.is_file():
        raise CheckpointError(f"{path}: weights file not found")
    try:
        if path.suffix in _TORCH_SUFFIXES:
            state = torch.load(path, map_location="cpu", weights_only=True)
            if isinstance(state, dict) and len(state) == 1 and isinstance(next(iter(state.values())), dict):
                state = next(iter(state.values()))
        else:
            state = load_file(str(path))
    except Exception as exc:  # noqa: BLE001 - any decoding failure is a bad checkpoint for the user
        raise CheckpointError(f"{path}: cannot read weights ({type(exc).__name__}: {exc})".splitlines()[0]) from None
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: expected a flat dict of tensors")
    return state


def _names(items: list[str], limit: int = 8) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" (+{len(items) - limit} more)" if len(items) > limit else "")


def check_state_dict(model: nn.Module, state: dict[str, Tensor], source: str) -> None:
    """Raise :class:`CheckpointError` naming missing, unexpected and shape-mismatched tensors."""
    _check_tensors(model.state_dict(), state, source)


def _check_tensors(expected: dict[str, Tensor], state: dict[str, Tensor], source: str) -> None:
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = sorted(f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}"
                        for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    problems = [f"{label}: {_names(items)}" for label, items in
                (("missing", missing), ("unexpected", unexpected), ("shape mismatch (file vs config)", mismatched))
                if items]
    if problems:
        raise CheckpointError(f"{source}: weights do not match the config; " + "; ".join(problems))


def _locate(path: Path) -> tuple[Path, Path]:
    """(weights file, config file) for a model directory or a weights file with config.json beside it."""
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint directory or file")
    if path.is_file():
        return path, path.parent / CONFIG_NAME
    for name in (WEIGHTS_NAME, *(f"model{s}" for s in _TORCH_SUFFIXES)):
        if (path / name).is_file():
            return path / name, path / CONFIG_NAME
    raise CheckpointError(f"{path}: no {WEIGHTS_NAME} (or model.pt/.pth) in this directory")


def load_weights_into(model: nn.Module, directory: str | Path, modules: list[str] | None = None,
                      widen_inputs: bool = False) -> None:
    """Load a saved model's weights into ``model`` (same architecture), e.g. to start training from them.

    With ``modules`` (state-dict prefixes such as ``["denoiser"]``), only those submodules are loaded and checked;
    the rest of ``model`` keeps its initialisation. With ``widen_inputs``, a conv weight ``[O, I, kh, kw]`` saved
    with fewer input channels than ``model`` has fills the first ``I`` of them, the new ones starting at zero (the
    widened model computes what the saved one did); every other difference still fails.

    Raises:
        CheckpointError: missing or unreadable weights, or tensors that do not match ``model`` (named).
    """
    path = _locate(Path(directory))[0]
    inside = lambda name: not modules or any(name == m or name.startswith(m + ".") for m in modules)  # noqa: E731
    state = {k: v for k, v in _read_weights(path).items() if inside(k)}
    wanted = {k: v for k, v in model.state_dict().items() if inside(k)}
    if not wanted:
        raise CheckpointError(f"{path}: the model has no submodule {', '.join(modules or [])}")
    if widen_inputs:
        state = {k: _widened(v, wanted[k]) if k in wanted else v for k, v in state.items()}
    _check_tensors(wanted, state, str(path))
    model.load_state_dict({**model.state_dict(), **state})


def _widened(saved: Tensor, expected: Tensor) -> Tensor:
    """``saved`` zero-padded along its input channels (dim 1) to ``expected``'s shape, when it is a conv weight
    that differs only there and has fewer; otherwise ``saved`` unchanged (the shape check then names it)."""
    if saved.dim() != 4 or saved.shape[1] >= expected.shape[1] or \
            saved.shape[:1] + saved.shape[2:] != expected.shape[:1] + expected.shape[2:]:
        return saved
    grown = torch.zeros(expected.shape, dtype=saved.dtype)
    grown[:, : saved.shape[1]] = saved
    return grown


def _load_checked(model: nn.Module, weights_path: Path) -> None:
    """Read ``weights_path``, check its tensors against ``model`` (naming any mismatch), load them."""
    state = _read_weights(weights_path)
    check_state_dict(model, state, str(weights_path))
    model.load_state_dict(state)


def load_pretrained(directory: str | Path, device: str | torch.device = "cpu", verify_hash: bool = False,
                    overrides: list[str] | None = None) -> tuple[nn.Module, RunConfig]:
    """Rebuild the method from ``config.json`` and load its weights, in eval mode on ``device``.

    Args:
        directory: a model directory (or a weights file with ``config.json`` beside it).
        device: where to put the model.
        verify_hash: also check the weights' sha256 recorded in ``config.json`` (must be present).
        overrides: ``key=value`` changes to the saved config before the model is built (settings that do not
            change the weights' shapes, e.g. ``predictor.edge_fraction=1``; others fail the weights check).

    Raises:
        CheckpointError: missing directory/file, unreadable config or weights, config/weights mismatch,
            or a sha256 mismatch when ``verify_hash``.
    """
    weights_path, config_path = _locate(Path(directory))
    cfg, meta = _read_config(config_path, overrides)
    if verify_hash:
        recorded = meta.get("sha256")
        if not recorded:
            raise CheckpointError(f"{config_path}: no sha256 recorded for {weights_path.name}")
        actual = sha256_file(weights_path)
        if actual != recorded:
            raise CheckpointError(f"{weights_path}: sha256 {actual[:12]}… does not match the recorded "
                                  f"{recorded[:12]}… (corrupt or replaced file)")
    try:
        model = build_method(cfg)
    except ValueError as exc:
        raise CheckpointError(f"{config_path}: cannot build the model ({exc})") from None
    _load_checked(model, weights_path)
    return model.to(device).eval(), cfg


def _shipped_dir(name: str) -> Path:
    return DEFAULT_MODEL_DIR if name == "default" else WEIGHTS_DIR / name


def shipped_models() -> list[str]:
    """Names of the models shipped in ``stochdeblur/weights/`` (``default`` = the DvSR model), sorted."""
    candidates = {"default", *(p.name for p in WEIGHTS_DIR.glob("*") if p.is_dir())}
    return sorted(name for name in candidates if (_shipped_dir(name) / WEIGHTS_NAME).is_file())


def _shipped_list() -> str:
    return ", ".join(shipped_models()) or "none"


def load_default(device: str | torch.device = "cpu", name: str = "default",
                 overrides: list[str] | None = None) -> tuple[nn.Module, RunConfig]:
    """A model shipped in ``stochdeblur/weights/`` (the DvSR default unless ``name`` says otherwise), sha256 verified;
    ``overrides`` as for :func:`load_pretrained`.

    Raises:
        CheckpointError: when no such model is shipped (pass ``--checkpoint DIR``) or it fails its check.
    """
    directory = _shipped_dir(name)
    if not (directory / WEIGHTS_NAME).is_file():
        if name == "default":
            raise CheckpointError("no default model is shipped yet; pass --checkpoint DIR "
                                  "(a directory with model.safetensors + config.json, e.g. from scripts/train.py)")
        raise CheckpointError(f"no shipped model named {name!r} (shipped: {_shipped_list()})")
    return load_pretrained(directory, device=device, verify_hash=True, overrides=overrides)


def load(spec: str | Path, device: str | torch.device = "cpu",
         overrides: list[str] | None = None) -> tuple[nn.Module, RunConfig]:
    """A model directory or weights file, or else the model of that name shipped in ``stochdeblur/weights/``, or
    ``"classical"`` (blind kernel estimation + deconvolution, :mod:`stochdeblur.methods.classical`: no weights);
    ``overrides`` (``key=value``) change the saved config before the model is built (:func:`load_pretrained`).

    An existing path always wins, so a folder called like a shipped model is still read as a folder.

    Raises:
        CheckpointError: neither an existing path nor a shipped model's name (the shipped ones are listed),
            or the model fails to load.
    """
    path = Path(spec)
    if path.exists():
        return load_pretrained(path, device, overrides=overrides)
    if str(spec) in shipped_models():
        return load_default(device, name=str(spec), overrides=overrides)
    if str(spec) == CLASSICAL:
        cfg = RunConfig(name=CLASSICAL, method=CLASSICAL)
        if overrides:
            try:
                cfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(cfg), OmegaConf.from_dotlist(overrides)))
            except (OmegaConfBaseException, ValueError) as exc:
                raise CheckpointError(f"{CLASSICAL}: invalid overrides ({exc})".splitlines()[0]) from None
        return build_method(cfg).to(device).eval(), cfg
    raise CheckpointError(f"{path}: no such checkpoint directory or file, nor a shipped model "
                          f"(shipped: {_shipped_list()}; or '{CLASSICAL}' for the network-free method)")
