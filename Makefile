# Two commands for a fresh clone (see README):  make demo   and   make test
# With ComfyUI's source in ../shared/comfyui, setup also builds the real host (.host/) and test runs
# the host tests in it.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST := .host
HOST_PY := $(HOST)/venv/bin/python

$(BIN)/python:
	$(PY) -m venv $(VENV)

setup: $(BIN)/python host-setup
	$(BIN)/pip install -q torch==2.13.0 || $(BIN)/pip install -q torch
	$(BIN)/pip install -q -r requirements-dev.txt

# The real ComfyUI (.host/ComfyUI) and its Python (.host/venv); does nothing without ../shared/comfyui.
host-setup:
	bash scripts/setup_host.sh

demo: setup
	$(BIN)/python scripts/demo.py --out demo_output

# The suite, then the tests marked `host` inside the real ComfyUI under its own Python (when set up).
test:
	$(BIN)/python -m pytest -m "not host"
	@if [ -f $(HOST)/venv/.ready ] && [ -f $(HOST)/ComfyUI/main.py ]; then \
		echo "host tests: ComfyUI in $(HOST)/ComfyUI, $(HOST_PY)"; \
		COMFYUI_DIR=$(CURDIR)/$(HOST)/ComfyUI $(HOST_PY) -m pytest -m host; \
	else \
		echo "host tests skipped: no ComfyUI host in $(HOST)/ (make host-setup with ../shared/comfyui)"; \
	fi

.PHONY: setup host-setup demo test
