# The project's workflows. `make run` starts everything locally; `make test` is the test command.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# xdist workers: one more than the 2 cores, because a third of a run's time is tests waiting
# (whole stacks on minute boundaries, servers, browsers): measured in the README. Tests that
# start a whole stack share one worker (loadgroup).
TEST_WORKERS ?= 3
XDIST := -n $(TEST_WORKERS) --dist loadgroup

.PHONY: help install lock lint format test test-clock run smoke bench bench-capacity train reliability endpoint-up endpoint-down clean report report-demo

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-15s %s\n", $$1, $$2}'

install: $(STAMP)  ## build .venv from requirements.lock (uv), with both packages in editable mode

$(STAMP): requirements.lock fraud-pipeline/pyproject.toml fraud-devstack/pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "make install: no $(PYTHON); Python 3.11 to 3.13 is required (make install PYTHON=/path/to/python3)" >&2; exit 1; }
	@$(PYTHON) -c 'import sys; v = sys.version.split()[0]; sys.exit(None if sys.version_info >= (3, 11) else f"make install: Python 3.11 to 3.13 is required, {sys.executable} is {v} (make install PYTHON=/path/to/python3.11+)")'
	@$(PYTHON) -c 'import sys; sys.version_info[:2] <= (3, 13) or print(f"make install: Python {sys.version.split()[0]} is newer than the tested 3.11 to 3.13", file=sys.stderr)'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); echo "make install: $(PYTHON) -m venv failed (Debian/Ubuntu: apt install python3-venv)" >&2; exit 1; }
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv
	@# A .venv from before xgboost-cpu holds the GPU build: both install the same `xgboost` files.
	@$(BIN)/uv pip uninstall --python $(BIN)/python --quiet xgboost nvidia-nccl-cu12 2>/dev/null || true
	@# No --compile-bytecode: Python writes the bytecode of what is imported on first import;
	@# compiling all of it up front cost 392 MB of .venv for modules never imported.
	$(BIN)/uv pip install --python $(BIN)/python -r requirements.lock
	@# Two packages: production (fraud-pipeline) and the dev stack and benches (fraud-devstack).
	$(BIN)/uv pip install --python $(BIN)/python --no-deps -e fraud-pipeline -e fraud-devstack
	$(BIN)/python -m compileall -q fraud-pipeline/src fraud-devstack/src
	touch $(STAMP)

lock:  ## re-pin requirements.in into requirements.lock
	$(BIN)/uv pip compile requirements.in -o requirements.lock --python-version 3.11

lint: install  ## ruff (lint + format check), mypy and the import contracts (layers, no dev code)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: install  ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Instants that have broken day arithmetic: a Sunday night, both DST days, the day after the
# 23-hour day, New Year's Eve (each in Paris time). Every test that depends on "today" (marker
# `clock`) runs once at each of them, never at the machine's own date.
CLOCK_NOWS := 2026-11-29T23:30:00+01:00 2026-03-29T12:00:00+02:00 2026-03-30T09:00:00+02:00 \
	2026-10-25T12:00:00+01:00 2026-12-31T23:59:00+01:00

test: lint  ## lint, then the whole suite against real services, `clock` tests at each CLOCK_NOWS (TEST_WORKERS=3 workers; 25 slowest shown)
	$(BIN)/python -m pytest $(XDIST) -m "not bench" --clock-instants "$(CLOCK_NOWS)" --durations=25 $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest: no tests were collected" >&2; exit 5; fi; exit $$rc

test-clock: install  ## only the tests that depend on "today", each at every one of CLOCK_NOWS (part of make test)
	$(BIN)/python -m pytest -m clock --clock-instants "$(CLOCK_NOWS)" $(XDIST) -q --durations=10 $(PYTEST_ARGS)

bench: install  ## benchmarks (goal 10 min; 554 s measured, README): the harness's quick run, then bench/results.json, docs/bench.png, a table vs the goals
	@# FRAUD_BENCH_STARTED: the wall time figure counts the quick run too.
	started=$$(date +%s); $(BIN)/python -m pytest tests/bench -m bench -q $(PYTEST_ARGS) && \
	FRAUD_BENCH_STARTED=$$started $(BIN)/fraud-dev bench

CAPACITY_RATES ?= 20000,40000,60000,80000
CAPACITY_MINUTES ?= 10
bench-capacity: install  ## the per-minute volume the live stack sustains (CAPACITY_RATES, CAPACITY_MINUTES each; ~45 min by default)
	$(BIN)/fraud-dev bench-capacity --rates $(CAPACITY_RATES) --minutes $(CAPACITY_MINUTES)

reliability: install  ## fault injection, hostile input, concurrency, security: a scenario table (also in make test)
	$(BIN)/python -m pytest tests/reliability tests/security tests/pipeline/test_hostile_input.py -v $(PYTEST_ARGS)

train: install  ## retrain the model: same data and seed give the same artifacts and metrics
	$(BIN)/fraud-pipeline train

endpoint-up: install  ## deploy the model to the SageMaker endpoint (SAGEMAKER_* settings), wait InService
	$(BIN)/fraud-pipeline sagemaker deploy

endpoint-down: install  ## tear the SageMaker endpoint and its configs down (stops the cost)
	$(BIN)/fraud-pipeline sagemaker teardown

run: install  ## start everything locally (PostgreSQL, APIs, model, mail, Airflow, report) until Ctrl-C
	$(BIN)/fraud-dev run

smoke: install  ## start the whole stack on free ports, wait for a green scheduled run, an email, report rows; stop
	$(BIN)/python -m pytest tests/devstack/test_smoke.py -m slow -v $(PYTEST_ARGS)

report: install  ## the morning report alone on :8501 (DATABASE_URL's database, role fraud_report_reader)
	$(BIN)/streamlit run fraud-dashboard/app.py --server.port 8501 --server.headless true

report-demo: install  ## store yesterday (held-out Sparkov payments moved onto it), scored by the real model
	$(BIN)/fraud-pipeline db migrate
	$(BIN)/fraud-dev demo

clean:  ## remove local state (.local: embedded database, logs, mail) and this checkout's databases
	-$(BIN)/fraud-pipeline db drop
	rm -rf .local
