"""Web app (Gradio, the ``app`` extra): drop a photo, pick a mode, get it deblurred in the browser.

    python scripts/app.py [--checkpoint SPEC] [--port N] [--max-pixels N]

Shows blurry | restored behind a slider, the per-pixel spread of the K averaged samples (σ map, when K > 1)
and the blur kernel the model estimates (when it estimates one), with the restored PNG to download. Requests
run one at a time through Gradio's queue (concurrency 1), so two visitors never share the model at once; a
file that is not an image, or has more than ``--max-pixels`` pixels, gets a one-line message. Runs offline:
the Gradio front end is served locally and the theme uses system fonts (no web-font download).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib import colormaps
from torch import Tensor, nn

from stochdeblur.cli.sample import KERNEL_ZOOM, SIGMA_COLORMAP
from stochdeblur.config import RunConfig
from stochdeblur.hub import CLASSICAL, load, shipped_models
from stochdeblur.io import ImageReadError, read_image, to_uint8, write_image
from stochdeblur.restorer import Restorer

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # read when gradio is imported: no telemetry calls

MODES = ("predictor", "average", "perceptual")
MAX_PIXELS = 4_000_000  # default upload limit: 4 megapixels take minutes in the perceptual mode on a CPU
MAX_STEPS, MAX_AVERAGE = 1000, 16


class AppError(ValueError):
    """A request the app refuses (bad upload, bad setting): shown to the visitor as a message."""


def sigma_image(sigma: Tensor) -> np.ndarray:
    """σ map [H, W] → [H, W, 3] uint8 in the ``sample.py --uncertainty`` colour map (0 → its maximum)."""
    values = sigma.float().cpu().numpy()
    scaled = values / values.max() if values.max() > 0 else values
    return np.round(colormaps[SIGMA_COLORMAP](scaled)[..., :3] * 255).astype(np.uint8)


def kernel_image(kernel: Tensor) -> np.ndarray:
    """Kernel [k, k] → grey [k·zoom, k·zoom] uint8 scaled to its maximum (as ``sample.py --save-kernel``)."""
    values = kernel.float().cpu().numpy()
    peak = values.max()
    scaled = np.clip(values / peak, 0, 1) if peak > 0 else np.zeros_like(values)
    return np.round(scaled * 255).astype(np.uint8).repeat(KERNEL_ZOOM, axis=0).repeat(KERNEL_ZOOM, axis=1)


@dataclass
class Result:
    """One restoration as the page shows it: uint8 [H, W, 3] images, the PNG to download and a note."""

    blurry: np.ndarray
    restored: np.ndarray
    sigma: np.ndarray | None
    kernel: np.ndarray | None
    path: Path
    note: str


class Deblurrer:
    """The model behind the app: validates an upload, restores it in a mode, renders σ map and kernel."""

    def __init__(self, model: nn.Module, cfg: RunConfig, device: torch.device, max_pixels: int = MAX_PIXELS,
                 out_dir: str | Path | None = None) -> None:
        self.cfg, self.device, self.max_pixels = cfg, device, max_pixels
        self.restorer = Restorer(model, cfg, device)
        self.out_dir = Path(out_dir or tempfile.mkdtemp(prefix="stochdeblur-app-"))
        self.diffusion = self.restorer.diffusion

    def preset(self, mode: str) -> tuple[int, int]:
        """(steps, average) of a named mode of the model (1 × 1 for one-shot models)."""
        presets = self.restorer.presets
        if mode not in presets or not self.diffusion:
            return 0, 1
        return presets[mode].steps, presets[mode].average

    def read(self, path: str | Path) -> Tensor:
        """The upload as [3, H, W] in [-1, 1]; :class:`AppError` naming the file and the reason otherwise."""
        try:
            return read_image(path, max_pixels=self.max_pixels)
        except ImageReadError as exc:
            raise AppError(f"{Path(path).name}: {exc.reason}") from None

    def __call__(self, path: str | Path, mode: str = "average", steps: int | None = None,
                 average: int | None = None, seed: int = 0) -> Result:
        """Restore the photo at ``path``; ``steps``/``average`` replace the mode's preset values."""
        if mode not in MODES:
            raise AppError(f"mode {mode!r} is not one of {', '.join(MODES)}")
        preset_steps, preset_average = self.preset(mode)
        one_shot = mode == "predictor" or not self.diffusion
        steps = 0 if one_shot else int(preset_steps if steps is None else steps)
        average = 1 if not steps else int(preset_average if average is None else average)
        if not 0 <= steps <= MAX_STEPS or not 1 <= average <= MAX_AVERAGE:
            raise AppError(f"steps must be 0–{MAX_STEPS} and averaging 1–{MAX_AVERAGE}")
        image = self.read(path)
        kernels = self.restorer.estimate_kernels(image)
        result = self.restorer(image, None if one_shot else mode, steps=steps, average=average, seed=int(seed),
                               progress=True, return_samples=True)  # the mode's sampler settings
        restored = result.image[0]
        out = write_image(self.out_dir / f"{Path(path).stem}_restored.png", restored)
        many = result.samples.shape[0] > 1
        notes = [self.describe(steps, average, int(seed))]
        if not many:
            notes.append("one sample, so no σ map (average ≥ 2 samples in a diffusion mode to see one)")
        if kernels is None:
            notes.append(f"{self.cfg.name} estimates no blur kernel")
        return Result(to_uint8(image), to_uint8(restored), sigma_image(result.sigma[0]) if many else None,
                      kernel_image(kernels[0]) if kernels is not None else None, out, "; ".join(notes) + ".")

    def describe(self, steps: int, average: int, seed: int) -> str:
        """What one request ran, in words."""
        if not self.diffusion:
            return f"{self.cfg.name} ({self.cfg.method}): one shot"
        if not steps:
            return f"{self.cfg.name}: predictor only"
        return f"{self.cfg.name}: {steps} steps × {average} sample{'s' if average > 1 else ''}, seed {seed}"


