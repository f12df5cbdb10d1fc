#!/usr/bin/env bash
# Tracking overhead (benches/README.md, "Tracking"): a 100-trial workload of short `tabtune
# train` CV runs (leaf-wise GBDT, 3 folds, 30 rounds, on the first 2000 rows of s4e2_train.csv;
# one process per trial, trial seed = trial number) run twice, interleaved trial by trial so
# machine noise hits both alike:
#   off:   --no-track (nothing recorded)
#   local: local store + TensorBoard only (no MLflow)
#   on:    local store (reports/runs) + TensorBoard (reports/tensorboard) + MLflow (a real server
#        from scripts/mlflow-server.sh, SQLite backend, on 127.0.0.1); each process waits for its
#        MLflow updates to be sent before it exits, so the network time is inside the measurement.
# Reports total wall seconds of each, the overhead in percent (target < 3 %), and checks that
# MLflow holds every tracked run. Then the in-process case, as a sweep tracks (one process, the
# MLflow sink sending on its thread while the next trial runs): the tabtune-track example
# `tracking_overhead`, TRIALS trials of a fixed 500 ms CPU workload logging 30 rounds x 3
# metrics, off vs local + TensorBoard + MLflow, final flush included.
# Usage: benches/run-tracking.sh [TRIALS]   (default 100; TABTUNE_DATA_DIR defaults to
# ../shared/data; TRACKING_BENCH_PROFILE=release|dev, default dev, whose model code is opt-level 3;
# TABTUNE_BIN=path uses that binary instead of building one).
# Results: $CARGO_TARGET_DIR/bench-results/tracking/summary.json.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
trials="${1:-100}"
data="${TABTUNE_DATA_DIR:-../shared/data}"
target="${CARGO_TARGET_DIR:-target}"
profile="${TRACKING_BENCH_PROFILE:-dev}"
out="$target/bench-results/tracking"
mkdir -p "$out"
work="$(mktemp -d)"
cleanup() {
  scripts/mlflow-server.sh stop "$work/mlflow" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

if [ -n "${TABTUNE_BIN:-}" ]; then
  tabtune="$TABTUNE_BIN"
elif [ "$profile" = release ]; then
  echo "== building tabtune (release)" >&2
  cargo build --release -q -p tabtune
  tabtune="$(cd "$target/release" && pwd)/tabtune"
else
  echo "== building tabtune (dev)" >&2
  cargo build -q -p tabtune
  tabtune="$(cd "$target/debug" && pwd)/tabtune"
fi
head -n 2001 "$data/s4e2_train.csv" >"$work/train.csv"
python="$(scripts/py-env.sh mlflow)"

echo "== starting MLflow" >&2
uri="$(scripts/mlflow-server.sh start "$work/mlflow")"
experiment="bench-tracking-$$"

run() { # run MODE TRIAL: prints the wall nanoseconds of one trial
  local mode="$1" trial="$2" start end
  local args=(--config "$root/configs/obesity.toml" -q train --json --input "$work/train.csv"
    --model gbdt-leafwise --folds 3 --param rounds=30 --seed "$trial" --oof "$work/oof.csv")
  start="$(date +%s%N)"
  if [ "$mode" = off ]; then
    (cd "$work" && "$tabtune" "${args[@]}" --no-track >/dev/null)
  elif [ "$mode" = local ]; then
    (cd "$work" && env -u MLFLOW_TRACKING_URI "$tabtune" "${args[@]}" --experiment "$experiment-local" >/dev/null)
  else
    (cd "$work" && "$tabtune" "${args[@]}" --tracking-uri "$uri" --experiment "$experiment" >/dev/null)
  fi
  end="$(date +%s%N)"
  echo $((end - start))
}

echo "== $trials trials, tracking off, local and on, interleaved" >&2
off=0
local=0
on=0
for trial in $(seq 0 $((trials - 1))); do
  # Rotate which mode goes first, so none always runs on a warmer cache.
  case $((trial % 3)) in
    0) a="$(run off "$trial")"; c="$(run local "$trial")"; b="$(run on "$trial")" ;;
    1) b="$(run on "$trial")"; a="$(run off "$trial")"; c="$(run local "$trial")" ;;
    *) c="$(run local "$trial")"; b="$(run on "$trial")"; a="$(run off "$trial")" ;;
  esac
  off=$((off + a))
  local=$((local + c))
  on=$((on + b))
done

echo "== in-process: $trials trials, tracking off and on, interleaved" >&2
if [ "$profile" = release ]; then release=(--release); else release=(); fi
MLFLOW_TRACKING_URI="$uri" TRIALS="$trials" cargo run -q "${release[@]}" -p tabtune-track \
  --example tracking_overhead -- "$work/inprocess" >"$out/inprocess.json"
cat "$out/inprocess.json"

"$python" - "$uri" "$experiment" "$trials" "$off" "$on" "$work" "$out/summary.json" "$local" <<'PY'
import json, pathlib, sys, urllib.request
uri, experiment, trials, off, on, work, summary, local_ns = sys.argv[1:]
trials, off, on, local_only = int(trials), int(off) / 1e9, int(on) / 1e9, int(local_ns) / 1e9
def call(endpoint, body=None):
    req = urllib.request.Request(f"{uri}/api/2.0/mlflow/{endpoint}",
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(req, timeout=30))
exp = call(f"experiments/get-by-name?experiment_name={experiment}")["experiment"]["experiment_id"]
runs = call("runs/search", {"experiment_ids": [exp], "max_results": 1000})["runs"]
finished = sum(r["info"]["status"] == "FINISHED" for r in runs)
local = list(pathlib.Path(work, "reports/runs", experiment).glob("*/run.json"))
tb = list(pathlib.Path(work, "reports/tensorboard", experiment).iterdir())
result = {
    "trials": trials, "seconds_off": round(off, 3), "seconds_local_tensorboard": round(local_only, 3),
    "seconds_on": round(on, 3),
    "overhead_percent_local_tensorboard": round(100 * (local_only - off) / off, 2),
    "overhead_percent": round(100 * (on - off) / off, 2),
    "per_trial_ms_off": round(1000 * off / trials, 1), "per_trial_ms_on": round(1000 * on / trials, 1),
    "mlflow_runs_finished": finished, "local_runs": len(local), "tensorboard_runs": len(tb),
}
json.dump(result, open(summary, "w"), indent=2)
print(json.dumps(result, indent=2))
assert finished == trials and len(local) == trials and len(tb) == trials, "a tracked run is missing"
PY
