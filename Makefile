# graphwiz_trader: every target sets itself up (creates .venv on first use).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast bench venv clean

$(STAMP): pyproject.toml requirements.lock
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found; set PYTHON=/path/to/python3.11"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip wheel setuptools
	# torch first, pinned to the CPU build, so nothing later pulls a CUDA build
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

## The main job: offline end-to-end demo on the deterministic synthetic market
demo: $(STAMP)
	$(BIN)/graphwiz demo

## The test suite (all of it, slow real-data tests included)
test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_data.py
	$(BIN)/python benchmarks/bench_backtest.py
	$(BIN)/python benchmarks/bench_execution.py
	$(BIN)/python benchmarks/bench_graph_store.py
	$(BIN)/python benchmarks/bench_graph_build.py
	$(BIN)/python benchmarks/bench_walkforward.py
	$(BIN)/python benchmarks/bench_trading.py

clean:
	rm -rf $(VENV) .pytest_cache
