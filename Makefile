# accesswatch — `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
AW := $(VENV)/bin/accesswatch
STAMP := $(VENV)/.installed
DEMO_DIR ?= .demo
# The worker before issue 21 (compact reference data): make bench runs it alongside
# (BENCH_BASELINE= to skip, BENCH_BASELINE=rev for another).
BENCH_BASELINE ?= 903f507

.DEFAULT_GOAL := help
.PHONY: help install tools test test-fast lint lock bench demo demo-offline clean
# Debian packages the tests use: kcat (a Kafka client we did not write), Prometheus
# (with promtool), Alertmanager (for amtool, which checks deploy/alertmanager/) and
# Chromium (the console's browser test drives it with Playwright; no browser download),
# Node and npm (the single sign-on test runs a real OpenID provider, oidc-provider).
TOOLS := kcat prometheus prometheus-alertmanager chromium nodejs npm

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	@test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install accesswatch with its dev tools

tools: ## Install kcat, prometheus, alertmanager, chromium, node (Debian) and oidc-provider (npm)
	@missing=""; for t in $(TOOLS); do command -v $$t >/dev/null || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO=sudo; \
	  else echo "make tools: need root to install$$missing; the tests using them will skip"; exit 0; fi; \
	  echo "installing$$missing"; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@$(PYTHON) tests/console/oidc_provider.py

test: $(STAMP) tools ## Run the whole test suite (sets everything up first)
	$(PY) -m pytest -q

test-fast: $(STAMP) ## Run the tests that need no full-size data set
	$(PY) -m pytest -q -m "not slow"

lint: $(STAMP) ## ruff and mypy
	$(VENV)/bin/ruff check accesswatch streams models console tests
	$(VENV)/bin/mypy

lock: $(STAMP) ## Pin the worker image's dependencies (deploy/requirements.lock) from pyproject.toml
	$(PY) deploy/lock.py

bench: $(STAMP) ## Run the benchmarks and write docs/BENCHMARKS.md (BENCH_BASELINE=rev to compare)
	$(PY) -m benchmarks.run $(if $(BENCH_BASELINE),--baseline $(BENCH_BASELINE))

demo-offline: $(STAMP) ## Generate a small force, backtest it and print the scorecard
	rm -rf $(DEMO_DIR) && mkdir -p $(DEMO_DIR)
	$(AW) generate --out $(DEMO_DIR)/force --staff 300 --days 7 --seed 7 > /dev/null
	$(AW) backtest $(DEMO_DIR)/force/events.jsonl --ref $(DEMO_DIR)/force --out $(DEMO_DIR)/alerts.jsonl
	$(AW) evaluate --labels $(DEMO_DIR)/force/labels.json --alerts $(DEMO_DIR)/alerts.jsonl

demo: $(STAMP) ## Live: broker, topics, a generated force, a worker, alerts on screen (Ctrl-C stops)
	VENV=$(VENV) bash deploy/demo.sh

clean: ## Remove the venv, demo output and caches
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .mypy_cache .ruff_cache
