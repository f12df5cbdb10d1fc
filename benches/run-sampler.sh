#!/usr/bin/env bash
# Sampler overhead per trial at N finished trials: tabtune's TPE vs Optuna's TPE, side by side
# on the same history and search space, in one run. Target: tabtune >= 10x faster.
#
#   benches/run-sampler.sh [SPACE.toml] [N_TRIALS] [REPEATS]
#
# Defaults: configs/sweeps/gbdt.toml, 1000 finished trials, 50 proposals (Optuna: 20, it is slow).
# Prints one JSON object with milliseconds per proposal and the ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
space=${1:-configs/sweeps/gbdt.toml}
n=${2:-1000}
repeats=${3:-50}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/tabtune/target}
python=$(scripts/py-env.sh optuna)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cargo build --release -q -p tabtune-tune --example sampler_overhead
rust=$("$CARGO_TARGET_DIR/release/examples/sampler_overhead" "$space" "$n" "$repeats" "$work/history.json")
py=$("$python" benches/sampler_optuna.py "$space" "$work/history.json" "$(( repeats < 20 ? repeats : 20 ))")
"$python" - "$rust" "$py" "$space" <<'PY'
import json, sys
rust, py, space = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
out = {"space": space, "n_trials": rust["n_trials"], "optuna": py["optuna"], **{f"tabtune_{k}": v for k, v in rust.items() if k.endswith("_ms")}, **{k: v for k, v in py.items() if k.endswith("_ms")}}
out["speedup_tpe_multivariate"] = py["optuna_tpe_ms"] / rust["tpe-multivariate_ms"]
out["speedup_tpe_independent"] = py["optuna_tpe_independent_ms"] / rust["tpe_ms"]
print(json.dumps(out, indent=1))
PY
