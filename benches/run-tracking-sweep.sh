#!/usr/bin/env bash
# Tracking overhead of a 100-trial sweep: the same `tabtune sweep` (same space, seed and holdout)
# with tracking off (--no-track), with the local store + TensorBoard (the default), and with
# MLflow on top (a real server from scripts/mlflow-server.sh on this machine), run in rounds
# in a rotating order so slow spells and drifts of the machine hit every variant. Compares the optimisation wall time
# (`seconds` of `--json`: the trials, not the final registration).
# Usage: benches/run-tracking-sweep.sh [ROUNDS] [TRIALS]   (TABTUNE_DATA_DIR defaults to ../shared/data)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-2}"
trials="${2:-100}"
cargo build -q -p tabtune
root="$(pwd)"
bin="$(realpath "${CARGO_TARGET_DIR:-target}/debug/tabtune")"
data="$(realpath "${TABTUNE_DATA_DIR:-../shared/data}")"
work="$(mktemp -d)"
mlflow_dir="$work/mlflow"
uri="$(scripts/mlflow-server.sh start "$mlflow_dir")"
trap 'scripts/mlflow-server.sh stop "$mlflow_dir" >/dev/null; rm -rf "$work"' EXIT
space="$work/space.toml"
cat >"$space" <<'TOML'
[fixed]
family = "gbdt-leafwise"
rounds = 60

[params.learning_rate]
type = "float"
low = 0.05
high = 0.3
log = true

[params.num_leaves]
type = "int"
low = 8
high = 64
log = true
TOML
run() { # name, extra args...
  local name="$1"; shift
  (cd "$work" && "$bin" --config "$root/configs/obesity.toml" --data-dir "$data" -q \
    sweep --json --sweep "$space" --study "$name" --storage "sqlite:///$work/$name.db" \
    --holdout 0.2 --n-trials "$trials" --sampler tpe --pruner none --top-k 0 "$@") \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["seconds"])'
}
declare -A total=([off]=0 [local]=0 [mlflow]=0)
variants=(off local mlflow)
for r in $(seq 1 "$rounds"); do
  # Rotate the order each round, so a drift of the machine's speed hits every variant alike.
  for i in 0 1 2; do
    v="${variants[$(( (i + r - 1) % 3 ))]}"
    case "$v" in
      off) s="$(run "off-$r" --no-track)" ;;
      local) s="$(run "local-$r")" ;;
      mlflow) s="$(run "mlflow-$r" --tracking-uri "$uri" --register "bench-$r")" ;;
    esac
    echo "round $r $v: ${s} s"
    total[$v]="$(python3 -c "print(${total[$v]} + $s)")"
  done
done
python3 - "${total[off]}" "${total[local]}" "${total[mlflow]}" "$trials" <<'PY'
import sys
off, local, mlflow, trials = map(float, sys.argv[1:])
print(f"{int(trials)}-trial sweep, summed over rounds: off {off:.1f} s | local + TensorBoard {local:.1f} s "
      f"({100 * (local / off - 1):+.1f}%) | + MLflow {mlflow:.1f} s ({100 * (mlflow / off - 1):+.1f}%)")
PY
