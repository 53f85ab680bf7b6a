# `make test` on a fresh machine: creates .venv, installs everything, runs the tests.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup test clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test,torchcodec]'
	touch $@

test: setup
	$(PY) -m pytest -q tests

clean:
	rm -rf $(VENV) output .pytest_cache
