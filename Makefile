# cart-cytopenia — every command a developer or CI needs.
# `make demo` and `make test` work on a fresh machine: they create .venv and install first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO_DIR ?= demo-output

.PHONY: help setup test check lint typecheck importlint pytest demo bench bench-quick docs clean

help:
	@echo "make demo   - set up, assess the example courses, grade a cohort, serve the web app with demo data"
	@echo "make test   - set up and run every check and test (ruff, import layers, mypy, pytest)"
	@echo "make bench  - benchmarks (results in benchmarks/RESULTS.md)"
	@echo "make bench-quick - a short smoke run of the web service load benchmark"
	@echo "make docs   - regenerate docs/rule-reference.md and docs/grade-table-schema.json"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,spark]'
	touch $(STAMP)

setup: $(STAMP)

LINT_PATHS := $(wildcard src tests benchmarks scripts)

lint: setup
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)

importlint: setup
	$(BIN)/lint-imports

typecheck: setup
	$(BIN)/mypy

pytest: setup
	$(BIN)/pytest

check: lint importlint typecheck

test: check pytest

docs: setup
	$(BIN)/cart-cytopenia docs rules --out docs/rule-reference.md
	$(BIN)/cart-cytopenia docs grade-schema --out docs/grade-table-schema.json

demo: setup
	bash scripts/demo.sh

bench: setup
	# byte-compile the package as a wheel install would (the editable install does not, and
	# PYTHONDONTWRITEBYTECODE=1 environments never write it): each command starts without
	# compiling the project's modules
	$(BIN)/python -m compileall -q src
	$(BIN)/python benchmarks/cds_hooks_bench.py --results benchmarks/cds_hooks_results.md
	# the web service under load, SQLite then PostgreSQL (CART_CYTOPENIA_BENCH_POSTGRES_URL,
	# a database of its own: it is emptied); no wrk needed; prints each target's pass/FAIL
	$(BIN)/python benchmarks/service_bench.py --results benchmarks/service_results.md
	# RESULTS.md: grading, reference, report, then the two files above and ANALYSIS.md
	$(BIN)/python benchmarks/run.py
	# the cost of the issue-12 instruments (T-ICAHT, EASIX, TA-TMA, IEC-HS), appended to RESULTS.md
	$(BIN)/python benchmarks/issue12_cost.py
	# the speed tricks the engine dropped (issue 16), swapped back in and timed, appended to RESULTS.md
	$(BIN)/python benchmarks/speed_tricks.py --results benchmarks/RESULTS.md
	$(BIN)/python benchmarks/scale.py

bench-quick: setup
	$(BIN)/python benchmarks/service_bench.py --quick --results benchmarks/service_results.md

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .mypy_cache .ruff_cache
