# One-command set-up: `make demo` runs the main job, `make test` runs every test.
# Both build .venv first (Python 3.10 found by name; exact pins from requirements.txt +
# constraints.txt). Re-running on an existing, up-to-date .venv does nothing.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export TF_USE_LEGACY_KERAS := 1
export PYTHONDONTWRITEBYTECODE := 1
DEMO_DIR ?= runs/demo

.PHONY: venv demo test test-fast test-e2e lint-imports bench clean

venv: $(STAMP)

$(STAMP): requirements.txt constraints.txt setup.py Makefile
	@interp=$$(scripts/find_python.sh) || exit 1; \
	if [ ! -x $(PY) ]; then echo "building $(VENV) from $$interp"; $$interp -m venv $(VENV) || exit 1; fi
	$(PY) -m pip install -q --disable-pip-version-check "pip<25" "setuptools<81" wheel
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt -c constraints.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation --use-pep517 -e .
	@touch $(STAMP)

demo: venv
	$(VENV)/bin/drgrad demo --out $(DEMO_DIR)

# pytest's console script (not `python -m pytest`) keeps the repository root off sys.path, so
# tests can only import the installed `drgrad.*` names: no module exists twice.
test: venv lint-imports
	$(VENV)/bin/pytest tests -p no:cacheprovider

# The layering contracts of .importlinter (docs/ARCHITECTURE.md).
lint-imports: venv
	$(VENV)/bin/lint-imports --no-cache

test-fast: venv
	$(VENV)/bin/pytest tests -p no:cacheprovider -m "not e2e"

test-e2e: venv
	$(VENV)/bin/pytest tests -p no:cacheprovider -m e2e

clean:
	rm -rf runs build *.egg-info
