#!/usr/bin/env bash
# Feature pipeline benchmark: tabtune vs pandas on s4e2_train.csv, in one run.
# Usage: benches/run-features.sh   (TABTUNE_DATA_DIR defaults to ../shared/data)
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${TABTUNE_PEERS_VENV:-$HOME/.cache/tabtune/venv-peers}"
if ! "$venv/bin/python" -c "import pandas" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q -r benches/peers/requirements.txt
fi
export TABTUNE_DATA_DIR="${TABTUNE_DATA_DIR:-../shared/data}"
export PYTHON="$venv/bin/python"
cargo bench -p tabtune-features --bench pipeline
