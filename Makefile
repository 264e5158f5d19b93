# Drukte — `make help` lists the targets. Everything runs from a local .venv that these targets create.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install promtool chromium demo test test-unit test-e2e check lint bench wrk clean

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-10s %s\n", $$1, $$2}'

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "Drukte needs Python 3.11 ($(PYTHON)); set PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install Drukte with its dev tools

demo: $(STAMP) ## start broker, store, worker, API and simulator for the four cities; Ctrl-C stops all
	$(BIN)/drukte up

chromium: ## install Debian's chromium and chromium-driver if missing: the browser tests drive them (no browser download)
	@{ command -v chromium && command -v chromedriver; } >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	  else echo "the browser tests need chromium and chromedriver: sudo apt-get install chromium chromium-driver"; exit 1; fi; }

promtool: ## install Prometheus' promtool (Debian package prometheus) if missing: the alert rule tests need it
	@command -v promtool >/dev/null 2>&1 || [ -x /usr/bin/promtool ] || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; \
	  else echo "the alert tests need promtool: install it (Debian/Ubuntu: sudo apt-get install prometheus)"; exit 1; fi; }

test: $(STAMP) promtool chromium ## run every test tier (unit, component, e2e, browser) against a real embedded broker and store
	$(BIN)/python -m pytest -q tests/unit tests/component tests/browser
	$(BIN)/python -m pytest -q -n 2 --dist loadfile tests/e2e  # each test starts its own broker and store

test-unit: $(STAMP) promtool ## only the fast pure tests
	$(BIN)/python -m pytest -q tests/unit

test-e2e: $(STAMP) ## only the end-to-end tier (each test starts its own embedded broker and store)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile tests/e2e

check: $(STAMP) ## ruff, mypy --strict and the import contracts
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

lint: check ## the same as check

bench: $(STAMP) wrk ## benchmarks (on demand, not part of make test): throughput vs a plain consumer and Faust (A/B, 3 runs), two workers, live latency at 20k and 50k r/s, API load and SSE, the pure-logic floor, forecast WAPE, spending suppressions
	-$(BIN)/python -m bench  # exits 1 when a worker run is not exact; the other benchmarks still run
	-$(BIN)/python -m bench --encodings B --contenders baseline,worker,worker2  # scaling out: two workers, one group
	$(BIN)/python -m bench.latency --rates 20000,50000 --phase-s 120
	$(BIN)/python -m bench.api
	$(BIN)/python -m bench.dedupe
	$(BIN)/python -m bench.floor
	$(BIN)/python -m bench.forecast
	$(BIN)/python -m bench.spending

wrk: ## install Debian's wrk (HTTP load generator) if missing: bench.api uses it (falls back to a Python client)
	@command -v wrk >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk; \
	  else echo "bench.api prefers wrk: sudo apt-get install wrk (it falls back to a Python client)"; fi; }

clean: ## remove the venv and local state
	rm -rf $(VENV) .drukte .pytest_cache .mypy_cache .ruff_cache .hypothesis
