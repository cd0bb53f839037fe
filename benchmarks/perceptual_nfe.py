"""Perceptual mode at a usable cost: detail and perceptual scores against the number of network evaluations (NFE).

    python benchmarks/perceptual_nfe.py                                  # kernel_aware, 5 photos, 128² crops
    python benchmarks/perceptual_nfe.py --checkpoint default --limit 2 --nfe 5,10

For one shipped model (``Restorer.from_pretrained``, the one inference path) on the ``PhotoPairs`` benchmark
(sample photos, seeded camera-shake kernels of 7–33 px, σ = 0.01 noise, centre crops of ``--crop``): the
reference, DDPM with ``--reference-steps`` (500) steps and one sample — the paper's perceptual mode — then each
sampler of ``--samplers`` at each NFE of ``--nfe`` (one sample each, seed ``--seed``), and the predictor alone
(NFE 0). Every sampler here makes one denoiser call per step, so NFE = steps. Samplers: ``ddpm`` (ancestral),
``ddim:η`` (DDIM with that η; η = 1 is the DDPM update itself — same outputs to 1e-5,
``tests/test_sampling_knobs.py`` — so the default sweep runs η = 0 and 0.5), ``dpmsolver`` (DPM-Solver++ 2M). Each is also run with ``--schedule`` / ``--alpha-bar-end`` (the defaults: linear β, ᾱ_T = 1e-3).

Per output (rounded to 8 bits, as written): PSNR; the gradient-energy ratio (``metrics.gradient_energy_ratio``:
output/sharp mean squared luminance gradient; 1 = the sharp photo's detail, < 1 blurrier, > 1 sharper/noisier);
HaarPSI (piq); ST-LPIPS (shift-tolerant, AlexNet; ``metrics.ShiftTolerantLPIPS``, weights of the
``stlpips-pytorch`` package, lower is better). Seconds are wall time of the restoration without the predictor:
g(y) does not depend on the sampler, so it runs once per photo (a memo around the model's predictor) and the
kernel-aware model's classical kernel estimate is not paid 20 times.

Decision: the cheapest (sampler, NFE ≤ 50) whose mean gradient-energy ratio is within ``--tol-grad`` of the
reference's and whose mean ST-LPIPS is at most ``--tol-stlpips`` above it (closer to the sharp photo is fine).
Results: ``<out>/perceptual_nfe.{json,md,png}`` (with the CPU and the command).
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator
from torch import Tensor, nn
from tqdm.auto import tqdm

from stochdeblur.data.photos import KERNEL_MAX, NOISE, PhotoPairs
from stochdeblur.io import quantize
from stochdeblur.metrics import STLPIPS_LABEL, MetricSuite, gradient_energy_ratio, mean_or_none
from stochdeblur.restorer import Restorer
from stochdeblur.utils import atomic_path, describe_cpu, write_report

RESULTS = Path(__file__).parent / "results"
METRICS = ("psnr", "grad_ratio", "haarpsi", "stlpips", "seconds")
HEADERS = {"psnr": "PSNR ↑", "grad_ratio": "grad. energy (→1)", "haarpsi": "HaarPSI ↑", "stlpips": "ST-LPIPS ↓",
           "seconds": "s/image"}
DIGITS = {"psnr": 2, "grad_ratio": 3, "haarpsi": 4, "stlpips": 4, "seconds": 1}


@dataclass(frozen=True)
class Sampler:
    """One sampler of the sweep: a name for tables and the settings it passes to the Restorer."""

    label: str
    sampler: str
    eta: float | None = None

    @property
    def options(self) -> dict[str, Any]:
        return {"sampler": self.sampler, **({"eta": self.eta} if self.sampler == "ddim" else {})}


def parse_samplers(spec: str) -> list[Sampler]:
    """``"ddpm,ddim:0,ddim:0.5,dpmsolver"`` → samplers (``ddim`` alone is η = 0)."""
    out = []
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        name, _, eta = part.partition(":")
        if name == "ddim":
            value = float(eta or 0)
            out.append(Sampler(f"DDIM η={value:g}", "ddim", value))
        elif name in ("ddpm", "dpmsolver") and not eta:
            out.append(Sampler({"ddpm": "DDPM", "dpmsolver": "DPM-Solver++(2M)"}[name], name))
        else:
            raise ValueError(f"--samplers: {part!r} is not ddpm, ddim[:η] or dpmsolver")
    return out


class _MemoPredictor(nn.Module):
    """The model's predictor g, run once per distinct input (g is deterministic, the sampler does not change it)."""

    def __init__(self, predictor: nn.Module) -> None:
        super().__init__()
        self.inner = predictor
        self._key: Tensor | None = None
        self._value: Tensor | None = None

    def forward(self, blur: Tensor) -> Tensor:
        if self._key is None or self._key.shape != blur.shape or not torch.equal(self._key, blur):
            self._key, self._value = blur.clone(), self.inner(blur)
        return self._value


