"""Table of the package's networks: see stochdeblur/cli/models.py (python scripts/models.py --help)."""
from stochdeblur.cli.models import main

raise SystemExit(main())
