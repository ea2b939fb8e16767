# sleuth — developer and operator entry points.
#   make run    install, fetch the default models, start the server (SQLite, local files, in-process workers)
#   make test   install dev deps, lint, type-check, run the suite on SQLite and again on PostgreSQL
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Third-party weights that live only on GitHub come from a local mirror when one sits beside the repo.
MIRROR ?= $(if $(wildcard ../shared/data/models),../shared/data/models,)
ifneq ($(MIRROR),)
export SLEUTH_MODEL_MIRROR ?= $(MIRROR)
endif
PG_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test

.PHONY: install install-dev run models test lint typecheck test-sqlite test-postgres bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install -q "torch==2.13.0"
	$(BIN)/pip install -q -e ".[postgres,convert]"

install-dev: $(BIN)/python
	$(BIN)/pip install -q "torch==2.13.0"
	$(BIN)/pip install -q -e ".[dev,postgres,convert,celery,s3]"
	# the MegaDetector output validator, without the package's heavy (torch/ultralytics) requirements
	$(BIN)/pip install -q --no-deps "megadetector==10.0.28"

models: install
	$(BIN)/sleuth models pull default

run: models
	$(BIN)/sleuth serve

lint:
	$(BIN)/ruff check src tests benchmarks scripts

typecheck:
	$(BIN)/mypy

test-sqlite:
	$(BIN)/python -m pytest -q

test-postgres:
	SLEUTH_TEST_DATABASE_URL=$(PG_URL) $(BIN)/python -m pytest -q -m db

test: install-dev lint typecheck test-sqlite test-postgres

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
