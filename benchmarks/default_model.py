"""The default model side by side with classical non-blind deconvolution, on real photos with synthetic blur.

    python benchmarks/default_model.py                       # the shipped model, every photo (~5 min, 2 cores)
    python benchmarks/default_model.py --checkpoint runs/dvsr_default/model --limit 2

Data: the ``PhotoPairs`` set the trainer monitors (scikit-image/matplotlib sample photos, seeded camera-shake
kernels of 7–33 px, σ = 0.01 noise, 256² centre crops). Methods, in one run: the blurry input; Wiener
and Richardson–Lucy (30 iterations) deconvolution told the TRUE kernel; ``oracle`` = the TV deconvolution of
``stochdeblur.physics`` told the true kernel (the ceiling of any method that estimates the kernel and then
deconvolves); ``blind-classical`` = blind kernel estimation + the same deconvolution (``baselines.blind_deconvolve``,
no network); optionally a blind one-shot model (``--baseline DIR``, e.g. a DeblurGAN-v2 run); the model's
predictor alone; averaging (10 steps × 4 samples); perceptual (the model's preset; the default's: DDIM η=0.5,
10 steps, 1 sample). Per image and mean: PSNR, SSIM, the gradient-energy ratio
(``metrics.gradient_energy_ratio``: output/sharp mean squared luminance gradient, 1 = the sharp photo's detail, <1 blurrier, >1 sharper or noisier) and seconds per image; plus the margin of
averaging over the blurry input (dB) per image. For every method that estimates a kernel (blind-classical, a
kernel-aware model's predictor) the kernel error: NCC with the true kernel (max over shifts; 1 = same shape) and
Levin et al.'s error ratio (MSE of the TV deconvolution with the estimate ÷ MSE with the true kernel; ≤ 3 counts
as a success in their study). Outputs are rounded to 8 bits before scoring.
Results: ``<out>/default_model.{json,md}`` (written atomically, with the CPU and the command).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from stochdeblur.baselines import blind_deconvolve, richardson_lucy, wiener_deconvolve
from stochdeblur.data.photos import KERNEL_MAX, NOISE, PhotoPairs
from stochdeblur.evaluate.modes import Mode, demo_modes
from stochdeblur.evaluate.runner import restore_timed
from stochdeblur.io import quantize
from stochdeblur.metrics import gradient_energy_ratio, mean_or_none, psnr, ssim
from stochdeblur.physics import deconvolve
from stochdeblur.physics.kernels import ncc
from stochdeblur.restorer import Restorer
from stochdeblur.utils import describe_cpu, write_report

RESULTS = Path(__file__).parent / "results"
METRICS = ("psnr", "ssim", "grad_ratio", "seconds", "kernel_ncc", "error_ratio")
ORACLE, BLIND = "oracle", "blind-classical"


def _oracle(blur: Tensor, kernel: np.ndarray) -> Tensor:
    return deconvolve(blur, torch.from_numpy(kernel)).clamp(-1, 1)


CLASSICAL: dict[str, Callable[[Tensor, np.ndarray], Tensor]] = {
    "wiener (true kernel)": wiener_deconvolve,
    "richardson-lucy (true kernel)": richardson_lucy,
    ORACLE: _oracle,
}


def _scores(image: Tensor, sharp: Tensor, seconds: float | None) -> dict[str, float | None]:
    return {"psnr": psnr(image, sharp), "ssim": ssim(image, sharp),
            "grad_ratio": gradient_energy_ratio(image, sharp), "seconds": seconds, "kernel_ncc": None,
            "error_ratio": None}


def kernel_error(estimate: Tensor, blur: Tensor, kernel: Tensor, sharp: Tensor, with_truth: Tensor) -> dict[str, float]:
    """NCC of ``estimate`` with the true ``kernel`` and Levin et al.'s error ratio (MSE of the TV deconvolution
    with the estimate ÷ that of ``with_truth``, the oracle row's 8-bit output), on [3,H,W] images in [−1, 1]."""
    with_estimate = quantize(deconvolve(blur, estimate.float().cpu()))
    ratio = float(((with_estimate - sharp) ** 2).mean() / ((with_truth - sharp) ** 2).mean().clamp_min(1e-12))
    return {"kernel_ncc": ncc(estimate, kernel), "error_ratio": ratio}


