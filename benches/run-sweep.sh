#!/usr/bin/env bash
# Sweep benchmark: `tabtune sweep` vs Optuna + LightGBM (30 trials, same space, same holdout),
# without and with median pruning, in one run.
# Usage: benches/run-sweep.sh [--n-trials N] [--pruners none,median]
#   (TABTUNE_DATA_DIR defaults to ../shared/data)
set -euo pipefail
cd "$(dirname "$0")/.."
python="$(scripts/py-env.sh sweep-bench)"
# The dev profile builds dependencies and tabtune-models (the tree engine) at opt-level 3.
cargo build -q -p tabtune
target="${CARGO_TARGET_DIR:-target}"
# LightGBM's OpenMP threads spin while they wait; on a shared, oversubscribed machine that made
# the peer 28x slower (353.5 s instead of 12.6 s for the pruned run). Passive waiting keeps the
# peer's time meaningful under load; set OMP_WAIT_POLICY=ACTIVE to measure LightGBM's default.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
"$python" benches/sweep_vs_optuna.py --tabtune "$target/debug/tabtune" --python "$python" \
  --data-dir "${TABTUNE_DATA_DIR:-../shared/data}" "$@"
