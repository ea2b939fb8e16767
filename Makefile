# sleuth — developer and operator entry points.
#   make run    install, fetch the default models, start the server (SQLite, local files, in-process workers)
#   make test   install dev deps, lint, type-check, run the suite on SQLite and again on PostgreSQL
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Tools with dependencies of their own, kept out of .venv: openapi-python-client (tests/contract generates a
# client from /openapi.json with it)
TOOLS ?= .venv-tools
# Third-party weights that live only on GitHub come from a local mirror when one sits beside the repo.
MIRROR ?= $(if $(wildcard ../shared/data/models),../shared/data/models,)
ifneq ($(MIRROR),)
export SLEUTH_MODEL_MIRROR ?= $(MIRROR)
endif
PG_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test
# Converting the PyTorch checkpoints needs torch once (CPU build). Ask PyTorch's CPU wheel index for it when that
# index answers within 5 s (one try, no retries); else the ordinary index (pip's configuration) is used.
TORCH ?= torch==2.13.0
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu

.PHONY: install install-dev torch run models test lint typecheck test-sqlite test-postgres bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

torch: $(BIN)/python
	@if $(BIN)/python -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + '/torch/', timeout=5)" \
	    "$(TORCH_CPU_INDEX)" 2>/dev/null; then \
	  echo "torch: CPU build from $(TORCH_CPU_INDEX)"; \
	  $(BIN)/pip install -q --index-url "$(TORCH_CPU_INDEX)" "$(TORCH)"; \
	else \
	  echo "torch: $(TORCH_CPU_INDEX) did not answer within 5 s; $(TORCH) from the ordinary index"; \
	  $(BIN)/pip install -q "$(TORCH)"; \
	fi

install: torch
	$(BIN)/pip install -q -e ".[postgres,convert]"
	@echo "sleuth is installed in $(VENV); in a new shell run '. $(VENV)/bin/activate' to put 'sleuth' on PATH"

install-dev: torch
	$(BIN)/pip install -q -e ".[dev,postgres,convert,celery,s3]"
	# the MegaDetector output validator, without the package's heavy (torch/ultralytics) requirements
	$(BIN)/pip install -q --no-deps "megadetector==10.0.28"
	test -x $(TOOLS)/bin/python || $(PY) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install -q "openapi-python-client==0.29.1"

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
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache
