"""List every named network of the package: parameters and compute, for people choosing a model.

    python scripts/models.py            # Markdown table: name, parameters, GMACs at 256² and 720×1280
    python scripts/models.py --json     # [{"name", "params", "gmacs_256"}, ...]

MACs are counted exactly by ``torch.utils.flop_counter.FlopCounterMode`` (GMAC = FLOPs / 2) on the ``meta``
device, so no memory is allocated and no arithmetic is run, even at 720×1280. A network is fed the inputs its
``MODEL_ZOO`` entry declares: one ``[1, in_channels, h, w]`` image, plus a noise level for the denoiser. FFTs are
not counted (FlopCounterMode has no rule for
them): the kernel-aware predictor's kernel fit and deconvolution, O(HW log HW) per iteration, are left out.
"""

from __future__ import annotations

import argparse
import json

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from stochdeblur.models import MODEL_ZOO, ZooEntry


def example_inputs(entry: ZooEntry, height: int, width: int) -> tuple[Tensor, ...]:
    """The inputs of one forward pass of ``entry``'s network at ``height``×``width`` (on the current default
    device, e.g. inside ``torch.device("meta")``)."""
    image = torch.zeros(1, entry.in_channels, height, width)
    return (image, torch.zeros(1)) if entry.noise_level else (image,)


def count_gmacs(model: nn.Module, inputs: tuple[Tensor, ...]) -> float:
    """Multiply-accumulates (in 1e9) of one forward pass on ``inputs`` (FLOPs / 2)."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(*inputs)
    return counter.get_total_flops() / 2e9


def describe(name: str, entry: ZooEntry) -> dict[str, float | int | str]:
    """Name, parameter count and GMACs at 256² and 720×1280 of one zoo entry (built on the meta device)."""
    with torch.device("meta"):
        model = entry.build().eval()
        gmacs_256 = count_gmacs(model, example_inputs(entry, 256, 256))
        gmacs_720p = count_gmacs(model, example_inputs(entry, 720, 1280))
    return {"name": name, "params": sum(p.numel() for p in model.parameters()), "gmacs_256": round(gmacs_256, 2),
            "gmacs_720p": round(gmacs_720p, 1)}


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
    rows = [describe(name, entry) for name, entry in MODEL_ZOO.items()]
    if args.json:
        print(json.dumps([{k: r[k] for k in ("name", "params", "gmacs_256")} for r in rows], indent=2))
    else:
        print(markdown_table(rows))
    return 0
