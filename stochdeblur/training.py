"""One Accelerate training loop for every method family (DvSR; DeblurGAN groups "d" then "g").

Covers one CPU, one GPU, several GPUs or nodes (``accelerate launch``) without code changes: DDP wraps the
single method module once, one AdamW per parameter group, gradient accumulation and clipping, mixed
precision, an EMA of the weights (validated and exported), checkpoints written atomically with
``accelerator.save_state`` and exact resume. Data are a pure function of (seed, epoch, position), the training
noise of (seed, rank, step) and the learning rate of the step (:func:`lr_factor`: no scheduler state), so
resuming at step N replays exactly what an uninterrupted run sees, under the config it is resumed with.

Layout of ``out_dir``: ``config.yaml`` (resolved config), ``metrics.jsonl`` (one line per logged step),
``checkpoints/step_<N>/`` (with a ``COMPLETE`` marker), ``model/`` (EMA weights for ``scripts/sample.py``),
``samples/step_<N>.png`` (validation panels), ``wandb/`` or ``logs/`` (trackers; the W&B run also holds
``model/`` as artifact ``model-<name>``).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from accelerate import Accelerator, PartialState
from accelerate.utils import (
    DistributedDataParallelKwargs,
    ProjectConfiguration,
    parse_flag_from_env,
    set_seed,
)
from safetensors.torch import load_file
from torch import Tensor
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from stochdeblur import checkpointing, metrics, trackers
from stochdeblur.config import ConfigError, RunConfig, TrainConfig, to_dict, to_yaml
from stochdeblur.data import build_dataset
from stochdeblur.ema import EMA
from stochdeblur.hub import WEIGHTS_NAME, load_weights_into, save_pretrained
from stochdeblur.io import to_uint8, write_image
from stochdeblur.methods import build_method
from stochdeblur.methods.base import Method
from stochdeblur.utils import atomic_write_text, pick_precision


def _mix(*values: int) -> int:
    """A 63-bit seed from several integers (seed, rank, step, ...), well spread by SeedSequence."""
    return int(np.random.SeedSequence([int(v) for v in values]).generate_state(2, np.uint64)[0] >> 1)


def lr_factor(train: TrainConfig, step: int) -> float:
    """Base-LR multiplier after ``step`` optimizer steps (0 for the first step): linear warm-up over
    ``train.warmup_steps``, then ``train.lr_schedule`` up to ``train.max_steps``: cosine to ``min_lr_ratio``,
    ``step`` (÷10 at 50 % and again at 75 % of the steps after warm-up) or constant."""
    if step < train.warmup_steps:
        return (step + 1) / train.warmup_steps
    progress = min(1.0, (step - train.warmup_steps) / max(1, train.max_steps - train.warmup_steps))
    if train.lr_schedule == "cosine":
        return train.min_lr_ratio + (1.0 - train.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
    if train.lr_schedule == "step":
        return 0.1 ** sum(progress >= m for m in (0.5, 0.75))
    return 1.0


def initial_method(cfg: RunConfig) -> Method:
    """The method a run starts from: ``build_method(cfg)`` with torch's RNG seeded from ``train.seed`` (the
    global RNG is left as it was), so every rank and every re-run starts from the same weights; then the weights
    of ``train.init_from`` (only ``train.init_modules`` when given; grown conv inputs zero-filled with
    ``train.init_widen_inputs``) loaded into it.

    Raises:
        CheckpointError: ``train.init_from`` is missing or does not match the method (the tensors are named).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.train.seed)
        method = build_method(cfg)
    if cfg.train.init_from:
        load_weights_into(method, cfg.train.init_from, cfg.train.init_modules, cfg.train.init_widen_inputs)
    freeze(method, cfg.train.freeze)
    return method


def freeze(method: Method, prefixes: list[str]) -> None:
    """Stop the parameters under each of ``prefixes`` (``train.freeze``) from learning: no gradient, and the
    trainer leaves them out of the optimizers.

    Raises:
        ConfigError: a prefix names no parameter (a typo would otherwise train everything silently).
    """
    def under(name: str, prefix: str) -> bool:
        return name == prefix or name.startswith(f"{prefix}.")

    params = dict(method.named_parameters())
    for prefix in prefixes:
        if not any(under(name, prefix) for name in params):
            raise ConfigError(f"train.freeze: {prefix!r} names no parameter of the model (its top-level modules: "
                              f"{sorted({n.split('.')[0] for n in params})})")
    for name, param in params.items():
        if any(under(name, prefix) for prefix in prefixes):
            param.requires_grad_(False)


