# Vera: every target installs what it needs (uv, then the locked dependencies).
.DEFAULT_GOAL := help
PYTHON ?= python3
# Port of `make run` (default: API_PORT, else 8000) and of `make dev` (the Studio backend,
# default 2024): make run PORT=8001, make dev PORT=2025
PORT ?=
# The checkout's own uv: a link to the uv on PATH, or one installed by pip when there is
# none. Every target uses it, so a later shell without uv on PATH (or without a network)
# still finds what `make sync` used.
UV := $(CURDIR)/.tools/bin/uv
PATH_UV := $(shell command -v uv 2>/dev/null)

.PHONY: help run test test-unit test-memory test-api test-deployment lint format dev bench \
	bench-load bench-retention bench-quick sync sync-runtime

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(UV):
	@rm -f $(UV)
ifneq ($(PATH_UV),)
	@mkdir -p $(dir $(UV)) && ln -s $(PATH_UV) $(UV)
else
	$(PYTHON) -m venv $(CURDIR)/.tools
	$(CURDIR)/.tools/bin/pip install --quiet uv
endif

# The runtime alone for `make run` (as in the Dockerfile); the dev group (pytest, ruff,
# langgraph-cli...) for the other targets. Each target syncs, so `make run` then `make test`
# puts the dev group back.
sync-runtime: $(UV)
	@echo "Installing the runtime dependencies (uv sync --no-dev)..."
	@$(UV) sync --frozen --no-dev --quiet

sync: $(UV)
	$(UV) sync --frozen

run: sync-runtime ## the API on http://127.0.0.1:8000 (another port: make run PORT=8001)
	$(if $(PORT),API_PORT=$(PORT) )$(UV) run --frozen --no-dev python -m src.api

test: sync ## run the whole test suite (every tier) against a real PostgreSQL
	$(UV) run --frozen pytest

# One tier of tests/ each (tests/conftest.py): `make test-unit` needs no database.
test-unit: sync ## the unit tier alone: pure logic, no database, seconds
	$(UV) run --frozen pytest tests/unit

test-memory: sync ## the memory tier: checkpointer, store and graph on PostgreSQL
	$(UV) run --frozen pytest tests/memory

test-api: sync ## the API tier: the app under an in-process uvicorn
	$(UV) run --frozen pytest tests/api

test-deployment: sync ## processes, browser, wheel, compose, workers, fuzzing
	$(UV) run --frozen pytest tests/deployment

lint: sync ## ruff check + format check + mypy (types of src/)
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen mypy

format: sync ## apply ruff fixes and formatting
	$(UV) run --frozen ruff check --fix .
	$(UV) run --frozen ruff format .

dev: sync ## LangGraph Studio backend on 127.0.0.1:2024 (another port: make dev PORT=2025)
	$(UV) run --frozen python -m src.studio_dev --host 127.0.0.1 --port $(or $(PORT),2024)

bench: sync ## full benchmark: ours vs the official saver (writes docs/benchmarks.md), then retention
	$(UV) run --frozen python -m bench
	$(UV) run --frozen python -m bench.retention --full

bench-retention: sync ## checkpoint retention "latest 10": bytes vs no retention and the official saver (FULL=1: 1,000 turns, 30 x 150)
	$(UV) run --frozen python -m bench.retention $(if $(FULL),--full)

bench-load: sync ## the API as deployed (2 workers, fake model), 200 sessions for 60 s
	$(UV) run --frozen python -m bench.api_workers

bench-quick: sync ## small benchmark run, as CI does
	$(UV) run --frozen python -m bench --quick
