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

.PHONY: venv demo test test-fast test-e2e bench clean

venv: $(STAMP)

$(STAMP): requirements.txt constraints.txt setup.py
	@interp=$$(scripts/find_python.sh) || exit 1; \
	if [ ! -x $(PY) ]; then echo "building $(VENV) from $$interp"; $$interp -m venv $(VENV) || exit 1; fi
	$(PY) -m pip install -q --disable-pip-version-check "pip<25" "setuptools<81" wheel
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt -c constraints.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

demo: venv
	$(VENV)/bin/drgrad demo --out $(DEMO_DIR)

test: venv
	$(PY) -m pytest tests -p no:cacheprovider

test-fast: venv
	$(PY) -m pytest tests -p no:cacheprovider -m "not e2e"

test-e2e: venv
	$(PY) -m pytest tests -p no:cacheprovider -m e2e

clean:
	rm -rf runs build *.egg-info
