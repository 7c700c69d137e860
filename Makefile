# Headwater's two commands: `make run` and `make test`. Everything else here serves them.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export HEADWATER_DATA_DIR ?= $(CURDIR)/.headwater

.PHONY: run test setup lint typecheck pytest demo serve clean

## run: set up, migrate, load the demo platform and serve on http://127.0.0.1:8000
run: setup
	$(BIN)/headwater demo
	$(BIN)/headwater serve

## test: set up, make sure PostgreSQL is up, lint, type-check and run the suite on SQLite and PostgreSQL
test: setup
	scripts/ensure-postgres.sh
	$(BIN)/ruff check headwater tests benchmarks
	$(BIN)/ruff format --check headwater tests benchmarks
	$(BIN)/mypy
	$(BIN)/pytest -n 2 -p no:cacheprovider

setup: $(STAMP)

# Reinstall only when the project's dependency list changes.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Headwater needs Python 3.11 or newer")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,postgres]'
	touch $(STAMP)

demo: setup
	$(BIN)/headwater demo

serve: setup
	$(BIN)/headwater serve

clean:
	rm -rf $(VENV) .headwater .mypy_cache .ruff_cache build *.egg-info
