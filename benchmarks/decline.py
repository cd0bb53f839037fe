"""When should the kernel-aware predictor decline to deblur? A no-reference rule chosen on tuning pairs.

    python benchmarks/decline.py                     # 36 tuning + 36 validation crops of the training photos, ~6 min
    python benchmarks/decline.py --images 12

On held-out crops of the training photographs the shipped g loses to the blurry input on average
(``benchmarks/validation_set.py``): flat crops (sky, walls) where any kernel estimate is a guess, and crops whose
estimate is wrong. A rule that returns y there, from what is known without the sharp image, would keep those
losses away. Per pair this records the blurry input's and g's PSNR, and three no-reference features:

* ``confidence``: :func:`~stochdeblur.physics.blind.kernel_confidence` of the classical estimate (noise level ÷
  re-blur residual; what ``baselines.blind_deconvolve`` already uses to mix its deconvolution with y);
* ``edges``: the blurry luminance's mean squared gradient ÷ its noise variance (how much structure there is to
  estimate a kernel from);
* ``change``: RMS of g(y) − y ÷ the noise level (how far g moved).

For each feature and each threshold (the tuning pairs' own values), the rule "y where feature < threshold, else
g(y)" is scored on the *tuning* pairs (the run's validation pairs drawn with another seed); the best threshold
per feature is then scored on the *validation* pairs (the run's own, ``data.val_kind=wallpapers``). Never the
evaluation photos. Results: ``<out>/decline.{json,md}`` (atomic, with the CPU and the command).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from kernel_refit import load_classical_kernel_aware
from tqdm import tqdm

from stochdeblur import metrics
from stochdeblur.baselines import blind_estimate
from stochdeblur.config import load_config
from stochdeblur.data import build_dataset
from stochdeblur.models.kernel_aware import KernelAwarePredictor
from stochdeblur.physics.blind import noise_level
from stochdeblur.physics.operators import gradients, luminance, unit_luminance
from stochdeblur.utils import describe_cpu, write_report

RESULTS = Path(__file__).parent / "results"
FEATURES = ("confidence", "edges", "change")
TUNING_SEED_OFFSET = 17  # the tuning pairs: the validation recipe from another seed


def pair_record(predictor: KernelAwarePredictor, item: dict[str, Any]) -> dict[str, float]:
    """PSNR of y and of g(y), and the no-reference features, for one pair (g exactly as at inference)."""
    blur, sharp = item["blur"], item["sharp"]
    found = blind_estimate(blur, predictor.kernel_size, edge_fraction=predictor.edge_fraction)
    image = predictor.run(blur[None], found.kernel[None], deconvolved=found.restored[None]).image[0].clamp(-1.0, 1.0)
    sigma = noise_level(blur)
    gy, gx = gradients(unit_luminance(blur))
    edges = float((gy[:-1] ** 2).mean() + (gx[:, :-1] ** 2).mean()) / sigma**2
    change = float(luminance((image - blur) * 0.5).pow(2).mean().sqrt()) / sigma  # [0, 1] units, like sigma
    return {"blurry": metrics.psnr(blur, sharp), "g": metrics.psnr(image, sharp), "confidence": found.confidence,
            "edges": edges, "change": change}


def rule_psnr(pairs: list[dict[str, float]], feature: str, threshold: float) -> float:
    """Mean PSNR of "y where ``feature`` < ``threshold``, else g(y)" over ``pairs``."""
    return float(np.mean([p["blurry"] if p[feature] < threshold else p["g"] for p in pairs]))


def best_threshold(pairs: list[dict[str, float]], feature: str) -> tuple[float, float]:
    """(threshold, mean PSNR) of the best rule on ``pairs``; thresholds are the pairs' own values and +∞ (never
    decline is threshold −∞, always decline +∞)."""
    candidates = [float("-inf"), *sorted(p[feature] for p in pairs), float("inf")]
    scores = [rule_psnr(pairs, feature, t) for t in candidates]
    best = int(np.argmax(scores))
    return candidates[best], scores[best]


def score_pairs(predictor: KernelAwarePredictor, dataset, desc: str) -> list[dict[str, float]]:
    """:func:`pair_record` of every pair of ``dataset``."""
    return [pair_record(predictor, dataset[i]) for i in tqdm(range(len(dataset)), desc=desc)]


def summarise(tuning: list[dict[str, float]], validation: list[dict[str, float]]) -> dict[str, Any]:
    """Per feature: the threshold chosen on ``tuning`` and both sets' PSNR under it; plus never/always/oracle."""

    def reference(pairs: list[dict[str, float]]) -> dict[str, float]:
        return {"blurry": float(np.mean([p["blurry"] for p in pairs])), "g": float(np.mean([p["g"] for p in pairs])),
                "oracle": float(np.mean([max(p["blurry"], p["g"]) for p in pairs]))}

    rules = {}
    for feature in FEATURES:
        threshold, tuned = best_threshold(tuning, feature)
        rules[feature] = {"threshold": threshold, "tuning": tuned, "validation": rule_psnr(validation, feature, threshold),
                          "declined": float(np.mean([p[feature] < threshold for p in validation]))}
    return {"tuning": reference(tuning), "validation": reference(validation), "rules": rules}


