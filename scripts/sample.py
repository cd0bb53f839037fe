"""Deblur an image or a folder: see stochdeblur/cli/sample.py (python scripts/sample.py --help)."""
from stochdeblur.cli.sample import main

raise SystemExit(main())
