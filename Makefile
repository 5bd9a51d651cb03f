# gridlib: `make demo` runs the tutorial on an embedded local grid; `make test` runs lint and the suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo examples test lint unit bench bench-peers clean

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
	$(PY) -m ruff check protocol gridlib daemons tests examples bench
	$(PY) -m mypy protocol daemons/scheduler/core.py daemons/scheduler/records.py daemons/scheduler/state.py daemons/scheduler/faults.py daemons/scheduler/allocation.py daemons/scheduler/status.py daemons/scheduler/waiting.py daemons/node/core.py daemons/node/spool_index.py daemons/node/dialing.py daemons/node/jobs.py daemons/node/events.py daemons/node/lifecycle.py daemons/node/config.py
	@# import contracts, checked on the installed tree (a wheel): tools cannot follow package-dir
	rm -rf .lint-tree && $(PY) -m pip wheel . --no-deps -q -w .lint-tree/wheel
	$(PY) -c "import glob, zipfile; zipfile.ZipFile(glob.glob('.lint-tree/wheel/*.whl')[0]).extractall('.lint-tree/site')"
	cd .lint-tree && PYTHONPATH=site ../$(VENV)/bin/lint-imports ../pyproject.toml

test: lint
	$(PY) -m pytest -q -p no:cacheprovider tests

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
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
