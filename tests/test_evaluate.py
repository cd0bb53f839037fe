"""Evaluation runner: mode parsing, the files it writes, resuming a killed run, the sweep, W&B and the CLI
(dataset specs in --help, folder layouts and splits detected, named modes)."""

from __future__ import annotations

import copy
import csv
import shutil

import pytest
import torch
from PIL import Image
from torch import nn

from stochdeblur import hub
from stochdeblur.cli import make_dataset
from stochdeblur.cli.evaluate import main
from stochdeblur.config import ModePreset, SampleConfig, load_config
from stochdeblur.data.photos import photo_pairs
from stochdeblur.data.synth import SyntheticPairs
from stochdeblur.evaluate.modes import EvaluationError, Mode, SamplerGrid, parse_modes, parse_sweep
from stochdeblur.evaluate.runner import CSV_COLUMNS, ResultsLog, evaluate, restore_timed, sweep
from stochdeblur.evaluate.wandb_run import write_wandb_run
from stochdeblur.io import write_image

TINY = ["predictor.base_channels=8", "denoiser.base_channels=8", "predictor.num_res_blocks=1",
        "denoiser.num_res_blocks=1", "predictor.channel_mults=[1,2]", "denoiser.channel_mults=[1,2]"]


@pytest.fixture(scope="module")
def tiny_cfg():
    return load_config(overrides=TINY)


@pytest.fixture(scope="module")
def dvsr(tiny_cfg):
    from stochdeblur.methods.dvsr import DvSR

    torch.manual_seed(0)
    return DvSR.from_config(tiny_cfg).eval()


@pytest.fixture(scope="module")
def gan():
    """A tiny DeblurGAN-v2 (UNet generator): no diffusion, restore() ignores steps/average."""
    from stochdeblur.methods import build_method

    tiny_predictor = [o for o in TINY if o.startswith("predictor.")]
    cfg = load_config(overrides=["method=deblurganv2", "gan.generator=unet", "gan.perceptual=none", *tiny_predictor])
    return build_method(cfg).eval()


@pytest.fixture(scope="module")
def data():
    return SyntheticPairs(3, 32, kernel_size_max=9, seed=1)


class Counting(nn.Module):
    """Wraps a method, counts restore() calls and can simulate a kill after ``fail_after`` calls."""

    def __init__(self, method: nn.Module, fail_after: int | None = None) -> None:
        super().__init__()
        self.method, self.samples = method, method.samples
        self.calls, self.fail_after = 0, fail_after

    def restore(self, blur, **kwargs):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt("simulated kill")
        self.calls += 1
        return self.method.restore(blur, **kwargs)


def _rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_parse_modes_reads_the_documented_syntax():
    modes = parse_modes("predictor; steps=10,average=4; steps=500")
    assert modes == [Mode(), Mode(10, 4, "ddpm", "steps=10,average=4"), Mode(500, 1, "ddpm", "steps=500")]
    assert parse_modes("steps=0")[0] == Mode()
    assert parse_modes("steps=5,sampler=ddim,label=fast")[0] == Mode(5, 1, "ddim", "fast")
    knobs = parse_modes("steps=20,sampler=ddim,eta=0.5,schedule=cosine,alpha_bar_end=0.01")[0]
    assert knobs == Mode(20, 1, "ddim", "steps=20,sampler=ddim,eta=0.5,schedule=cosine,alpha_bar_end=0.01", 0.5,
                         "cosine", 0.01)
    assert knobs.rule == "ddim eta=0.5,schedule=cosine,alpha_bar_end=0.01" and Mode(5).rule == "ddpm"
    assert knobs.options() == {"steps": 20, "average": 1, "sampler": "ddim", "eta": 0.5, "schedule": "cosine",
                               "alpha_bar_end": 0.01}
    for bad in ("steps=ten", "steps=5,average=0", "stepz=5", "steps=5,sampler=euler", "predictor;steps=0", " ; ",
                "steps=5,eta=0.5", "steps=5,sampler=ddim,eta=2", "steps=5,schedule=square", "steps=5,alpha_bar_end=1"):
        with pytest.raises(EvaluationError):
            parse_modes(bad)


