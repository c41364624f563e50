#!/usr/bin/env bash
# Create (or refresh) the virtual environment of one benchmark peer: bench/.venv-<peer>.
# Usage: bench/setup_peer.sh <peer>      (peer = a file name in bench/peers/ without .txt)
# Idempotent: a venv whose requirements file has not changed since the last install is left alone.
set -euo pipefail
peer="$1"
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
req="$here/peers/$peer.txt"
venv="$here/.venv-$peer"
py="${PYTHON:-python3}"
[ -f "$req" ] || { echo "no requirements file $req" >&2; exit 2; }
stamp="$venv/.bench-installed"
if [ -f "$stamp" ] && [ "$stamp" -nt "$req" ]; then
  echo "$peer: $venv is up to date"; exit 0
fi
[ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
pip="$venv/bin/python -m pip"
$pip install -q --upgrade pip wheel
# xgboost-cpu first where listed, so later resolutions see the xgboost module without the GPU wheel.
if grep -q '^xgboost-cpu' "$req"; then
  $pip install -q "$(grep '^xgboost-cpu' "$req" | head -1)"
fi
# torch: only the CPU build on disk is safe (any other spec downloads a multi-GB CUDA build).
if grep -q '^torch' "$req"; then
  $pip install -q torch==2.13.0
fi
$pip install -q -r "$req"
if [ "$peer" = "mlflow" ] || [ "$peer" = "bentoml" ]; then
  $pip install -q -e "$root"   # the logged keizoku model unpickles only with keizoku importable
fi
$venv/bin/python -m pip freeze --exclude-editable > "$here/peers/$peer.lock.txt"
touch "$stamp"
echo "$peer: installed into $venv"
