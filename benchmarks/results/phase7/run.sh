#!/bin/bash
# Phase 7 (issue 15), session 13: as control.sh (phase 6 trained 1200 steps more on the same items and estimates,
# from runs/phase6/model, which benchmarks/results/phase6/run.sh makes) with predictor.truth_mix=0.3: 30 % of the
# training items reach the refiner deconvolved by their own kernel, softened by σ <= 1.5 px, instead of their
# classical estimate, so R also learns from good deconvolutions (the estimates on 128² crops are worse than on
# whole photos). Run from anywhere; extra arguments are passed on (e.g. --resume latest). PYTHON picks the interpreter.
cd "$(dirname "$0")/../../.."
export HF_HUB_OFFLINE=1 WANDB_MODE=offline OMP_WAIT_POLICY=PASSIVE
exec "${PYTHON:-.venv/bin/python}" scripts/train.py --config configs/dvsr_kernel_aware.yaml --out runs/phase7 \
  predictor.kernel_source=classical predictor.train_kernel=estimated predictor.kernel_loss_weight=0 \
  predictor.reblur_loss_weight=0 predictor.edge_fraction=0.5 predictor.reblur_input=true predictor.truth_mix=0.3 \
  train.init_from=runs/phase6/model \
  data.crop_size=128 data.batch_size=8 data.num_workers=2 data.max_blurry_psnr=28 \
  data.synthetic_length=1600 data.distinct_epochs=1 data.extras_cache=runs/phase5_extras \
  data.val_kind=wallpapers data.val_images=12 data.val_crop_size=256 data.val_max_blurry_psnr=30 \
  train.max_steps=1200 train.lr=1e-4 \
  train.warmup_steps=50 train.ema_decay=0.999 train.checkpoint_every=200 train.val_every=400 train.log_every=25 "$@"
