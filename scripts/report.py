"""Experiment report (HTML, optionally W&B): see stochdeblur/cli/report.py (scripts/report.py --help)."""
from stochdeblur.cli.report import main

raise SystemExit(main())
