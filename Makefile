# Two entry points: `make test` and `make demo`. Both create .venv on first use and reinstall only
# when pyproject.toml changes (the stamp file records the last install).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)

.PHONY: test demo lint clean-venv

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

# OMP_WAIT_POLICY=PASSIVE: idle OpenMP threads sleep instead of spinning, so the suite does not crawl while a
# training job holds the cores (measured: tests/test_dvsr.py + test_training.py 197 s spinning, 124 s passive).
test: $(STAMP)
	OMP_WAIT_POLICY=$${OMP_WAIT_POLICY:-PASSIVE} HF_HUB_OFFLINE=1 WANDB_MODE=offline $(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check stochdeblur scripts tests benchmarks

demo: $(STAMP)
	HF_HUB_OFFLINE=1 WANDB_MODE=offline $(BIN)/python scripts/demo.py --out demo_out

clean-venv:
	rm -rf $(VENV)
