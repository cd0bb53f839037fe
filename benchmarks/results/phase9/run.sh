#!/bin/bash
# Phase 9 (issue 15), session 14: phase 8 (../phase8/run.sh) from phase 8's weights with data.distinct_epochs=2:
# odd epochs draw 1600 items never seen before (phases 5-8 each went 6 times over the same 1600), estimated on
# first use and cached beside the old ones; even epochs reuse the old items and estimates.
# Extra arguments are passed on (--resume latest).
exec bash "$(dirname "$0")/../phase8/run.sh" train.init_from=runs/phase8/model data.distinct_epochs=2 --out runs/phase9 "$@"
