# keizoku: `make demo` runs the quick start, `make test` the whole suite.
VENV   := .venv
PY     := $(VENV)/bin/python
PYTHON ?= python3
EXTRAS ?= eval,rag,torch,catboost,onnx,forecast,postgres,s3,ray,dev

.PHONY: install demo test test-fast screenshots check format clean

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[$(EXTRAS)]'
	@touch $@

install: $(VENV)/.installed

demo: install
	./examples/quickstart.sh

# Fails on any failed test, and when no test ran at all (pytest exits 5).
# Runs in TEST_WORKERS processes (pytest-xdist; `auto` = one per CPU, at most 4; 0 = in
# this process); each test file runs in one worker (tests/conftest.py).
# Bytecode is written (into __pycache__/, ignored by git) even where PYTHONDONTWRITEBYTECODE
# is set: otherwise every worker rewrites and compiles all ~430 test modules again (~4 s of
# CPU each), and so does every command for keizoku's own modules.
TEST_WORKERS ?= auto
test: install
	env -u PYTHONDONTWRITEBYTECODE $(PY) -m pytest tests -q -p no:cacheprovider --timeout=900 \
		-n $(TEST_WORKERS) --maxprocesses 4 --dist loadfile --no-loadscope-reorder

# The console's screenshots in docs/console/, taken by its browser test (make test takes
# them in a temporary folder and leaves the checkout untouched).
screenshots: install
	KEIZOKU_SCREENSHOTS=$(CURDIR)/docs/console $(PY) -m pytest tests/console/test_console.py -q \
		-p no:cacheprovider --timeout=900

check: install
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/ruff format --check src tests
	$(VENV)/bin/mypy --strict src/keizoku
	$(VENV)/bin/mypy tests

format: install
	$(VENV)/bin/ruff format src tests
	$(VENV)/bin/ruff check --fix src tests

clean:
	rm -rf demo .pytest_cache .mypy_cache .ruff_cache

include bench/bench.mk