class EpochDataset(Protocol):
    """A training dataset (``SyntheticPairs``, ``PairedDataset``): item i of epoch e is fixed by (seed, e, i)."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> dict[str, Any]: ...

    def set_epoch(self, epoch: int) -> None: ...


class ShardedBatches:
    """This rank's training batches, a pure function of (seed, epoch, batch position): resumable exactly.

    Epoch ``e`` shuffles the dataset with seed (seed, e) and gives rank ``r`` every ``world``-th index, cut to
    whole batches; the dataset's own ``set_epoch(e)`` picks fresh crops/pairs.
    """

    def __init__(self, dataset: EpochDataset, batch_size: int, seed: int, rank: int, world: int,
                 num_workers: int = 0, pin_memory: bool = False) -> None:
        self.dataset, self.batch_size, self.seed, self.rank, self.world = dataset, batch_size, seed, rank, world
        self.num_workers, self.pin_memory = num_workers, pin_memory
        self.per_epoch = len(dataset) // world // batch_size
        if self.per_epoch < 1:
            raise ConfigError(f"data: {len(dataset)} training items cannot fill one batch of {batch_size} "
                              f"on each of {world} processes")

    def indices(self, epoch: int) -> list[int]:
        """This rank's item indices for ``epoch``, in order (whole batches only)."""
        perm = torch.randperm(len(self.dataset), generator=torch.Generator().manual_seed(_mix(self.seed, epoch)))
        return perm[self.rank::self.world][: self.per_epoch * self.batch_size].tolist()

    def iterate(self, start: int = 0) -> Iterator[dict[str, Any]]:
        """Endless batches beginning at batch number ``start`` of this rank (epochs roll over)."""
        epoch, offset = divmod(start, self.per_epoch)
        while True:
            self.dataset.set_epoch(epoch)
            loader = DataLoader(self.dataset, batch_size=self.batch_size, sampler=self.indices(epoch)[
                offset * self.batch_size:], drop_last=True, num_workers=self.num_workers, pin_memory=self.pin_memory)
            yield from loader
            epoch, offset = epoch + 1, 0


def _precision(cfg: RunConfig, device: torch.device) -> str:
    """Config value if explicit; else ``accelerate launch --mixed_precision bf16|fp16``; else by hardware."""
    if cfg.train.mixed_precision != "auto":
        return cfg.train.mixed_precision
    launched = os.environ.get("ACCELERATE_MIXED_PRECISION", "no")
    return launched if launched in ("bf16", "fp16") else pick_precision(device, "auto")


