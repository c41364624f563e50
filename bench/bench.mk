# Benchmark targets; the main Makefile does `include bench/bench.mk`.
# Assumes .venv/bin/python exists with keizoku installed (`pip install -e .`).
# Each peer gets its own virtual environment, bench/.venv-<peer>, created on demand from
# bench/peers/<peer>.txt by bench/setup_peer.sh (first time: several minutes).

BENCH_PY    ?= .venv/bin/python
BENCH_PEERS ?= lightgbm flaml autogluon evidently mlflow bentoml
BENCH_ARGS  ?=

.PHONY: bench bench-quick bench-peers bench-render bench-test-cpu

bench-peers:
	@for p in $(BENCH_PEERS); do bash bench/setup_peer.sh $$p || echo "bench: peer $$p failed to install (reported as 'not installed')"; done

# Full run: AutoML (keizoku, FLAML, AutoGluon medium and best quality, default LightGBM) at
# 60 s and 300 s on the shared tabular sets and the 47-set PMLB pack (days on 2 cores),
# serving, drift, RAG retrieval. Writes bench/results/<timestamp>.json; renders
# docs/benchmarks.md (one current summary per area) and docs/benchmarks-archive.md.
bench: bench-peers
	$(BENCH_PY) bench/run.py $(BENCH_ARGS)

# Quick run (minutes): the sets marked quick (3 shared + 3 PMLB: binary, multiclass,
# regression), 20 s budget, small serving/drift runs, with
# the peers already installed (others show as 'not installed'); only the cheap LightGBM
# baseline venv is created on demand. Renders bench/work/benchmarks-quick.md
# (BENCH_ARGS=--docs to render docs/benchmarks.md instead).
BENCH_QUICK_PEERS ?= lightgbm

bench-quick:
	@for p in $(BENCH_QUICK_PEERS); do bash bench/setup_peer.sh $$p || echo "bench: peer $$p failed to install"; done
	$(BENCH_PY) bench/run.py --quick $(BENCH_ARGS)

# Re-render docs/benchmarks.md from recorded runs: make bench-render RUNS="bench/results/a.json ..."
bench-render:
	$(BENCH_PY) bench/run.py --render $(RUNS)

# CPU per test (decision 0008): the whole suite as `make test` runs it, each test's CPU
# (subprocesses included) in bench/work/test-cpu.<worker>, then the files by CPU.
bench-test-cpu:
	mkdir -p bench/work && rm -f bench/work/test-cpu.*
	KEIZOKU_TEST_CPU=bench/work/test-cpu PYTHONPATH=src:bench $(BENCH_PY) -m pytest tests -q \
		-p no:cacheprovider -p pytest_cpu -n 2 --dist loadfile --no-loadscope-reorder || true
	awk -F'\t' '{split($$1,a,"::"); s[a[1]]+=$$3+$$4; t+=$$3+$$4} END {for (k in s) \
		printf "%8.1f %s\n", s[k], k; printf "%8.1f TOTAL\n", t}' bench/work/test-cpu.* | sort -rn
