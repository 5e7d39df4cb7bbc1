# The whole set-up is `make demo` or `make test`: each creates .venv when it is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint docs bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch first, pinned: on these machines the pin takes a local CPU wheel.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	# zennit (test-only peer) declares torchvision, which does not load here: its real needs are already installed.
	$(PY) -m pip install -q --no-deps zennit
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/pellucid demo

test: $(STAMP)
	$(PY) -m pytest

# the suite without the tests marked slow (training, large sampling budgets): for quick iterations
test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench docs

# the documentation site, every code block on its pages executed, into site/ (mkdocs.yml)
docs: $(STAMP)
	$(PY) -c 'import material, markdown_exec, mkdocstrings_handlers.python' 2>/dev/null \
		|| $(PY) -m pip install -q -e '.[docs]'
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

bench: $(STAMP)
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) pellucid-demo pellucid-out site build dist src/*.egg-info
