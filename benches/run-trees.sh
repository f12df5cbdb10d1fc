#!/usr/bin/env bash
# Tree benchmark: tabtune's GBDT styles vs LightGBM / XGBoost / CatBoost, same folds, one run.
# Usage: benches/run-trees.sh [--only gbdt-leafwise]   (TABTUNE_DATA_DIR defaults to ../shared/data)
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${TABTUNE_PEERS_VENV:-$HOME/.cache/tabtune/venv-peers}"
if ! "$venv/bin/python" -c "import lightgbm, xgboost, catboost, sklearn" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q -r benches/peers/requirements.txt
fi
# The dev profile builds dependencies and tabtune-models (the tree engine) at opt-level 3.
cargo build -q -p tabtune
target="${CARGO_TARGET_DIR:-target}"
"$venv/bin/python" benches/trees_vs_peers.py --tabtune "$target/debug/tabtune" \
  --data-dir "${TABTUNE_DATA_DIR:-../shared/data}" --python "$venv/bin/python" "$@"
