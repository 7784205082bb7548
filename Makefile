# Two commands on a fresh machine: `make demo` and `make test`. Each creates .venv itself.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.zdim-installed

.PHONY: demo test test-fast lint install clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/zdim sweep digits --out runs/demo --overwrite

test: $(STAMP)
	$(PY) -m pytest -q

# Everything but the slow end-to-end tests (headless Chromium, PostgreSQL, kill -9): for quick checks
# while working. `make test` (the README's and CI's command) runs them all.
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

# Lint: ruff over the code, ruff's formatter check over all of it (FORMATTED), mypy --strict
# over the package (settings in pyproject.toml).
FORMATTED := src tests examples benchmarks scripts

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests examples benchmarks scripts
	$(VENV)/bin/ruff format --check $(FORMATTED)
	$(VENV)/bin/mypy --strict

clean:
	rm -rf $(VENV) runs .pytest_cache