def load_model(spec: str, device: torch.device) -> tuple[nn.Module, RunConfig, str]:
    """(model, config, note) for ``--checkpoint``; ``default`` falls back to ``classical`` if none is shipped.

    Raises:
        CheckpointError: any other spec that cannot be loaded.
    """
    if spec == "default" and "default" not in shipped_models():
        model, cfg = load(CLASSICAL, device)
        return model, cfg, ("No model is shipped in stochdeblur/weights/default, so this app runs the "
                            "classical method (blind kernel estimate + TV deconvolution); pass --checkpoint "
                            "DIR for a trained model.")
    model, cfg = load(spec, device)
    return model, cfg, ""


def build_app(deblurrer: Deblurrer, note: str = "") -> Any:
    """The Gradio page around ``deblurrer`` (queued with concurrency 1; launch it with :func:`launch`)."""
    import gradio as gr

    steps0, average0 = deblurrer.preset("average")
    with gr.Blocks(title="stochdeblur", analytics_enabled=False) as app:
        gr.Markdown(f"## stochdeblur: blind motion deblurring\nModel: **{deblurrer.cfg.name}** "
                    f"({deblurrer.cfg.method}). Upload a blurry photo (up to {deblurrer.max_pixels:,} "
                    "pixels)." + (f"\n\n{note}" if note else ""))
        with gr.Row():
            with gr.Column(scale=1):
                photo = gr.File(label="Blurry photo (PNG, JPEG, TIFF, WebP)", type="filepath",
                                elem_id="photo")
                mode = gr.Radio(list(MODES), value="average", label="Mode", visible=deblurrer.diffusion,
                                elem_id="mode", info="predictor: fast and smooth; average: higher PSNR; "
                                                     "perceptual: more detail")
                steps = gr.Slider(1, MAX_STEPS, value=max(1, steps0), step=1, label="Sampling steps",
                                  visible=deblurrer.diffusion)
                average = gr.Slider(1, MAX_AVERAGE, value=average0, step=1, label="Samples averaged",
                                    visible=deblurrer.diffusion)
                seed = gr.Number(value=0, precision=0, label="Seed", visible=deblurrer.diffusion)
                button = gr.Button("Deblur", variant="primary", elem_id="deblur")
            with gr.Column(scale=2):
                slider = gr.ImageSlider(label="blurry | restored", type="numpy", format="png",
                                        elem_id="result")
                with gr.Row():
                    sigma = gr.Image(label="uncertainty σ (spread of the samples)", format="png", height=240,
                                     elem_id="sigma")
                    kernel = gr.Image(label="estimated blur kernel", format="png", height=240,
                                      elem_id="kernel")
                download = gr.File(label="Restored PNG", elem_id="download")
                info = gr.Markdown(elem_id="info")

        def on_mode(name: str) -> tuple[Any, Any]:
            s, k = deblurrer.preset(name)
            diffusion = name != "predictor"
            return (gr.update(value=max(1, s), interactive=diffusion),
                    gr.update(value=k, interactive=diffusion))

        def run(path: str | None, name: str, n_steps: float, n_average: float, n_seed: float,
                progress: gr.Progress = gr.Progress(track_tqdm=True)) -> list[Any]:  # noqa: B008 - Gradio's API
            if not path:
                raise gr.Error("Upload a photo first.")
            progress(0, desc="restoring")
            try:
                result = deblurrer(path, name, int(n_steps), int(n_average), int(n_seed or 0))
            except AppError as exc:
                raise gr.Error(str(exc)) from None
            except torch.OutOfMemoryError:
                raise gr.Error("Out of memory: try a smaller photo.") from None
            return [(result.blurry, result.restored), result.sigma, result.kernel, str(result.path),
                    result.note]

        mode.change(on_mode, mode, [steps, average], queue=False)
        button.click(run, [photo, mode, steps, average, seed], [slider, sigma, kernel, download, info],
                     concurrency_limit=1)
    return app.queue(default_concurrency_limit=1, max_size=32)


def launch(app: Any, port: int | None = None, host: str = "127.0.0.1", block: bool = True,
           quiet: bool = False) -> Any:
    """Serve ``app`` on ``host:port`` (None: the first free port from 7860) with no share link, analytics or
    web fonts; prints the address unless ``quiet``; ``block=False`` returns while it serves (``app.close()``
    stops it)."""
    import gradio as gr

    theme = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],
                              font_mono=["ui-monospace", "monospace"])
    return app.launch(server_name=host, server_port=port, share=False, prevent_thread_lock=not block,
                      quiet=quiet, theme=theme, footer_links=[], ssr_mode=False, max_file_size="100mb")

