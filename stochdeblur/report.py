"""Experiment reports: one spec built from a training run and its evaluations, rendered two ways.

:func:`build_report` reads a run directory (``metrics.jsonl``, ``config.yaml``, ``samples/``, ``model/``,
the W&B run files) and evaluation directories (``summary.csv``, ``sweep.csv``, ``models.json``) into a
:class:`ReportSpec`: sections of text, tables, charts, sample galleries and code. :func:`to_html` renders it
as one self-contained HTML file (charts are matplotlib PNGs inlined as base64; no script, font or network
access), :func:`to_wandb` as a W&B Report (``wandb-workspaces``, the ``report`` extra) whose panels read the
metrics and media the runs logged; charts computed here are logged by :func:`publish` to a small ``report``
run that the W&B Report points at.

Runs are tied to models through weight digests: the training run's ``model-<name>`` artifact and every
evaluation's ``models.json`` carry :func:`~stochdeblur.checkpointing.tensors_digest` of the weights, so the
report marks which evaluated model is this run's.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from safetensors.torch import load_file

from stochdeblur import trackers
from stochdeblur.checkpointing import tensors_digest
from stochdeblur.evaluate.reporting import TABLE_COLUMNS, csv_number, read_csv
from stochdeblur.hub import WEIGHTS_NAME
from stochdeblur.metrics import LOWER_IS_BETTER, format_value
from stochdeblur.utils import atomic_write_text

TRAINING, REPORT = "training", "report"  # run sets a W&B chart reads from
_PD_MEASURES = (("lpips", "LPIPS ↓"), ("haarpsi", "HaarPSI ↑"),
                ("grad_ratio", "gradient energy / sharp (1 = ideal)"))
_LOSS_KEY = re.compile(r"^train/(?:[^/]+/)?loss$")


class ReportError(ValueError):
    """A run or evaluation directory that cannot be reported on, or a report that cannot be published."""


# ---------------------------------------------------------------------------------------------------------
# the spec
# ---------------------------------------------------------------------------------------------------------


@dataclass
class Text:
    """A paragraph of plain text."""

    text: str


@dataclass
class Table:
    """A table of preformatted cells."""

    columns: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclass
class Chart:
    """A plot. HTML shows ``png``; W&B draws ``lines`` (metrics logged by the ``source`` run) as a line
    plot, or shows its logged ``media`` keys; a chart with neither is logged as ``report/<key>`` by
    :func:`publish`."""

    key: str
    title: str
    png: bytes
    caption: str = ""
    source: str = REPORT
    lines: tuple[str, ...] = ()
    media: tuple[str, ...] = ()


@dataclass
class Gallery:
    """Images saved by a run (e.g. validation panels at chosen steps); in W&B the ``media_key`` it logged."""

    title: str
    images: list[tuple[str, bytes]]
    media_key: str
    source: str = TRAINING


@dataclass
class Code:
    """Preformatted text, e.g. the resolved config."""

    text: str
    language: str = "yaml"


@dataclass
class ArtifactRef:
    """A W&B artifact (name, project) the report links to, with a one-line description."""

    name: str
    project: str
    text: str


Block = Text | Table | Chart | Gallery | Code | ArtifactRef


@dataclass
class Section:
    """A titled list of blocks."""

    title: str
    blocks: list[Block] = field(default_factory=list)


@dataclass
class RunRef:
    """A W&B run the report reads: its role (run set), id and project, and its local run directory."""

    role: str
    id: str
    project: str
    name: str
    directory: Path


@dataclass
class ReportSpec:
    """Everything one report shows, independent of the output format."""

    title: str
    description: str
    sections: list[Section]
    runs: list[RunRef] = field(default_factory=list)

    def charts(self) -> list[Chart]:
        """Every chart, in order."""
        return [b for s in self.sections for b in s.blocks if isinstance(b, Chart)]


# ---------------------------------------------------------------------------------------------------------
# reading runs and evaluations
# ---------------------------------------------------------------------------------------------------------


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The complete lines of ``metrics.jsonl`` (a run still training may be writing the last one)."""
    rows = []
    for line in path.read_text().splitlines() if path.is_file() else []:
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def _wandb_runs(directory: Path, role: str) -> list[RunRef]:
    refs = []
    for path in trackers.wandb_run_files(directory):
        info = trackers.read_wandb_run(path)
        refs.append(RunRef(role, info["id"], info["project"], info["name"], path.parent))
    return refs


