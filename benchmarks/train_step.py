"""Seconds per training step of a config on this machine, NCHW vs NHWC (``train.channels_last``), fp32 vs bf16.

    python benchmarks/train_step.py                                  # configs/dvsr_default.yaml, ~2 min
    python benchmarks/train_step.py --config configs/deblurganv2_dsc.yaml --steps 4

One step = forward + backward + AdamW update of the config's method on a random batch of the config's
``data.batch_size`` × ``data.crop_size``² (data loading excluded: it runs in a worker during training). bf16 is
timed only where the CPU has native bf16 (``stochdeblur.utils.cpu_has_fast_bf16``) or a GPU is used, unless
``--all``. Two warm-up steps, then the median of ``--steps`` timed steps.
Results: ``benchmarks/results/train_step.{json,md}`` (CPU model and thread count in the header).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402

from stochdeblur.config import load_config  # noqa: E402
from stochdeblur.methods import build_method  # noqa: E402
from stochdeblur.utils import autocast, cpu_has_fast_bf16, describe_cpu, write_report  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def time_steps(config: Path, channels_last: bool, precision: str, steps: int, device: str) -> float:
    """Median wall seconds of one optimizer step (after two warm-up steps)."""
    cfg = load_config(config)
    torch.manual_seed(0)
    method = build_method(cfg).to(device)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    method = method.to(memory_format=layout)
    group = next(iter(method.param_groups()))
    optimizer = torch.optim.AdamW(method.param_groups()[group], lr=1e-4)
    shape = (cfg.data.batch_size, 3, cfg.data.crop_size, cfg.data.crop_size)
    batch = {k: (torch.rand(shape, device=device) * 2 - 1).contiguous(memory_format=layout)
             for k in ("blur", "sharp")}
    times = []
    for i in range(steps + 2):
        start = time.perf_counter()
        with autocast(device, precision):
            loss = method(batch, group)["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()
        if i >= 2:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def markdown(rows: list[dict[str, Any]], header: str) -> str:
    lines = [header, "", "| layout | precision | s/step | images/s | vs NCHW |", "|---|---|---:|---:|---:|"]
    base = {r["precision"]: r["seconds"] for r in rows if not r["channels_last"]}
    for r in rows:
        layout = "NHWC (channels_last)" if r["channels_last"] else "NCHW"
        lines.append(f"| {layout} | {r['precision']} | {r['seconds']:.3f} | {r['images_per_s']:.1f} | "
                     f"{base[r['precision']] / r['seconds']:.2f}× |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, default=Path("configs/dvsr_default.yaml"))
    parser.add_argument("--steps", type=int, default=6, help="timed steps per case (median reported)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--all", action="store_true", help="also time bf16 on a CPU without native bf16")
    parser.add_argument("--out", type=Path, default=RESULTS / "train_step")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = load_config(args.config)
    precisions = ["no"] + (["bf16"] if args.all or args.device != "cpu" or cpu_has_fast_bf16() else [])
    rows = []
    for precision in precisions:
        for channels_last in (False, True):
            seconds = time_steps(args.config, channels_last, precision, args.steps, args.device)
            rows.append({"precision": "fp32" if precision == "no" else precision, "channels_last": channels_last, "seconds": seconds,
                         "images_per_s": cfg.data.batch_size / seconds})
            print(f"{rows[-1]['precision']} channels_last={channels_last}: {seconds:.3f} s/step", flush=True)
    machine = describe_cpu() if args.device == "cpu" else torch.cuda.get_device_name()
    header = (f"# Training step of `{args.config}`\n\n- command: `python benchmarks/train_step.py --config "
              f"{args.config}`\n- {machine}, batch {cfg.data.batch_size} × "
              f"{cfg.data.crop_size}², median of {args.steps} steps after 2 warm-up steps, load average "
              f"{os.getloadavg()[0]:.1f} at the end")
    write_report(args.out, {"machine": machine, "rows": rows}, markdown(rows, header))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
