"""Train a model from a YAML config: see stochdeblur/cli/train.py (python scripts/train.py --help)."""
from stochdeblur.cli.train import run

run()