def _blind(blur: Tensor, kernel: Tensor, sharp: Tensor, oracle: Tensor) -> dict[str, float | None]:
    start = time.perf_counter()
    restored, estimate = blind_deconvolve(blur, kernel_size=max(kernel.shape[-1], KERNEL_MAX))
    scores = _scores(quantize(restored), sharp, time.perf_counter() - start)
    return {**scores, **kernel_error(estimate, blur, kernel, sharp, oracle)}


def _classical(method: Callable[[Tensor, np.ndarray], Tensor], blur: Tensor, kernel: Tensor,
               sharp: Tensor) -> tuple[dict[str, float | None], Tensor]:
    """The method's scores and its 8-bit output (the oracle's is the reference of the kernel error ratio)."""
    start = time.perf_counter()
    out = quantize(method(blur, kernel.numpy()))
    return _scores(out, sharp, time.perf_counter() - start), out


def benchmark(restorer: Restorer, dataset: PhotoPairs, *, limit: int | None = None, perceptual_steps: int | None = None,
              seed: int = 0, baselines: dict[str, Restorer] | None = None) -> dict[str, Any]:
    """Score every method on the first ``limit`` items; returns ``{"methods", "images", "mean"}``.

    ``baselines`` maps a label to another (one-shot) model, scored beside the classical methods.

    ``images`` is a list of ``{"name", "kernel_size", "<method>": {psnr, ssim, grad_ratio, seconds},
    "average_margin_db"}``; ``mean`` maps each method to its mean scores.
    """
    modes = demo_modes(restorer.presets, perceptual_steps)
    baselines = baselines or {}
    methods = ["blurry", *CLASSICAL, BLIND, *baselines, *[m.label for m in modes]]
    count = len(dataset) if limit is None else min(limit, len(dataset))
    rows = []
    bar = tqdm(total=count * (len(CLASSICAL) + 1 + len(baselines) + len(modes)), desc="benchmark", unit="restore")
    for index in range(count):
        item = dataset[index]
        blur, sharp = item["blur"], item["sharp"]
        row: dict[str, Any] = {"name": item["name"], "kernel_size": int(item["kernel"].shape[-1]),
                               "blurry": _scores(blur, sharp, None)}
        outputs = {}
        for label, method in CLASSICAL.items():
            bar.set_postfix_str(f"{item['name']}: {label}")
            row[label], outputs[label] = _classical(method, blur, item["kernel"], sharp)
            bar.update(1)
        bar.set_postfix_str(f"{item['name']}: {BLIND}")
        row[BLIND] = _blind(blur, item["kernel"], sharp, outputs[ORACLE])
        bar.update(1)
        for label, baseline in baselines.items():
            bar.set_postfix_str(f"{item['name']}: {label}")
            restored, seconds = restore_timed(baseline, blur, Mode(label=label))
            row[label] = _scores(restored, sharp, seconds)
            bar.update(1)
        for mode in modes:
            bar.set_postfix_str(f"{item['name']}: {mode.label}")
            restored, seconds = restore_timed(restorer, blur, mode, seed=seed)
            row[mode.label] = _scores(restored, sharp, seconds)
            bar.update(1)
        estimate = restorer.estimate_kernels(blur)
        if estimate is not None:  # a kernel-aware predictor: its k̂ is scored where the predictor row is
            row["predictor"].update(kernel_error(estimate[0], blur, item["kernel"], sharp, outputs[ORACLE]))
        row["average_margin_db"] = row["average"]["psnr"] - row["blurry"]["psnr"]
        rows.append(row)
    bar.close()
    mean = {m: {k: mean_or_none([r[m][k] for r in rows]) for k in METRICS} for m in methods}
    mean["average_margin_db"] = mean_or_none([r["average_margin_db"] for r in rows])
    return {"methods": methods, "images": rows, "mean": mean}


