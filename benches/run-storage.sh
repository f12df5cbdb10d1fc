#!/usr/bin/env bash
# Study bookkeeping overhead per trial on a SQLite file: tabtune's storage + executor vs Optuna's
# RDB storage + study.optimize, random sampler, trivial objective (3 reported values), same space,
# side by side in one run. Reports ms per trial (whole run and last 100 trials) and the ratios.
#
#   benches/run-storage.sh [N_TRIALS]     # default 1000
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/tabtune/target}
python=$(scripts/py-env.sh optuna)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cargo build --release -q -p tabtune-tune --example storage_overhead
rust=$("$CARGO_TARGET_DIR/release/examples/storage_overhead" "$work/tabtune.db" "$n")
py=$("$python" benches/storage_optuna.py "$work/optuna.db" "$n")
"$python" - "$rust" "$py" <<'PY'
import json, sys
rust, py = json.loads(sys.argv[1]), json.loads(sys.argv[2])
out = {"n_trials": rust["n_trials"], "optuna": py["optuna"],
       "tabtune_ms_per_trial": rust["ms_per_trial"], "optuna_ms_per_trial": py["ms_per_trial"],
       "tabtune_ms_per_trial_last_100": rust["ms_per_trial_last_100"],
       "optuna_ms_per_trial_last_100": py["ms_per_trial_last_100"]}
out["speedup"] = round(py["ms_per_trial"] / rust["ms_per_trial"], 2)
out["speedup_last_100"] = round(py["ms_per_trial_last_100"] / rust["ms_per_trial_last_100"], 2)
print(json.dumps(out, indent=1))
PY