def _model_digest(run_dir: Path) -> str | None:
    weights = run_dir / "model" / WEIGHTS_NAME
    return tensors_digest(load_file(str(weights)).items()) if weights.is_file() else None


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def _series(rows: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    points = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), int | float)]
    return [p[0] for p in points], [p[1] for p in points]


def _line_chart(key: str, title: str, rows: list[dict[str, Any]], keys: Sequence[str], ylabel: str,
                log_y: bool = False) -> Chart:
    fig = Figure(figsize=(5.2, 3.2))
    ax = fig.add_subplot()
    for name in keys:
        ax.plot(*_series(rows, name), marker="." if len(rows) < 60 else None, label=name)
    ax.set(xlabel="training step", ylabel=ylabel, title=title)
    values = [v for name in keys for v in _series(rows, name)[1]]
    if log_y and values and min(values) > 0 and max(values) > 10 * min(values):  # log only over a decade
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return Chart(key, title, _png(fig), source=TRAINING, lines=tuple(keys))


def _training_section(run_dir: Path, rows: list[dict[str, Any]]) -> Section:
    section = Section("Training")
    if not rows:
        section.blocks.append(Text(f"{run_dir / 'metrics.jsonl'} holds no logged steps yet."))
        return section
    keys = sorted({k for r in rows for k in r})
    last = max(r["step"] for r in rows)
    section.blocks.append(Text(f"{last} steps logged in {run_dir / 'metrics.jsonl'}."))
    groups = (("loss", "Training loss", [k for k in keys if _LOSS_KEY.match(k)], "loss", True),
              ("lr", "Learning rate", [k for k in keys if k.startswith("lr/")], "learning rate", False),
              ("throughput", "Throughput", [k for k in keys if k == "images_per_s"], "images / s", False),
              ("val_psnr", "Validation PSNR", [k for k in keys if k.startswith("val/psnr")], "PSNR (dB)",
               False),
              ("val_ssim", "Validation SSIM", [k for k in keys if k.startswith("val/ssim")], "SSIM", False))
    for key, title, names, ylabel, log_y in groups:
        if names:
            section.blocks.append(_line_chart(key, title, rows, names, ylabel, log_y))
    if not any(k.startswith("val/") for k in keys):
        section.blocks.append(Text("No validation was logged (train.val_every = 0, or not reached yet)."))
    return section