def _fmt(value: float | None, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def markdown(result: dict[str, Any]) -> str:
    """Two tables: mean per method (PSNR, SSIM, gradient ratio, s/image), then PSNR per image and method."""
    methods, rows, mean = result["methods"], result["images"], result["mean"]
    lines = [f"# Default model vs classical deconvolution ({len(rows)} photos)", "",
             f"- model: `{result['model']}`; precision {result['precision']}; CPU: {result['cpu']}",
             f"- command: `{result['command']}`",
             f"- data: PhotoPairs, kernels 7–{KERNEL_MAX} px, σ = {NOISE}, {result['size']}² crops, seed {result['seed']}",
             "", "| method | PSNR ↑ | SSIM ↑ | grad. energy (→1) | s/image | kernel NCC ↑ | error ratio ↓ |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for m in methods:
        v = mean[m]
        lines.append(f"| {m} | {_fmt(v['psnr'], 2)} | {_fmt(v['ssim'], 4)} | {_fmt(v['grad_ratio'], 3)} | "
                     f"{_fmt(v['seconds'], 2)} | {_fmt(v['kernel_ncc'], 3)} | {_fmt(v['error_ratio'], 2)} |")
    lines += ["", f"Mean margin of averaging over the blurry input: **{_fmt(mean['average_margin_db'], 2)} dB**.", "",
              "PSNR (dB) per image:", "",
              "| image | kernel px | " + " | ".join(methods) + " | averaging − blurry |",
              "|---|---:|" + "---:|" * (len(methods) + 1)]
    for r in rows:
        cells = [_fmt(r[m]["psnr"], 2) for m in methods]
        lines.append(f"| {r['name']} | {r['kernel_size']} | " + " | ".join(cells) + f" | {r['average_margin_db']:+.2f} |")
    lines += ["", "Grad. energy: mean squared luminance gradient of the output over the sharp photo's "
              "(`metrics.gradient_energy_ratio`; 1 = as detailed as the truth, < 1 blurrier, > 1 sharper or noisier). "
              "PSNR/SSIM: torchmetrics, RGB in [0, 1], outputs rounded to 8 bits. Wiener/RL/oracle are told the true "
              "kernel; blind-classical and the models are blind. Kernel NCC / error ratio: see the script's docstring "
              "(– where a method estimates no kernel)."]
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of ``benchmarks/default_model.py``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, help="model directory (default: the shipped model)")
    parser.add_argument("--baseline", default="none",
                        help="a one-shot model (e.g. a DeblurGAN-v2 run's model directory) scored beside the others")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for default_model.{json,md}")
    parser.add_argument("--limit", type=int, help="only the first N photos")
    parser.add_argument("--perceptual-steps", type=int,
                        help="reverse steps of the perceptual mode (default: the model's perceptual preset)")
    parser.add_argument("--size", type=int, default=256, help="side of the centre crops")
    parser.add_argument("--seed", type=int, default=0, help="blur/noise seed (the trainer's val seed is 0)")
    parser.add_argument("--precision", default="auto", choices=("auto", "no", "bf16"))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write the results; returns the exit code (2 when no model can be loaded)."""
    args = build_parser().parse_args(argv)
    try:
        restorer = Restorer.from_pretrained(args.checkpoint, device="cpu", precision=args.precision)
        baselines = {} if args.baseline == "none" else {
            f"{args.baseline} (one shot)": Restorer.from_pretrained(Path(args.baseline), device="cpu",
                                                                    precision=args.precision)}
        dataset = PhotoPairs(kernel_max=KERNEL_MAX, noise=NOISE, seed=args.seed, crop=args.size)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result = benchmark(restorer, dataset, limit=args.limit, perceptual_steps=args.perceptual_steps, seed=args.seed,
                       baselines=baselines)
    argv_text = sys.argv[1:] if argv is None else argv
    result.update(model=str(args.checkpoint or "shipped default"), model_name=restorer.cfg.name,
                  precision=restorer.precision, cpu=describe_cpu(), size=args.size, seed=args.seed,
                  command=shlex.join(["python", "benchmarks/default_model.py", *argv_text]))
    write_report(args.out / "default_model", result, markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
