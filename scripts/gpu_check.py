"""The checks only a CUDA machine can run (`make gpu-check`): see stochdeblur/cli/gpu_check.py."""
from stochdeblur.cli.gpu_check import main

raise SystemExit(main())
