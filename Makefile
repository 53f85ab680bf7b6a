# On a fresh machine: `make demo` runs the whole job on the built-in synthetic dataset (about 5
# minutes on 2 cores); `make test` runs the tests. Both create .venv and install what is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test,torchcodec]'
	touch $@

demo: setup
	PYTHON=$(abspath $(PY)) bash scripts/demo.sh

test: setup
	$(PY) -m pytest -q tests

clean:
	rm -rf $(VENV) output .pytest_cache
