# make test: create .venv if missing, install the project with its test extras, run the checks
#            and the whole suite, then the suite again on the declared dependency floors.
# make demo: set up, start the CI emulator, run an example DAG end to end, print the result.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
FLOOR_VENV ?= .venv-floor
PYTEST_ARGS ?=
BIN := $(VENV)/bin
# uv from PATH when there is one, else installed into the virtualenv.
UV ?= $(shell command -v uv 2>/dev/null)
ifeq ($(UV),)
UV := $(BIN)/uv
endif

.PHONY: test check lint typecheck unit browser services floor demo bench reliability clean docs dist-check

test: check docs dist-check unit floor

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	[ -x "$(UV)" ] || $(BIN)/pip install -q uv

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(UV) pip install -q --python $(BIN)/python -e '.[dev]'
	touch $@

check: lint typecheck

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed
	$(BIN)/mypy

unit: $(VENV)/.installed browser services
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# Chromium for the UI test. Without one the UI tests skip, unless CI_REQUIRE_BROWSER=1 (CI).
browser:
	scripts/install-browser.sh || echo "browser: could not install Chromium; the UI tests will skip"

# PostgreSQL and Redis for the deployment suite (tests/deployment: its own throwaway server of each).
# Without them those tests skip, unless CI_REQUIRE_SERVICES=1 (CI), where they fail.
services:
	scripts/install-services.sh || echo "services: could not install PostgreSQL/Redis; the deployment tests will skip"

# The lowest versions pyproject.toml allows (apache-airflow 3.1.0 and every other direct
# dependency at its floor), so the declared floors are tested, not assumed.
$(FLOOR_VENV)/.installed: pyproject.toml .ci/floor-constraints.txt | $(VENV)/.installed
	$(UV) venv -q --allow-existing --python $(BIN)/python $(FLOOR_VENV)
	$(UV) pip install -q --python $(FLOOR_VENV)/bin/python --resolution lowest-direct \
		-c .ci/floor-constraints.txt -e '.[test]'
	touch $@

# The demo, the fault matrix and the multi-process deployment (minutes each, and about the
# provider's behaviour rather than the API of its dependencies) are left to the main run.
floor: $(FLOOR_VENV)/.installed
	$(FLOOR_VENV)/bin/python -c "import airflow; print('floor: apache-airflow', airflow.__version__)"
	$(FLOOR_VENV)/bin/python scripts/check_floors.py emulator openlineage test
	$(FLOOR_VENV)/bin/python -m pytest -q -m "not demo and not reliability and not deployment" $(PYTEST_ARGS)

# The documentation site (docs/, mkdocs.yml) with warnings as errors; the HTML goes to a temp dir.
docs: $(VENV)/.installed
	d=$$(mktemp -d) && trap 'rm -rf "$$d"' EXIT && NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir "$$d"

# The sdist and wheel as a user gets them: built, twine-checked, the wheel installed (not
# editable) into a fresh venv with Airflow, every module imported, the provider seen by Airflow.
dist-check: $(VENV)/.installed
	scripts/dist-check.sh $(BIN)/python $(UV)

demo: $(VENV)/.installed
	$(BIN)/python scripts/demo.py demo-output

clean:
	rm -rf $(VENV) $(FLOOR_VENV) .pytest_cache .mypy_cache .ruff_cache

# Benchmarks against the local emulator (a few minutes); tables to bench/results/latest.md.
bench: $(VENV)/.installed
	$(BIN)/python -m bench

# The fault matrix against the emulator (~2 min); tables to tests/reliability/results/latest.md
# and docs/reliability.md.
reliability: $(VENV)/.installed
	CI_RELIABILITY_REPORT=1 $(BIN)/python -m pytest -q -m reliability tests/reliability
