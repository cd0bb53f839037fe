"""Several blind kernel estimates per image, and no-reference rules that pick one: how much would a good pick gain?

    python benchmarks/kernel_hypotheses.py                       # 24 wallpaper-photo pairs, ~10 min on 2 cores
    python benchmarks/kernel_hypotheses.py --content deadleaves --seed 1

Tuning data only: 256² crops of the Debian wallpaper photographs (the training photos, ``make photos``) or
textured dead leaves, never the evaluation photos; camera-shake kernels of 7–33 px from both trajectory
generators (Boracchi & Foi, Gaussian process), σ = 0.01 noise, 8-bit rounding (``synth.degrade``).

Per pair and hypothesis (:data:`HYPOTHESES`: Pan et al.'s estimator with several kernel
windows and prior weights, plus "no blur", the identity): the PSNR of the TV deconvolution with that estimate, the
kernel NCC with the truth and the no-reference features of :func:`hypothesis_features`.
Reported: each hypothesis on its own, the best pick per pair (an upper bound, it looks at the truth) and the pick
of each selection rule of :data:`SELECTION_RULES`.
Results: ``<out>/kernel_hypotheses.{json,md}`` (written atomically, with the CPU and the command).
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from stochdeblur.baselines import mix_untrusted
from stochdeblur.data.synth import KERNEL_GENERATORS, dead_leaves, degrade
from stochdeblur.data.wallpapers import wallpaper_crop
from stochdeblur.metrics import psnr
from stochdeblur.physics import kernels as K
from stochdeblur.physics.blind import estimate_kernel, kernel_confidence
from stochdeblur.physics.kernels import ncc
from stochdeblur.physics.operators import unit_luminance
from stochdeblur.utils import describe_cpu, write_report

RESULTS = Path(__file__).parent / "results"


@dataclass(frozen=True)
class Hypothesis:
    """One candidate explanation of a blurry image: a kernel, the image deconvolved with it, and no-reference
    features of the pair (:func:`hypothesis_features`)."""

    name: str
    kernel: Tensor  # [size, size], the window of estimate_hypotheses
    latent: Tensor  # [C, H, W] in [−1, 1]
    features: dict[str, float]


# (name, kernel window cap, estimate_kernel options); "identity" = no blur (the input itself).
HYPOTHESES: tuple[tuple[str, int, dict[str, float]], ...] = (
    ("w33", 33, {}),
    ("w21", 21, {}),
    ("w13", 13, {}),
    ("strong-prior", 33, {"lam_pixel": 8e-3, "lam_grad": 8e-3}),
    ("identity", 1, {}),
)


def _normalised_sparsity(gray: Tensor, border: int) -> float:
    """ℓ1/ℓ2 of the luminance gradients inside a ``border``-px margin (Krishnan et al. 2011: lower = sharper)."""
    inner = gray[border:gray.shape[0] - border, border:gray.shape[1] - border]
    g = torch.cat([(inner[1:, :-1] - inner[:-1, :-1]).flatten(), (inner[:-1, 1:] - inner[:-1, :-1]).flatten()])
    return float(g.abs().sum() / g.pow(2).sum().sqrt().clamp_min(1e-12)) / math.sqrt(g.numel())


def hypothesis_features(y: Tensor, kernel: Tensor, latent: Tensor) -> dict[str, float]:
    """No-reference features of a (kernel, latent) explanation of ``y`` ([C, H, W] in [−1, 1]): ``confidence``
    (:func:`kernel_confidence`, capped at 10), ``sparsity`` (normalised ℓ1/ℓ2 of the latent's gradients,
    lower = sharper), ``sparsity_blurry`` (the same of ``y``) and ``support`` (pixels above 5 % of the peak)."""
    border = kernel.shape[-1]
    return {"confidence": min(kernel_confidence(y, kernel, latent), 10.0),
            "sparsity": _normalised_sparsity(unit_luminance(latent), border),
            "sparsity_blurry": _normalised_sparsity(unit_luminance(y), border),
            "support": float((kernel > 0.05 * kernel.max()).sum())}


def estimate_hypotheses(y: Tensor, size: int,
                        hypotheses: tuple[tuple[str, int, dict[str, float]], ...] = HYPOTHESES) -> list[Hypothesis]:
    """:func:`estimate_kernel` of ``y`` ([C, H, W] in [−1, 1]) under each of ``hypotheses`` (window
    ``min(cap, size)``; the "identity" entry is the input itself), every kernel padded to ``size``."""
    image = y[0] if y.dim() == 4 else y
    out = []
    for name, cap, options in hypotheses:
        start = time.perf_counter()
        window = min(cap, size)
        if window < 3:
            kernel = K.pad_to(torch.ones(1, 1), size)
            latent = image.float().clone()
        else:
            kernel, latent = estimate_kernel(image, window, **options)
            kernel = K.pad_to(kernel.float().cpu(), size)
        features = {**hypothesis_features(image, kernel, latent), "seconds": time.perf_counter() - start}
        out.append(Hypothesis(name, kernel, latent, features))
    return out


def _trusted_sharpest(hypotheses: list[Hypothesis], trust: float) -> Hypothesis:
    trusted = [h for h in hypotheses if h.features["confidence"] >= trust and h.name != "identity"]
    if not trusted:
        return next(h for h in hypotheses if h.name == "identity")
    return min(trusted, key=lambda h: h.features["sparsity"])


SELECTION_RULES = ("sparsest-trusted", "sparsest", "most-confident", "sparsest-trusted-0.8")


def select_hypothesis(hypotheses: list[Hypothesis], rule: str = SELECTION_RULES[0]) -> Hypothesis:
    """Pick one of ``hypotheses`` without the truth: ``sparsest`` (lowest normalised sparsity), ``most-confident``
    (highest confidence, the identity excluded), ``sparsest-trusted[-T]`` (the sparsest of those with confidence
    ≥ T, default 1; the identity when none is)."""
    if rule == "sparsest":
        return min(hypotheses, key=lambda h: h.features["sparsity"])
    if rule == "most-confident":
        return max((h for h in hypotheses if h.name != "identity"), key=lambda h: h.features["confidence"])
    if rule.startswith("sparsest-trusted"):
        trust = float(rule.rpartition("-")[2]) if rule.count("-") > 1 else 1.0
        return _trusted_sharpest(hypotheses, trust)
    raise ValueError(f"unknown selection rule {rule!r}; one of {', '.join(SELECTION_RULES)}")



def pairs(count: int, seed: int, content: str, size: int = 256) -> list[dict[str, Any]]:
    """``count`` pairs of blur/sharp [3, size, size] in [−1, 1] with their true kernel (7–33 px, both generators)."""
    out = []
    generators = sorted(KERNEL_GENERATORS)
    for i, ksize in enumerate(np.linspace(7, min(33, size // 2), count).round().astype(int)):
        rng = np.random.default_rng([seed, i])
        generator = generators[i % len(generators)]
        kernel = KERNEL_GENERATORS[generator](int(ksize), rng)
        side = size + kernel.shape[0] - 1
        if content == "photos":
            sharp, name = wallpaper_crop(side, rng)
        else:
            sharp, name = dead_leaves(side, side, rng, texture=True), "dead leaves"
        blur, target = degrade(sharp, kernel, rng, noise_sigma=0.01)
        as_tensor = lambda a: torch.from_numpy(a.transpose(2, 0, 1).copy()) * 2 - 1  # noqa: E731
        out.append({"name": f"{i:02d} {name}", "kernel_px": int(ksize), "generator": generator,
                    "blur": as_tensor(blur), "sharp": as_tensor(target), "kernel": torch.from_numpy(kernel)})
    return out


def prior_sweep(lams: list[float]) -> tuple[tuple[str, int, dict[str, float]], ...]:
    """Hypotheses that differ only in the L0 prior weights (λ_pixel = λ_grad = each of ``lams``), plus the identity."""
    return (*((f"lam={lam:g}", 33, {"lam_pixel": lam, "lam_grad": lam}) for lam in lams), ("identity", 1, {}))


def parse_variants(spec: str) -> tuple[tuple[str, int, dict[str, float]], ...]:
    """``"default; mu_rate=4; iterations=3,mu_rate=4"``: one 33-px estimate per ``;``-separated list of
    :func:`~stochdeblur.physics.blind.estimate_kernel` options (``default`` = none), plus the identity."""
    out = []
    for part in (p.strip() for p in spec.split(";") if p.strip()):
        options = {} if part == "default" else {k.strip(): float(v) for k, _, v in
                                                 (item.partition("=") for item in part.split(","))}
        for key in ("iterations", "dark_patch", "crop"):
            if key in options:
                options[key] = int(options[key])
        out.append((part, 33, options))
    return (*out, ("identity", 1, {}))


def measure(pair: dict[str, Any], window: int, hypotheses_spec=HYPOTHESES) -> dict[str, Any]:
    """Every hypothesis of one pair: PSNR, NCC, features and seconds."""
    start = time.perf_counter()
    hypotheses = estimate_hypotheses(pair["blur"], window, hypotheses_spec)
    seconds = time.perf_counter() - start
    blurry = psnr(pair["blur"], pair["sharp"])
    rows = {}
    for h in hypotheses:
        mixed = mix_untrusted(pair["blur"], h.latent, h.features["confidence"])  # as blind_deconvolve keeps it
        rows[h.name] = {"gain": psnr(h.latent, pair["sharp"]) - blurry, "ncc": ncc(h.kernel, pair["kernel"]),
                        "mix_gain": psnr(mixed, pair["sharp"]) - blurry, **h.features}
    picks = {rule: select_hypothesis(hypotheses, rule).name for rule in SELECTION_RULES}
    return {"name": pair["name"], "kernel_px": pair["kernel_px"], "generator": pair["generator"],
            "blurry": blurry, "seconds": seconds, "hypotheses": rows, "picks": picks}


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean gain of each hypothesis alone, of the best pick per pair and of each rule's pick."""
    names = list(rows[0]["hypotheses"])
    alone = {n: float(np.mean([r["hypotheses"][n]["gain"] for r in rows])) for n in names}
    best = float(np.mean([max(h["gain"] for h in r["hypotheses"].values()) for r in rows]))
    rules = {}
    for rule in rows[0]["picks"]:
        gains = [r["hypotheses"][r["picks"][rule]]["gain"] for r in rows]
        rules[rule] = {"mean": float(np.mean(gains)), "worst": float(np.min(gains))}
    for name in (n for n in names if n != "identity"):
        mix = [r["hypotheses"][name]["mix_gain"] for r in rows]
        rules[f"{name}, mixed with the input when untrusted (blind_deconvolve)"] = {
            "mean": float(np.mean(mix)), "worst": float(np.min(mix))}
    return {"alone": alone, "best_pick": best, "rules": rules,
            "seconds": float(np.mean([r["seconds"] for r in rows]))}


