# Headwater's two commands: `make run` and `make test`. Everything else here serves them.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export HEADWATER_DATA_DIR ?= $(CURDIR)/.headwater

.PHONY: run test setup flink lint typecheck pytest demo serve clean docs

## run: set up, migrate, load the demo platform and serve on http://127.0.0.1:8000
run: setup
	$(BIN)/headwater demo
	$(BIN)/headwater serve

## test: set up, make sure the JDK, Chromium, PostgreSQL and the test OIDC provider are there, lint, type-check, run the suite on both databases
test: setup flink
	scripts/ensure-test-tools.sh
	scripts/ensure-postgres.sh
	scripts/install-oidc-provider.sh
	$(BIN)/ruff check headwater tests benchmarks
	$(BIN)/ruff format --check headwater tests benchmarks
	$(BIN)/mypy
	$(BIN)/pytest -n 2 -p no:cacheprovider

GRAPHIQL := headwater/apidocs/vendor/PINS

setup: $(STAMP) $(GRAPHIQL)

# Reinstall only when the project's dependency list changes.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Headwater needs Python 3.11 or newer")'
	@test -x $(BIN)/python || $(PYTHON) -c 'import ensurepip' 2>/dev/null || { echo "$(PYTHON) cannot make a virtualenv: install its venv module (Debian: apt-get install python3-venv)" >&2; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,postgres]'
	touch $(STAMP)

# GraphiQL and React for the GraphQL IDE page, from npm at pinned versions (Swagger UI comes with the pip install).
$(GRAPHIQL): scripts/install-graphiql.sh $(STAMP)
	PYTHON=$(BIN)/python scripts/install-graphiql.sh

# Flink (PyFlink, which carries a whole Flink distribution) lives in its own virtualenv: apache-flink pins
# pyarrow<21 and pandas<2.3, which Headwater's own environment has outgrown. Jobs drive it through its CLI with
# FLINK_HOME=$(FLINK_VENV)/lib/python3.X/site-packages/pyflink, as a Flink installation is used.
FLINK_VENV    ?= .venv-flink
FLINK_VERSION := 2.3.0
FLINK_STAMP   := $(FLINK_VENV)/.installed-$(FLINK_VERSION)

## flink: install Flink $(FLINK_VERSION) as a job engine in $(FLINK_VENV) (the test suite runs real Flink jobs)
flink: $(FLINK_STAMP)

$(FLINK_STAMP):
	test -x $(FLINK_VENV)/bin/python || $(PYTHON) -m venv $(FLINK_VENV)
	$(FLINK_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(FLINK_VENV)/bin/python -m pip install --quiet 'apache-flink==$(FLINK_VERSION)'
	touch $@

## docs: build the docs site into site/ with mkdocs --strict (a broken link or a page left out of the nav fails)
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

demo: setup
	$(BIN)/headwater demo

serve: setup
	$(BIN)/headwater serve

clean:
	rm -rf $(VENV) $(FLINK_VENV) .headwater .mypy_cache .ruff_cache build site *.egg-info
