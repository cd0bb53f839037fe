"""One-shot generators on this CPU: seconds per image at 256² and 720×1280, and parameter counts, in one table.

    python benchmarks/generators.py                 # all five models, ~5 min on 2 cores
    python benchmarks/generators.py --repeats 1     # quicker, noisier

Models: the three DeblurGAN-v2 FPN generators, DeblurGAN v1 and the DvSR predictor (UNet width 64, 3→3).
fp32, batch 1, ``eval()`` and ``no_grad``, random weights (cost does not depend on them); each model pads the
input as it does in use (FPN to a multiple of 32, so 720×1280 runs at 736×1280; v1 to 4; UNet to 8). One
warm-up call, then the median of ``--repeats`` timed calls. Results: ``benchmarks/results/generators.{json,md}``.

``OMP_WAIT_POLICY=PASSIVE`` is set (unless already set) before torch loads: on a shared 2-core machine,
OpenMP's spinning threads made 2-thread timings 3-20× slower and erratic (measured: fpn_mobilenet 256²
0.31-2.3 s spinning vs 0.097 s passive at load average 7). The load average is recorded with the results.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402
from torch import nn  # noqa: E402

from stochdeblur.config import PredictorConfig  # noqa: E402
from stochdeblur.models import build_predictor  # noqa: E402
from stochdeblur.models.fpn import FPNGenerator  # noqa: E402
from stochdeblur.models.resnet_gen import ResnetGenerator  # noqa: E402
from stochdeblur.utils import describe_cpu, write_report  # noqa: E402

SIZES = {"256": (256, 256), "720p": (720, 1280)}
RESULTS = Path(__file__).parent / "results"
MODELS: dict[str, Callable[[], nn.Module]] = {
    "fpn_mobilenet": lambda: FPNGenerator("mobilenet_v2"),
    "fpn_mobilenet_dsc": lambda: FPNGenerator("mobilenet_dsc"),
    "fpn_inception": lambda: FPNGenerator("inception_resnet_v2"),
    "deblurgan_v1": ResnetGenerator,
    "dvsr_predictor": lambda: build_predictor(PredictorConfig()),
}


def time_model(model: nn.Module, height: int, width: int, repeats: int) -> float:
    """Median wall seconds of one forward on a [1, 3, height, width] image after one warm-up call."""
    image = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(0)) * 2 - 1
    times = []
    with torch.no_grad():
        model(image)
        for _ in range(repeats):
            start = time.perf_counter()
            model(image)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def run(repeats: int) -> list[dict[str, Any]]:
    """Parameter count and seconds per image at each size for every model."""
    rows = []
    for name, factory in MODELS.items():
        model = factory().eval()
        row: dict[str, Any] = {"name": name, "params": sum(p.numel() for p in model.parameters()),
                               "size_multiple": model.size_multiple}
        for label, (height, width) in SIZES.items():
            row[f"seconds_{label}"] = round(time_model(model, height, width, repeats), 3)
            print(f"{name} {label}: {row[f'seconds_{label}']} s", flush=True)
        rows.append(row)
    return rows


def markdown(rows: list[dict[str, Any]], header: str) -> str:
    """The rows as a Markdown table under ``header``."""
    lines = [header, "", "| model | parameters | size multiple | CPU s, 256² | CPU s, 720×1280 |",
             "|---|---:|---:|---:|---:|"]
    lines += [f"| {r['name']} | {r['params']:,} | {r['size_multiple']} | {r['seconds_256']:.3f} | "
              f"{r['seconds_720p']:.2f} |" for r in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Time every model and write ``generators.json`` and ``generators.md``; returns 0."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    cpu = describe_cpu()
    load_before = os.getloadavg()[0]
    rows = run(args.repeats)
    load = f"{load_before:.1f} → {os.getloadavg()[0]:.1f}"
    header = (f"Generators, fp32, batch 1, eval + no_grad, median of {args.repeats} after a warm-up, "
              f"torch {torch.__version__}, OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}, CPU: {cpu}; "
              f"1-min load average {load} (other jobs shared the machine when it is above the thread count).")
    data = {"cpu": cpu, "torch": torch.__version__, "repeats": args.repeats,
            "omp_wait_policy": os.environ["OMP_WAIT_POLICY"], "load_average": load, "rows": rows}
    write_report(args.out / "generators", data, markdown(rows, header))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
