# babelindex: `make install`, `make test`, `make demo`, `make lint`, `make bench`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install test lint demo bench clean

install: $(STAMP)

# torch first, pinned: its CPU wheel lies on this machine's disk, while a bare `torch`
# requirement would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check indexer search store tests bench examples

demo: install
	$(BIN)/python examples/demo.py

bench: install
	$(BIN)/python bench/build.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