def test_named_modes_take_the_presets_and_overrides():
    presets = SampleConfig(steps=2, average=3).presets()
    assert parse_modes("predictor; average; perceptual", presets) == [
        Mode(), Mode(2, 3, "ddpm", "average"), Mode(500, 1, "ddpm", "perceptual")]
    assert parse_modes("perceptual,average=4")[0] == Mode(500, 4, "ddpm", "steps=500,average=4")
    assert parse_modes("average,label=mine")[0] == Mode(10, 4, "ddpm", "mine")
    assert parse_modes("perceptual_500")[0] == Mode(500, 1, "ddpm", "perceptual_500")
    with pytest.raises(EvaluationError, match="unknown mode name 'sharpest'.*predictor, average, perceptual"):
        parse_modes("sharpest")


def test_a_preset_s_sampler_settings_reach_the_restoration():
    """A DDIM η=0.5 perceptual preset runs as DDIM η=0.5 (not the default DDPM), overrides keep the rest."""
    presets = SampleConfig(modes={"perceptual": ModePreset(10, 1, "ddim", 0.5)}).presets()
    assert parse_modes("perceptual", presets)[0] == Mode(10, 1, "ddim", "perceptual", 0.5)
    assert parse_modes("perceptual,steps=20", presets)[0] == Mode(20, 1, "ddim", "steps=20,sampler=ddim,eta=0.5", 0.5)
    assert parse_modes("perceptual,sampler=ddpm", presets)[0].eta == 0.0  # η is DDIM's alone


def test_restore_timed_runs_the_mode_s_sampler(dvsr, data):
    from stochdeblur.restorer import Restorer

    restorer = Restorer(dvsr, load_config(overrides=TINY), device="cpu", precision="no")
    blur = data[0]["blur"]
    ddim, _ = restore_timed(restorer, blur, parse_modes("steps=3,sampler=ddim,eta=0.5")[0])
    ddpm, _ = restore_timed(restorer, blur, parse_modes("steps=3")[0])
    expected = restorer(blur, steps=3, sampler="ddim", eta=0.5, seed=0)[0].clamp(-1, 1)
    assert torch.allclose(ddim, expected, atol=1 / 255) and not torch.allclose(ddim, ddpm, atol=1 / 255)


def test_parse_sweep():
    assert parse_sweep("steps=1,2,5 average=1,4") == SamplerGrid(steps=(1, 2, 5), average=(1, 4))
    grid = parse_sweep("steps=2 average=1 sampler=ddpm,ddim eta=0,0.5 schedule=linear,cosine")
    labels = [m.label for m in grid.modes()]
    assert labels == ["predictor", "steps=2", "steps=2,schedule=cosine", "steps=2,sampler=ddim,eta=0",
                      "steps=2,sampler=ddim,eta=0,schedule=cosine", "steps=2,sampler=ddim,eta=0.5",
                      "steps=2,sampler=ddim,eta=0.5,schedule=cosine"]  # η varies DDIM only
    for bad in ("steps=1,x average=1", "steps=0", "sampler=euler", "eta=2", "stepz=1", "alpha_bar_end=1.5"):
        with pytest.raises(EvaluationError):
            parse_sweep(bad)


def test_evaluate_writes_csv_table_grid(tmp_path, dvsr, gan, data):
    modes = parse_modes("predictor; steps=2,average=2")
    summary = evaluate([("tiny", dvsr), ("gan", gan)], data, modes, tmp_path, progress=False)
    rows = _rows(tmp_path / "per_image.csv")
    assert len(rows) == 3 * 2 + 3  # the GAN-like method runs once, as "predictor"
    assert {(r["model"], r["mode"]) for r in rows} == {("tiny", "predictor"), ("tiny", "steps=2,average=2"),
                                                       ("gan", "predictor")}
    assert [(s["model"], s["mode"], s["images"]) for s in summary] == [
        ("tiny", "predictor", 3), ("tiny", "steps=2,average=2", 3), ("gan", "predictor", 3)]
    assert all(s["psnr"] > 0 and s["seconds"] > 0 for s in summary)
    table = (tmp_path / "summary.md").read_text()
    assert "| tiny | steps=2,average=2 | 3 |" in table and "PSNR" in table and "s/image" in table
    assert (tmp_path / "outputs" / "tiny" / "steps_2_average_2").is_dir()
    with Image.open(tmp_path / "grid.png") as grid:
        assert grid.size[0] > grid.size[1] > 100


