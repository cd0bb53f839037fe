"""Deblur an image or a folder of images with a trained model (DvSR, a GAN or the classical method).

    python scripts/sample.py --input blurry/ --output restored/ --checkpoint runs/x/model --mode perceptual

Modes (presets of the model's ``sample`` config): ``predictor`` (0 steps), ``average`` (``sample.steps`` ×
``sample.average``, 10 × 4: the default), ``perceptual`` (``sample.modes.perceptual``; the shipped default's: 10
DDIM steps with η = 0.5, one sample), ``perceptual_500`` (the paper's 500 DDPM steps × 1). ``--steps`` and
``--average`` replace the mode's values; ``--steps N`` without ``--mode`` or ``--average`` draws one sample.
The perception–distortion knobs of the reverse process replace the mode's (or the ``sample`` section's) too:
``--sampler ddpm|ddim|dpmsolver``, ``--eta`` (DDIM's η: 0 deterministic, 1 ancestral), ``--schedule
linear|cosine`` (β shape of the inference schedule) and ``--alpha-bar-end`` (ᾱ_T, its final noise level), e.g.
``--mode perceptual --steps 20 --sampler ddim --eta 1 --schedule cosine``.

Writes ``<output>/<stem>.png`` per input, and with ``--compare`` ``<stem>_compare.png`` (blurry | restored),
``--save-samples`` ``<stem>_sample<k>.png`` (sample k, seed + k), ``--uncertainty`` ``<stem>_sigma.png`` and
``<stem>_sigma.npy`` (per-pixel standard deviation over the samples), ``--save-kernel`` ``<stem>_kernel.png``
and ``<stem>_kernel.npy`` (the estimated blur kernel). A file that cannot be read is reported and skipped; the
exit code is 1 if any file failed, 2 if nothing could start (no model, bad arguments), 0 otherwise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from matplotlib import colormaps
from PIL import Image
from torch import Tensor
from tqdm.auto import tqdm

from stochdeblur.config import INFERENCE_SCHEDULES, SAMPLER_TYPES, ModePreset
from stochdeblur.diffusion.sampler import Restoration
from stochdeblur.io import ImageReadError, list_images, read_image, write_image
from stochdeblur.restorer import Restorer
from stochdeblur.utils import atomic_path

SIGMA_COLORMAP = "magma"  # perceptually uniform: equal steps in σ look equally different
KERNEL_ZOOM = 8


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of ``scripts/sample.py``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", required=True, type=Path, help="an image file or a folder of images")
    parser.add_argument("--output", required=True, type=Path, help="folder for the restored PNGs")
    parser.add_argument("--checkpoint", type=Path, help="model directory (model.safetensors + config.json), the "
                        "name of a model shipped in stochdeblur/weights/, or 'classical' (blind deconvolution, no "
                        "network); default: the shipped DvSR model")
    parser.add_argument("--model-set", nargs="+", metavar="KEY=VALUE", help="change an inference setting of the "
                        "model's config, e.g. predictor.edge_fraction=1 (the kernel estimate's salient-edge share)")
    parser.add_argument("--mode", help="predictor, average (default), perceptual, perceptual_500 or another name in "
                        "the model's sample.modes: a preset of steps × samples and sampler settings")
    parser.add_argument("--steps", type=int, help="reverse diffusion steps, replacing the mode's (without --mode or "
                        "--average: one sample of N steps)")
    parser.add_argument("--average", type=int, help="samples averaged per image, replacing the mode's")
    parser.add_argument("--average-chunk", type=int, help="most samples per denoiser call (0 = auto: all on a GPU, "
                        "<= 256² pixels per call on a CPU, where big batches are slower)")
    parser.add_argument("--seed", type=int, help="sample k of each image uses seed + k (default: config)")
    parser.add_argument("--sampler", choices=SAMPLER_TYPES, help="reverse-step rule (default: the mode's, else "
                        "sample.sampler)")
    parser.add_argument("--eta", type=float, help="DDIM's η in [0, 1]: 0 = deterministic after the initial noise, "
                        "1 = ancestral (the DDPM update); needs --sampler ddim or a DDIM mode")
    parser.add_argument("--schedule", choices=INFERENCE_SCHEDULES, help="β shape of the inference noise schedule "
                        "(default: the mode's, else sample.schedule)")
    parser.add_argument("--alpha-bar-end", type=float, help="ᾱ_T in (0, 1), the noise level the reverse process "
                        "starts from (default: the mode's, else sample.alpha_bar_end = 1e-3)")
    parser.add_argument("--tile", type=int, help="tile side for images larger than this (0 = never tile)")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (cuda when available)")
    parser.add_argument("--predictor-only", action="store_true", help="skip the diffusion refinement "
                        "(= --mode predictor)")
    parser.add_argument("--compare", action="store_true", help="also write <stem>_compare.png (blurry | output)")
    parser.add_argument("--save-samples", action="store_true", help="also write the K samples behind each output, "
                        "<stem>_sample<k>.png (seed + k)")
    parser.add_argument("--uncertainty", action="store_true", help="also write the per-pixel standard deviation "
                        "over the K samples: <stem>_sigma.npy (float32, [0,1]-image units) and <stem>_sigma.png "
                        f"({SIGMA_COLORMAP} colour map, 0 to its maximum)")
    parser.add_argument("--save-kernel", action="store_true", help="also write the estimated blur kernel: "
                        f"<stem>_kernel.npy and <stem>_kernel.png (scaled to its maximum, ×{KERNEL_ZOOM} nearest)")
    parser.add_argument("--precision", default="auto", choices=("auto", "no", "bf16"),
                        help="bf16 autocast where the hardware runs it fast (auto), never (no) or always (bf16)")
    return parser


def _inputs(path: Path) -> list[Path]:
    if path.is_dir():
        return list_images(path)
    if path.is_file():
        return [path]
    raise ImageReadError(path, "no such file or directory")


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise ValueError(f"--device {name!r} must be cpu, cuda[:N] or auto")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: CUDA is not available on this machine")
    return torch.device(name)


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, array)


def _save_png(path: Path, codes: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        Image.fromarray(codes).save(tmp, format="PNG")


def write_uncertainty(folder: Path, stem: str, sigma: Tensor) -> None:
    """``<stem>_sigma.npy`` (σ [H,W] float32, [0,1]-image units) and ``<stem>_sigma.png`` (colour-mapped 0 → max)."""
    values = sigma.float().cpu().numpy()
    _save_npy(folder / f"{stem}_sigma.npy", values)
    scaled = values / values.max() if values.max() > 0 else values
    rgb = colormaps[SIGMA_COLORMAP](scaled)[..., :3]
    _save_png(folder / f"{stem}_sigma.png", np.round(rgb * 255).astype(np.uint8))


def write_kernel(folder: Path, stem: str, kernel: Tensor) -> None:
    """``<stem>_kernel.npy`` (the kernel [k,k] as estimated) and ``<stem>_kernel.png`` (grey, scaled to its
    maximum, each tap a ``KERNEL_ZOOM``² block so a 33-px kernel is visible)."""
    values = kernel.float().cpu().numpy()
    _save_npy(folder / f"{stem}_kernel.npy", values)
    peak = values.max()
    scaled = np.clip(values / peak, 0, 1) if peak > 0 else np.zeros_like(values)
    codes = np.round(scaled * 255).astype(np.uint8).repeat(KERNEL_ZOOM, axis=0).repeat(KERNEL_ZOOM, axis=1)
    _save_png(folder / f"{stem}_kernel.png", codes)


def _settings(args: argparse.Namespace, restorer: Restorer) -> tuple[str | None, ModePreset]:
    """(mode, complete setting) of the command line: ``--predictor-only`` = ``--mode predictor``; no mode and no
    ``--steps`` = the averaging mode; explicit ``--steps``/``--average`` and sampler flags replace the mode's."""
    mode = args.mode
    if args.predictor_only:
        if mode not in (None, "predictor"):
            raise ValueError(f"--predictor-only contradicts --mode {mode}")
        mode = "predictor"
    if mode is None and args.steps is None:
        mode = "average"
    return mode, restorer.preset(mode, args.steps, args.average, sampler=args.sampler, eta=args.eta,
                                 schedule=args.schedule, alpha_bar_end=args.alpha_bar_end)


