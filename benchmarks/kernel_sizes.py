"""Gain over the blurry input per blur length: where the model helps and where it does not.

    python benchmarks/kernel_sizes.py                                   # shipped model, ~1 min on 2 cores
    python benchmarks/kernel_sizes.py --checkpoint runs/dvsr_default/model --sizes 7,33 --modes predictor

For each kernel size, every sample photo of :class:`~stochdeblur.data.photos.PhotoPairs` (256² centre crops,
σ = 0.01 noise) is blurred by its own seeded camera-shake kernel of exactly that size and restored by the
model's modes (predictor only, averaging 10 × 4; ``--modes`` picks), by Richardson–Lucy and by the TV deconvolution
of ``stochdeblur.physics`` told the true kernel (``oracle``), and by blind kernel estimation + that deconvolution
(``blind-classical``). Reported: mean blurry PSNR and each method's mean PSNR gain (dB) per size, 8-bit outputs,
and the mean kernel NCC of blind-classical and (for a kernel-aware model) of the predictor's estimate.
Five photos per size: differences under ~0.2 dB are noise. Results: ``<out>/kernel_sizes.{json,md}``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from stochdeblur.baselines import blind_deconvolve, richardson_lucy
from stochdeblur.data.photos import KERNEL_MAX, NOISE, PhotoPairs
from stochdeblur.evaluate.modes import demo_modes
from stochdeblur.evaluate.runner import restore_timed
from stochdeblur.io import quantize
from stochdeblur.metrics import mean_or_none, psnr
from stochdeblur.physics import deconvolve
from stochdeblur.physics.kernels import ncc
from stochdeblur.restorer import Restorer
from stochdeblur.utils import describe_cpu, write_report

RESULTS = Path(__file__).parent / "results"
REFERENCE = "richardson-lucy (true kernel)"
ORACLE, BLIND = "oracle", "blind-classical"
REFERENCES = (REFERENCE, ORACLE, BLIND)


def gains_for_size(restorer: Restorer, size: int, modes: list[str], crop: int, seed: int) -> dict[str, Any]:
    """Mean blurry PSNR and mean PSNR gain of each method over the photos blurred by ``size``-px kernels."""
    dataset = PhotoPairs(kernel_min=size, kernel_max=size, noise=NOISE, seed=seed, crop=crop)
    chosen = [m for m in demo_modes(restorer.presets) if m.label in modes]
    blurry: list[float] = []
    gains: dict[str, list[float]] = {label: [] for label in [*modes, *REFERENCES]}
    nccs: dict[str, list[float]] = {BLIND: [], "predictor": []}
    for index in range(len(dataset)):
        item = dataset[index]
        blur, sharp, kernel = item["blur"], item["sharp"], item["kernel"]
        blurry.append(psnr(blur, sharp))
        gains[REFERENCE].append(psnr(quantize(richardson_lucy(blur, kernel.numpy())), sharp) - blurry[-1])
        gains[ORACLE].append(psnr(quantize(deconvolve(blur, kernel)), sharp) - blurry[-1])
        restored, estimate = blind_deconvolve(blur, kernel_size=max(size, KERNEL_MAX))
        gains[BLIND].append(psnr(quantize(restored), sharp) - blurry[-1])
        nccs[BLIND].append(ncc(estimate, kernel))
        for mode in chosen:
            restored, _ = restore_timed(restorer, blur, mode, seed=seed)
            gains[mode.label].append(psnr(restored, sharp) - blurry[-1])
        predicted = restorer.estimate_kernels(blur)
        if predicted is not None:
            nccs["predictor"].append(ncc(predicted[0], kernel))
    return {"kernel_size": size, "images": len(dataset), "blurry_psnr": mean_or_none(blurry),
            "gain_db": {label: mean_or_none(values) for label, values in gains.items()},
            "kernel_ncc": {label: mean_or_none(values) for label, values in nccs.items()}}


def markdown(result: dict[str, Any]) -> str:
    """One row per kernel size: blurry PSNR and each method's mean gain."""
    methods = [*result["modes"], *REFERENCES]
    lines = [f"# Gain over the blurry input per kernel size ({result['rows'][0]['images']} photos per size)", "",
             f"- model: `{result['model']}`; precision {result['precision']}; CPU: {result['cpu']}",
             f"- command: `{result['command']}`",
             f"- data: PhotoPairs, one kernel of exactly each size per photo, σ = {NOISE}, {result['crop']}² crops",
             "", "| kernel px | blurry PSNR | " + " | ".join(f"{m} gain (dB)" for m in methods)
             + " | kernel NCC blind-classical | kernel NCC predictor |",
             "|---:|---:|" + "---:|" * (len(methods) + 2)]
    for row in result["rows"]:
        cells = [f"{row['gain_db'][m]:+.2f}" for m in methods]
        cells += ["–" if row["kernel_ncc"][m] is None else f"{row['kernel_ncc'][m]:.3f}" for m in (BLIND, "predictor")]
        lines.append(f"| {row['kernel_size']} | {row['blurry_psnr']:.2f} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write the results; exit code 2 when no model can be loaded or an option is bad."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, help="model directory (default: the shipped model)")
    parser.add_argument("--sizes", default="7,13,19,25,33", help="comma-separated kernel sizes (≥ 3)")
    parser.add_argument("--modes", default="predictor,average", help="any of predictor,average,perceptual")
    parser.add_argument("--crop", type=int, default=256, help="side of the centre crops")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--precision", default="auto", choices=("auto", "no", "bf16"))
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for kernel_sizes.{json,md}")
    args = parser.parse_args(argv)
    try:
        sizes = [int(s) for s in args.sizes.split(",")]
        modes = [m.strip() for m in args.modes.split(",") if m.strip()]
        unknown = sorted(set(modes) - {m.label for m in demo_modes()})
        if unknown or not modes or min(sizes) < 3:
            raise ValueError(f"bad --modes {unknown or modes} or --sizes {sizes}")
        restorer = Restorer.from_pretrained(args.checkpoint, device="cpu", precision=args.precision)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rows = [gains_for_size(restorer, size, modes, args.crop, args.seed)
            for size in tqdm(sizes, desc="kernel sizes", unit="size")]
    argv_text = sys.argv[1:] if argv is None else argv
    result = {"rows": rows, "modes": modes, "model": str(args.checkpoint or "shipped default"), "crop": args.crop,
              "precision": restorer.precision, "cpu": describe_cpu(),
              "command": shlex.join(["python", "benchmarks/kernel_sizes.py", *argv_text])}
    write_report(args.out / "kernel_sizes", result, markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
