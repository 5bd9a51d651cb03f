# gridlib: `make demo` runs the tutorial on an embedded local grid; `make test` runs lint and the suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# the modules held to mypy --strict besides the protocol (pyproject.toml lists the same)
STRICT := scheduler/core.py scheduler/records.py scheduler/state.py scheduler/faults.py \
	scheduler/allocation.py scheduler/status.py scheduler/waiting.py scheduler/dispatch.py \
	scheduler/client_requests.py scheduler/node_reports.py scheduler/journal.py scheduler/batching.py node/core.py node/requests.py node/links.py node/claims.py node/ahead.py node/job_state.py \
	node/spool_index.py node/dialing.py node/jobs.py node/events.py node/lifecycle.py node/config.py

.PHONY: demo examples test test-quick test-slow lint unit bench bench-peers clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) examples/sample.py

# every example, one after the other, on the embedded local grid; stops at the first failure
examples: $(STAMP)
	@for example in examples/*.py; do \
		echo "=== $$example"; \
		$(PY) $$example || { echo "=== $$example FAILED"; exit 1; }; \
	done

lint: $(STAMP)
	$(PY) -m ruff check gridlib tests examples bench
	$(PY) -m mypy gridlib/protocol $(addprefix gridlib/daemons/,$(STRICT))
	$(VENV)/bin/lint-imports

# Test tiers (markers in pyproject.toml). `make test` (CI, the README) runs lint and every
# test: the ones marked `serial` (they measure time or heartbeats) alone, after the others,
# which run on TEST_WORKERS processes (pytest-xdist, a test module at a time per process;
# TEST_WORKERS=0: all in one process). Both parts always run; it fails if either failed.
# `make test-quick`: lint and every test not marked `slow` (the serial ones are slow too).
# `make test-slow`: only the slow ones. `make unit`: tests/unit.
TEST_WORKERS ?= 2
PYTEST := $(PY) -m pytest -q -p no:cacheprovider
PARALLEL := -n $(TEST_WORKERS) --dist loadfile

test: lint
	$(PYTEST) $(PARALLEL) -m "not serial" tests; rest=$$?; \
	$(PYTEST) -m serial tests; serial=$$?; \
	test $$rest -eq 0 && test $$serial -eq 0

test-quick: lint
	$(PYTEST) $(PARALLEL) -m "not slow" tests

test-slow: $(STAMP)
	$(PYTEST) $(PARALLEL) -m "slow and not serial" tests; rest=$$?; \
	$(PYTEST) -m serial tests; serial=$$?; \
	test $$rest -eq 0 && test $$serial -eq 0

unit: $(STAMP)
	$(PY) -m pytest -q tests/unit

bench: $(STAMP)
	$(PY) bench/bench.py

# gridlib against dask, Ray, ipyparallel and dispy, which live in .venv-peers only (never
# gridlib's dependencies); BENCH_PEERS_ARGS="--quick --repeat 1" for a short run.
bench-peers:
	bash bench/peers_env.sh $(PYTHON)
	mkdir -p bench/results
	.venv-peers/bin/python bench/bench.py --peers --repeat 3 $(BENCH_PEERS_ARGS) --json bench/results/peers.json
	.venv-peers/bin/python bench/plot.py bench/results/peers.json -o docs/benchmarks.png

clean:
	rm -rf $(VENV) build *.egg-info .lint-tree .pytest_cache .mypy_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
