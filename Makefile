# The two commands of the README. Both set themselves up from nothing.
#   make test                 # install into .venv, run the test suite
#   make study                # the study on the CPU testbed (testbed-quick)
# and, while changing code, the fast tier (< 2 min on 2 cores; CI and `make test` run everything):
#   make test-fast
# On a plain PyPI machine, torch==2.13.0 for Linux is the CUDA build (several GB of nvidia
# packages). For the CPU-only build, name PyTorch's CPU wheel index:
#   make test TORCH_INDEX=https://download.pytorch.org/whl/cpu
PYTHON      ?= python3
TORCH_INDEX ?=
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.mirage-installed
PIP_INDEX := $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX),)

.PHONY: study test test-fast install clean-venv

study: $(STAMP)
	$(BIN)/mirage study --preset testbed-quick

test: $(STAMP)
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "fast and not slow"

install: $(STAMP)

# torch is pinned inside the [cpu] extra, so pip resolves it in this same command (an
# unpinned torch pulled in by another package would take a newer CUDA build).
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(PIP_INDEX) -e ".[cpu]"
	touch $(STAMP)

clean-venv:
	rm -rf $(VENV)
