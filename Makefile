# signals_dagster — `make dev` opens the UI on the embedded demo; `make test` runs every test.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DAGSTER_HOME_DEV := $(CURDIR)/.dagster_home
PORT ?= 3000

.PHONY: help install demo dev servers test lint bench clean

help:  ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml signals_dagster_tests/plugin_pkg/pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@# The test suite's plug-in package: a source and a sink type found through entry points.
	$(BIN)/python -m pip install -q -e signals_dagster_tests/plugin_pkg
	touch $(STAMP)

install: $(STAMP)  ## Create .venv and install everything (quick when nothing changed)
	@# Our modules' bytecode, once: where PYTHONDONTWRITEBYTECODE is set, Python would compile
	@# every module of the package again on each start of a command (up to date ones are skipped).
	@$(BIN)/python -m compileall -q signals_dagster >/dev/null

demo: install  ## (Re)create the demo shop database in .demo/
	$(BIN)/python -m signals_dagster.demo

dev: demo  ## Open the Dagster UI on the embedded demo (http://127.0.0.1:3000)
	mkdir -p $(DAGSTER_HOME_DEV)
	cp dev/dagster.yaml $(DAGSTER_HOME_DEV)/dagster.yaml
	@# Once per instance: June's partitions and their check results, so the UI opens on them.
	DAGSTER_HOME=$(DAGSTER_HOME_DEV) $(BIN)/python -m signals_dagster.orchestration.demo_backfill
	DAGSTER_HOME=$(DAGSTER_HOME_DEV) $(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p $(PORT)

servers:  ## Install the test servers and browser Debian provides (Prometheus, Chromium) when missing
	@command -v prometheus >/dev/null && command -v promtool >/dev/null || { \
	  echo "installing prometheus (apt-get)"; \
	  SUDO=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
	  $$SUDO apt-get update -q || echo "apt-get update failed; trying the install anyway"; \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -q --no-install-recommends prometheus; }
	@# The browser of test_ui_browser.py (Playwright drives it; it downloads no browser of its own).
	@test -x /usr/bin/chromium || { \
	  echo "installing chromium (apt-get)"; \
	  SUDO=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
	  $$SUDO apt-get update -q || echo "apt-get update failed; trying the install anyway"; \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -q --no-install-recommends chromium; }

test: install servers  ## Run the whole test suite (starts the servers it needs)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install  ## ruff + mypy
	$(BIN)/ruff check signals_dagster signals_dagster_tests bench
	$(BIN)/ruff format --check signals_dagster signals_dagster_tests bench
	$(BIN)/mypy

bench: install  ## Run the benchmarks (they print ratios)
	$(BIN)/python bench/partition_overhead.py
	$(BIN)/python bench/high_cardinality.py
	$(BIN)/python bench/many_collectors.py
	$(BIN)/python bench/kafka_sink.py

clean:  ## Remove the venv, demo data and the dev instance
	rm -rf $(VENV) .demo $(DAGSTER_HOME_DEV)
