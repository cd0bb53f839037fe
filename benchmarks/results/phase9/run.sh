#!/bin/bash
# Phase 9 (issue 15), session 14: phase 8 (benchmarks/results/phase8/run.sh) from phase 8's weights with
# data.distinct_epochs=2: odd epochs draw 1600 items never seen before (phases 5-8 each went 6 times over the same
# 1600), estimated on first use and cached beside the old ones; even epochs reuse the old items and estimates.
# Extra arguments are passed on (--resume latest).
cd "$(dirname "$0")/../../.."
export HF_HUB_OFFLINE=1 WANDB_MODE=offline OMP_WAIT_POLICY=PASSIVE
exec "${PYTHON:-.venv/bin/python}" scripts/train.py --config configs/dvsr_kernel_aware.yaml --out runs/phase9 \
  predictor.kernel_source=classical predictor.train_kernel=estimated predictor.kernel_loss_weight=0 \
  predictor.reblur_loss_weight=0 predictor.edge_fraction=0.5 predictor.reblur_input=true predictor.truth_mix=0.3 \
  train.init_from=runs/phase8/model \
  data.crop_size=128 data.batch_size=8 data.num_workers=2 data.max_blurry_psnr=28 data.max_blurry_share=0.5 \
  data.synthetic_length=1600 data.distinct_epochs=2 data.extras_cache=runs/phase5_extras \
  data.val_kind=wallpapers data.val_images=12 data.val_crop_size=256 data.val_max_blurry_psnr=30 \
  train.max_steps=1200 train.lr=1e-4 \
  train.warmup_steps=50 train.ema_decay=0.999 train.checkpoint_every=200 train.val_every=400 train.log_every=25 "$@"