def memoize_predictor(restorer: Restorer) -> Restorer:
    """Wrap the DvSR model's predictor in :class:`_MemoPredictor` (in place); one-shot models are left as they are."""
    model = restorer.model
    if restorer.diffusion and not isinstance(model.predictor, _MemoPredictor):
        model.predictor = _MemoPredictor(model.predictor)
    return restorer


def _scores(suite: MetricSuite, image: Tensor, sharp: Tensor, seconds: float | None) -> dict[str, float | None]:
    values = suite.compute_image_metrics(image, sharp)
    return {"psnr": values["psnr"], "grad_ratio": gradient_energy_ratio(image, sharp), "haarpsi": values["haarpsi"],
            "stlpips": values["stlpips"], "seconds": seconds}


def benchmark(restorer: Restorer, dataset: PhotoPairs, samplers: list[Sampler], nfes: list[int], *,
              reference_steps: int = 500, limit: int | None = None, seeds: Sequence[int] = (0,),
              schedule: str | None = None, alpha_bar_end: float | None = None,
              suite: MetricSuite | None = None) -> dict[str, Any]:
    """Score the predictor, the reference and every (sampler, NFE) on the first ``limit`` photos, one sample per
    seed of ``seeds`` (each scored alone; an image's score is the mean over the seeds).

    Returns ``{"runs": [{"key", "sampler", "nfe", ...}], "images": [{"name", "kernel_size", key: scores}],
    "mean": {key: scores}, "seed_std": {key: {metric: std over seeds of the mean over photos}}}``; keys are
    ``"predictor"``, ``"reference"`` and ``"<label>@<nfe>"``.
    """
    suite = suite or MetricSuite(distribution=False, extra=("stlpips",))
    memoize_predictor(restorer)
    knobs = {"schedule": schedule, "alpha_bar_end": alpha_bar_end}
    runs = [{"key": "predictor", "sampler": "predictor", "nfe": 0, "options": {}},
            {"key": "reference", "sampler": f"DDPM {reference_steps} steps", "nfe": reference_steps,
             "options": {"sampler": "ddpm", **knobs}}]
    runs += [{"key": f"{s.label}@{n}", "sampler": s.label, "nfe": n, "options": {**s.options, **knobs}}
             for s in samplers for n in nfes]
    count = len(dataset) if limit is None else min(limit, len(dataset))
    rows = []
    bar = tqdm(total=count * len(seeds) * sum(max(1, r["nfe"]) for r in runs), desc="NFE", unit="eval")
    for index in range(count):
        item = dataset[index]
        blur, sharp = item["blur"], item["sharp"]
        row: dict[str, Any] = {"name": item["name"], "kernel_size": int(item["kernel"].shape[-1])}
        for run in runs:
            per_seed = []
            for seed in seeds if run["nfe"] else seeds[:1]:  # the predictor does not sample
                bar.set_postfix_str(f"{item['name']}: {run['key']} seed {seed}")
                start = time.perf_counter()
                out = restorer(blur, steps=run["nfe"], average=1, seed=seed, **run["options"])
                seconds = time.perf_counter() - start
                per_seed.append(_scores(suite, quantize(out[0].cpu()), sharp, seconds if run["nfe"] else None))
                bar.update(max(1, run["nfe"]))
            row[run["key"]] = {m: mean_or_none([v[m] for v in per_seed]) for m in METRICS}
            row[run["key"]]["per_seed"] = per_seed
        rows.append(row)
    bar.close()
    mean = {r["key"]: {m: mean_or_none([row[r["key"]][m] for row in rows]) for m in METRICS} for r in runs}
    seed_std = {}
    for r in runs:
        r.pop("options")
        by_seed = [[row[r["key"]]["per_seed"][i] for row in rows] for i in range(len(rows[0][r["key"]]["per_seed"]))]
        seed_std[r["key"]] = {m: _std([mean_or_none([v[m] for v in seed_rows]) for seed_rows in by_seed])
                              for m in ("psnr", "grad_ratio", "haarpsi", "stlpips")}
    return {"runs": runs, "images": rows, "mean": mean, "seed_std": seed_std, "seeds": list(seeds),
            "unavailable": dict(suite.unavailable)}


