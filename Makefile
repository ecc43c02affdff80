# bertpipe: `make repro` trains on the bundled sample, `make test` runs the test suite.
# Both create .venv on first use: torch==2.13.0 (the CPU build) first, then the project.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Nothing at run time may reach a model hub: the embedded MiniLM is a Python package.
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
# dvc.yaml runs `python -m stages...`: put the venv's python first on PATH.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install repro test test-fast lint format clean-venv

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

repro: install
	$(BIN)/dvc repro

test: install
	$(BIN)/python -m pytest

test-fast: install
	$(BIN)/python -m pytest -m "not slow"

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean-venv:
	rm -rf $(VENV)
