# Two commands on a fresh machine:  `make run`  (set up + main job)  and  `make test`  (set up + tests).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
ARGS   ?=

.PHONY: setup run test test-all bench lint clean

setup: $(STAMP)

# torch is installed first and pinned: the local CPU wheel 2.13.0 satisfies pyproject's range, so pip never
# pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "torch==2.13.0"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

run: $(STAMP)  # the RMI-NAS main job (about 7 min on a 2-core CPU); ARGS adds overrides
	$(PY) -m harness estimator=rmi searcher=rminas $(ARGS)

test: $(STAMP)
	$(PY) -m pytest -q

test-all: $(STAMP)
	$(PY) -m pytest -q -m "not bench and not gpu"

bench: $(STAMP)
	$(PY) -m pytest tests/bench -o addopts="" -m bench -s --benchmark-columns=min,median,max,rounds -p no:randomly

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

clean:
	rm -rf $(VENV) .cache
