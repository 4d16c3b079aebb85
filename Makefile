# Every target creates or reuses the project's own virtual environment; nothing relies on a hand install.
# The pipeline's settings have their defaults in retail_seg/settings.py; set RETAIL_SEG_* to override.
PYTHON ?= python3.11
VENV := .venv
PORT ?= 3000
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# The Dagster instance `make` uses (runs, lineage, schedules), unless DAGSTER_HOME says otherwise.
export DAGSTER_HOME ?= $(CURDIR)/data/.dagster
export GX_ANALYTICS_ENABLED := false
DEFAULT_SOURCE := $(CURDIR)/data/synthetic/transactions.csv
# The default data is made again only when its generator changes, and only when it is the source.
SOURCE_DATA := $(if $(RETAIL_SEG_SOURCE),,$(DEFAULT_SOURCE))

.PHONY: run test ui lint format bench clean up down
# The suite runs in two processes, each taking whole test files (so a file's shared pipeline run is made
# once): half the time on two cores, where most of a test is a subprocess, a server or a wait.
TEST_WORKERS ?= 2
SIZES ?= 1000000 10000000

run: $(STAMP) $(SOURCE_DATA) $(DAGSTER_HOME)/dagster.yaml
	$(PY) -m retail_seg run

test: $(STAMP)
	$(VENV)/bin/ruff check retail_seg retail_seg_tests bench
	$(VENV)/bin/ruff format --check retail_seg retail_seg_tests bench
	$(VENV)/bin/pytest -n $(TEST_WORKERS) --dist loadfile

# dg runs inside the project's environment, so it finds the same packages as the runs it launches.
ui: $(STAMP) $(SOURCE_DATA) $(DAGSTER_HOME)/dagster.yaml
	VIRTUAL_ENV=$(CURDIR)/$(VENV) PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(VENV)/bin/dg dev -h 127.0.0.1 -p $(PORT)

format: $(STAMP)
	$(VENV)/bin/ruff check --fix retail_seg retail_seg_tests bench
	$(VENV)/bin/ruff format retail_seg retail_seg_tests bench

$(DEFAULT_SOURCE): retail_seg/core/synthetic.py | $(STAMP)
	$(PY) -m retail_seg synthesize --out $(dir $@)

# With RETAIL_SEG_POSTGRES_URL set (the distributed profile), the instance is on Postgres.
INSTANCE := retail_seg/$(if $(filter-out none,$(RETAIL_SEG_POSTGRES_URL)),dagster.distributed.yaml,dagster.yaml)
$(DAGSTER_HOME)/dagster.yaml: $(INSTANCE)
	mkdir -p $(DAGSTER_HOME)
	cp $< $@

# The distributed profile on this host (README, "Past one machine"): Redis, Postgres and WORKERS Celery
# workers under data/.cluster; `. data/.cluster/env` selects it for `make run` and `make ui`.
WORKERS ?= 2
up: $(STAMP)
	$(PY) -m retail_seg cluster up --workers $(WORKERS)

down: $(STAMP)
	$(PY) -m retail_seg cluster down

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

# Speed and memory against a bare DuckDB query, pandas and pymc-marketing (see bench/run.py).
bench: $(STAMP)
	$(PY) bench/run.py --sizes $(SIZES)

clean:
	rm -rf data/warehouse.duckdb data/warehouse.duckdb.wal data/.warehouse.publications data/.warehouse.lake data/reports data/synthetic data/.dagster
