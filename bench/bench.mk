# Benchmark targets; the main Makefile does `include bench/bench.mk`.
# Assumes .venv/bin/python exists with keizoku installed (`pip install -e .`).
# Each peer gets its own virtual environment, bench/.venv-<peer>, created on demand from
# bench/peers/<peer>.txt by bench/setup_peer.sh (first time: several minutes).

BENCH_PY    ?= .venv/bin/python
BENCH_PEERS ?= lightgbm flaml autogluon evidently mlflow bentoml
BENCH_ARGS  ?=

.PHONY: bench bench-quick bench-peers bench-render

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

# Clustering (issue 16): ARI of keizoku's clustering search against plain k-means told the
# true number of groups, on sets with known groups (iris, wine, wholesale Channel/Region,
# penguins, PMLB classification sets; targets removed). Writes bench/results/<ts>-clustering.json.
.PHONY: bench-clustering
bench-clustering:
	$(BENCH_PY) bench/clustering.py $(BENCH_ARGS)
