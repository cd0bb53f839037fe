"""Probe table: short training runs of different recipes side by side, from their ``metrics.jsonl``.

    python benchmarks/probes.py LABEL=RUN_DIR [LABEL=RUN_DIR ...] --out benchmarks/results/kernel_aware_probes

For each run: steps reached, training images seen, wall minutes of logged steps (sum of batch / images_per_s),
the last validation (real photos: blurry input, predictor g(y), sampled output when the run sampled), and the
mean of the last five logged values of each supervision term (kernel L1 sums |k̂ − k| over the kernel, 0…2;
edge L1; re-blur L1). The CPU is named; every probe ran on the same machine, often side by side, so minutes
are comparable only roughly. Writes ``OUT.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from stochdeblur.utils import describe_cpu, write_report

TERMS = ("train/kernel_l1", "train/edge_l1", "train/reblur_l1", "train/aux_l1", "train/eps_l1")


def summarize(run_dir: Path) -> dict[str, Any]:
    """Steps, images, minutes, last validation and recent supervision terms of one run."""
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line]
    cfg = OmegaConf.load(run_dir / "config.yaml")
    batch = int(cfg.data.batch_size)
    logs = [r for r in records if "train/loss" in r]
    vals = [r for r in records if "val/psnr" in r]
    every = int(cfg.train.log_every)
    seconds = sum(every * batch / r["images_per_s"] for r in logs if r.get("images_per_s"))
    recent = logs[-5:]
    last = vals[-1] if vals else {}
    return {
        "steps": logs[-1]["step"] if logs else 0, "images": (logs[-1]["step"] if logs else 0) * batch,
        "minutes": seconds / 60.0, "val_step": last.get("step"),
        "val_blur": last.get("val/psnr_blur"), "val_init": last.get("val/psnr_init"),
        "val_sampled": last.get("val/psnr") if int(cfg.sample.steps) > 0 else None,
        "terms": {t.split("/")[1]: sum(r[t] for r in recent) / len(recent)
                  for t in TERMS if recent and all(t in r for r in recent)},
        "predictor": str(cfg.predictor.type), "kernel_only": bool(cfg.predictor.get("kernel_only", False)),
    }


def _cell(value: float | None, fmt: str) -> str:
    return "–" if value is None else format(value, fmt)


def main(argv: list[str] | None = None) -> int:
    """Summarise the runs and write the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", metavar="LABEL=RUN_DIR")
    parser.add_argument("--out", type=Path, required=True, help="output stem (OUT.json, OUT.md)")
    args = parser.parse_args(argv)
    rows = {}
    for spec in args.runs:
        label, _, path = spec.partition("=")
        rows[label] = summarize(Path(path))
    terms = sorted({t for r in rows.values() for t in r["terms"]})
    lines = ["# Kernel-aware probes (fixed CPU budget per recipe)", "",
             f"- command: `python benchmarks/probes.py {' '.join(args.runs)} --out {args.out}`",
             f"- CPU: {describe_cpu()}; validation: the real-photo set (5 photos, kernels 7–33 px, σ = 0.01, 256²)", "",
             "| recipe | steps | images | minutes | val step | blurry dB | g(y) dB | sampled dB | "
             + " | ".join(terms) + " |", "|---|" + "---:|" * (8 + len(terms))]
    for label, r in rows.items():
        cells = [str(r["steps"]), str(r["images"]), f"{r['minutes']:.0f}", str(r["val_step"] or "–"),
                 _cell(r["val_blur"], ".2f"), _cell(r["val_init"], ".2f"), _cell(r["val_sampled"], ".2f"),
                 *[_cell(r["terms"].get(t), ".3f") for t in terms]]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    write_report(args.out, {"runs": rows, "cpu": describe_cpu()}, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
