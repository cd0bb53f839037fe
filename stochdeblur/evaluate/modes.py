"""Inference modes of an evaluation: :class:`Mode`, the ``--modes`` syntax (:func:`parse_mode`, :func:`parse_modes`),
the paper's three modes (:func:`demo_modes`), a sweep's grid (:class:`SamplerGrid`, :func:`parse_sweep`);
:class:`EvaluationError`."""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from stochdeblur.config import (
    SAMPLING_DEFAULTS,
    ConfigError,
    ModePreset,
    SampleConfig,
    check_sampling,
    resolve_preset,
)


class EvaluationError(ValueError):
    """Bad evaluation input: an unparsable mode, duplicate labels or image names, an incompatible CSV."""


@dataclass(frozen=True)
class Mode:
    """One inference setting: predictor only (``steps=None``) or ``steps`` reverse steps × ``average`` samples
    with the sampler settings of :class:`~stochdeblur.config.ModePreset` (all resolved)."""

    steps: int | None = None
    average: int = 1
    sampler: str = SAMPLING_DEFAULTS.sampler
    label: str = "predictor"
    eta: float = SAMPLING_DEFAULTS.eta
    schedule: str = SAMPLING_DEFAULTS.schedule
    alpha_bar_end: float = SAMPLING_DEFAULTS.alpha_bar_end

    @classmethod
    def from_preset(cls, preset: ModePreset, label: str | None = None) -> Mode:
        """The mode of a resolved preset, labelled ``label`` (default: :func:`canonical_label`)."""
        eta = float(preset.eta) if preset.sampler == "ddim" else SAMPLING_DEFAULTS.eta  # η is DDIM's alone
        mode = cls(preset.steps or None, preset.average if preset.steps else 1, preset.sampler, "", eta,
                   preset.schedule, float(preset.alpha_bar_end))
        return dataclasses.replace(mode, label=label or canonical_label(mode))

    @property
    def slug(self) -> str:
        """The label as a file-name-safe string."""
        return slug(self.label)

    @property
    def rule(self) -> str:
        """The sampler settings in words where they differ from the defaults, e.g. ``ddim eta=0.5,schedule=cosine``
        (the ``sampler`` column of the CSVs; ``ddpm`` for the defaults)."""
        return ",".join([self.sampler + (f" eta={self.eta:g}" if self.sampler == "ddim" else ""),
                         *_knob_parts(self)])

    def options(self) -> dict[str, Any]:
        """Keyword arguments of :class:`~stochdeblur.restorer.Restorer` for this mode."""
        return {"steps": self.steps or 0, "average": self.average, "sampler": self.sampler,
                "eta": self.eta if self.sampler == "ddim" else None, "schedule": self.schedule,
                "alpha_bar_end": self.alpha_bar_end}


def _knob_parts(mode: Mode) -> list[str]:
    parts = [] if mode.schedule == SAMPLING_DEFAULTS.schedule else [f"schedule={mode.schedule}"]
    if mode.alpha_bar_end != SAMPLING_DEFAULTS.alpha_bar_end:
        parts.append(f"alpha_bar_end={mode.alpha_bar_end:g}")
    return parts


def canonical_label(mode: Mode) -> str:
    """``steps=10,average=4`` plus each sampler setting that differs from the defaults (``predictor`` for 0 steps)."""
    if not mode.steps:
        return "predictor"
    parts = [f"steps={mode.steps}", *([f"average={mode.average}"] if mode.average != 1 else [])]
    if mode.sampler != SAMPLING_DEFAULTS.sampler:
        parts.append(f"sampler={mode.sampler}")
    if mode.sampler == "ddim":
        parts.append(f"eta={mode.eta:g}")
    return ",".join([*parts, *_knob_parts(mode)])


