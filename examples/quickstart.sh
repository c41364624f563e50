#!/usr/bin/env bash
# Runs the README's quick start block (between the quickstart markers) in ./demo.
# KEIZOKU_DEMO_BUDGET overrides the training budget (tests use a short one).
# KEIZOKU_DEMO_BIN: the folder whose `keizoku` the demo runs (default: this checkout's
# .venv/bin; the tests give the folder of their fork-server client).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
export PATH="${KEIZOKU_DEMO_BIN:-$here/.venv/bin}:$PATH"
demo="${KEIZOKU_DEMO_DIR:-$here/demo}"
rm -rf "$demo" && mkdir -p "$demo" && cd "$demo"
export KEIZOKU_HOME="$PWD/.keizoku"
cp "$here/examples/data/penguins.csv" .

script="$(sed -n '/<!-- quickstart:begin -->/,/<!-- quickstart:end -->/p' "$here/README.md" \
  | sed '/^<!--/d; /^```/d')"
if [ -n "${KEIZOKU_DEMO_BUDGET:-}" ]; then
  script="${script//--budget 30s/--budget $KEIZOKU_DEMO_BUDGET}"
fi
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT
printf '%s\n' "$script" > quickstart.sh
bash -euxo pipefail quickstart.sh
echo
echo "Demo done in $demo: profile.html, report.html, predictions.csv. Next: keizoku --help"