def markdown(result: dict[str, Any]) -> str:
    """The result as a Markdown report."""
    s, rows = result["summary"], result["rows"]
    lines = [f"# Kernel hypotheses and no-reference selection ({len(rows)} {result['content']} pairs, {result['size']}²)", "",
             f"- CPU: {result['cpu']}; command: `{result['command']}`",
             f"- seconds per image for all hypotheses: {s['seconds']:.2f}", "",
             "| hypothesis / rule | mean gain over blurry (dB) | worst (dB) | kernel NCC | s / image |",
             "|---|---:|---:|---:|---:|"]
    for name, gain in s["alone"].items():
        column = [r["hypotheses"][name] for r in rows]
        worst = min(h["gain"] for h in column)
        ncc_mean = np.mean([h["ncc"] for h in column])
        secs = np.mean([h["seconds"] for h in column]) if "seconds" in column[0] else float("nan")
        lines.append(f"| {name} (always) | {gain:+.2f} | {worst:+.2f} | {ncc_mean:.3f} | {secs:.2f} |")
    lines.append(f"| best per pair (looks at the truth) | {s['best_pick']:+.2f} | – | – | – |")
    for rule, v in s["rules"].items():
        lines.append(f"| {'' if ',' in rule else 'rule: '}{rule} | {v['mean']:+.2f} | {v['worst']:+.2f} | – | – |")
    lines += ["", "Gain per pair (dB; * = the default rule's pick):", "",
              "| pair | kernel px | generator | " + " | ".join(s["alone"]) + " |",
              "|---|---:|---|" + "---:|" * len(s["alone"])]
    for r in rows:
        pick = r["picks"][SELECTION_RULES[0]]
        cells = [f"{r['hypotheses'][n]['gain']:+.2f}" + ("*" if n == pick else "") for n in s["alone"]]
        lines.append(f"| {r['name']} | {r['kernel_px']} | {r['generator']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def parser() -> argparse.ArgumentParser:
    """Command-line options of ``benchmarks/kernel_hypotheses.py``."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--count", type=int, default=24, help="number of pairs")
    p.add_argument("--seed", type=int, default=0, help="seed of the pairs")
    p.add_argument("--content", choices=("photos", "deadleaves"), default="photos")
    p.add_argument("--window", type=int, default=33, help="largest kernel window (the largest blur)")
    p.add_argument("--size", type=int, default=256, help="side of the blurry crops")
    p.add_argument("--lams", help="instead of HYPOTHESES: one estimate per L0 prior weight, e.g. 4e-3,8e-3,1.6e-2")
    p.add_argument("--variants", help="instead of HYPOTHESES: estimate_kernel options per estimate, "
                   "e.g. 'default; mu_rate=4; iterations=3' (accuracy vs seconds)")
    p.add_argument("--out", type=Path, default=RESULTS, help="folder for kernel_hypotheses.{json,md}")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write the results."""
    argv_text = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)
    spec = (prior_sweep([float(v) for v in args.lams.split(",")]) if args.lams
            else parse_variants(args.variants) if args.variants else HYPOTHESES)
    rows = [measure(pair, args.window, spec) for pair in tqdm(pairs(args.count, args.seed, args.content, args.size), desc="pairs")]
    result = {"cpu": describe_cpu(), "content": args.content, "seed": args.seed, "window": args.window, "size": args.size,
              "command": shlex.join(["python", "benchmarks/kernel_hypotheses.py", *argv_text]),
              "summary": summarise(rows), "rows": rows}
    suffix = "_lams" if args.lams else "_variants" if args.variants else ""
    stem = args.out / f"kernel_hypotheses_{args.content}_seed{args.seed}{suffix}"
    write_report(stem, result, markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
