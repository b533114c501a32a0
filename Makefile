# The two commands of the README. Both set themselves up from nothing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.mirage-installed

.PHONY: study test install clean-venv

study: $(STAMP)
	$(BIN)/mirage study --preset testbed-quick

test: $(STAMP)
	$(BIN)/python -m pytest

install: $(STAMP)

# torch is pinned inside the [cpu] extra, so pip resolves it in this same command
# and takes the CPU wheel instead of a CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[cpu]"
	touch $(STAMP)

clean-venv:
	rm -rf $(VENV)
