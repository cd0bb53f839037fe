"""`make demo`: deblur example photos with the shipped model: see stochdeblur/cli/demo.py (--help)."""
from stochdeblur.cli.demo import main

raise SystemExit(main())
