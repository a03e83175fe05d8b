# srsweep: `make demo` installs and runs a real small study; `make test` runs the tests.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
SPEC   ?= sweeps/smoke.yaml
SHELL  := /bin/bash

.PHONY: install demo test quick bench lint clean

install: $(VENV)/.installed

# pip resolves torch==2.13.0 to the CPU wheel here (setup.cfg pins why)
$(VENV)/.installed: setup.cfg pyproject.toml
	@echo "make install: creating $(VENV) and installing srsweep with its dependencies (torch CPU, wandb, sweeps; ~2 min on a fresh machine)"
	$(PYTHON) -m venv $(VENV)
	set -o pipefail; $(BIN)/pip install --disable-pip-version-check -e '.[dev]' \
	  | grep -E --line-buffered '^(Collecting|Installing|Successfully)'
	$(COMPILE)
	@touch $@

# srsweep's bytecode, as pip writes it for an installed package but not an editable one
# (where PYTHONDONTWRITEBYTECODE is set, each command would compile its ~100 modules anew:
# 0.2 s of a report)
COMPILE = $(BIN)/python -m compileall -q srsweep

# create -> agent -> report on the embedded local backend (no account, no network)
demo: install
	@set -e; sid=$$($(BIN)/srsweep create $(SPEC)); \
	$(BIN)/srsweep agent $$sid; \
	$(BIN)/srsweep status $$sid; \
	$(BIN)/srsweep report $$sid

test: install
	WANDB_MODE=disabled $(BIN)/pytest -m "not gpu" -q

quick: install
	WANDB_MODE=disabled $(BIN)/pytest -m "not gpu and not slow" -q

# speed targets live here, measured side by side in one run (never in timed tests)
bench: install
	$(COMPILE)
	SRSWEEP_KERNELS=toy=srsweep.testing.toy $(BIN)/python benchmarks/bench_agent.py
	$(BIN)/python benchmarks/bench_pack.py
	$(BIN)/python benchmarks/bench_pack_fill.py
	$(BIN)/python benchmarks/bench_pack_lazy.py
	$(BIN)/python benchmarks/bench_pack_stn.py
	$(BIN)/python benchmarks/bench_oversub.py
	$(BIN)/python benchmarks/bench_report.py --postgres
	$(BIN)/python benchmarks/bench_pg_agents.py

lint: install
	$(BIN)/ruff check srsweep tests benchmarks
	$(BIN)/ruff format --check srsweep tests benchmarks
	$(BIN)/mypy srsweep benchmarks

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
