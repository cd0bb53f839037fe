"""One experiment report from a training run and its evaluations: a self-contained HTML file, and with
``--publish`` a W&B Report (needs ``pip install -e '.[report]'``, a W&B login and network).

    python scripts/report.py --run runs/tiny --eval runs/eval \\
        --kernel-sizes benchmarks/results/kernel_sizes.json --out runs/tiny/report.html [--publish]

Exit code 0 on success, 2 when a folder cannot be read or publishing fails (one line, no traceback).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stochdeblur.report import ReportError, build_report, publish, write_html


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of ``scripts/report.py``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True,
                        help="training run directory (scripts/train.py --out)")
    parser.add_argument("--eval", action="append", type=Path, default=[],
                        help="evaluation folder (scripts/evaluate.py --out); repeatable")
    parser.add_argument("--kernel-sizes", action="append", type=Path, default=[],
                        help="gain-per-kernel-size results (benchmarks/kernel_sizes.py JSON); repeatable")
    parser.add_argument("--sample-steps", help="steps whose sample panels to show, e.g. '1000,5000' (the "
                                               "nearest saved ones; default: first, middle and last)")
    parser.add_argument("--title", help="report title (default: 'Experiment report: <run name>')")
    parser.add_argument("--out", type=Path, required=True, help="HTML file to write")
    parser.add_argument("--publish", action="store_true", help="also save a W&B Report (online)")
    parser.add_argument("--project", help="W&B project of the report (default: the training run's)")
    parser.add_argument("--entity", help="W&B entity (default: your default entity)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        steps = [int(s) for s in args.sample_steps.split(",") if s.strip()] if args.sample_steps else None
    except ValueError:
        print(f"error: --sample-steps {args.sample_steps!r}: expected integers such as 1000,5000",
              file=sys.stderr)
        return 2
    try:
        spec = build_report(args.run, args.eval, args.kernel_sizes, steps, args.title)
        write_html(spec, args.out)
        print(f"wrote {args.out}: {len(spec.sections)} sections, {len(spec.charts())} charts")
        if args.publish:
            project = args.project or next((r.project for r in spec.runs), "stochdeblur")
            print(f"W&B Report: {publish(spec, project, args.entity)}")
    except (ReportError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
