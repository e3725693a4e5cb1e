# rfm-spark: `make help` lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONFIG ?= conf/local.yaml
SNAPSHOT ?= 2026-11-23
EARLIER ?= 2026-11-09
REPORT ?= reports/report-$(SNAPSHOT).html
PYTEST_ARGS ?=

CONNECT_PORT ?= 15002
SQL_PORT ?= 10000

.PHONY: help install chromium run test test-fast lint format typecheck package bench bench-billion clean connect-server sql-server

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "Python 3.10+ is needed, found " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[spark,dev]"
	@touch $(STAMP)

install: $(STAMP) ## Build .venv with the package and its dev tools, fetch the Delta (and s3a) jars, Chromium for the report test
	@$(BIN)/python -m rfm_spark.jars fetch
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  $(MAKE) --no-print-directory chromium || \
	  echo "warning: no chromium; make run works without it, the report test fails until it is installed"

# the report test draws the report in a real headless browser: Debian's Chromium
chromium:
	@echo "installing chromium (Debian package) for the report test"
	@if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO="sudo -n"; fi; \
	  $$SUDO apt-get update -q >/dev/null && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null

run: install ## Generate demo data, segment two snapshots in Spark local mode, write the HTML report
	$(BIN)/rfm-spark generate --config $(CONFIG)
	$(BIN)/rfm-spark segment --config $(CONFIG) --snapshot-date $(EARLIER) --quiet
	$(BIN)/rfm-spark segment --config $(CONFIG) --snapshot-date $(SNAPSHOT)
	$(BIN)/rfm-spark report --config $(CONFIG) --snapshot-date $(SNAPSHOT) --out $(REPORT)
	@echo "open $(REPORT) in a browser"

connect-server: install ## Spark Connect server with the Delta connector on 127.0.0.1:15002 (CONNECT_PORT), in the foreground
	$(BIN)/python -m rfm_spark.servers connect --port $(CONNECT_PORT) --config $(CONFIG)

sql-server: install ## Thrift JDBC/ODBC server over the warehouse tables on 127.0.0.1:10000 (SQL_PORT; CONFIG picks the config)
	$(BIN)/python -m rfm_spark.servers sql --port $(SQL_PORT) --config $(CONFIG)

test: install ## Run the whole test suite (slow end-to-end tests included)
	$(BIN)/pytest $(PYTEST_ARGS)

test-fast: install ## Run the tests without the slow end-to-end ones
	$(BIN)/pytest -m "not slow" $(PYTEST_ARGS)

lint: install ## ruff lint + format check, mypy on the package
	$(BIN)/ruff check rfm_spark jobs tests benchmarks docs/examples
	$(BIN)/ruff format --check rfm_spark jobs tests benchmarks docs/examples
	$(BIN)/mypy

format: install ## Format and auto-fix with ruff
	$(BIN)/ruff format rfm_spark jobs tests benchmarks docs/examples
	$(BIN)/ruff check --fix rfm_spark jobs tests benchmarks docs/examples

package: install ## Build the wheel and dist/rfm_spark.zip for spark-submit --py-files
	rm -rf dist build
	$(BIN)/python -m build --wheel --outdir dist . >/dev/null
	$(BIN)/python -c "import shutil; shutil.make_archive('dist/rfm_spark', 'zip', '.', 'rfm_spark')"
	@ls -l dist

bench: install ## Benchmarks, then every target with its ratio and status (about 2 h)
	$(BIN)/python benchmarks/peers.py --size 10m --repeat 3
	$(BIN)/python benchmarks/peers.py --size 30m --repeat 3
	$(BIN)/python benchmarks/incremental.py --size 10m --days-after 3
	$(BIN)/python benchmarks/scoring.py --synthetic 4000000 --modes ours,naive --repeat 3
	$(BIN)/python benchmarks/backfill.py --customers 20000 --days 730 --snapshots 14 --repeat 3
	$(BIN)/python benchmarks/predictions.py --size 1m --repeat 3
	$(BIN)/python benchmarks/targets.py

bench-billion: install ## Full and first incremental segment runs over ~1 billion generated rows (13 GB, 18-45 min to generate once, ~15 min for the full run; the incremental one first at 10M rows, ~15 min, then at 1B from a copy laid out by day, 10 files per batch, ~1.9 h; it starts only where the disk it needs, scaled from the 10M run, is free, an estimate that fell short by a third at 1B, and it is stopped when under 4 GB is left)
	$(BIN)/python benchmarks/billion.py
	$(BIN)/python benchmarks/billion.py --mode incremental --size 10m --daily-files --files-per-batch 10
	$(BIN)/python benchmarks/billion.py --mode incremental --daily-files --files-per-batch 10
	$(BIN)/python benchmarks/targets.py

clean: ## Remove the venv, build output, demo data and the local warehouse
	rm -rf $(VENV) .jars dist build *.egg-info data warehouse reports spark-warehouse metastore_db derby.log .pytest_cache .mypy_cache .ruff_cache
