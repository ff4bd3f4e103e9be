# babelindex: `make install`, `make check`, `make test`, `make demo`, `make bench`, `make samples`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install check format test demo bench samples clean

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
	$(BIN)/pytest

# The gate CI runs before the tests: lint, formatting and types (strict on store/ and search/).
check: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Rewrite the tree in the project's format and apply ruff's safe fixes.
format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

demo: install
	$(BIN)/python examples/demo.py

bench: install
	$(BIN)/python bench/build.py

# Rerun every marked command sample of README.md and docs/ and write its real output back
# (before a release; `python docs/samples.py --check` only compares).
samples: install
	$(BIN)/python docs/samples.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .mypy_cache
