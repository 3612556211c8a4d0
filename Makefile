# breakerpanel: `make test` passes the tests on a fresh machine.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SYSTEM_PACKAGES := prometheus prometheus-alertmanager redis-server postgresql

.PHONY: help venv system-deps test lint typecheck unit bench docs dashboards rules up down status mutation clean

help:
	@echo "make venv         create .venv with the project and its dev extras"
	@echo "make up           start the demo stack as local processes (docker compose up: the same in containers)"
	@echo "make down         stop exactly what make up started"
	@echo "make status       the stack's services, URLs and breaker states"
	@echo "make test         install what is missing, then ruff, mypy and pytest"
	@echo "make bench        run the benchmarks (results in bench/results/)"
	@echo "make mutation     mutation testing of the breaker core (mutmut; slow)"
	@echo "make docs         regenerate the generated parts of docs/"
	@echo "make dashboards   regenerate the Grafana dashboards' JSON from dashboards/*.dashboard.py"
	@echo "make rules        regenerate the Prometheus rules from alert_rules/"

# The venv is rebuilt when pyproject.toml changes.
$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

venv: $(BIN)/.installed

system-deps:
	bash deploy/system-deps.sh $(SYSTEM_PACKAGES)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

unit: venv
	$(BIN)/pytest

test: system-deps lint typecheck unit

bench: venv
	$(BIN)/python bench/overhead.py
	$(BIN)/python bench/bot_intake.py
	$(BIN)/python bench/distributed.py

docs: venv
	$(BIN)/python docs/generate.py

dashboards: venv
	$(BIN)/python -m dashboards

rules: venv
	$(BIN)/python -m alert_rules

# `up` installs Prometheus and Alertmanager itself when they are missing (as root); PostgreSQL is
# for compose only, so system-deps is not a prerequisite here.
up: venv
	$(BIN)/breakerpanel up $(UP_ARGS)

down: venv
	$(BIN)/breakerpanel down

status: venv
	$(BIN)/breakerpanel status

# The breaker core's mutation score (bench/results/mutation.json); all of _breaker.py takes about
# 1.5 h on one worker: MUTATION_ARGS="breaker/_window.py ..." runs the files named.
mutation: venv
	$(BIN)/python bench/mutation.py --max-children 1 --min-score 85 $(MUTATION_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis mutants
