# Two entry points do all the set-up on a fresh machine:
#   make test   bootstrap .venv, lint, run tests/ and parity_tests/ (all but the slow tests)
#   make demo   bootstrap .venv, run the tour (every tutorial in JAX and PyTorch)
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Default to the MNIST copy shipped beside the repo, if there is one.
SHARED_MNIST := $(abspath ../shared/datasets/mnist)
ifeq ($(origin JAXTUT_DATA_DIR), undefined)
  ifneq ($(wildcard $(SHARED_MNIST)/SHA256SUMS),)
    export JAXTUT_DATA_DIR := $(SHARED_MNIST)
  endif
endif

.PHONY: venv test lint demo format lock bench parity-report clean

venv: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet -c requirements.lock -e ".[torch,test]"
	touch $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# The slow parity runs (the CNN's 300 steps in both dtypes, its full float32 epoch, its twins) are left to
# `make parity-report`.
test: lint
	$(PY) -m pytest tests parity_tests -m "not slow" --durations=15

# Regenerate the committed parity report (reports/parity.{json,md}) from a full parity run,
# slow tests included.
parity-report: $(STAMP)
	JAXTUT_REPORT_DIR=reports $(PY) -m pytest parity_tests

demo: $(STAMP)
	$(PY) -m jaxtut tour

bench: $(STAMP)
	$(PY) -m jaxtut bench

# Re-pin every installed package (run after a deliberate upgrade, then re-run the parity suite).
lock: $(STAMP)
	{ echo "# Exact versions used for every parity and benchmark figure in this repo."; \
	  echo "# The Makefile installs with 'pip install -c requirements.lock'. Regenerate with 'make lock'."; \
	  $(PY) -m pip freeze --exclude-editable | sed 's/^torch==\(.*\)+cpu/torch==\1/'; } > requirements.lock

clean:
	rm -rf $(VENV) reports .pytest_cache .ruff_cache
