"""Where does a model gain or lose against another? Two results of ``benchmarks/validation_set.py`` on the same
pairs, compared pair by pair within bands of the blurry input's PSNR (how much the blur costs a crop) and of the
network-free classical method's gain over the blurry input (how good the kernel estimate is), when given.

    python benchmarks/validation_bands.py NEW.json BASELINE.json [--classical CLASSICAL.json] \\
        [--blurry-edges 25 30] [--classical-edges 0] [--out DIR]

Per band and mode: pairs, mean difference (new − baseline, dB), its standard error and pairs ahead — so "+0.06 dB
overall" can be read as "+0.4 where the estimate is good, −0.3 where it is wrong". Results:
``<out>/validation_bands.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from validation_set import MODES  # noqa: E402

from stochdeblur.utils import write_report  # noqa: E402


def load_result(path: Path) -> dict[str, list[float]]:
    """The per-pair PSNRs of a validation_set.json (ValueError when it has none)."""
    per_pair = json.loads(path.read_text()).get("psnr_per_pair")
    if not per_pair or "blurry" not in per_pair:
        raise ValueError(f"{path} has no psnr_per_pair (written by an older validation_set.py?)")
    return per_pair


def bands(new: dict[str, list[float]], baseline: dict[str, list[float]], key: np.ndarray,
          edges: list[float]) -> list[dict[str, Any]]:
    """Rows of the comparison within ``key``'s bands (−∞, e0), [e0, e1), …, [en, ∞): per mode the pairs, mean
    difference, standard error (0 for a single pair) and pairs ahead; empty bands are left out."""
    if len(new["blurry"]) != len(baseline["blurry"]) or not np.allclose(new["blurry"], baseline["blurry"], atol=1e-3):
        raise ValueError("the two results scored other pairs (their blurry PSNRs differ)")
    bounds = [-np.inf, *sorted(edges), np.inf]
    rows = []
    for low, high in zip(bounds[:-1], bounds[1:]):
        inside = (key >= low) & (key < high)
        if not inside.any():
            continue
        row: dict[str, Any] = {"low": float(low), "high": float(high), "pairs": int(inside.sum())}
        for mode in MODES:
            diff = (np.asarray(new[mode]) - np.asarray(baseline[mode]))[inside]
            error = float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else 0.0
            row[mode] = {"mean_diff": float(diff.mean()), "std_error": error, "wins": int((diff > 0).sum())}
        rows.append(row)
    return rows


def _band(row: dict[str, Any]) -> str:
    low, high = row["low"], row["high"]
    if np.isinf(low):
        return f"< {high:g}"
    return f"≥ {low:g}" if np.isinf(high) else f"{low:g} – {high:g}"


def markdown(result: dict[str, Any]) -> str:
    """The comparison as Markdown tables, one per banding."""
    lines = [f"# {result['new']} against {result['baseline']}, pair by pair within bands", "",
             f"- command: `{result['command']}`", ""]
    for title, rows in result["tables"].items():
        lines += [f"## by {title}", "", "| band (dB) | pairs | " + " | ".join(f"{m}: mean diff (s.e.), ahead"
                                                                             for m in MODES) + " |",
                  "|---|---:|" + "---:|" * len(MODES)]
        for row in rows:
            cells = [f"{row[m]['mean_diff']:+.3f} ({row[m]['std_error']:.3f}), {row[m]['wins']}" for m in MODES]
            lines.append(f"| {_band(row)} | {row['pairs']} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    """Command-line options of ``benchmarks/validation_bands.py``."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("new", type=Path, help="validation_set.json of the model in question")
    p.add_argument("baseline", type=Path, help="validation_set.json of the model it is compared with (same pairs)")
    p.add_argument("--classical", type=Path,
                   help="validation_set.json of --checkpoint classical on the same pairs: adds bands of its gain")
    p.add_argument("--blurry-edges", type=float, nargs="*", default=[25.0, 30.0], help="blurry PSNR band edges")
    p.add_argument("--classical-edges", type=float, nargs="*", default=[0.0],
                   help="edges of the classical method's gain over the blurry input")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results", help="folder for the results")
    return p


def main(argv: list[str] | None = None) -> int:
    """Compare and write the report; returns the exit code (2 for an unreadable or mismatched input)."""
    argv_text = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)
    try:
        new, baseline = load_result(args.new), load_result(args.baseline)
        blurry = np.asarray(new["blurry"])
        tables = {"blurry PSNR": bands(new, baseline, blurry, args.blurry_edges)}
        if args.classical:
            classical = load_result(args.classical)
            if not np.allclose(classical["blurry"], blurry, atol=1e-3):
                raise ValueError("the classical result scored other pairs (its blurry PSNRs differ)")
            gain = np.asarray(classical["predictor"]) - blurry
            tables["classical gain over blurry"] = bands(new, baseline, gain, args.classical_edges)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result = {"new": str(args.new), "baseline": str(args.baseline), "classical": str(args.classical or ""),
              "tables": tables, "command": shlex.join(["python", "benchmarks/validation_bands.py", *argv_text])}
    write_report(args.out / "validation_bands", result, markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
