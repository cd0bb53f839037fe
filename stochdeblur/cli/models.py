"""List every named network of the package: parameters and compute, for people choosing a model.

    python scripts/models.py            # Markdown table: name, parameters, GMACs at 256² and 720×1280
    python scripts/models.py --json     # [{"name", "params", "gmacs_256"}, ...]

MACs are counted exactly by ``torch.utils.flop_counter.FlopCounterMode`` (GMAC = FLOPs / 2) on the ``meta``
device, so no memory is allocated and no arithmetic is run, even at 720×1280. A network is fed
``model.example_inputs(h, w)`` when it defines that method, else one ``[1, in_channels, h, w]`` image
(plus a noise level when ``model.noise_embed`` is true). FFTs are not counted (FlopCounterMode has no rule for
them): the kernel-aware predictor's kernel fit and deconvolution, O(HW log HW) per iteration, are left out.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from stochdeblur.models import MODEL_ZOO


def example_inputs(model: nn.Module, height: int, width: int) -> tuple[Tensor, ...]:
    """Inputs of one forward pass at ``height``×``width`` on the model's device."""
    if hasattr(model, "example_inputs"):
        return tuple(model.example_inputs(height, width))
    device = next(model.parameters()).device
    image = torch.zeros(1, getattr(model, "in_channels", 3), height, width, device=device)
    if getattr(model, "noise_embed", False):
        return image, torch.zeros(1, device=device)
    return (image,)


def count_gmacs(model: nn.Module, height: int, width: int) -> float:
    """Multiply-accumulates (in 1e9) of one forward pass at ``height``×``width`` (FLOPs / 2)."""
    inputs = example_inputs(model, height, width)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(*inputs)
    return counter.get_total_flops() / 2e9


def describe(name: str, factory: Callable[[], nn.Module]) -> dict[str, float | int | str]:
    """Name, parameter count and GMACs at 256² and 720×1280 of one zoo entry (built on the meta device)."""
    with torch.device("meta"):
        model = factory().eval()
    return {"name": name, "params": sum(p.numel() for p in model.parameters()),
            "gmacs_256": round(count_gmacs(model, 256, 256), 2),
            "gmacs_720p": round(count_gmacs(model, 720, 1280), 1)}


def markdown_table(rows: list[dict[str, float | int | str]]) -> str:
    """The rows as a Markdown table."""
    lines = ["| model | parameters | GMACs 256² | GMACs 720×1280 |", "|---|---:|---:|---:|"]
    lines += [f"| {r['name']} | {r['params'] / 1e6:.2f}M | {r['gmacs_256']:.1f} | {r['gmacs_720p']:.0f} |"
              for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print the model table (or JSON with ``--json``); returns 0."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help='print [{"name", "params", "gmacs_256"}, ...]')
    args = parser.parse_args(argv)
    rows = [describe(name, factory) for name, factory in MODEL_ZOO.items()]
    if args.json:
        print(json.dumps([{k: r[k] for k in ("name", "params", "gmacs_256")} for r in rows], indent=2))
    else:
        print(markdown_table(rows))
    return 0
