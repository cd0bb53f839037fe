"""Serve the deblurring web app (:mod:`stochdeblur.app`; needs ``pip install -e '.[app]'``).

    python scripts/app.py                                  # the shipped model on http://127.0.0.1:7860
    python scripts/app.py --checkpoint runs/my_run/model --port 8080

Exit code 2 (one line) when the model cannot be loaded or Gradio is not installed.
"""

from __future__ import annotations

import argparse
import sys

import torch

from stochdeblur.app import MAX_PIXELS, Deblurrer, build_app, launch, load_model
from stochdeblur.hub import CheckpointError


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of ``scripts/app.py``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="default",
                        help="model directory, shipped model name or 'classical' (default: the shipped "
                             "model; the classical method when none is shipped)")
    parser.add_argument("--port", type=int, help="port (default: the first free one from 7860)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    parser.add_argument("--max-pixels", type=int, default=MAX_PIXELS, help="largest upload in pixels")
    parser.add_argument("--device", default="auto", help="cpu, cuda[:N] or auto")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Load the model and serve the app until interrupted; returns the exit code."""
    args = build_parser().parse_args(argv)
    auto = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(auto if args.device == "auto" else args.device)
    try:
        import gradio  # noqa: F401 - only to say how to install it
    except ImportError:
        print("error: the app needs Gradio: pip install -e '.[app]'", file=sys.stderr)
        return 2
    try:
        model, cfg, note = load_model(args.checkpoint, device)
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if note:
        print(note)
    print(f"model {cfg.name} ({cfg.method}) on {device}; Ctrl-C stops the app")
    launch(build_app(Deblurrer(model, cfg, device, args.max_pixels), note), port=args.port, host=args.host)
    return 0
