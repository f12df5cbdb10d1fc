#!/usr/bin/env bash
# AutoML benchmark (issue 15): `tabtune run --preset best` vs AutoGluon 1.6 best_quality and
# FLAML 2.8 at the same wall time, on one stratified 80/20 split of s4e2_train.csv (seed 42),
# scored on the 20%: held-out accuracy, paired difference with a bootstrap 95% interval, wall
# time; optional ablations (each technique switched off alone).
# Usage: benches/run-automl.sh [--preset best] [--peers autogluon,flaml]
#                              [--ablations no-extra,no-nn,refit,...] [--ablation-preset fast]
#   (TABTUNE_DATA_DIR defaults to ../shared/data; results in benches/results/automl.json)
# Run it on a quiet machine: every system gets the same wall time, so load elsewhere skews it.
set -euo pipefail
cd "$(dirname "$0")/.."
python="$(scripts/py-env.sh automl)"
# FLAML in its own venv: it needs an xgboost that AutoGluon's venv cannot hold.
flaml_python="$(scripts/py-env.sh flaml)"
cargo build -q -p tabtune
target="${CARGO_TARGET_DIR:-target}"
mkdir -p benches/results
"$python" benches/automl_vs_peers.py --tabtune "$target/debug/tabtune" \
  --data-dir "${TABTUNE_DATA_DIR:-../shared/data}" --flaml-python "$flaml_python" \
  --out benches/results/automl.json "$@"
