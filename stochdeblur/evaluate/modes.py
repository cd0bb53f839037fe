"""Inference modes of an evaluation: :class:`Mode`, the ``--modes`` syntax (:func:`parse_mode`, :func:`parse_modes`),
the paper's three modes (:func:`demo_modes`) and a sweep's grid (:func:`grid_modes`); :class:`EvaluationError`."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from stochdeblur.config import SAMPLER_TYPES, ModePreset, SampleConfig


class EvaluationError(ValueError):
    """Bad evaluation input: an unparsable mode, duplicate labels or image names, an incompatible CSV."""


@dataclass(frozen=True)
class Mode:
    """One inference setting: predictor only (``steps=None``) or ``steps`` reverse steps × ``average`` samples."""

    steps: int | None = None
    average: int = 1
    sampler: str = "ddpm"
    label: str = "predictor"

    @property
    def slug(self) -> str:
        """The label as a file-name-safe string."""
        return slug(self.label)


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


def demo_modes(perceptual_steps: int = 500, average_steps: int = 10, average: int = 4) -> list[Mode]:
    """The three inference modes of the paper: predictor only, averaging (10 × 4) and perceptual (500 × 1)."""
    return [Mode(label="predictor"), Mode(average_steps, average, "ddpm", "average"),
            Mode(perceptual_steps, 1, "ddpm", "perceptual")]


def grid_modes(steps: Sequence[int], averages: Sequence[int]) -> list[Mode]:
    """The predictor, then every (steps, average) pair (averages outer), each labelled like ``steps=10,average=4``."""
    return [Mode(), *[Mode(s, a, "ddpm", _canonical_label(s, a, "ddpm")) for a in averages for s in steps]]


def _canonical_label(steps: int | None, average: int, sampler: str) -> str:
    if not steps:
        return "predictor"
    label = f"steps={steps}" + (f",average={average}" if average != 1 else "")
    return label + (f",sampler={sampler}" if sampler != "ddpm" else "")


def _parse_int(part: str, key: str, value: str, minimum: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise EvaluationError(f"mode '{part}': {key}={value!r} is not an integer") from None
    if number < minimum:
        raise EvaluationError(f"mode '{part}': {key} must be >= {minimum}, got {number}")
    return number


def parse_mode(part: str, presets: dict[str, ModePreset] | None = None) -> Mode:
    """Parse ``"steps=10,average=4[,sampler=ddim][,label=NAME]"``, or a mode name of ``presets`` ("predictor",
    "average", "perceptual"; default: those of ``SampleConfig()``) optionally followed by such overrides, e.g.
    ``"perceptual,average=4"``, into a :class:`Mode`. A bare name is labelled with the name."""
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
        if not sep or key.strip() not in ("steps", "average", "sampler", "label"):
            raise EvaluationError(f"mode '{part}': expected steps=, average=, sampler= or label=, got '{item}'")
        fields[key.strip()] = value.strip()
    preset = presets[name] if name is not None else ModePreset(0, 1)
    steps = _parse_int(part, "steps", fields.get("steps", str(preset.steps)), 0) or None
    average = _parse_int(part, "average", fields.get("average", str(preset.average)), 1)
    sampler = fields.get("sampler", "ddpm")
    if sampler not in SAMPLER_TYPES:
        raise EvaluationError(f"mode '{part}': sampler={sampler!r} is not one of {', '.join(SAMPLER_TYPES)}")
    default_label = name if name is not None and not fields else _canonical_label(steps, average, sampler)
    label = fields.get("label") or default_label
    return Mode(steps=steps, average=average if steps else 1, sampler=sampler, label=label)


def parse_modes(spec: str, presets: dict[str, ModePreset] | None = None) -> list[Mode]:
    """Parse ``"predictor; steps=10,average=4; perceptual"`` (modes separated by ``;``, names from ``presets``)."""
    modes = [parse_mode(part, presets) for part in spec.split(";") if part.strip()]
    if not modes:
        raise EvaluationError(f"no modes in {spec!r}")
    check_unique([m.label for m in modes], "mode label")
    return modes
