# Two commands do everything on a fresh machine: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
# The suite mostly waits on real workers and servers: three pytest processes (one test module
# each at a time, so a module's worker fixtures stay in one process) finish it in half the time.
PYTEST_WORKERS ?= 3

BENCH_VENV := benchmarks/.venv-celery
BENCH_ARGS ?=

.PHONY: demo test install-smoke lint typecheck bench bench-quick chaos services system-deps browser-deps clean

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

system-deps:
	@bash scripts/system-deps.sh

# Debian's chromium, for the dashboard's browser tests (Playwright drives it; no browser download).
browser-deps:
	@bash scripts/system-deps.sh browser

demo: system-deps $(VENV)/.installed
	$(PY) examples/demo.py

services:
	@bash scripts/services.sh

test: system-deps browser-deps $(VENV)/.installed services
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# The package as a user installs it (no dev extras) in a bare venv: a worker on each transport.
install-smoke: system-deps services
	bash scripts/install-smoke.sh

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check canvas tests examples benchmarks
	$(VENV)/bin/ruff format --check canvas tests examples benchmarks
	$(VENV)/bin/mypy

typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy

# Celery (and matplotlib for the chart) live in their own venv, never in the project's.
$(BENCH_VENV)/bin/celery: $(VENV)/.installed
	$(PY) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install -q 'celery[redis]>=5.4,<6' 'matplotlib>=3.8'

bench: system-deps $(VENV)/.installed services $(BENCH_VENV)/bin/celery
	$(PY) benchmarks/run.py $(BENCH_ARGS)
	$(PY) benchmarks/events.py

bench-quick: system-deps $(VENV)/.installed services $(BENCH_VENV)/bin/celery
	$(PY) benchmarks/run.py --quick --no-readme --out /tmp/canvas-bench-quick $(BENCH_ARGS)
	$(PY) benchmarks/events.py --runs 1 --n 1000 --out /tmp/canvas-bench-quick

chaos: system-deps $(VENV)/.installed services
	$(PY) -m pytest -m chaos tests/chaos $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache demo-out
