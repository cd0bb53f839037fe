"""How blurred the synthetic training pairs are: mean blurry PSNR of a training config's pairs, with and without
``data.max_blurry_psnr``, for the whole mix and for its photo half alone.

    python benchmarks/training_blur.py                        # the phase-5 recipe's data, 60 items per row (~10 s)
    python benchmarks/training_blur.py --thresholds 0,28,26 --count 200

Why: a refiner learns how much to deblur from its pairs. Drawn as they come, crops of the wallpaper photographs are
mostly smooth (sky, bokeh) and the blur barely changes them; the benchmark photos are far more blurred (21.4 dB in
``benchmarks/results/default_model.md``). Rows: the threshold (0 = every pair as drawn), which content (the
config's mix, or ``photo_prob=1``), the mean and median blurry PSNR (dB, [0, 1] RGB, the training crop against
its target) and the share of pairs above 30 dB. Results: ``<out>/training_blur.{json,md}`` with the command.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from pathlib import Path

import numpy as np

from stochdeblur.config import load_config
from stochdeblur.data import build_dataset
from stochdeblur.data.synth import SyntheticPairs, unit_psnr
from stochdeblur.utils import write_report

RESULTS = Path(__file__).parent / "results"
RECIPE = ["data.crop_size=128", "data.synthetic_length=1600"]  # benchmarks/results/phase5/run.sh's data


def blurry_psnrs(pairs: SyntheticPairs, count: int) -> np.ndarray:
    """Blurry PSNR (dB) of the first ``count`` items of ``pairs``."""
    samples = (pairs.sample(i) for i in range(min(count, len(pairs))))
    return np.asarray([unit_psnr(sample.blur, sample.sharp) for sample in samples])


def main(argv: list[str] | None = None) -> int:
    """Measure each threshold × content and write the report."""
    argv_text = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=Path, default=Path("configs/dvsr_kernel_aware.yaml"))
    p.add_argument("--set", nargs="*", default=RECIPE, help="config overrides (default: the phase-5 recipe's data)")
    p.add_argument("--thresholds", default="0,28", help="comma-separated data.max_blurry_psnr values (0 = off)")
    p.add_argument("--count", type=int, default=60, help="items per row")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    if args.count < 2:
        p.error("--count must be at least 2")
    base = load_config(args.config, args.set).data
    rows = []
    for threshold in (float(t) for t in args.thresholds.split(",")):
        for content, photo_prob in (("mix", base.photo_prob), ("photos only", 1.0)):
            cfg = dataclasses.replace(base, max_blurry_psnr=threshold, photo_prob=photo_prob, num_workers=0)
            dataset = build_dataset(cfg, "train", 0)
            values = blurry_psnrs(getattr(dataset, "dataset", dataset), args.count)
            rows.append({"max_blurry_psnr": threshold, "content": content, "items": len(values),
                         "mean": float(values.mean()), "median": float(np.median(values)),
                         "above_30": float((values > 30).mean())})
    command = shlex.join(["python", "benchmarks/training_blur.py", *argv_text])
    lines = ["# Blurry PSNR of the synthetic training pairs", "", f"- command: `{command}`; data: "
             f"`{args.config}` with {' '.join(args.set) or 'no overrides'}", "",
             "| data.max_blurry_psnr | content | items | mean (dB) | median (dB) | share above 30 dB |",
             "|---:|---|---:|---:|---:|---:|"]
    lines += [f"| {r['max_blurry_psnr']:g} | {r['content']} | {r['items']} | {r['mean']:.2f} | {r['median']:.2f} | "
              f"{r['above_30']:.0%} |" for r in rows]
    write_report(args.out / "training_blur", {"rows": rows, "command": command}, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
