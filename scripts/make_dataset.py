"""Write a synthetic GoPro-layout dataset: see stochdeblur/cli/make_dataset.py (--help)."""
from stochdeblur.cli.make_dataset import main

raise SystemExit(main())
