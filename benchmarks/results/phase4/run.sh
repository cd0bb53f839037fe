#!/bin/bash
# Phase 4 (issue 15), session 11: R and f from the then-shipped (phase-3) weights on edge_fraction=0.5 estimates.
# Run from anywhere; extra arguments are passed on (e.g. --resume latest). PYTHON picks the interpreter.
cd "$(dirname "$0")/../../.."
export HF_HUB_OFFLINE=1 WANDB_MODE=offline OMP_WAIT_POLICY=PASSIVE
exec "${PYTHON:-.venv/bin/python}" scripts/train.py --config configs/dvsr_kernel_aware.yaml --out runs/ef05 \
  predictor.kernel_source=classical predictor.train_kernel=estimated predictor.kernel_loss_weight=0 \
  predictor.reblur_loss_weight=0 predictor.edge_fraction=0.5 train.init_from=stochdeblur/weights/default \
  data.crop_size=128 data.batch_size=8 data.num_workers=2 \
  data.synthetic_length=1600 data.distinct_epochs=1 data.extras_cache=runs/ef05_extras \
  data.val_kind=wallpapers data.val_images=12 data.val_crop_size=256 train.max_steps=1200 train.lr=1e-4 \
  train.warmup_steps=50 train.ema_decay=0.999 train.checkpoint_every=200 train.val_every=400 train.log_every=25 "$@"
