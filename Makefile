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

.PHONY: study test test-fast install clean-venv

study: $(STAMP)
	$(BIN)/mirage study --preset testbed-quick

test: $(STAMP)
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "fast and not slow"

install: $(STAMP)

# torch is pinned inside the [cpu] extra, so the installer resolves it in this same command (an
# unpinned torch pulled in by another package would take a newer CUDA build). scripts/install_venv.py
# installs with uv (from PyPI; the sources pip is configured with, chosen as pip chooses), or with
# pip where uv cannot be had (MIRAGE_INSTALLER=pip forces pip).
$(STAMP): pyproject.toml
	$(PYTHON) scripts/install_venv.py $(VENV) --extra cpu $(if $(TORCH_INDEX),--torch-index $(TORCH_INDEX),)
	touch $(STAMP)

clean-venv:
	rm -rf $(VENV)
