#!/usr/bin/env bash
# Sweep benchmark: `tabtune sweep` vs Optuna + LightGBM (30 trials, same space, same holdout),
# without and with median pruning, in one run.
# Usage: benches/run-sweep.sh [--n-trials N]   (TABTUNE_DATA_DIR defaults to ../shared/data)
set -euo pipefail
cd "$(dirname "$0")/.."
python="$(scripts/py-env.sh sweep-bench)"
# The dev profile builds dependencies and tabtune-models (the tree engine) at opt-level 3.
cargo build -q -p tabtune
target="${CARGO_TARGET_DIR:-target}"
"$python" benches/sweep_vs_optuna.py --tabtune "$target/debug/tabtune" --python "$python" \
  --data-dir "${TABTUNE_DATA_DIR:-../shared/data}" "$@"
