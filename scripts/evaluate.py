"""Benchmark models on a paired dataset: see stochdeblur/cli/evaluate.py (python scripts/evaluate.py --help)."""
from stochdeblur.cli.evaluate import main

raise SystemExit(main())
