"""Deblurring web app (Gradio): see stochdeblur/cli/app.py (python scripts/app.py --help)."""
from stochdeblur.cli.app import main

raise SystemExit(main())
