# The two commands a new machine needs: `make run` and `make test`.
# Everything else is bootstrapped here: uv into .tools/, dependencies from uv.lock into .venv/.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
UV_VERSION ?= 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
STAMP := $(VENV)/.synced
export UV_PROJECT_ENVIRONMENT := $(abspath $(VENV))
export UV_PYTHON := $(shell command -v $(PYTHON))
export UV_NO_PROGRESS := 1
# pytest's -n / timeouts: the whole suite must fit ~10 min on 2 cores.
PYTEST_ARGS ?=

.PHONY: help run test lint fmt typecheck schemas bench clean distclean setup chaos fuzz soak

help: ## list targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*?## "}{printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

$(UV):
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required, found " + sys.version' 
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

$(STAMP): $(UV) uv.lock pyproject.toml libs/*/pyproject.toml services/*/pyproject.toml
	$(UV) sync --frozen --all-packages
	@touch $@

setup: $(STAMP) ## create .venv from uv.lock (done automatically by run/test)

run: $(STAMP) ## start Redis (embedded), SQLite store, venue simulator, S3 on :8081, S4 on :8082
	$(VENV)/bin/python scripts/devstack.py

test: $(STAMP) ## run lint, type checks, import contracts and the whole test suite
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache
	@bash scripts/install_promtool.sh  # promtool for the alert rule tests (skip if it cannot)
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP) ## ruff lint + format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

fmt: $(STAMP) ## format and auto-fix
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

typecheck: $(STAMP) ## mypy (strict on libs and services)
	$(VENV)/bin/mypy

schemas: $(STAMP) ## export JSON Schemas of the contracts to deploy/schemas/
	$(VENV)/bin/python scripts/export_schemas.py

bench: $(STAMP) ## every benchmark → reports/bench.md, bench.json, *.png (BENCH_QUICK=1 short run; BENCH_ONLY=a,b)
	BENCH_QUICK=$(BENCH_QUICK) BENCH_ONLY=$(BENCH_ONLY) $(VENV)/bin/python -m tests.bench.report

chaos: $(STAMP) ## seeded chaos campaign of real processes (SEED=…, CHAOS_SCENARIOS=…; default 1000)
	$(VENV)/bin/python -m tests.chaos.campaign $(if $(SEED),--seed $(SEED)) --scenarios $(or $(CHAOS_SCENARIOS),1000)

soak: $(STAMP) ## whole stack under steady live decisions + intents (SOAK_MINUTES=…, default 10; SEED=…); fails on RSS growth, weight refusals, LOCK_BUSY
	$(VENV)/bin/python -m tests.soak.run --minutes $(or $(SOAK_MINUTES),10) $(if $(SEED),--seed $(SEED))

fuzz: $(STAMP) ## schemathesis on S3's and S4's OpenAPI (FUZZ_EXAMPLES per operation, default 200; SEED=…)
	$(VENV)/bin/python -m tests.fuzz.run --examples $(or $(FUZZ_EXAMPLES),200) $(if $(SEED),--seed $(SEED))

clean: ## remove runtime data (var/) and caches
	rm -rf var .pytest_cache .mypy_cache .ruff_cache

distclean: clean ## also remove .venv and .tools
	rm -rf $(VENV) $(TOOLS)