def _std(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return statistics.stdev(kept) if len(kept) > 1 else None


def decide(result: dict[str, Any], tol_grad: float, tol_stlpips: float, max_nfe: int = 50) -> dict[str, Any]:
    """The cheapest run with NFE ≤ ``max_nfe`` matching the reference in detail and ST-LPIPS (see the docstring),
    and for each sampler its closest run (how far it is)."""
    mean, ref = result["mean"], result["mean"]["reference"]
    candidates = []
    for run in result["runs"]:
        if run["key"] in ("predictor", "reference") or run["nfe"] > max_nfe:
            continue
        v = mean[run["key"]]
        if None in (v["grad_ratio"], ref["grad_ratio"]):
            continue
        d_grad = v["grad_ratio"] - ref["grad_ratio"]
        d_st = None if None in (v["stlpips"], ref["stlpips"]) else v["stlpips"] - ref["stlpips"]
        ok = abs(d_grad) <= tol_grad and d_st is not None and d_st <= tol_stlpips
        candidates.append({"key": run["key"], "sampler": run["sampler"], "nfe": run["nfe"], "d_grad": d_grad,
                           "d_stlpips": d_st, "d_psnr": v["psnr"] - ref["psnr"], "matches": ok})
    matching = sorted((c for c in candidates if c["matches"]), key=lambda c: (c["nfe"], abs(c["d_grad"])))

    def miss(c: dict[str, Any]) -> float:  # how far outside the tolerances, in units of each tolerance
        over_st = max(0.0, (c["d_stlpips"] or 0.0) - tol_stlpips) / tol_stlpips
        return max(0.0, abs(c["d_grad"]) - tol_grad) / tol_grad + over_st

    closest = sorted(candidates, key=lambda c: (miss(c), c["nfe"]))
    return {"tol_grad": tol_grad, "tol_stlpips": tol_stlpips, "max_nfe": max_nfe, "candidates": candidates,
            "choice": matching[0] if matching else None, "closest": closest[0] if closest else None}


def _fmt(value: float | None, digits: int, sign: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def markdown(result: dict[str, Any]) -> str:
    """Mean table (one row per run), the decision, and ST-LPIPS per image."""
    mean, rows, runs, decision = result["mean"], result["images"], result["runs"], result["decision"]
    names = ", ".join(r["name"] for r in rows)
    lines = [f"# Perceptual mode vs NFE ({len(rows)} photos, {result['crop']}² crops)", "",
             f"- model: `{result['model']}` ({result['model_name']}); precision {result['precision']}; "
             f"CPU: {result['cpu']}",
             f"- command: `{result['command']}`",
             f"- data: PhotoPairs ({names}), kernels 7–{KERNEL_MAX} px, σ = {NOISE}, seed {result['seed']}; "
             f"schedule {result['schedule']}, ᾱ_T = {result['alpha_bar_end']:g}; one sample per run and seed, "
             f"sample seeds {', '.join(map(str, result['seeds']))} (each scored alone, then averaged; ± = std over "
             "the seeds of the mean over photos)", "",
             "| sampler | NFE | " + " | ".join(HEADERS[m] for m in METRICS) + " | Δ grad vs ref | Δ ST-LPIPS vs ref |",
             "|---|---:|" + "---:|" * (len(METRICS) + 2)]
    ref = mean["reference"]
    for run in runs:
        v = mean[run["key"]]
        d_grad = None if None in (v["grad_ratio"], ref["grad_ratio"]) else v["grad_ratio"] - ref["grad_ratio"]
        d_st = None if None in (v["stlpips"], ref["stlpips"]) else v["stlpips"] - ref["stlpips"]
        label = f"**{run['sampler']}** (reference)" if run["key"] == "reference" else run["sampler"]
        spread = result.get("seed_std", {}).get(run["key"], {})

        def cell(m: str, v: dict[str, Any] = v, spread: dict[str, Any] = spread) -> str:
            text = _fmt(v[m], DIGITS[m])
            return text + (f" ± {spread[m]:.{DIGITS[m]}f}" if spread.get(m) is not None else "")

        lines.append(f"| {label} | {run['nfe']} | " + " | ".join(cell(m) for m in METRICS)
                     + f" | {_fmt(d_grad, 3, True)} | {_fmt(d_st, 4, True)} |")
    choice, closest = decision["choice"], decision["closest"]
    lines += ["", f"Tolerance: |Δ grad. energy| ≤ {decision['tol_grad']:g} and Δ ST-LPIPS ≤ +{decision['tol_stlpips']:g} "
              f"(means over the photos), NFE ≤ {decision['max_nfe']}."]
    if choice:
        lines.append(f"**Match:** {choice['sampler']} at {choice['nfe']} NFE (Δ grad {choice['d_grad']:+.3f}, "
                     f"Δ ST-LPIPS {choice['d_stlpips']:+.4f}, Δ PSNR {choice['d_psnr']:+.2f} dB vs the reference).")
    elif closest:
        lines.append(f"**No match.** Closest: {closest['sampler']} at {closest['nfe']} NFE (Δ grad "
                     f"{closest['d_grad']:+.3f}, Δ ST-LPIPS {_fmt(closest['d_stlpips'], 4, True)}, Δ PSNR "
                     f"{closest['d_psnr']:+.2f} dB).")
    lines += ["", "ST-LPIPS per image:", "", "| sampler | NFE | " + " | ".join(r["name"] for r in rows) + " |",
              "|---|---:|" + "---:|" * len(rows)]
    for run in runs:
        lines.append(f"| {run['sampler']} | {run['nfe']} | "
                     + " | ".join(_fmt(r[run["key"]]["stlpips"], 4) for r in rows) + " |")
    lines += ["", f"ST-LPIPS: {STLPIPS_LABEL}, Ghildyal & Liu 2022, weights of the `stlpips-pytorch` package; not "
              "LPIPS, and not comparable with it. Grad. energy: `metrics.gradient_energy_ratio` (1 = the sharp photo's detail). PSNR/HaarPSI: RGB "
              "in [0, 1], outputs rounded to 8 bits. Seconds: the restoration without the predictor (run once per "
              "photo), on the CPU above while other jobs shared it — compare within the table only."]
    missing = {k: v for k, v in result.get("unavailable", {}).items() if k in METRICS}
    if missing:
        lines.append("Unavailable: " + "; ".join(f"{k}: {v}" for k, v in missing.items()) + ".")
    return "\n".join(lines) + "\n"


def plot(result: dict[str, Any], path: Path) -> None:
    """One panel per metric: the metric against NFE (log x), one line per sampler, the reference as a horizontal
    dashed line and the predictor alone as a dotted one."""
    mean, runs = result["mean"], result["runs"]
    samplers = list(dict.fromkeys(r["sampler"] for r in runs if r["key"] not in ("predictor", "reference")))
    nfes = sorted({r["nfe"] for r in runs if r["key"] not in ("predictor", "reference")})
    panels = [("psnr", "PSNR (dB) ↑"), ("grad_ratio", "gradient-energy ratio (1 = sharp photo)"),
              ("haarpsi", "HaarPSI ↑"), ("stlpips", "ST-LPIPS (shift-tolerant, AlexNet) ↓")]
    fig = Figure(figsize=(11, 8), dpi=100)
    axes = fig.subplots(2, 2).ravel()
    for ax, (key, title) in zip(axes, panels, strict=True):
        for label in samplers:
            line = sorted((r for r in runs if r["sampler"] == label and mean[r["key"]][key] is not None),
                          key=lambda r: r["nfe"])
            ax.plot([r["nfe"] for r in line], [mean[r["key"]][key] for r in line], marker="o", label=label)
        if mean["reference"][key] is not None:
            ax.axhline(mean["reference"][key], color="black", linestyle="--", linewidth=1,
                       label=f"DDPM {result['reference_steps']} steps (reference)")
        if mean["predictor"][key] is not None:
            ax.axhline(mean["predictor"][key], color="grey", linestyle=":", linewidth=1, label="predictor alone")
        if key == "grad_ratio":
            ax.axhline(1.0, color="green", linewidth=0.6, alpha=0.6)
        ax.set_xscale("log")
        ax.set_xticks(nfes, [str(n) for n in nfes])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlabel("network evaluations (NFE)")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{result['model_name']}: perceptual mode vs NFE ({len(result['images'])} photos, "
                 f"{result['crop']}² crops)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")


def _seeds(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values:
        raise argparse.ArgumentTypeError(f"expected integers like 0,1,2, got {text!r}")
    return values


def _ints(text: str) -> list[int]:
    values = [int(v) for v in text.split(",") if v.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers like 5,10,20,50, got {text!r}")
    return values


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of ``benchmarks/perceptual_nfe.py``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default="kernel_aware", help="a shipped model's name or a model directory")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for perceptual_nfe.{json,md,png}")
    parser.add_argument("--limit", type=int, default=5, help="only the first N photos (default 5)")
    parser.add_argument("--crop", type=int, default=128, help="side of the centre crops (default 128)")
    parser.add_argument("--nfe", type=_ints, default=[5, 10, 20, 50], help="NFEs per sampler (default 5,10,20,50)")
    parser.add_argument("--samplers", default="ddpm,ddim:0,ddim:0.5,dpmsolver",
                        help="comma-separated: ddpm, ddim[:η], dpmsolver (default ddpm,ddim:0,ddim:0.5,dpmsolver; "
                        "ddim:1 is the DDPM update, the ddpm line)")
    parser.add_argument("--reference-steps", type=int, default=500, help="DDPM steps of the reference (500)")
    parser.add_argument("--schedule", choices=("linear", "cosine"), help="inference β shape (default: the model's)")
    parser.add_argument("--alpha-bar-end", type=float, help="ᾱ_T of the inference schedule (default: the model's)")
    parser.add_argument("--seed", type=int, default=0, help="blur/noise seed of the photo pairs (default 0)")
    parser.add_argument("--sample-seeds", type=_seeds, default=None,
                        help="seeds of the samples, one sample each, scores averaged (default: --seed)")
    parser.add_argument("--tol-grad", type=float, default=0.05, help="|Δ mean grad. energy ratio| allowed (0.05)")
    parser.add_argument("--tol-stlpips", type=float, default=0.01, help="Δ mean ST-LPIPS allowed (+0.01)")
    parser.add_argument("--precision", default="auto", choices=("auto", "no", "bf16"))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write the results; returns the exit code (2 when the model or data cannot load)."""
    args = build_parser().parse_args(argv)
    try:
        samplers = parse_samplers(args.samplers)
        restorer = Restorer.from_pretrained(args.checkpoint, device="cpu", precision=args.precision)
        if not restorer.diffusion:
            raise ValueError(f"{args.checkpoint}: a one-shot model has no sampler to sweep")
        dataset = PhotoPairs(kernel_max=KERNEL_MAX, noise=NOISE, seed=args.seed, crop=args.crop)
        base = restorer.preset("average")
        schedule = args.schedule or base.schedule
        alpha_bar_end = base.alpha_bar_end if args.alpha_bar_end is None else args.alpha_bar_end
        restorer.preset(steps=1, schedule=schedule, alpha_bar_end=alpha_bar_end)  # validates the knobs
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result = benchmark(restorer, dataset, samplers, args.nfe, reference_steps=args.reference_steps, limit=args.limit,
                       seeds=args.sample_seeds or [args.seed], schedule=schedule, alpha_bar_end=alpha_bar_end)
    argv_text = sys.argv[1:] if argv is None else argv
    result.update(model=str(args.checkpoint), model_name=restorer.cfg.name, precision=restorer.precision,
                  cpu=describe_cpu(), crop=args.crop, seed=args.seed, reference_steps=args.reference_steps,
                  schedule=schedule, alpha_bar_end=alpha_bar_end,
                  command=shlex.join(["python", "benchmarks/perceptual_nfe.py", *argv_text]))
    result["decision"] = decide(result, args.tol_grad, args.tol_stlpips)
    write_report(args.out / "perceptual_nfe", result, markdown(result))
    plot(result, args.out / "perceptual_nfe.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