class Trainer:
    """Trains ``method`` (built from ``cfg``, e.g. by :func:`initial_method`) into ``out_dir``; :meth:`fit` runs
    (or resumes) and returns final metrics.

    Only the method contract (:class:`~stochdeblur.methods.base.Method`) is used: its requirements are checked
    before anything is written, then one optimizer per ``optimizer_groups()`` entry, stepped in
    ``step_schedule()`` order at the learning rate of the step (group base LR × :func:`lr_factor`).
    """

    def __init__(self, cfg: RunConfig, method: Method, out_dir: str | Path) -> None:
        self.cfg, self.out_dir = cfg, Path(out_dir)
        self.ckpt_dir = self.out_dir / "checkpoints"
        notes = method.requirements()  # raises (one line naming the fix) before out_dir is touched
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if cfg.train.channels_last:
            method = method.to(memory_format=torch.channels_last)
        groups = method.optimizer_groups()
        self.accelerator = acc = self._accelerator(len(groups))
        if acc.is_main_process:
            for note in notes:
                print(f"note: {note}")
        set_seed(cfg.train.seed + acc.process_index)  # per-rank global RNGs, for methods that draw from them
        self.base_lrs = {name: group.lr for name, group in groups.items()}
        self.groups = {name: [p for p in group.params if p.requires_grad] for name, group in groups.items()}
        if empty := [name for name, params in self.groups.items() if not params]:
            raise ConfigError(f"train.freeze leaves nothing to train in optimizer group(s) {empty}")
        t = cfg.train
        optimizers = [torch.optim.AdamW(params, lr=self.base_lrs[name], betas=tuple(t.betas),
                                        weight_decay=t.weight_decay) for name, params in self.groups.items()]
        self.model, *prepared = acc.prepare(method, *optimizers)
        self.optimizers = dict(zip(groups, prepared, strict=True))
        self.unwrapped = acc.unwrap_model(self.model)
        self.schedule = method.step_schedule()
        self.loss_key = "train/loss" if len(groups) == 1 else f"train/{self.schedule[-1]}/loss"
        self.ema, self.state = EMA(self.unwrapped, cfg.train.ema_decay, cfg.train.ema_start), checkpointing.TrainState()
        acc.register_for_checkpointing(self.ema, self.state)
        self.noise = torch.Generator(device=acc.device)
        items = method.training_dataset(build_dataset(cfg.data, "train", cfg.train.seed),
                                        cache_dir=cfg.data.extras_cache or None)
        self.data = ShardedBatches(items,
                                   cfg.data.batch_size,
                                   cfg.train.seed, acc.process_index, acc.num_processes, cfg.data.num_workers,
                                   pin_memory=acc.device.type == "cuda")
        self._val_batches: list[dict[str, Any]] | None = None
        if acc.is_main_process:
            atomic_write_text(self.out_dir / "config.yaml", to_yaml(cfg))

    def _accelerator(self, n_groups: int) -> Accelerator:
        cfg = self.cfg
        log_with = trackers.configure(cfg.log, self.out_dir)
        handlers = [DistributedDataParallelKwargs(find_unused_parameters=True)] if n_groups > 1 else []
        return Accelerator(
            mixed_precision=_precision(cfg, PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU")).device),
            log_with=log_with,
            gradient_accumulation_steps=cfg.train.grad_accum,
            project_config=ProjectConfiguration(project_dir=str(self.out_dir), logging_dir=str(self.out_dir / "logs")),
            kwargs_handlers=handlers)

    # ----------------------------------------------------------------------------------------------- training

    def _forward(self, batch: dict[str, Any], group: str, seed: int) -> dict[str, Tensor]:
        return self.model(batch, group, generator=self.noise.manual_seed(seed))

    def _to_device(self, value: Any) -> Any:
        """A batch entry on the training device; images in NHWC layout with ``train.channels_last``."""
        if not isinstance(value, Tensor):
            return value
        value = value.to(self.accelerator.device)
        if self.cfg.train.channels_last and value.ndim == 4:
            value = value.contiguous(memory_format=torch.channels_last)
        return value

    def _train_step(self, step: int, batches: Iterator[dict[str, Any]]) -> dict[str, Tensor]:
        """Training step ``step`` (1-based): an optimizer step of every group in ``self.schedule`` over
        ``grad_accum`` micro-batches, each at the LR of the step."""
        acc, accum = self.accelerator, self.cfg.train.grad_accum
        factor = lr_factor(self.cfg.train, step - 1)
        micro = [{k: self._to_device(v) for k, v in next(batches).items()} for _ in range(accum)]
        prefix = "train/" if len(self.groups) == 1 else "train/{}/"
        logs: dict[str, Tensor] = {}
        for k, group in enumerate(self.schedule):
            for opt in self.optimizers.values():  # a "d" pass must not leave gradients in "g" (and back)
                opt.zero_grad(set_to_none=True)
            for i, batch in enumerate(micro):
                # DDP all-reduces gradients on the last micro-batch only.
                with acc.no_sync(self.model) if i < accum - 1 else contextlib.nullcontext():
                    out = self._forward(batch, group, _mix(self.cfg.train.seed, acc.process_index, step, k, i))
                    acc.backward(out["loss"])  # divided by grad_accum inside
                for key, value in out.items():
                    name = prefix.format(group) + key
                    logs[name] = logs.get(name, 0.0) + value.detach().float() / (accum * self.schedule.count(group))
            if self.cfg.train.grad_clip > 0:
                norm = acc.clip_grad_norm_(self.groups[group], self.cfg.train.grad_clip)
                logs[prefix.format(group) + "grad_norm"] = torch.as_tensor(norm, device=acc.device).float()
            lr = self.base_lrs[group] * factor
            for param_group in self.optimizers[group].param_groups:
                param_group["lr"] = lr
            logs[f"lr/{group}"] = torch.tensor(lr, device=acc.device)
            self.optimizers[group].step()
        return logs

    def fit(self, resume: str | None = None) -> dict[str, float]:
        """Train to ``cfg.train.max_steps`` (from ``resume``: None, "latest" or a checkpoint dir); final metrics."""
        acc, cfg = self.accelerator, self.cfg
        path = checkpointing.resolve_resume(resume, self.ckpt_dir)
        if path is not None:
            self._resume(path)
        acc.init_trackers(cfg.log.project, config=self._tracker_config(),
                          init_kwargs={"wandb": {"name": cfg.name, "dir": str(self.out_dir)}})
        batches = self.data.iterate(self.state.step * cfg.train.grad_accum)
        bar = tqdm(total=cfg.train.max_steps, initial=self.state.step, desc=cfg.name,
                   disable=not acc.is_local_main_process, dynamic_ncols=True)
        final: dict[str, float] = {}
        sums: dict[str, Tensor] = {}
        timer = [0.0, 0]  # seconds spent in training steps, steps, since the last log
        self.model.train()
        for step in range(self.state.step + 1, cfg.train.max_steps + 1):
            self.unwrapped.on_step(step - 1)
            started = time.perf_counter()
            for key, value in self._train_step(step, batches).items():
                sums[key] = sums.get(key, 0.0) + value
            timer[0] += time.perf_counter() - started
            timer[1] += 1
            self.state.step = step
            self.ema.update(self.unwrapped, step)
            if step % cfg.train.log_every == 0 or step == cfg.train.max_steps:
                final.update(self._log(step, sums, timer))
                bar.set_postfix(loss=f"{final.get(self.loss_key, float('nan')):.4f}")
                sums, timer = {}, [0.0, 0]
            if cfg.train.val_every > 0 and step % cfg.train.val_every == 0:
                final.update(self._validate(step))
            if cfg.train.checkpoint_every > 0 and step % cfg.train.checkpoint_every == 0:
                self.save_checkpoint(step)
            bar.update(1)
        bar.close()
        return self._finish(final)

    def _finish(self, final: dict[str, float]) -> dict[str, float]:
        step, cfg = self.state.step, self.cfg
        if cfg.train.val_every <= 0 or step % cfg.train.val_every:
            final.update(self._validate(step))
        if cfg.train.checkpoint_every <= 0 or step % cfg.train.checkpoint_every:
            self.save_checkpoint(step)
        self._log_model_artifact(step)
        self.accelerator.wait_for_everyone()
        self.accelerator.end_training()
        return {"step": float(step), **final}

    def _tracker_config(self) -> dict[str, Any]:
        tree = to_dict(self.cfg)
        return trackers.flat_config(tree) if self.cfg.log.tracker == "tensorboard" else tree

    def _log(self, step: int, sums: dict[str, Tensor], timer: list) -> dict[str, float]:
        """Average the interval's values over steps and ranks; log to trackers and ``metrics.jsonl``."""
        acc, keys = self.accelerator, sorted(sums)
        values = acc.reduce(torch.stack([sums[k] for k in keys]) / max(1, timer[1]), reduction="mean")
        out = {k: float(v) for k, v in zip(keys, values.tolist(), strict=True)}
        images = timer[1] * self.cfg.data.batch_size * self.cfg.train.grad_accum * acc.num_processes
        out["images_per_s"] = images / max(timer[0], 1e-9)
        acc.log(out, step=step)
        if acc.is_main_process:
            with open(self.out_dir / "metrics.jsonl", "a") as handle:
                handle.write(json.dumps({"step": step, **out}) + "\n")
        return out

    # --------------------------------------------------------------------------------------------- validation

    def _val_data(self) -> list[dict[str, Any]]:
        if self._val_batches is None:
            dataset = build_dataset(self.cfg.data, "val", self.cfg.train.seed)
            self._val_batches = list(DataLoader(dataset, batch_size=self.cfg.data.batch_size, shuffle=False))
        return self._val_batches

    @torch.no_grad()
    def _validate(self, step: int) -> dict[str, float]:
        """PSNR/SSIM of the EMA weights on the val split (sampling, predictor only, blurry input), panels; main rank."""
        acc, out = self.accelerator, {}
        if acc.is_main_process:
            model, s = self.unwrapped, self.cfg.sample
            model.eval()
            scores: dict[str, list[float]] = {}
            panels: list[np.ndarray] = []
            with self.ema.swapped_in(model), acc.autocast():
                for batch in self._val_data():
                    blur, sharp = batch["blur"].to(acc.device), batch["sharp"].to(acc.device)
                    restored = model.restore(blur, mode="average", seed=s.seed)
                    extra = model.validation_images(blur)
                    self._score(scores, "", restored, sharp)
                    self._score(scores, "_blur", blur, sharp)  # the reference a restoration must beat
                    if "x_init" in extra:
                        self._score(scores, "_init", extra["x_init"], sharp)
                    panels += self._panels(blur, extra.get("x_init"), restored, sharp, len(panels))
            model.train()
            out = {k: float(np.mean(v)) for k, v in scores.items()}
            acc.log(out, step=step)
            self._log_panels(step, panels)
            with open(self.out_dir / "metrics.jsonl", "a") as handle:
                handle.write(json.dumps({"step": step, **out}) + "\n")
        acc.wait_for_everyone()
        return out

    @staticmethod
    def _score(scores: dict[str, list[float]], suffix: str, pred: Tensor, sharp: Tensor) -> None:
        for i in range(pred.shape[0]):
            scores.setdefault(f"val/psnr{suffix}", []).append(metrics.psnr(pred[i].float(), sharp[i]))
            scores.setdefault(f"val/ssim{suffix}", []).append(metrics.ssim(pred[i].float(), sharp[i]))

    def _panels(self, blur: Tensor, x_init: Tensor | None, restored: Tensor, sharp: Tensor,
                have: int) -> list[np.ndarray]:
        """Rows blurry | x_init | sample | sharp, or blurry | output | sharp for a method without an x_init."""
        rows = []
        for i in range(min(blur.shape[0], max(0, self.cfg.log.image_panels - have))):
            columns = (blur[i], restored[i], sharp[i]) if x_init is None else (blur[i], x_init[i], restored[i], sharp[i])
            rows.append(np.concatenate([to_uint8(t) for t in columns], axis=1))
        return rows

    def _log_panels(self, step: int, rows: list[np.ndarray]) -> None:
        if not rows:
            return
        grid = np.concatenate(rows, axis=0)
        write_image(self.out_dir / "samples" / f"step_{step:07d}.png",
                    torch.from_numpy(grid).permute(2, 0, 1).float() / 127.5 - 1.0)
        trackers.log_image(self.accelerator, self.cfg.log.tracker, "val/panels", grid, step)

    # ------------------------------------------------------------------------------------ checkpoints, export

    def save_checkpoint(self, step: int) -> Path:
        """``accelerator.save_state`` into a hidden temp dir, then marker + rename (main rank); prune; export."""
        acc = self.accelerator
        final, tmp = self.ckpt_dir / f"step_{step}", self.ckpt_dir / f".step_{step}.tmp"
        if acc.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        acc.wait_for_everyone()
        acc.save_state(str(tmp))
        acc.wait_for_everyone()
        if acc.is_main_process:
            checkpointing.publish(tmp, final, step, to_yaml(self.cfg), acc.num_processes)
            checkpointing.prune(self.ckpt_dir, self.cfg.train.keep_last)
            self.export(self.out_dir / "model")
        acc.wait_for_everyone()
        return final

    def export(self, directory: str | Path) -> Path:
        """Save the EMA weights + resolved config with :func:`stochdeblur.hub.save_pretrained` (call on main)."""
        with self.ema.swapped_in(self.unwrapped):
            return save_pretrained(self.unwrapped, directory, self.cfg)

    def _log_model_artifact(self, step: int) -> None:
        """W&B: the exported ``model/`` as artifact ``model-<name>`` with its weight digest (the one evaluation
        records in ``models.json``), so a report can tell which evaluation scored this run's model."""
        if self.cfg.log.tracker != "wandb" or not self.accelerator.is_main_process:
            return
        model_dir = self.out_dir / "model"
        digest = checkpointing.tensors_digest(load_file(str(model_dir / WEIGHTS_NAME)).items())
        metadata = {"step": step, "method": self.cfg.method, "weights_digest": digest}
        trackers.log_artifact(self.accelerator.get_tracker("wandb", unwrap=True), f"model-{self.cfg.name}",
                              "model", sorted(model_dir.iterdir()), metadata, aliases=[f"step_{step}"])

    def _resume(self, path: Path) -> None:
        """Restore model, EMA, optimizers, RNGs and the step; drop later lines of metrics.jsonl.

        The learning rate is not restored: it follows this run's config at the restored step. (Scheduler files
        of checkpoints written before the LR became a function of the step are ignored.)
        """
        self.accelerator.load_state(str(path))
        if self.accelerator.is_main_process:
            print(f"resumed from {path} at step {self.state.step}")
            checkpointing.truncate_metrics(self.out_dir / "metrics.jsonl", self.state.step)
        self.accelerator.wait_for_everyone()
