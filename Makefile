# Every target sets itself up: a fresh clone needs only Python >= 3.11 and make.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
export INOC_HOME ?= $(CURDIR)/.inoc
export DAGSTER_HOME ?= $(CURDIR)/.inoc/dagster

.PHONY: setup engines main lint test validate ui sync bench clean

$(BIN)/inoc: pyproject.toml sky/requirements-client.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	# The SkyPilot client: its click<8.2 pin conflicts with transformers' hub, so no-deps + its other needs.
	$(BIN)/pip install -q --no-deps 'skypilot==0.14.1'
	$(BIN)/pip install -q -r sky/requirements-client.txt
	@touch $@

setup: $(BIN)/inoc

# The engine environments (.venv-vllm, .venv-unsloth) from envs/*.txt, built by the script a cluster's
# sky/setup.sh runs too. Idempotent: a stamp keyed on the requirement files makes a rerun a no-op.
engines:
	INOC_ENGINE_PYTHON=$(PYTHON) envs/build.sh vllm .venv-vllm
	INOC_ENGINE_PYTHON=$(PYTHON) envs/build.sh unsloth .venv-unsloth

# The main job: the embedded default experiment, end to end (see README).
main: setup
	$(BIN)/inoc main

# Lint and format (ruff, configured in pyproject.toml) and the layer rules of docs/architecture.md
# (import-linter contracts in pyproject.toml): a module that imports across a layer fails here, before
# any test runs. `$(BIN)/ruff format . && $(BIN)/ruff check --fix .` fixes most of what ruff finds.
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

test: setup engines lint
	$(BIN)/python -m pytest -q

validate: setup
	$(BIN)/inoc validate experiments/

ui: setup
	$(BIN)/inoc ui

sync: setup
	$(BIN)/inoc sync

clean:
	rm -rf $(VENV) .venv-vllm .venv-unsloth .inoc