def slug(text: str) -> str:
    """``text`` as a file-name-safe string (runs of other characters → ``_``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "_"


def check_unique(items: Sequence[str], what: str) -> None:
    """Raise :class:`EvaluationError` naming the first repeated item."""
    seen: set[str] = set()
    for item in items:
        if item in seen:
            raise EvaluationError(f"duplicate {what} '{item}'")
        seen.add(item)


def demo_modes(presets: dict[str, ModePreset] | None = None, perceptual_steps: int | None = None) -> list[Mode]:
    """The three inference modes of the paper from ``presets`` (default: ``SampleConfig()``'s): predictor only,
    averaging and perceptual; ``perceptual_steps`` replaces the perceptual preset's step count."""
    presets = SampleConfig().presets() if presets is None else presets
    return [Mode(), Mode.from_preset(resolve_preset(presets, "average"), "average"),
            Mode.from_preset(resolve_preset(presets, "perceptual", perceptual_steps), "perceptual")]


@dataclass(frozen=True)
class SamplerGrid:
    """The axes of a perception–distortion sweep: step counts, sample counts and sampler settings (each a list;
    ``eta`` applies to DDIM only, so other samplers run once per remaining setting)."""

    steps: tuple[int, ...] = (1, 2, 5, 10, 50, 500)
    average: tuple[int, ...] = (1, 2, 4, 8)
    sampler: tuple[str, ...] = (SAMPLING_DEFAULTS.sampler,)
    eta: tuple[float, ...] = (SAMPLING_DEFAULTS.eta,)
    schedule: tuple[str, ...] = (SAMPLING_DEFAULTS.schedule,)
    alpha_bar_end: tuple[float, ...] = (SAMPLING_DEFAULTS.alpha_bar_end,)

    def modes(self) -> list[Mode]:
        """The predictor, then every combination (sampler settings outermost, then averages, then steps),
        each labelled by :func:`canonical_label`; duplicates (η of a non-DDIM sampler) dropped."""
        out: dict[str, Mode] = {"predictor": Mode()}
        for sampler, eta, schedule, alpha_bar_end in itertools.product(self.sampler, self.eta, self.schedule,
                                                                       self.alpha_bar_end):
            for average in self.average:
                for steps in self.steps:
                    mode = Mode.from_preset(ModePreset(steps, average, sampler, eta, schedule, alpha_bar_end))
                    out.setdefault(mode.label, mode)
        return list(out.values())


SWEEP_KEYS = {"steps": int, "average": int, "sampler": str, "eta": float, "schedule": str, "alpha_bar_end": float}


def parse_sweep(spec: str) -> SamplerGrid:
    """Parse ``"steps=1,2,5 average=1,4 sampler=ddpm,ddim eta=0,0.5 schedule=linear,cosine alpha_bar_end=1e-3"``
    (every key optional: :class:`SamplerGrid`'s defaults) into a :class:`SamplerGrid`."""
    values: dict[str, tuple[Any, ...]] = {}
    for part in spec.replace(";", " ").split():
        key, sep, items = part.partition("=")
        if not sep or key not in SWEEP_KEYS:
            raise EvaluationError(f"--sweep: expected {'=…, '.join(SWEEP_KEYS)}=…, got '{part}'")
        try:
            values[key] = tuple(SWEEP_KEYS[key](v) for v in items.split(",") if v)
        except ValueError:
            raise EvaluationError(f"--sweep: '{part}' must list {SWEEP_KEYS[key].__name__} values") from None
        if not values[key]:
            raise EvaluationError(f"--sweep: '{part}' lists nothing")
        if key in ("steps", "average") and min(values[key]) < 1:
            raise EvaluationError(f"--sweep: '{part}' needs positive integers")
    grid = SamplerGrid(**values)
    try:
        for sampler, eta, schedule, alpha_bar_end in itertools.product(grid.sampler, grid.eta, grid.schedule,
                                                                       grid.alpha_bar_end):
            check_sampling("--sweep", sampler, eta, schedule, alpha_bar_end)
    except ConfigError as exc:
        raise EvaluationError(str(exc)) from None
    return grid


MODE_KEYS = ("steps", "average", "sampler", "eta", "schedule", "alpha_bar_end", "label")


def _parse_number(part: str, key: str, value: str, kind: type, minimum: float | None = None) -> Any:
    try:
        number = kind(value)
    except ValueError:
        raise EvaluationError(f"mode '{part}': {key}={value!r} is not {'an integer' if kind is int else 'a number'}") \
            from None
    if minimum is not None and number < minimum:
        raise EvaluationError(f"mode '{part}': {key} must be >= {minimum}, got {number}")
    return number


def parse_mode(part: str, presets: dict[str, ModePreset] | None = None) -> Mode:
    """Parse ``"steps=10,average=4[,sampler=ddim][,eta=0.5][,schedule=cosine][,alpha_bar_end=0.01][,label=NAME]"``,
    or a mode name of ``presets`` ("predictor", "average", "perceptual", ...; default: those of ``SampleConfig()``)
    optionally followed by such overrides, e.g. ``"perceptual,average=4"``, into a :class:`Mode`. Settings not
    given come from the named preset, else from the "average" preset (the model's ``sample`` section), as
    :func:`~stochdeblur.config.resolve_preset` does. A bare name is labelled with the name."""
    part = part.strip()
    presets = SampleConfig().presets() if presets is None else presets
    items = [s.strip() for s in part.split(",") if s.strip()]
    name = items.pop(0) if items and "=" not in items[0] else None
    if name is not None and name not in presets:
        raise EvaluationError(f"mode '{part}': unknown mode name '{name}' (named modes: {', '.join(presets)}; "
                              "or give steps=N[,average=K])")
    fields: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key.strip() not in MODE_KEYS:
            raise EvaluationError(f"mode '{part}': expected {'=, '.join(MODE_KEYS)}=, got '{item}'")
        fields[key.strip()] = value.strip()
    number = {key: _parse_number(part, key, fields[key], kind, minimum)
              for key, kind, minimum in (("steps", int, 0), ("average", int, 1), ("eta", float, None),
                                         ("alpha_bar_end", float, None)) if key in fields}
    try:
        preset = resolve_preset(presets, name, number.get("steps", 0 if name is None else None),
                                number.get("average"), sampler=fields.get("sampler"), eta=number.get("eta"),
                                schedule=fields.get("schedule"), alpha_bar_end=number.get("alpha_bar_end"))
    except ValueError as exc:
        raise EvaluationError(f"mode '{part}': {exc}") from None
    label = fields.get("label") or (name if name is not None and not fields else None)
    return Mode.from_preset(preset, label)
def parse_modes(spec: str, presets: dict[str, ModePreset] | None = None) -> list[Mode]:
    """Parse ``"predictor; steps=10,average=4; perceptual"`` (modes separated by ``;``, names from ``presets``)."""
    modes = [parse_mode(part, presets) for part in spec.split(";") if part.strip()]
    if not modes:
        raise EvaluationError(f"no modes in {spec!r}")
    check_unique([m.label for m in modes], "mode label")
    return modes
