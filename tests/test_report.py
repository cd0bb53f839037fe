"""Experiment reports: W&B artifacts of training and evaluation, the HTML report, the W&B Report's blocks."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import pytest
from accelerate.state import AcceleratorState
from helpers import train
from PIL import Image
from safetensors.torch import load_file

from stochdeblur import report
from stochdeblur.checkpointing import tensors_digest
from stochdeblur.cli import evaluate as evaluate_cli
from stochdeblur.cli import report as report_cli
from stochdeblur.config import load_config
from stochdeblur.trackers import read_wandb_artifacts, read_wandb_run, wandb_run_files

TINY = Path(__file__).resolve().parents[1] / "configs" / "dvsr_synthetic_tiny.yaml"


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 4-step tiny run logged to offline W&B (panels at steps 2 and 4) and an evaluation of its model."""
    root = tmp_path_factory.mktemp("experiment")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WANDB_MODE", "offline")
        mp.setenv("WANDB_DIR", str(root))
        mp.setenv("WANDB_DATA_DIR", str(root / "wandb-data"))  # artifact staging stays in the test folder
        run = root / "run"
        cfg = load_config(TINY, ["log.tracker=wandb", "train.max_steps=4", "train.val_every=2",
                                 "train.checkpoint_every=0", "data.synthetic_length=8"])
        train(cfg, run)
        AcceleratorState._reset_state(True)
        evaluation = root / "eval"
        assert evaluate_cli.main(["--data", "synthetic:deadleaves", "--limit", "1", "--crop", "32",
                                  "--checkpoint", str(run / "model"), "--label", "tiny",
                                  "--modes", "predictor; steps=1,average=2",
                                  "--sweep", "steps=1,2 average=1,2", "--out", str(evaluation)]) == 0
    return run, evaluation


def test_offline_runs_hold_the_model_and_the_evaluation_tables(experiment: tuple[Path, Path]) -> None:
    run, evaluation = experiment
    digest = tensors_digest(load_file(str(run / "model" / "model.safetensors")).items())
    (train_file,) = wandb_run_files(run)
    (model,) = [a for a in read_wandb_artifacts(train_file) if a["type"] == "model"]
    assert model["name"] == "model-dvsr_synthetic_tiny" and "step_4" in model["aliases"]
    assert model["metadata"] == {"step": 4, "method": "dvsr", "weights_digest": digest}
    sizes = {f["path"]: f["size"] for f in model["files"]}
    assert sizes == {p.name: p.stat().st_size for p in (run / "model").iterdir()}
    assert set(sizes) == {"config.json", "model.safetensors", "run_config.json"}
    (eval_file,) = wandb_run_files(evaluation)
    (tables,) = [a for a in read_wandb_artifacts(eval_file) if a["type"] == "evaluation"]
    assert tables["metadata"]["models"] == {"tiny": digest}  # the link from the scores to the run's model
    files = {f["path"] for f in tables["files"]}
    assert {"summary.csv", "per_image.csv", "sweep.csv", "models.json"} <= files
    assert read_wandb_run(eval_file)["job_type"] == "evaluation"


def test_html_report_is_self_contained(experiment: tuple[Path, Path], tmp_path: Path) -> None:
    run, evaluation = experiment
    kernels = tmp_path / "kernel_sizes.json"
    kernels.write_text(json.dumps({"model": "m", "rows": [
        {"kernel_size": k, "blurry_psnr": 25.0 - k / 10, "gain_db": {"predictor": k / 100, "average": k / 50}}
        for k in (7, 19, 33)]}))
    out = tmp_path / "report" / "report.html"
    assert report_cli.main(["--run", str(run), "--eval", str(evaluation), "--kernel-sizes", str(kernels),
                            "--sample-steps", "1", "--out", str(out)]) == 0
    page = out.read_text()
    assert not re.search(r"<(script|link|iframe)\b", page) and "url(" not in page
    sources = re.findall(r'src="([^"]*)"', page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    images = [Image.open(io.BytesIO(base64.b64decode(s.split(",", 1)[1]))) for s in sources]
    assert all(im.format == "PNG" and im.width > 0 for im in images)
    # loss, LR, throughput, val PSNR, val SSIM, perception–distortion, kernel sizes + the panel nearest step 1
    assert len(images) == 7 + 1
    assert "<figcaption>step 2</figcaption>" in page and "<figcaption>step 4" not in page
    assert "tiny (this run)" in page and "steps=1,average=2" in page
    assert "Gain per kernel size" in page and "+0.66" in page  # 33 px, "average" gain 33/50
    assert "train:" in page and "max_steps: 4" in page  # the resolved config
    assert "model-dvsr_synthetic_tiny" in page and not list(out.parent.glob(".*.tmp"))


def test_wandb_report_blocks_are_built_offline(experiment: tuple[Path, Path]) -> None:
    import wandb_workspaces.reports.v2 as wr

    run, evaluation = experiment
    spec = report.build_report(run, [evaluation])
    built = report.to_wandb(spec, entity="team", project="stochdeblur", report_run_id="rep123")
    assert isinstance(built, wr.Report) and built.entity == "team" and built.title == spec.title
    headings = [b.text for b in built.blocks if isinstance(b, wr.H2)]
    assert headings == [s.title for s in spec.sections]
    grids = [b for b in built.blocks if isinstance(b, wr.PanelGrid)]
    lines = {y for g in grids for p in g.panels if isinstance(p, wr.LinePlot) for y in p.y}
    assert {"train/loss", "lr/model", "images_per_s", "val/psnr", "val/psnr_blur", "val/ssim"} <= lines
    media = {k for g in grids for p in g.panels if isinstance(p, wr.MediaBrowser) for k in p.media_keys}
    assert media == {"val/panels", "report/perception_distortion"}
    train_id = read_wandb_run(wandb_run_files(run)[0])["id"]
    filters = {rs.name: rs.filters for g in grids for rs in g.runsets}
    assert train_id in filters["training"] and "rep123" in filters["report"]
    tables = [b.text for b in built.blocks if isinstance(b, wr.MarkdownBlock)]
    assert any("tiny (this run)" in t and "PSNR" in t for t in tables)
    assert any(isinstance(b, wr.CodeBlock) and "max_steps: 4" in b.code for b in built.blocks)
    (artifact,) = [b for b in built.blocks if isinstance(b, wr.WeaveBlockArtifact)]
    assert artifact.artifact == "model-dvsr_synthetic_tiny"


def test_a_bare_run_says_what_is_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "bare"
    run.mkdir()
    (run / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "train/loss": 1 / s, "lr/model": 1e-3,
                                                           "images_per_s": 10.0}) + "\n" for s in (1, 2, 3))
                                     + '{"step": 4, "train/lo')  # a line being written by a running job
    spec = report.build_report(run)
    text = " ".join(b.text for s in spec.sections for b in s.blocks if isinstance(b, report.Text))
    assert "no sample panels" in text and "No validation" in text and "No evaluation" in text
    assert "No W&B runs" in text and "config.yaml not found" in text
    assert [c.key for c in spec.charts()] == ["loss", "lr", "throughput"]
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert report_cli.main(["--run", str(run), "--out", str(tmp_path / "r.html"), "--publish"]) == 2
    assert "needs W&B online" in capsys.readouterr().err and (tmp_path / "r.html").is_file()
    assert report_cli.main(["--run", str(tmp_path / "missing"), "--out", str(tmp_path / "x.html")]) == 2
    no_eval = ["--eval", str(tmp_path)]
    assert report_cli.main(["--run", str(run), *no_eval, "--out", str(tmp_path / "y.html")]) == 2
    assert "no summary.csv" in capsys.readouterr().err
