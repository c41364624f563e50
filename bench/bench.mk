# Benchmark targets; the main Makefile does `include bench/bench.mk`.
# Assumes .venv/bin/python exists with keizoku installed (`pip install -e .`).
# Each peer gets its own virtual environment, bench/.venv-<peer>, created on demand from
# bench/peers/<peer>.txt by bench/setup_peer.sh (first time: several minutes).

BENCH_PY    ?= .venv/bin/python
BENCH_PEERS ?= lightgbm flaml autogluon evidently mlflow bentoml
BENCH_ARGS  ?=

.PHONY: bench bench-quick bench-peers bench-render bench-console

.PHONY: bench bench-quick bench-peers bench-render bench-test-cpu bench-startup

bench-peers:
	@for p in $(BENCH_PEERS); do bash bench/setup_peer.sh $$p || echo "bench: peer $$p failed to install (reported as 'not installed')"; done

# Full run: AutoML (keizoku, FLAML, AutoGluon medium and best quality, default LightGBM) at
# 60 s and 300 s on the shared tabular sets and the 47-set PMLB pack (days on 2 cores),
# serving, drift, RAG retrieval. Writes bench/results/<timestamp>.json; renders
# docs/benchmarks.md (one current summary per area) and docs/benchmarks-archive.md.
bench: bench-peers
	$(BENCH_PY) bench/run.py $(BENCH_ARGS)
	$(MAKE) bench-areas BENCH_ARGS=

# Every area's own benchmark, one after another (each writes its JSON under bench/work/).
BENCH_AREAS ?= bench-export bench-forecast bench-clustering bench-deep bench-text \
	bench-console bench-logscale bench-ray bench-scaleout
.PHONY: bench-areas
bench-areas:
	@fail=""; for t in $(BENCH_AREAS); do $(MAKE) $$t || fail="$$fail $$t"; done; \
	if [ -n "$$fail" ]; then echo "bench: failed:$$fail (see their output above)"; exit 1; fi

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

# Edge export (ONNX): per shared tabular set, train (BUDGET s), export with a parity check,
# and time the bundle runner vs keizoku's predict vs the native call; cold start, peak RSS.
EXPORT_SETS   ?= blood,titanic,credit_g,wa_churn,penguins,car,mpg,insurance,abalone
EXPORT_BUDGET ?= 60
.PHONY: bench-export
bench-export:
	$(BENCH_PY) bench/export.py --sets $(EXPORT_SETS) --budget $(EXPORT_BUDGET)

# Forecasting (issue 16): keizoku's pick vs seasonal naive, LightGBM with lags, ETS and
# statsforecast's AutoETS/AutoARIMA (own venv: pandas < 3) on every series of
# ../shared/datasets/timeseries/ and two generated ones (trending monthly, hourly load):
# MASE on the last horizon, interval coverage. Minutes on 2 cores. Results:
# docs/benchmarks.md "## Forecasting".
.PHONY: bench-forecast
bench-forecast:
	@bash bench/setup_peer.sh statsforecast || echo "bench: statsforecast failed to install (left out)"
	$(BENCH_PY) bench/forecast.py --out bench/work/forecast.json

# Deep learning (issue 17): the image CNN on digits as PNG folders vs SVC on raw pixels and
# keizoku's tabular search; the `good` families with and without torch_mlp. Writes
# bench/work/deep.json (docs/benchmarks.md "## Deep learning"). BENCH_ARGS=--quick: shorter.
.PHONY: bench-deep
bench-deep:
	$(BENCH_PY) bench/deep.py --out bench/work/deep.json $(BENCH_ARGS)

# The web console: page timings with 1M logged predictions over a year of hourly buckets
# (trains the penguins model, writes and folds 365 daily segments; minutes on 2 cores).
bench-console:
	$(BENCH_PY) bench/console.py --out bench/work/console.json $(BENCH_ARGS)

# CPU per test (decision 0008): the whole suite as `make test` runs it, each test's CPU
# (subprocesses included) in bench/work/test-cpu.<worker>, each forked `keizoku` command's
# in the fork server's log bench/work/test-cpu.server.main; then the files by CPU.
bench-test-cpu:
	mkdir -p bench/work && rm -f bench/work/test-cpu.*
	env -u PYTHONDONTWRITEBYTECODE KEIZOKU_TEST_CPU=bench/work/test-cpu \
		KEIZOKU_TEST_FORK_LOG=bench/work/test-cpu PYTHONPATH=src:bench $(BENCH_PY) -m pytest tests \
		-q -p no:cacheprovider -p pytest_cpu -n 2 --dist loadfile --no-loadscope-reorder || true
	$(BENCH_PY) bench/test_cpu_report.py bench/work/test-cpu

# Start-up per command (decision 0008, fourth pass): CPU and heavy imports of --help,
# init, train, models, status, predict, promote and serve to /readyz, in a fresh home.
bench-startup:
	mkdir -p bench/work
	PYTHONPATH=src $(BENCH_PY) bench/startup.py bench/work/startup.json

# Clustering (issue 16): ARI of keizoku's clustering search against plain k-means told the
# true number of groups, on sets with known groups (iris, wine, wholesale Channel/Region,
# penguins, PMLB classification sets; targets removed). Writes bench/results/<ts>-clustering.json.
.PHONY: bench-clustering
bench-clustering:
	$(BENCH_PY) bench/clustering.py $(BENCH_ARGS)

# The prediction log at scale (issue 20): `monitor` over 10M logged rows as 1 s-flush
# segments vs after `keizoku log compact`. LOGSCALE_SEGMENTS=86400 is one day of 1 s
# flushes (writing them would take ~1.5 h on the loaded 2-core machine, extrapolated from
# 8,640 segments in 509 s; LOGSCALE_SEGMENTS=8640 is 10 s flushes). Results: docs/benchmarks.md
# "## Prediction log at scale".
LOGSCALE_ROWS     ?= 10000000
LOGSCALE_SEGMENTS ?= 86400
.PHONY: bench-logscale
bench-logscale:
	$(BENCH_PY) bench/logscale.py --rows $(LOGSCALE_ROWS) --segments $(LOGSCALE_SEGMENTS) $(BENCH_ARGS)

# Ray (issue 20): trials per minute locally vs on a local 2-process Ray cluster (head +
# worker node, one CPU each), the per-trial overhead, and predict's scoring with Ray Data.
# Needs keizoku[ray]. Writes bench/work/ray.json (docs/benchmarks.md "## Ray").
.PHONY: bench-ray
bench-ray:
	$(BENCH_PY) bench/ray_bench.py --out bench/work/ray.json $(BENCH_ARGS)

# Text columns (issue 17): Japanese classification with word vs keizoku tokens, JSQuAD
# question -> paragraph matching (skipped without ../shared/datasets/qa/jsquad), and what
# the MiniLM embeddings view costs. Writes bench/work/text.json (docs/benchmarks.md
# "## Text columns").
.PHONY: bench-text
bench-text:
	$(BENCH_PY) bench/text.py --out bench/work/text.json $(BENCH_ARGS)

# Several servers (issue 20): requests/s with one vs two `keizoku serve` processes on one
# PostgreSQL store (a throwaway server; penguins trained once), the same total connections,
# alternating rounds. Writes bench/work/scaleout.json (docs/benchmarks.md "## Two servers").
SCALEOUT_CONNECTIONS ?= 8
SCALEOUT_DURATION    ?= 15
.PHONY: bench-scaleout
bench-scaleout:
	$(BENCH_PY) bench/scaleout.py --connections $(SCALEOUT_CONNECTIONS) --duration $(SCALEOUT_DURATION) $(BENCH_ARGS)