def describe_sampling(run: ModePreset) -> str:
    """``"20 steps × 1 sample (ddim η=1, cosine β, ᾱ_T=0.001)"``, or ``"predictor only"``."""
    if not run.steps:
        return "predictor only"
    rule = f"ddim η={run.eta:g}" if run.sampler == "ddim" else run.sampler
    return (f"{run.steps} steps × {run.average} sample{'s' * (run.average > 1)} "
            f"({rule}, {run.schedule} β, ᾱ_T={run.alpha_bar_end:g})")


def _describe(mode: str | None, run: ModePreset) -> str:
    setting = describe_sampling(run)
    return f"mode {mode}: {setting}" if mode else setting


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 some images failed, 2 nothing could run)."""
    args = build_parser().parse_args(argv)
    try:
        device = _device(args.device)
        files = _inputs(args.input)
        restorer = Restorer.from_pretrained(args.checkpoint, device, args.precision, args.model_set)
        mode, run = _settings(args, restorer)
    except ValueError as exc:  # CheckpointError, ImageReadError, bad --device or mode
        print(f"error: {exc}", file=sys.stderr)
        return 2
    model, cfg = restorer.model, restorer.cfg
    if not files:
        print(f"error: no images found in {args.input}", file=sys.stderr)
        return 2
    if args.output.resolve() in {f.parent.resolve() for f in files}:
        print(f"error: --output {args.output} is the input folder; restored PNGs would overwrite inputs",
              file=sys.stderr)
        return 2
    steps, average = run.steps, run.average
    diffusion_flags = [flag for flag, value in (("--mode", args.mode), ("--steps", args.steps),
                                                 ("--average", args.average), ("--sampler", args.sampler),
                                                 ("--eta", args.eta), ("--schedule", args.schedule),
                                                 ("--alpha-bar-end", args.alpha_bar_end))
                       if value is not None]
    if not model.samples and diffusion_flags:
        print(f"note: {cfg.name} ({cfg.method}) deblurs in one shot; {', '.join(diffusion_flags)} ignored",
              file=sys.stderr)
    elif model.samples:
        print(_describe(mode, run))
    if args.uncertainty and (not model.samples or not steps or average < 2):
        print("note: one sample per image, so the σ map is zero; average K >= 2 samples for a spread "
              "(e.g. --mode perceptual --average 4)", file=sys.stderr)
    if args.average_chunk is not None and model.samples:
        model.average_chunk = max(0, args.average_chunk)
    keep_samples = args.save_samples or args.uncertainty
    options = {
        "steps": steps,
        "average": average,
        "seed": args.seed,
        "sampler": run.sampler,
        "eta": run.eta if run.sampler == "ddim" else None,
        "schedule": run.schedule,
        "alpha_bar_end": run.alpha_bar_end,
        "tile": args.tile,
        "return_samples": keep_samples,
    }
    failures, kernel_noted = 0, False
    for path in tqdm(files, desc="images", unit="img"):
        out, stem = args.output, path.stem
        try:
            blur = read_image(path)
            kernels = restorer.estimate_kernels(blur) if args.save_kernel else None
            result = restorer(blur, progress=True, **options)
            restoration = result if isinstance(result, Restoration) else None
            restored = (result.image if restoration else result)[0].cpu()
            write_image(out / f"{stem}.png", restored)
            if args.compare:
                write_image(out / f"{stem}_compare.png", torch.cat([blur, restored], dim=2))
            if args.save_samples:
                for k, image in enumerate(restoration.samples[:, 0]):
                    write_image(out / f"{stem}_sample{k}.png", image.float())
            if args.uncertainty:
                write_uncertainty(out, stem, restoration.sigma[0])
            if kernels is not None:
                write_kernel(out, stem, kernels[0])
            elif args.save_kernel and not kernel_noted:
                kernel_noted = True
                tqdm.write(f"note: {cfg.name} ({cfg.method}) estimates no blur kernel; --save-kernel writes nothing "
                           "(--checkpoint classical or a predictor.type=kernel_aware model does)", file=sys.stderr)
        except (ImageReadError, ValueError) as exc:
            failures += 1
            tqdm.write(f"skipped {path}: {exc}", file=sys.stderr)
        except torch.OutOfMemoryError:
            failures += 1
            tqdm.write(f"skipped {path}: out of memory; try a smaller --tile", file=sys.stderr)
    print(f"restored {len(files) - failures} of {len(files)} images into {args.output}")
    return 1 if failures else 0