def markdown(result: dict[str, Any]) -> str:
    """The result as Markdown."""
    s = result["summary"]
    lines = [f"# When to decline: no-reference rules for g ({result['images']} tuning + {result['images']} "
             f"validation pairs of `{result['config']}`)", "",
             f"- model: `{result['model']}`; command: `{result['command']}`; CPU: {result['cpu']}", "",
             "| output | tuning PSNR | validation PSNR | validation share declined |", "|---|---:|---:|---:|",
             f"| blurry input (always decline) | {s['tuning']['blurry']:.2f} | {s['validation']['blurry']:.2f} | 1.00 |",
             f"| g (never decline) | {s['tuning']['g']:.2f} | {s['validation']['g']:.2f} | 0.00 |"]
    for feature, rule in s["rules"].items():
        lines.append(f"| y where {feature} < {rule['threshold']:.3g}, else g | {rule['tuning']:.2f} | "
                     f"{rule['validation']:.2f} | {rule['declined']:.2f} |")
    lines += [f"| per-pair best of y and g (needs the truth) | {s['tuning']['oracle']:.2f} | "
              f"{s['validation']['oracle']:.2f} | – |", "",
              "Thresholds are chosen on the tuning pairs only. Features: see the script's docstring.", "",
              "| validation pair | blurry | g | " + " | ".join(FEATURES) + " |", "|---|---:|---:|" + "---:|" * len(FEATURES)]
    for i, p in enumerate(result["validation"]):
        lines.append(f"| {i} | {p['blurry']:.2f} | {p['g']:.2f} | " + " | ".join(f"{p[f]:.3g}" for f in FEATURES) + " |")
    return "\n".join(lines) + "\n"


def parser() -> argparse.ArgumentParser:
    """Command-line options of ``benchmarks/decline.py``."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default="default", help="a kernel-aware model (default: the shipped one)")
    p.add_argument("--config", type=Path, default=Path("configs/dvsr_kernel_aware.yaml"),
                   help="the training config whose validation recipe gives both sets")
    p.add_argument("--images", type=int, default=36, help="pairs per set (default 36)")
    p.add_argument("--crop", type=int, default=256, help="side of each pair (default 256)")
    p.add_argument("--out", type=Path, default=RESULTS / "decline", help="folder for decline.{json,md}")
    return p


def main(argv: list[str] | None = None) -> int:
    """Score the rules and write the report; returns the exit code (2 for a model without the classical source)."""
    argv_text = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)
    if args.images < 2 or args.crop < 48:
        print("error: need --images >= 2 and --crop >= 48", file=sys.stderr)
        return 2
    cfg = load_config(args.config, ["data.val_kind=wallpapers", f"data.val_images={args.images}",
                                    f"data.val_crop_size={args.crop}"])
    try:
        _, _, predictor = load_classical_kernel_aware(args.checkpoint)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    with torch.no_grad():
        tuning = score_pairs(predictor, build_dataset(cfg.data, "val", cfg.train.seed + TUNING_SEED_OFFSET), "tuning")
        validation = score_pairs(predictor, build_dataset(cfg.data, "val", cfg.train.seed), "validation")
    result = {"model": str(args.checkpoint), "config": str(args.config), "images": args.images, "cpu": describe_cpu(),
              "seconds_per_pair": (time.perf_counter() - start) / (2 * args.images),
              "summary": summarise(tuning, validation), "tuning": tuning, "validation": validation,
              "command": shlex.join(["python", "benchmarks/decline.py", *argv_text])}
    write_report(args.out / "decline", result, markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
