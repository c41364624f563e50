#!/usr/bin/env bash
# The README's quick start, end to end, in ./demo (run by `make demo`).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
export PATH="$here/.venv/bin:$PATH"
BUDGET="${KEIZOKU_DEMO_BUDGET:-30s}"
rm -rf "$here/demo" && mkdir -p "$here/demo" && cd "$here/demo"
export KEIZOKU_HOME="$PWD/.keizoku"
cp "$here/examples/data/penguins.csv" .

set -x
keizoku profile penguins.csv --target species --html profile.html
keizoku init penguins.csv --target species
keizoku train --budget "$BUDGET"
keizoku models
keizoku predict --model penguins@champion penguins.csv -o predictions.csv
set +x
head -3 predictions.csv
echo "Demo done: see demo/profile.html, demo/predictions.csv; keizoku --help for the rest."
