# Every target creates or reuses the project's own virtual environment; nothing relies on a hand install.
PYTHON ?= python3.11
VENV := .venv
PORT ?= 3000
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# Where the pipeline reads and writes. Override any of them on the command line or in the environment.
export DAGSTER_HOME ?= $(CURDIR)/data/.dagster
export RETAIL_SEG_WAREHOUSE ?= $(CURDIR)/data/warehouse.duckdb
export RETAIL_SEG_REPORTS ?= $(CURDIR)/data/reports
export RETAIL_SEG_INCOMING ?= $(CURDIR)/data/incoming
export RETAIL_SEG_MEMORY_LIMIT ?= 2GB
DEFAULT_SOURCE := $(CURDIR)/data/synthetic/transactions.csv
export RETAIL_SEG_SOURCE ?= $(DEFAULT_SOURCE)
export GX_ANALYTICS_ENABLED := false

.PHONY: run test ui lint format bench clean
SIZES ?= 1000000 10000000

run: $(STAMP) $(if $(filter $(DEFAULT_SOURCE),$(RETAIL_SEG_SOURCE)),$(DEFAULT_SOURCE)) $(DAGSTER_HOME)/dagster.yaml
	$(PY) -m retail_seg run

test: $(STAMP)
	$(VENV)/bin/ruff check retail_seg retail_seg_tests bench
	$(VENV)/bin/ruff format --check retail_seg retail_seg_tests bench
	$(VENV)/bin/pytest

ui: $(STAMP) $(if $(filter $(DEFAULT_SOURCE),$(RETAIL_SEG_SOURCE)),$(DEFAULT_SOURCE)) $(DAGSTER_HOME)/dagster.yaml
	mkdir -p $(RETAIL_SEG_INCOMING)
	$(VENV)/bin/dagster dev -h 127.0.0.1 -p $(PORT) -w workspace.yaml

format: $(STAMP)
	$(VENV)/bin/ruff check --fix retail_seg retail_seg_tests bench
	$(VENV)/bin/ruff format retail_seg retail_seg_tests bench

# The default data: regenerated only when the generator changes.
$(DEFAULT_SOURCE): retail_seg/core/synthetic.py | $(STAMP)
	$(PY) -m retail_seg synthesize --out $(dir $@)

$(DAGSTER_HOME)/dagster.yaml: retail_seg/dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp $< $@

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

# Speed and memory against a bare DuckDB query, pandas and pymc-marketing (see bench/run.py).
bench: $(STAMP)
	$(PY) bench/run.py --sizes $(SIZES)

clean:
	rm -rf data/warehouse.duckdb data/warehouse.duckdb.wal data/reports data/synthetic data/.dagster