def test_unavailable_metrics_are_marked_in_the_table(tmp_path, dvsr, data, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    summary = evaluate([("tiny", dvsr)], data, parse_modes("predictor"), tmp_path / "out", limit=2, progress=False)
    assert summary[0]["lpips"] is None and summary[0]["fid"] is None
    table = (tmp_path / "out" / "summary.md").read_text()
    assert table.count("unavailable") >= 3 and "LPIPS unavailable: AlexNet" in table


def test_killed_run_resumes_without_recomputing(tmp_path, dvsr, data):
    modes = parse_modes("predictor; steps=2")
    killed = Counting(dvsr, fail_after=4)
    with pytest.raises(KeyboardInterrupt):
        evaluate([("tiny", killed)], data, modes, tmp_path / "a", progress=False)
    assert len(_rows(tmp_path / "a" / "per_image.csv")) == 4
    resumed = Counting(dvsr)
    summary = evaluate([("tiny", resumed)], data, modes, tmp_path / "a", progress=False)
    assert resumed.calls == 2  # only the 6 - 4 missing (image, mode) pairs
    fresh = evaluate([("tiny", dvsr)], data, modes, tmp_path / "b", progress=False)
    for got, want in zip(summary, fresh, strict=True):
        assert got["psnr"] == pytest.approx(want["psnr"], abs=1e-9)
    again = Counting(dvsr)
    evaluate([("tiny", again)], data, modes, tmp_path / "a", progress=False)
    assert again.calls == 0


def test_resuming_over_other_weights_under_the_same_label_is_refused(tmp_path, dvsr, data):
    evaluate([("tiny", dvsr)], data, parse_modes("predictor"), tmp_path, progress=False)
    retrained = copy.deepcopy(dvsr)
    with torch.no_grad():
        next(retrained.parameters()).add_(0.01)
    with pytest.raises(EvaluationError, match="other weights under the label"):
        evaluate([("tiny", retrained)], data, parse_modes("predictor"), tmp_path, progress=False)
    summary = evaluate([("tiny", dvsr), ("retrained", retrained)], data, parse_modes("predictor"), tmp_path,
                       progress=False)
    assert [row["model"] for row in summary] == ["tiny", "retrained"]


def test_a_trailing_partial_line_is_dropped_and_recomputed(tmp_path, dvsr, data):
    evaluate([("tiny", Counting(dvsr))], data, parse_modes("predictor"), tmp_path, progress=False)
    path = tmp_path / "per_image.csv"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-1]) + lines[-1][:20])  # died in the middle of the last append
    counting = Counting(dvsr)
    evaluate([("tiny", counting)], data, parse_modes("predictor"), tmp_path, progress=False)
    assert counting.calls == 1
    rows = _rows(path)
    assert len(rows) == 3 and all(len(r) == len(CSV_COLUMNS) for r in rows)


def test_results_log_refuses_a_foreign_csv(tmp_path):
    (tmp_path / "per_image.csv").write_text("a,b\n1,2\n")
    with pytest.raises(EvaluationError, match="other columns"):
        ResultsLog(tmp_path / "per_image.csv")


