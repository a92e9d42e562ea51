# The two commands of the README: `make run` and `make test`. Each sets itself up from a fresh clone.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test deps-run deps-test lint typecheck check bench clean demo-aws

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,flower,lite,local,aws,web]'
	touch $(STAMP)

## make run: set up, then bring up the whole stack locally (Redis, a worker per queue, beat, Flower)
run: $(STAMP) deps-run
	$(BIN)/resoto-tasks up

## make demo-aws: set up, start a moto server with a seeded AWS estate, bring up the stack against it
demo-aws: $(STAMP) deps-run
	$(BIN)/python -m worker.providers.aws.demo $(UP_ARGS)

## make test: set up, lint, check import contracts, type-check, then run the tests against a private redis-server
test: $(STAMP) deps-test lint typecheck
	$(BIN)/pytest -q -n 3

## the system tools each command needs, from Debian's packages where missing (see the script's header)
deps-run:
	bash scripts/install-deps.sh redis-server

deps-test:
	bash scripts/install-deps.sh redis-server promtool rabbitmqctl chromium

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check resoto_tasks worker beat bench tests
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .import_linter_cache
