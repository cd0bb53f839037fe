"""Does the σ map point at the errors? Per-pixel spread of K samples against the error of their average.

    python benchmarks/uncertainty.py                              # kernel_aware, 5 photos, 128² crops, 10 × 8
    python benchmarks/uncertainty.py --checkpoint default --steps 10 --average 16 --limit 2

For one shipped model (``Restorer.from_pretrained``) on the ``PhotoPairs`` benchmark (sample photos, seeded
camera-shake kernels of 7–33 px, σ = 0.01 noise, centre crops of ``--crop``), each photo is restored in averaging
mode with ``return_samples=True``: ``--steps`` reverse steps × ``--average`` samples (seeds seed … seed+K−1), which
gives the restored image (the mean of the samples) and σ, the per-pixel standard deviation over the samples
(``Restoration.sigma``: [0,1]-image units, root mean square over the colour channels). Against σ we put the
actual error of the restored image, in the same units: e = RMS over channels of (restored − sharp)/2, per pixel
(and, as a second view, luminance σ against |luminance error|).

Reported, per photo and pooled over every pixel of every photo: Pearson's r and Spearman's ρ of (σ, e); the same
for a σ-free baseline, the gradient magnitude of the restored image (errors of a deblurrer sit on edges, so a
σ map that only traced edges would score as well as this one); the mean error per σ quintile (pooled), and the
error-to-σ ratio. Results: ``<out>/uncertainty.{json,md}`` and ``<out>/uncertainty_example.png`` (blurry |
restored | σ | |error|, σ and error on separate colour scales, for ``--example``, the first photo by default), with the CPU and the command. The photos
keep their benchmark order (and so their kernels) whichever is shown.
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
from matplotlib.figure import Figure
from scipy import stats
from torch import Tensor
from tqdm.auto import tqdm

from stochdeblur.data.photos import KERNEL_MAX, NOISE, PhotoPairs
from stochdeblur.restorer import Restorer
from stochdeblur.utils import atomic_path, describe_cpu, write_report

RESULTS = Path(__file__).parent / "results"
_LUMA = torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)
QUANTILES = 5


def _luma(image: Tensor) -> Tensor:
    """[..., 3, H, W] → [..., H, W]."""
    return (image * _LUMA.to(image)).sum(dim=-3)


def maps(samples: Tensor, image: Tensor, sigma: Tensor, sharp: Tensor) -> dict[str, np.ndarray]:
    """The per-pixel maps of one photo, [H, W] float64 in [0,1]-image units.

    ``samples`` [K,3,H,W], ``image`` [3,H,W] (their mean), ``sigma`` [H,W] (``Restoration.sigma``), ``sharp`` [3,H,W],
    all in [−1, 1] except σ. Returns σ and e (RMS over channels), their luminance versions, and the gradient
    magnitude of the restored luminance (the σ-free baseline).
    """
    error = ((image - sharp) / 2).pow(2).mean(dim=0).sqrt()
    luma_sigma = (_luma(samples) / 2).std(dim=0, correction=0)
    luma_error = ((_luma(image) - _luma(sharp)) / 2).abs()
    y = _luma(image) / 2
    gx = torch.zeros_like(y)
    gy = torch.zeros_like(y)
    gx[:, 1:-1] = (y[:, 2:] - y[:, :-2]) / 2
    gy[1:-1, :] = (y[2:, :] - y[:-2, :]) / 2
    out = {"sigma": sigma, "error": error, "luma_sigma": luma_sigma, "luma_error": luma_error,
           "gradient": (gx.pow(2) + gy.pow(2)).sqrt()}
    return {k: v.double().cpu().numpy() for k, v in out.items()}


def correlations(x: np.ndarray, y: np.ndarray) -> dict[str, float | None]:
    """Pearson's r and Spearman's ρ of two maps (flattened); None where one is constant."""
    x, y = x.ravel(), y.ravel()
    if x.std() == 0 or y.std() == 0:
        return {"pearson": None, "spearman": None}
    return {"pearson": float(stats.pearsonr(x, y)[0]), "spearman": float(stats.spearmanr(x, y)[0])}


def _scores(m: dict[str, np.ndarray]) -> dict[str, Any]:
    return {"sigma_vs_error": correlations(m["sigma"], m["error"]),
            "luma_sigma_vs_error": correlations(m["luma_sigma"], m["luma_error"]),
            "gradient_vs_error": correlations(m["gradient"], m["error"]),
            "mean_sigma": float(m["sigma"].mean()), "mean_error": float(m["error"].mean()),
            "rmse": float(np.sqrt((m["error"] ** 2).mean()))}


def by_quantile(sigma: np.ndarray, error: np.ndarray, count: int = QUANTILES) -> list[dict[str, float]]:
    """Mean σ and mean error of the pixels in each σ quantile (lowest σ first)."""
    sigma, error = sigma.ravel(), error.ravel()
    order = np.argsort(sigma, kind="stable")
    return [{"quantile": i + 1, "mean_sigma": float(sigma[part].mean()), "mean_error": float(error[part].mean())}
            for i, part in enumerate(np.array_split(order, count))]


def benchmark(restorer: Restorer, dataset: PhotoPairs, *, steps: int, average: int, limit: int | None = None,
              seed: int = 0, example: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Restore and score the first ``limit`` photos; returns (results, the images and maps of the photo named
    ``example``, default the first)."""
    count = len(dataset) if limit is None else min(limit, len(dataset))
    rows, pooled, shown = [], {}, {}
    example = example or dataset.names[0]
    for index in tqdm(range(count), desc="photos", unit="photo"):
        item = dataset[index]
        blur, sharp = item["blur"], item["sharp"]
        start = time.perf_counter()
        result = restorer(blur, steps=steps, average=average, seed=seed, return_samples=True)
        seconds = time.perf_counter() - start
        m = maps(result.samples[:, 0].cpu(), result.image[0].cpu(), result.sigma[0].cpu(), sharp)
        rows.append({"name": item["name"], "kernel_size": int(item["kernel"].shape[-1]), "seconds": seconds,
                     **_scores(m)})
        for key, value in m.items():
            pooled.setdefault(key, []).append(value.ravel())
        if item["name"] == example:
            shown = {"name": item["name"], "blur": blur, "restored": result.image[0].cpu(), "maps": m,
                     "scores": rows[-1]}
    pooled = {k: np.concatenate(v) for k, v in pooled.items()}
    summary = {"pooled": _scores(pooled), "quantiles": by_quantile(pooled["sigma"], pooled["error"]),
               "mean_over_images": {key: {stat: float(np.mean([r[key][stat] for r in rows
                                                               if r[key][stat] is not None]))
                                          for stat in ("pearson", "spearman")}
                                    for key in ("sigma_vs_error", "luma_sigma_vs_error", "gradient_vs_error")}}
    return {"images": rows, **summary}, shown


def _fmt(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def markdown(result: dict[str, Any]) -> str:
    """Per-photo and pooled correlations, the σ quintiles, and how to read them."""
    rows, pooled = result["images"], result["pooled"]
    lines = [f"# σ map vs actual error ({len(rows)} photos, {result['crop']}² crops)", "",
             f"- model: `{result['model']}` ({result['model_name']}); precision {result['precision']}; "
             f"CPU: {result['cpu']}",
             f"- command: `{result['command']}`",
             f"- averaging mode: {result['steps']} steps × {result['average']} samples (seeds {result['seed']}…"
             f"{result['seed'] + result['average'] - 1}), sampler {result['sampler']}; PhotoPairs, kernels "
             f"7–{KERNEL_MAX} px, σ = {NOISE}, seed {result['seed']}", "",
             "| photo | kernel px | Pearson r(σ, e) | Spearman ρ(σ, e) | luminance r / ρ | baseline \\|∇x\\| r / ρ | "
             "mean σ | mean e | s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]

    def row(label: str, kernel: str, r: dict[str, Any], seconds: str) -> str:
        s, lu, g = r["sigma_vs_error"], r["luma_sigma_vs_error"], r["gradient_vs_error"]
        return (f"| {label} | {kernel} | {_fmt(s['pearson'])} | {_fmt(s['spearman'])} | "
                f"{_fmt(lu['pearson'])} / {_fmt(lu['spearman'])} | {_fmt(g['pearson'])} / {_fmt(g['spearman'])} | "
                f"{_fmt(r['mean_sigma'], 4)} | {_fmt(r['mean_error'], 4)} | {seconds} |")

    for r in rows:
        lines.append(row(r["name"], str(r["kernel_size"]), r, f"{r['seconds']:.1f}"))
    lines.append(row("**pooled** (all pixels)", "", pooled, ""))
    mean = result["mean_over_images"]
    lines += ["", f"Mean over photos: Pearson {_fmt(mean['sigma_vs_error']['pearson'])}, Spearman "
              f"{_fmt(mean['sigma_vs_error']['spearman'])} (baseline |∇x|: {_fmt(mean['gradient_vs_error']['pearson'])}"
              f", {_fmt(mean['gradient_vs_error']['spearman'])}).", "",
              "Mean error per σ quintile (pooled pixels, lowest σ first):", "",
              "| σ quintile | mean σ | mean e | e / σ |", "|---:|---:|---:|---:|"]
    for q in result["quantiles"]:
        ratio = q["mean_error"] / q["mean_sigma"] if q["mean_sigma"] > 0 else None
        lines.append(f"| {q['quantile']} | {q['mean_sigma']:.4f} | {q['mean_error']:.4f} | {_fmt(ratio, 2)} |")
    lines += ["", "σ: per-pixel standard deviation over the K samples (`Restoration.sigma`, RMS over RGB, [0,1] units); "
              "e: RMS over RGB of restored − sharp, the restored image being the samples' mean (float, not rounded). "
              "Luminance: σ of the samples' luminance vs |luminance error|. Baseline: gradient magnitude of the "
              "restored luminance (central differences), which knows nothing of the samples."]
    return "\n".join(lines) + "\n"


def _rgb(image: Tensor) -> np.ndarray:
    return ((image.clamp(-1, 1) + 1) / 2).permute(1, 2, 0).numpy()


def plot_example(example: dict[str, Any], path: Path) -> None:
    """blurry | restored | σ | |error|, σ and the error each on its own colour scale (0 to its 99th percentile,
    the ratio of the two scales in the title), so σ's pattern shows even where it is much smaller than the error."""
    m = example["maps"]
    fig = Figure(figsize=(15, 4), dpi=100)
    axes = fig.subplots(1, 4)
    axes[0].imshow(_rgb(example["blur"]))
    axes[0].set_title("blurry input")
    axes[1].imshow(_rgb(example["restored"]))
    axes[1].set_title("restored (mean of the samples)")
    tops = {}
    for ax, key, title in ((axes[2], "sigma", "σ over the samples"), (axes[3], "error", "|restored − sharp| (RMS RGB)")):
        tops[key] = float(np.percentile(m[key], 99)) or 1.0
        shown = ax.imshow(m[key], cmap="magma", vmin=0, vmax=tops[key])
        ax.set_title(title)
        fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.02)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    s = example["scores"]["sigma_vs_error"]
    fig.suptitle(f"{example['name']}: Pearson r(σ, e) = {_fmt(s['pearson'], 2)}, Spearman ρ = {_fmt(s['spearman'], 2)}; "
                 f"colour scales differ: error scale = {tops['error'] / tops['sigma']:.1f} × σ scale ([0,1]-image units)")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of ``benchmarks/uncertainty.py``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default="kernel_aware", help="a shipped model's name or a model directory")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for uncertainty.{json,md} and the figure")
    parser.add_argument("--limit", type=int, default=5, help="only the first N photos (default 5)")
    parser.add_argument("--crop", type=int, default=128, help="side of the centre crops (default 128)")
    parser.add_argument("--steps", type=int, default=10, help="reverse steps per sample (default 10)")
    parser.add_argument("--average", type=int, default=8, help="samples K (default 8; σ needs K >= 2)")
    parser.add_argument("--example", help="photo of the example figure (default: the first)")
    parser.add_argument("--seed", type=int, default=0, help="blur/noise seed and the first sample's seed")
    parser.add_argument("--precision", default="auto", choices=("auto", "no", "bf16"))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write the results; returns the exit code (2 when it cannot start)."""
    args = build_parser().parse_args(argv)
    try:
        if args.steps < 1 or args.average < 2:
            raise ValueError(f"need --steps >= 1 and --average >= 2 for a spread (got {args.steps}, {args.average})")
        restorer = Restorer.from_pretrained(args.checkpoint, device="cpu", precision=args.precision)
        if not restorer.diffusion:
            raise ValueError(f"{args.checkpoint}: a one-shot model draws no samples, so it has no σ map")
        dataset = PhotoPairs(kernel_max=KERNEL_MAX, noise=NOISE, seed=args.seed, crop=args.crop)
        count = len(dataset) if args.limit is None else min(args.limit, len(dataset))
        if args.example and args.example not in dataset.names[:count]:
            raise ValueError(f"--example {args.example!r} is not among the photos run: {', '.join(dataset.names[:count])}")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result, example = benchmark(restorer, dataset, steps=args.steps, average=args.average, limit=args.limit,
                                seed=args.seed, example=args.example)
    argv_text = sys.argv[1:] if argv is None else argv
    run = restorer.preset(steps=args.steps, average=args.average)
    result.update(model=str(args.checkpoint), model_name=restorer.cfg.name, precision=restorer.precision,
                  cpu=describe_cpu(), crop=args.crop, seed=args.seed, steps=args.steps, average=args.average,
                  sampler=run.sampler, command=shlex.join(["python", "benchmarks/uncertainty.py", *argv_text]))
    write_report(args.out / "uncertainty", result, markdown(result))
    plot_example(example, args.out / "uncertainty_example.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
