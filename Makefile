# breakerpanel: `make test` passes the tests on a fresh machine.

# The interpreter the venv is built on (make unit PYTHON=/path/to/python3.13 VENV=.venv-3.13 runs
# the suite on another one), and uv, pinned with hashes in deploy/uv-requirements.txt.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TOOLS := .tools
UV := $(TOOLS)/bin/uv
# uv never downloads an interpreter here: it builds the venv on $(PYTHON), or fails saying why.
export UV_PYTHON_DOWNLOADS := never
SYSTEM_PACKAGES := prometheus prometheus-alertmanager redis-server postgresql

.PHONY: help venv lock system-deps test lint typecheck unit contracts bench docs dashboards rules up down status mutation clean

help:
	@echo "make venv         create .venv from uv.lock: the project, every extra, the dev group"
	@echo "make lock         refresh uv.lock to the newest releases pyproject.toml allows (and nothing else)"
	@echo "make up           start the demo stack as local processes (docker compose up: the same in containers)"
	@echo "make down         stop exactly what make up started"
	@echo "make status       the stack's services, URLs and breaker states"
	@echo "make test         install what is missing, then ruff, mypy and pytest"
	@echo "make bench        run the benchmarks (results in bench/results/)"
	@echo "make mutation     mutation testing of the breaker core (mutmut; slow)"
	@echo "make contracts    rewrite the Pact files in tests/contracts/pacts from the consumer tests, then verify them"
	@echo "make docs         regenerate the generated parts of docs/"
	@echo "make dashboards   regenerate the Grafana dashboards' JSON from dashboards/*.dashboard.py"
	@echo "make rules        regenerate the Prometheus rules from alert_rules/"

$(UV): deploy/uv-requirements.txt
	test -x $(TOOLS)/bin/python || $(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps \
		-r deploy/uv-requirements.txt
	touch $@

# Exactly what uv.lock says, hashes checked; --locked fails when pyproject.toml has moved on
# without `make lock`. Rebuilt when either file changes.
$(BIN)/.installed: pyproject.toml uv.lock $(UV)
	UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --locked --all-extras --python $(PYTHON) --quiet
	touch $@

venv: $(BIN)/.installed

# The newest releases inside pyproject.toml's ranges, for every extra and group. Commit uv.lock
# after `make test` passes on it; `uv lock --upgrade-package NAME` moves one package only.
lock: $(UV)
	$(UV) lock --upgrade

system-deps:
	bash deploy/system-deps.sh $(SYSTEM_PACKAGES)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

# One worker per core (at most 4): the suite mostly waits on the servers it starts, so two
# workers halve its time here (about 7 min -> 4 on 2 cores). PYTEST_ARGS="-n 0 -k ..." for one.
unit: venv
	$(BIN)/pytest -n auto --maxprocesses 4 $(PYTEST_ARGS)

test: system-deps lint typecheck unit

# The consumer tests write the pact files (review the diff), then every provider verifies them.
contracts: venv
	PACT_WRITE=1 $(BIN)/pytest -n 0 tests/contracts
	$(BIN)/pytest -n 0 tests/contracts

# The overhead benchmark on the last CPU this process may use (its local server on the others):
# unpinned, the scheduler moving it between CPUs moved its verdict ratios by 8 to 10% run to run.
bench: venv
	$(BIN)/python bench/overhead.py --cpu $$($(BIN)/python -c 'import os; print(max(os.sched_getaffinity(0)))')
	$(BIN)/python bench/bot_intake.py
	$(BIN)/python bench/distributed.py
	$(BIN)/python bench/scrape.py
	$(BIN)/python bench/semantic_cache.py
	$(BIN)/python bench/chart_render.py

docs: venv
	$(BIN)/python docs/generate.py

dashboards: venv
	$(BIN)/python -m breakerpanel.dashboards

rules: venv
	$(BIN)/python -m breakerpanel.alert_rules

# `up` installs Prometheus and Alertmanager itself when they are missing (as root); PostgreSQL is
# for compose only, so system-deps is not a prerequisite here.
up: venv
	$(BIN)/breakerpanel up $(UP_ARGS)

down: venv
	$(BIN)/breakerpanel down

status: venv
	$(BIN)/breakerpanel status

# The breaker core's mutation score (bench/results/mutation.json); all of _breaker.py takes about
# 1.5 h on one worker: MUTATION_ARGS="breaker/breakerpanel/_window.py ..." runs the files named.
mutation: venv
	$(BIN)/python bench/mutation.py --max-children 1 --min-score 85 $(MUTATION_ARGS)

clean:
	rm -rf $(VENV) .venv-3.13 $(TOOLS) .pytest_cache .mypy_cache .ruff_cache .hypothesis mutants .mutation