def test_sweep_writes_csv_and_plot(tmp_path, dvsr, data):
    rows = sweep(dvsr, data, tmp_path, SamplerGrid(steps=(1, 2), average=(1, 2)), limit=2, progress=False,
                 label="tiny")
    assert [(r["steps"], r["average"]) for r in rows] == [(0, 1), (1, 1), (2, 1), (1, 2), (2, 2)]
    written = _rows(tmp_path / "sweep.csv")
    assert len(written) == 5 and float(written[0]["psnr"]) == pytest.approx(rows[0]["psnr"])
    with Image.open(tmp_path / "sweep.png") as plot:
        assert plot.size[0] > 400


def test_sweep_varies_the_sampler(tmp_path, dvsr, data):
    grid = SamplerGrid(steps=(2,), average=(1,), sampler=("ddpm", "ddim"), eta=(0.0, 1.0))
    rows = sweep(dvsr, data, tmp_path, grid, limit=1, progress=False, label="tiny")
    assert [r["sampler"] for r in rows] == ["ddpm", "ddpm", "ddim eta=0", "ddim eta=1"]
    assert rows[2]["psnr"] != rows[3]["psnr"]  # η changes the samples
    assert [r["sampler"] for r in _rows(tmp_path / "sweep.csv")] == ["ddpm", "ddpm", "ddim eta=0", "ddim eta=1"]


