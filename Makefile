# Two commands do everything on a fresh machine: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: demo test lint typecheck bench chaos services system-deps clean

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

system-deps:
	@bash scripts/system-deps.sh

demo: system-deps $(VENV)/.installed
	$(PY) examples/demo.py

services:
	@bash scripts/services.sh

test: system-deps $(VENV)/.installed services
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check canvas tests examples benchmarks
	$(VENV)/bin/ruff format --check canvas tests examples benchmarks
	$(VENV)/bin/mypy

typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy

bench: system-deps $(VENV)/.installed services
	$(PY) benchmarks/run.py

chaos: system-deps $(VENV)/.installed services
	$(PY) -m pytest -m chaos tests/chaos $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache demo-out
