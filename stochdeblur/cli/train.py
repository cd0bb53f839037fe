"""Train any method family from a YAML config, on one CPU/GPU or several processes (``accelerate launch``).

    python scripts/train.py --config configs/dvsr_tiny.yaml --out runs/tiny
    accelerate launch scripts/train.py --config configs/dvsr_gopro.yaml train.lr=2e-4 --resume latest

``key=value`` arguments override the YAML (OmegaConf dotlist). ``--out`` defaults to ``runs/<name>``.
Exit codes: 0 done, 2 bad config / arguments / checkpoint, or a requirement of the method missing (e.g. the VGG19
weights of a GAN's perceptual loss), found before step 1 (one line on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from stochdeblur.checkpointing import ResumeError
from stochdeblur.config import ConfigError, load_config
from stochdeblur.data import LayoutError
from stochdeblur.hub import CheckpointError
from stochdeblur.losses import PerceptualUnavailable
from stochdeblur.training import Trainer, initial_method


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of ``scripts/train.py``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, help="YAML file overriding the defaults (configs/*.yaml)")
    parser.add_argument("--out", type=Path, help="run directory (default: runs/<name>)")
    parser.add_argument("--resume", help="'latest' (newest complete checkpoint in OUT/checkpoints, else start "
                        "fresh) or a checkpoint directory")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. train.lr=2e-4")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run training; returns the exit code (0 ok, 2 invalid config, data layout, checkpoint or requirement)."""
    args = build_parser().parse_args(argv)
    try:
        cfg = load_config(args.config, args.overrides)
        out_dir = args.out or Path("runs") / cfg.name
        trainer = Trainer(cfg, initial_method(cfg), out_dir)
        result = trainer.fit(resume=args.resume)
    except (ConfigError, LayoutError, CheckpointError, ResumeError, PerceptualUnavailable) as exc:
        print(f"error: {str(exc).splitlines()[0]}", file=sys.stderr)  # OmegaConf appends key/type detail lines
        return 2
    if trainer.accelerator.is_main_process:
        shown = ", ".join(f"{k}={v:.4g}" for k, v in result.items() if k.startswith(("val/", "train/loss")))
        print(f"finished {cfg.name} at step {int(result['step'])}: {shown}; model in {out_dir / 'model'}")
    return 0


def run() -> None:
    """Entry point of ``scripts/train.py``: :func:`main`, then exit.

    With several processes (``WORLD_SIZE`` > 1) this torch build (2.14.1+cu130) aborts about 1 exit in 10
    with "terminate called without an active exception" (SIGABRT) while tearing down the process group,
    after training finished; flushing and ``os._exit`` skips that teardown (0 aborts in 12 runs,
    ENVIRONMENT.md §6). Checkpoints, model and tracker files are complete and closed by then.
    """
    code = main()
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