def _sample_steps(available: list[int], wanted: Sequence[int] | None) -> list[int]:
    """The saved steps closest to ``wanted``; by default the first, middle and last saved ones."""
    if not available:
        return []
    if not wanted:
        picks = [available[0], available[len(available) // 2], available[-1]]
    else:
        picks = [min(available, key=lambda s, w=w: abs(s - w)) for w in wanted]
    return sorted(set(picks))


def _samples_section(run_dir: Path, wanted: Sequence[int] | None) -> Section:
    section = Section("Sample panels")
    files = {int(m.group(1)): p for p in (run_dir / "samples").glob("step_*.png")
             if (m := re.fullmatch(r"step_(\d+)\.png", p.name))}
    steps = _sample_steps(sorted(files), wanted)
    if not steps:
        section.blocks.append(Text("This run saved no sample panels (none in samples/: validation not "
                                   "reached, or log.image_panels = 0)."))
        return section
    section.blocks.append(Text("Validation panels with the EMA weights; rows: images, columns: blurry | "
                               "predictor x_init | sample | sharp (GANs: blurry | output | sharp)."))
    section.blocks.append(Gallery(f"Validation panels at steps {', '.join(map(str, steps))}",
                                  [(f"step {s}", files[s].read_bytes()) for s in steps], "val/panels"))
    return section


@dataclass
class _Evaluation:
    name: str
    directory: Path
    summary: list[dict[str, str]]
    sweep: list[dict[str, str]]
    models: dict[str, str]


def _read_evaluation(directory: Path) -> _Evaluation:
    summary = read_csv(directory / "summary.csv")
    if not summary:
        raise ReportError(f"--eval {directory}: no summary.csv (the output folder of scripts/evaluate.py)")
    models_json = directory / "models.json"
    models = json.loads(models_json.read_text()) if models_json.is_file() else {}
    return _Evaluation(directory.name, directory, summary, read_csv(directory / "sweep.csv"), models)


def _evaluation_table(evaluations: list[_Evaluation], digest: str | None) -> Table:
    columns = ["evaluation", "model", "mode", "images", *[title for _, title in TABLE_COLUMNS]]
    rows = []
    for ev in evaluations:
        for row in ev.summary:
            label = row["model"] + (" (this run)" if digest and ev.models.get(row["model"]) == digest else "")
            rows.append([ev.name, label, row["mode"], row["images"],
                         *[format_value(key, csv_number(row.get(key))) for key, _ in TABLE_COLUMNS]])
    return Table(columns, rows, "Means over the images of each evaluation; 'this run' marks the model whose "
                                "weights match this run's exported model.")


def _pd_chart(evaluations: list[_Evaluation]) -> Chart | None:
    """PSNR against each available detail/perceptual measure: every mode (stars) and sweep point (lines)."""
    points = [(ev, r) for ev in evaluations for r in ev.summary]
    sweeps = [(ev, r) for ev in evaluations for r in ev.sweep]
    measures = [(k, t) for k, t in _PD_MEASURES
                if any(csv_number(r.get(k)) is not None for _, r in points + sweeps)]
    if not measures:
        return None
    fig = Figure(figsize=(max(7.0, 4.6 * len(measures)), 4.8), layout="constrained")
    axes = fig.subplots(1, len(measures), squeeze=False)[0]
    for ax, (key, label) in zip(axes, measures, strict=True):
        for ev in evaluations:
            for average in sorted({r["average"] for r in ev.sweep if r["steps"] != "0"}, key=int):
                line = sorted((r for r in ev.sweep if r["average"] == average and r["steps"] != "0"
                               and csv_number(r.get(key)) is not None and csv_number(r["psnr"]) is not None),
                              key=lambda r: int(r["steps"]))
                ax.plot([float(r["psnr"]) for r in line], [float(r[key]) for r in line], marker="o",
                        markersize=3, linewidth=1, alpha=0.7, label=f"{ev.name} sweep ×{average}")
                for r in line:
                    ax.annotate(r["steps"], (float(r["psnr"]), float(r[key])), fontsize=6, xytext=(3, 3),
                                textcoords="offset points")
        for ev, r in points:
            if csv_number(r.get(key)) is not None and csv_number(r["psnr"]) is not None:
                ax.plot([float(r["psnr"])], [float(r[key])], marker="*", markersize=11, linestyle="",
                        label=f"{ev.name}: {r['model']} {r['mode']}")
        if LOWER_IS_BETTER.get(key) is None:
            ax.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
            ax.set_yscale("log")
        ax.set(xlabel="PSNR (dB) →", ylabel=label)
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=3, fontsize=7)
    fig.suptitle("Perception–distortion (point labels: sampling steps)", fontsize=10)
    return Chart("perception_distortion", "Perception–distortion", _png(fig),
                 "Stars: the evaluated modes; lines: the sweep over steps, one per number of averaged "
                 "samples.")


def _evaluation_section(evaluations: list[_Evaluation], digest: str | None) -> Section:
    section = Section("Evaluation")
    if not evaluations:
        section.blocks.append(Text("No evaluation given (--eval DIR, the --out folder of "
                                   "scripts/evaluate.py)."))
        return section
    section.blocks.append(_evaluation_table(evaluations, digest))
    if digest and not any(digest in ev.models.values() for ev in evaluations):
        section.blocks.append(Text("None of these evaluations scored this run's exported model (weight "
                                   "digests differ), e.g. an older export or another model."))
    chart = _pd_chart(evaluations)
    section.blocks.append(chart or Text("No perceptual or detail measure in these evaluations."))
    return section


def _kernel_section(paths: Sequence[Path]) -> Section | None:
    if not paths:
        return None
    section = Section("Gain per kernel size")
    series: dict[str, dict[int, float]] = {}
    blurry: dict[int, float] = {}
    for path in paths:
        try:
            data = json.loads(Path(path).read_text())
            rows = data["rows"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ReportError(f"--kernel-sizes {path}: not a kernel_sizes.json-style file ({exc})") from None
        prefix = f"{data.get('model', Path(path).stem)}: " if len(paths) > 1 else ""
        for row in rows:
            size = int(row["kernel_size"])
            blurry.setdefault(size, float(row["blurry_psnr"]))
            for method, gain in row["gain_db"].items():
                series.setdefault(prefix + method, {})[size] = float(gain)
    sizes = sorted(blurry)
    fig = Figure(figsize=(5.6, 3.4))
    ax = fig.add_subplot()
    for name, gains in series.items():
        ax.plot(sorted(gains), [gains[s] for s in sorted(gains)], marker="o", label=name)
    ax.axhline(0.0, color="grey", linewidth=0.8)
    ax.set(xlabel="kernel size (px)", ylabel="PSNR gain over blurry (dB)", title="Gain per kernel size")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    section.blocks.append(Chart("kernel_sizes", "Gain per kernel size", _png(fig),
                                "From " + ", ".join(str(p) for p in paths) + "."))
    rows = [[str(s), f"{blurry[s]:.2f}", *[f"{g[s]:+.2f}" if s in g else "–" for g in series.values()]]
            for s in sizes]
    section.blocks.append(Table(["kernel px", "blurry PSNR", *[f"{n} (dB)" for n in series]], rows))
    return section


def _runs_section(run_dir: Path, runs: list[RunRef], digest: str | None,
                  evaluations: list[_Evaluation]) -> Section:
    section = Section("Runs and models")
    rows = [[r.role, r.id, r.project, r.name, str(r.directory)] for r in runs]
    if rows:
        section.blocks.append(Table(["role", "W&B run", "project", "name", "local run"], rows,
                                    "Offline runs upload with `wandb sync <local run>`."))
    else:
        section.blocks.append(Text("No W&B runs here (log.tracker is not wandb, or --no-wandb)."))
    for ref in (r for r in runs if r.role == TRAINING):
        for art in trackers.read_wandb_artifacts(ref.directory / f"run-{ref.id}.wandb"):
            files = ", ".join(f"{f['path']} ({f['size']} B)" for f in art["files"])
            meta = art["metadata"]
            section.blocks.append(ArtifactRef(art["name"], ref.project,
                                              f"{art['type']} artifact {art['name']} (step "
                                              f"{meta.get('step', '?')}, weights "
                                              f"{str(meta.get('weights_digest', '?'))[:12]}): {files}"))
    if digest:
        scored = [f"{ev.name} ({label})" for ev in evaluations
                  for label, d in ev.models.items() if d == digest]
        section.blocks.append(Text(f"Exported model {run_dir / 'model'}: weights {digest[:12]}; scored by "
                                   f"{', '.join(scored) if scored else 'none of the given evaluations'}."))
    return section


def build_report(run_dir: str | Path, eval_dirs: Sequence[str | Path] = (),
                 kernel_sizes: Sequence[str | Path] = (), sample_steps: Sequence[int] | None = None,
                 title: str | None = None) -> ReportSpec:
    """The report of one training run (``scripts/train.py --out`` folder) and its evaluations.

    Args:
        run_dir: the run directory (``metrics.jsonl``, ``config.yaml``, ``samples/``, ``model/``, ``wandb/``).
        eval_dirs: ``scripts/evaluate.py --out`` folders (``summary.csv``, optionally ``sweep.csv``).
        kernel_sizes: ``benchmarks/kernel_sizes.py`` result files (``.json``).
        sample_steps: steps whose validation panels to show (the nearest saved); default first, middle, last.
        title: the report's title (default: from the run's name).

    Raises:
        ReportError: the run directory or an evaluation folder is missing or unreadable.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ReportError(f"--run {run_dir}: no such run directory")
    evaluations = [_read_evaluation(Path(d)) for d in eval_dirs]
    rows = _read_jsonl(run_dir / "metrics.jsonl")
    config = run_dir / "config.yaml"
    digest = _model_digest(run_dir)
    runs = _wandb_runs(run_dir, TRAINING)
    runs += [r for ev in evaluations for r in _wandb_runs(ev.directory, "evaluation")]
    sections = [_training_section(run_dir, rows), _samples_section(run_dir, sample_steps),
                _evaluation_section(evaluations, digest), _kernel_section([Path(p) for p in kernel_sizes]),
                _runs_section(run_dir, runs, digest, evaluations),
                Section("Resolved config", [Code(config.read_text()) if config.is_file()
                                            else Text(f"{config} not found.")])]
    name = title or f"Experiment report: {run_dir.resolve().name}"
    description = (f"Training run {run_dir}" + (f"; evaluations {', '.join(ev.name for ev in evaluations)}"
                                                  if evaluations else "") + ".")
    return ReportSpec(name, description, [s for s in sections if s is not None], runs)


# ---------------------------------------------------------------------------------------------------------
# HTML
# ---------------------------------------------------------------------------------------------------------

_CSS = """body{font-family:system-ui,sans-serif;max-width:1180px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
.charts{display:flex;flex-wrap:wrap;gap:1em}figure{margin:0}figure img{max-width:100%;border:1px solid #eee}
figcaption{font-size:.85em;color:#555;max-width:560px}.panel img{min-width:360px;image-rendering:pixelated}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}
td,th{border:1px solid #ddd;padding:.25em .6em;text-align:right}td:first-child,th:first-child{text-align:left}
caption{caption-side:bottom;font-size:.85em;color:#555;text-align:left}pre{background:#f6f6f6;padding:1em;
overflow:auto;font-size:.8em}nav a{margin-right:1em}"""


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _html_block(block: Block) -> str:
    esc = html.escape
    if isinstance(block, Text):
        return f"<p>{esc(block.text)}</p>"
    if isinstance(block, Table):
        head = "".join(f"<th>{esc(c)}</th>" for c in block.columns)
        body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in block.rows)
        caption = f"<caption>{esc(block.caption)}</caption>" if block.caption else ""
        return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    if isinstance(block, Chart):
        caption = f"<figcaption>{esc(block.caption)}</figcaption>" if block.caption else ""
        return f"<figure>{_img(block.png, block.title)}{caption}</figure>"
    if isinstance(block, Gallery):
        return "".join(f"<figure class='panel'>{_img(png, label)}<figcaption>{esc(label)}</figcaption>"
                       "</figure>" for label, png in block.images)
    if isinstance(block, Code):
        return f"<pre><code>{esc(block.text)}</code></pre>"
    return f"<p>{esc(block.text)}</p>"  # ArtifactRef


def to_html(spec: ReportSpec) -> str:
    """The report as one self-contained HTML page (images inline, no scripts or external resources)."""
    anchors = [re.sub(r"[^a-z0-9]+", "-", s.title.lower()).strip("-") for s in spec.sections]
    parts = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
             f"<title>{html.escape(spec.title)}</title>",
             f"<style>{_CSS}</style></head><body><h1>{html.escape(spec.title)}</h1>",
             f"<p>{html.escape(spec.description)}</p><nav>",
             *[f"<a href='#{a}'>{html.escape(s.title)}</a>"
               for a, s in zip(anchors, spec.sections, strict=True)],
             "</nav>"]
    for anchor, section in zip(anchors, spec.sections, strict=True):
        parts.append(f"<h2 id='{anchor}'>{html.escape(section.title)}</h2>")
        visual = False
        for block in section.blocks:
            is_visual = isinstance(block, Chart | Gallery)
            if is_visual != visual:
                parts.append("<div class='charts'>" if is_visual else "</div>")
                visual = is_visual
            parts.append(_html_block(block))
        if visual:
            parts.append("</div>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_html(spec: ReportSpec, path: str | Path) -> Path:
    """Write :func:`to_html` of ``spec`` to ``path`` atomically."""
    atomic_write_text(path, to_html(spec))
    return Path(path)


# ---------------------------------------------------------------------------------------------------------
# W&B Report (wandb-workspaces)
# ---------------------------------------------------------------------------------------------------------


def _markdown_table(table: Table) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| " + " | ".join(map(cell, table.columns)) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(map(cell, row)) + " |" for row in table.rows]
    return "\n".join(lines) + (f"\n\n{table.caption}" if table.caption else "")


def _panel(wr: Any, block: Chart | Gallery, index: int) -> Any:
    layout = wr.Layout(x=(index % 2) * 12, y=(index // 2) * 8, w=12, h=8)
    if isinstance(block, Gallery):
        return wr.MediaBrowser(title=block.title, media_keys=[block.media_key], layout=layout)
    if block.lines:
        return wr.LinePlot(title=block.title, x="Step", y=list(block.lines), layout=layout)
    keys = list(block.media) or [f"{REPORT}/{block.key}"]
    return wr.MediaBrowser(title=block.title, media_keys=keys, layout=layout)


def _runset(wr: Any, entity: str, project: str, name: str, ids: list[str]) -> Any:
    from wandb_workspaces import expr

    return wr.Runset(entity=entity, project=project, name=name, filters=[expr.Metric("ID").isin(ids)])


def _wandb_blocks(wr: Any, block: Block, entity: str) -> list[Any]:
    """Report blocks of a spec block that is not a chart of a known run set."""
    if isinstance(block, Table):
        return [wr.MarkdownBlock(text=_markdown_table(block))]
    if isinstance(block, Code):
        return [wr.CodeBlock(code=block.text, language=block.language)]
    if isinstance(block, ArtifactRef):
        return [wr.P(text=block.text),
                wr.WeaveBlockArtifact(entity=entity, project=block.project, artifact=block.name,
                                      tab="lineage")]
    if isinstance(block, Chart | Gallery):
        return [wr.P(text=f"{block.title}: its run is not in this report.")]
    return [wr.P(text=block.text)]


def to_wandb(spec: ReportSpec, entity: str, project: str, report_run_id: str) -> Any:
    """The report as a ``wandb_workspaces.reports.v2.Report`` (not saved: :func:`publish` does that).

    Charts over logged metrics become line plots of the ``training`` run set (the training run ids), sample
    panels a media browser of its ``val/panels``; charts computed here show the images that the run
    ``report_run_id`` logs; tables are Markdown blocks, the config a code block, artifacts artifact blocks.
    """
    import wandb_workspaces.reports.v2 as wr

    training = [r for r in spec.runs if r.role == TRAINING]
    runsets = {REPORT: _runset(wr, entity, project, REPORT, [report_run_id])}
    if training:
        runsets[TRAINING] = _runset(wr, entity, training[0].project, TRAINING, [r.id for r in training])
    blocks: list[Any] = []
    for section in spec.sections:
        blocks.append(wr.H2(text=section.title))
        grid: list[Chart | Gallery] = []  # consecutive charts of one run set share a panel grid
        for block in [*section.blocks, None]:
            visual = isinstance(block, Chart | Gallery) and block.source in runsets
            if grid and (not visual or block.source != grid[0].source):
                blocks.append(wr.PanelGrid(runsets=[runsets[grid[0].source]],
                                           panels=[_panel(wr, b, i) for i, b in enumerate(grid)]))
                grid = []
            if visual:
                grid.append(block)
            elif block is not None:
                blocks.extend(_wandb_blocks(wr, block, entity))
    return wr.Report(project=project, entity=entity, title=spec.title[:128], description=spec.description,
                     blocks=blocks, width="fluid")


def publish(spec: ReportSpec, project: str, entity: str | None = None) -> str:
    """Upload the report's offline runs (``wandb sync``), log its own charts to a ``report`` run, save the W&B
    Report and return its URL. Needs a W&B login and network.

    Raises:
        ReportError: W&B is offline (WANDB_MODE) or not logged in, or an upload failed.
    """
    import wandb
    from PIL import Image

    if os.environ.get("WANDB_MODE") in ("offline", "disabled", "dryrun"):
        raise ReportError(f"--publish needs W&B online, but WANDB_MODE={os.environ['WANDB_MODE']}")
    try:
        entity = entity or wandb.Api().default_entity
    except Exception as exc:  # noqa: BLE001 - whatever the client raises, the cause is the login
        raise ReportError(f"--publish needs a W&B login (wandb login) and network: {exc}") from None
    for ref in spec.runs:
        if ref.directory.name.startswith("offline-"):
            done = subprocess.run([sys.executable, "-m", "wandb", "sync", str(ref.directory)], check=False)
            if done.returncode:
                raise ReportError(f"wandb sync {ref.directory} failed (exit {done.returncode})")
    run = wandb.init(project=project, entity=entity, job_type=REPORT, name=spec.title[:64], mode="online")
    try:
        for chart in spec.charts():
            if not chart.lines and not chart.media:
                run.log({f"{REPORT}/{chart.key}": wandb.Image(Image.open(io.BytesIO(chart.png)))})
        run_id = run.id
    finally:
        run.finish()
    report = to_wandb(spec, entity, project, run_id)
    report.save()
    return report.url
