# AXIS Loop — `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
DATA_DIR ?= .axis
STAMP := $(VENV)/.installed
SIZE ?= 518
SERVICES ?= all
PYTEST_ARGS ?=
BENCH_GPU_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install lint typecheck check test test-unit test-integration test-browser test-e2e up down status \
        demo experiment-curation compose-check bench-inference bench-gpu bench-discrepancy bench-scale chaos hostile durability docs browser-deps clean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# torch first and exactly this version: it is the local CPU wheel (anything else pulls CUDA)
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -r requirements.lock
	$(PIP) install --quiet --no-deps -e '.[dev]'
	@$(PY) -c "import torch, sys; v = torch.__version__; sys.exit(0 if v.startswith('2.13.0') else f'wrong torch {v}')"
	@if $(PIP) show torchvision >/dev/null 2>&1; then echo 'torchvision is installed and breaks transformers: pip uninstall torchvision'; exit 1; fi
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install every lib and service (editable) from the lock

browser-deps: ## install Debian chromium for browser tests (needs root or sudo)
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }
	@chromium --version

lint: $(STAMP) ## ruff
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check libs infra services tests

typecheck: $(STAMP) ## mypy (pydantic plugin)
	$(VENV)/bin/mypy libs infra services

check: lint typecheck ## lint + typecheck

test: $(STAMP) browser-deps ## the whole test suite: unit, integration (starts the embedded stack), e2e, browser
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-unit: $(STAMP) ## unit tests only (no servers)
	$(PY) -m pytest -q -m unit $(PYTEST_ARGS)

test-integration: $(STAMP) ## integration tests against the real embedded stack
	$(PY) -m pytest -q -m integration $(PYTEST_ARGS)

test-e2e: $(STAMP) ## end-to-end loop test
	$(PY) -m pytest -q -m e2e $(PYTEST_ARGS)

test-browser: $(STAMP) browser-deps ## browser tests of the web pages (headless chromium)
	$(PY) -m pytest -q -m browser $(PYTEST_ARGS)

up: $(STAMP) ## start the embedded stack and every service, supervised (SERVICES=all|none|a,b); a no-op when up
	$(PY) -m axis_stack up --data-dir $(DATA_DIR) --services $(SERVICES)

status: $(STAMP) ## every server and service: healthy or not, /health, consumer lag, models in use, pages
	$(PY) -m axis_stack status --data-dir $(DATA_DIR)

down: $(STAMP) ## stop the services (in-flight batches finish), then exactly what `make up` started
	$(PY) -m axis_stack down --data-dir $(DATA_DIR)

demo: $(STAMP) ## run one whole Lab-in-the-Loop cycle on the embedded stack
	$(PY) -m axis_cli demo --data-dir $(DATA_DIR) $(DEMO_ARGS)

experiment-curation: $(STAMP) ## disagreements only vs + budgeted uncertain agreements, same curator budget, 2 seeds
	$(PY) -m axis_cli.demo_curation $(EXPERIMENT_ARGS)

compose-check: $(STAMP) ## validate docker-compose.yml with a compose binary (no Docker engine needed)
	$(PY) -m axis_stack compose-check docker-compose.yml

bench-inference: $(STAMP) ## naive vs fast inference path, plus the service end to end (SIZE=224|518)
	$(PY) -m axis_inference.bench --size $(SIZE)

bench-gpu: $(STAMP) ## GPU scoring variants x batch sizes, then the service end to end (CPU fallback; BENCH_GPU_ARGS=...)
	$(PY) -m axis_inference.bench_gpu $(BENCH_GPU_ARGS)

bench-discrepancy: $(STAMP) ## score + user-score pairs through the broker and PostgreSQL
	$(PY) -m axis_discrepancy.bench

bench-scale: $(STAMP) ## a facility's year (1.0M images) on a fresh stack, then latencies, throughput, export, sizes (SCALE=0.05)
	$(PY) -m axis_simulators.bench_scale

chaos: $(STAMP) ## kill and restart components under load; prints lost/duplicated counts
	$(PY) -m axis_simulators.chaos

hostile: $(STAMP) ## bad inputs of every class through the broker and HTTP; prints rejected-once / stall / 5xx counts
	$(PY) -m axis_simulators.hostile $(HOSTILE_ARGS)

durability: $(STAMP) ## fill a fresh stack through the loop, kill -9 everything at once, start again, count again
	$(PY) -m axis_simulators.durability $(DURABILITY_ARGS)

docs: $(STAMP) ## regenerate docs/asyncapi.yaml and docs/openapi/*.json from the code (a unit test fails when stale)
	$(PY) -m axis_cli.apidocs

clean: ## remove the venv and local data
	rm -rf $(VENV) $(DATA_DIR) build *.egg-info
