# bertpipe: `make repro` trains on the bundled sample, `make test` runs the test suite.
# Both create .venv on first use: torch first, then every other package at the exact version and
# hash in requirements.lock, then the project itself. `make lock` regenerates the lock.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch is installed apart from the lock: which build to take (CPU or CUDA) depends on the machine.
# pip's default index gives the CUDA build on Linux x86_64 (several GB); for the CPU build set
# TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu (see "Installing" in the README).
TORCH := 2.13.0
TORCH_INDEX_URL ?=
TORCH_INDEX := $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL))
# The lock is resolved against the CPU build of torch, so that it pins no CUDA libraries (a CUDA
# torch brings its own in the first install step). Empty where a local wheel mirror has it.
TORCH_LOCK_INDEX_URL ?= https://download.pytorch.org/whl/cpu
# pip-tools lives in a venv of its own, so that locking never changes .venv.
LOCK_VENV ?= .venv-lock
PIP_TOOLS := pip-tools==7.6.2
# Nothing at run time may reach a model hub: the embedded MiniLM is a Python package.
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
# dvc.yaml runs `python -m stages...`: put the venv's python first on PATH.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install lock repro test test-fast fuzz lint format clean-venv

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==$(TORCH) $(TORCH_INDEX)
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

# Pins every dependency (the dev extra included) to an exact version with its hashes. torch is
# left out (--unsafe-package), but resolved as $(TORCH)+cpu so that its dependencies are locked.
# Existing pins are kept; `make lock LOCK_ARGS=--upgrade` moves everything to the newest versions.
lock:
	test -x $(LOCK_VENV)/bin/pip-compile \
		|| ($(PYTHON) -m venv $(LOCK_VENV) && $(LOCK_VENV)/bin/pip install --quiet $(PIP_TOOLS))
	echo "torch==$(TORCH)+cpu" > $(LOCK_VENV)/torch.in
	CUSTOM_COMPILE_COMMAND="make lock" $(LOCK_VENV)/bin/pip-compile --quiet --generate-hashes \
		--strip-extras --extra dev --unsafe-package torch --no-emit-index-url --no-emit-find-links \
		$(if $(TORCH_LOCK_INDEX_URL),--extra-index-url $(TORCH_LOCK_INDEX_URL)) $(LOCK_ARGS) \
		--output-file requirements.lock pyproject.toml $(LOCK_VENV)/torch.in

repro: install
	$(BIN)/dvc repro

# -n auto: one pytest worker per core (pytest-xdist); the end-to-end tests spend much of their
# time starting Python processes, which overlap well
test: install
	$(BIN)/python -m pytest -n auto

test-fast: install
	$(BIN)/python -m pytest -n auto -m "not slow"

# The Hypothesis properties of tests/test_fuzz_*.py (every input gives a result or one
# UserError) at 3,000 examples each instead of make test's 40; BENCHMARKS.md records a run.
fuzz: install
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest -m "not slow" --hypothesis-show-statistics \
		tests/test_fuzz_*.py

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean-venv:
	rm -rf $(VENV) $(LOCK_VENV)
