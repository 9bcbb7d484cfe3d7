# Two commands for a fresh clone (see README):  make demo   and   make test
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

$(BIN)/python:
	$(PY) -m venv $(VENV)

setup: $(BIN)/python
	$(BIN)/pip install -q torch==2.13.0 || $(BIN)/pip install -q torch
	$(BIN)/pip install -q -r requirements-dev.txt

demo: setup
	$(BIN)/python scripts/demo.py --out demo_output

test:
	$(BIN)/python -m pytest

.PHONY: setup demo test
