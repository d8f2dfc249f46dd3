# The two commands of the README: `make demo` (the whole bulk flow on the embedded default) and `make test`
# (the whole suite on real PostgreSQL, Redis and SeaweedFS, then a SQLite pass). Both set up what they need on a
# fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint serve setup clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

setup: $(STAMP)

# Each demo runs in a data directory of its own (var/demo/<time>), so runs never see each other's Document
# Queries or webhook subscriptions, nor disturb `make serve` (var/). DATA_DIR=... overrides it.
demo: $(STAMP)
	DATA_DIR=$${DATA_DIR:-var/demo/$$(date +%Y%m%d-%H%M%S)} $(BIN)/python manage.py demo $(ARGS)

test: $(STAMP)
	./scripts/test $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

HOST ?= 127.0.0.1
PORT ?= 8000
# A development server: webhook URLs on this machine (the quickstart's receiver) are allowed unless set.
serve: $(STAMP)
	$(BIN)/python manage.py migrate --noinput
	WEBHOOK_ALLOW_PRIVATE_URLS=$${WEBHOOK_ALLOW_PRIVATE_URLS:-true} $(BIN)/python manage.py serve $(HOST):$(PORT)

clean:
	rm -rf var test-artifacts .pytest_cache .mypy_cache