def test_wandb_run_is_written_offline(tmp_path, dvsr, data, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    evaluate([("tiny", dvsr)], data, parse_modes("predictor"), tmp_path, limit=2, progress=False)
    run_dir = write_wandb_run(tmp_path)
    assert run_dir.parent == tmp_path / "wandb" and run_dir.name.startswith("offline-run-")
    assert list(run_dir.glob("run-*.wandb"))
    assert list((run_dir / "files" / "media").rglob("*.png"))  # grid + thumbnails


def test_photo_pairs_are_deterministic_with_true_kernels():
    first, second = photo_pairs(crop=48, seed=3), photo_pairs(crop=48, seed=3)
    assert len(first) >= 1
    item = first[0]
    assert item["blur"].shape == item["sharp"].shape == (3, 48, 48)
    assert item["kernel"].sum().item() == pytest.approx(1.0, abs=1e-5)
    assert torch.equal(item["blur"], second[0]["blur"])
    assert item["blur"].min() >= -1 and item["blur"].max() <= 1


def test_cli_compares_checkpoints_and_sweeps(tmp_path, dvsr, tiny_cfg, capsys):
    hub.save_pretrained(dvsr, tmp_path / "model", tiny_cfg)
    out = tmp_path / "eval"
    code = main(["--checkpoint", str(tmp_path / "model"), "--label", "tiny", "--data", "synthetic:deadleaves",
                 "--crop", "32", "--limit", "2", "--modes", "predictor; steps=2", "--out", str(out),
                 "--sweep", "steps=1,2 average=1,2", "--no-wandb"])
    assert code == 0
    for name in ("per_image.csv", "summary.md", "grid.png", "sweep.csv", "sweep.png"):
        assert (out / name).is_file(), name
    assert "| tiny | steps=2 | 2 |" in capsys.readouterr().out


def test_cli_reports_bad_input_in_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(hub, "DEFAULT_MODEL_DIR", tmp_path / "nothing")
    assert main(["--data", "synthetic:deadleaves", "--out", str(tmp_path)]) == 2
    assert "--checkpoint" in capsys.readouterr().err
    assert main(["--data", "mnist:x", "--out", str(tmp_path)]) == 2
    assert "unknown kind 'mnist'" in capsys.readouterr().err
    assert main(["--modes", "steps=x", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_cli_scores_the_shipped_model_by_name_beside_a_run(tmp_path, dvsr, tiny_cfg, capsys, monkeypatch):
    weights = tmp_path / "weights"
    hub.save_pretrained(dvsr, weights / "default", tiny_cfg)
    hub.save_pretrained(dvsr, tmp_path / "run" / "model", tiny_cfg)
    monkeypatch.setattr(hub, "WEIGHTS_DIR", weights)
    monkeypatch.setattr(hub, "DEFAULT_MODEL_DIR", weights / "default")
    code = main(["--checkpoint", "default", "--checkpoint", str(tmp_path / "run" / "model"), "--data",
                 "synthetic:deadleaves", "--crop", "32", "--limit", "1", "--modes", "predictor",
                 "--out", str(tmp_path / "out"), "--no-wandb"])
    assert code == 0
    out = capsys.readouterr().out
    assert "| default | predictor | 1 |" in out and "| model | predictor | 1 |" in out


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, dvsr, tiny_cfg):
    return hub.save_pretrained(dvsr, tmp_path_factory.mktemp("tiny") / "model", tiny_cfg)


def _evaluate(data, model, out, *flags):
    return main(["--data", str(data), "--checkpoint", str(model), "--modes", "predictor", "--out", str(out),
                 "--no-wandb", *flags])


def test_help_lists_the_dataset_specs_with_examples(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    for example in ("gopro:/data/GOPRO_Large:test", "hide:", "realblur:/data/RealBlur/RealBlur_J_test_list.txt",
                    "pairs:", "synthetic:photos", "synthetic:deadleaves", "DIR/<split>/<SEQ>/{blur,sharp}/",
                    "predictor, average, perceptual", "perceptual,average=4"):
        assert example in text, example


def test_a_make_dataset_folder_is_read_with_the_split_it_has(tmp_path, tiny_model, capsys):
    root = tmp_path / "synth"
    assert make_dataset.main(["--dead-leaves", "--count", "2", "--size", "32", "--kernel-size", "9",
                              "--out", str(root)]) == 0  # writes root/train/<SEQ>/{blur,sharp,kernel}/
    capsys.readouterr()
    assert _evaluate(root, tiny_model, tmp_path / "a") == 0
    out = capsys.readouterr().out
    assert f"data: --data gopro:{root}:train" in out and "| model | predictor | 2 |" in out
    assert _evaluate(f"gopro:{root}", tiny_model, tmp_path / "b") == 0  # no split: the one there, not "test"
    shutil.copytree(root / "train", root / "test")
    for spec in (root, f"gopro:{root}"):
        assert _evaluate(spec, tiny_model, tmp_path / "c") == 2
        err = capsys.readouterr().err
        assert f"has 2 splits (test, train); pick one: --data gopro:{root}:test or --data gopro:{root}:train" in err
    assert _evaluate(f"gopro:{root}:test", tiny_model, tmp_path / "d") == 0


def test_blur_and_sharp_folders_are_detected(tmp_path, tiny_model, data, capsys):
    flat, split = tmp_path / "flat", tmp_path / "nested" / "val"
    for root in (flat, split):
        for side in ("blur", "sharp"):
            write_image(root / side / "a.png", data[0][side])
    assert _evaluate(flat, tiny_model, tmp_path / "a") == 0
    assert f"data: --data pairs:{flat}" in capsys.readouterr().out
    assert _evaluate(split.parent, tiny_model, tmp_path / "b") == 0
    assert f"data: --data pairs:{split.parent}:val" in capsys.readouterr().out
    (tmp_path / "empty").mkdir()
    assert _evaluate(tmp_path / "empty", tiny_model, tmp_path / "c") == 2
    assert "found neither the GoPro layout" in capsys.readouterr().err


def test_cli_modes_by_name_use_the_model_presets(tmp_path, capsys):
    from stochdeblur.methods import build_method

    cfg = load_config(overrides=[*TINY, "sample.steps=2", "sample.average=2", "sample.modes.perceptual.steps=3"])
    model = hub.save_pretrained(build_method(cfg).eval(), tmp_path / "model", cfg)
    code = main(["--data", "synthetic:deadleaves", "--crop", "32", "--limit", "1", "--checkpoint", str(model),
                 "--mode", "average; perceptual", "--out", str(tmp_path / "out"), "--no-wandb"])
    assert code == 0
    rows = {r["mode"]: (r["steps"], r["average"]) for r in _rows(tmp_path / "out" / "per_image.csv")}
    assert rows == {"average": ("2", "2"), "perceptual": ("3", "1")}
