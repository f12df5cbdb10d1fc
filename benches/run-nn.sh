#!/usr/bin/env bash
# Neural benchmark, side by side in one run (benches/README.md, "Neural networks"):
#   1. MLP epoch time, tabtune (burn, flex CPU backend) vs PyTorch CPU: same shapes
#      (s4e2_train.csv preprocessed), same architecture (3 x 256, ReLU, dropout 0.1), batch 256,
#      AdamW + warm-up/cosine, label smoothing, gradient clipping; both on 2 threads.
#   2. Population P=16 vs the same 16 trials one after another (throughput ratio).
#   3. 5-fold CV accuracy of the default MLP and TabM through `tabtune train --json`.
# Usage: benches/run-nn.sh [--device cpu|wgpu|cuda:N] [--skip-cv]
# Writes $CARGO_TARGET_DIR/bench-results/nn.json (or $OUT/nn.json when OUT is set).
set -euo pipefail
cd "$(dirname "$0")/.."
device=cpu
skip_cv=0
population=16
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device="$2"; shift 2 ;;
    --skip-cv) skip_cv=1; shift ;;
    --population) population="$2"; shift 2 ;;
    *) echo "run-nn: unknown argument $1" >&2; exit 2 ;;
  esac
done
data_dir="${TABTUNE_DATA_DIR:-../shared/data}"
data="$data_dir/s4e2_train.csv"
if [ ! -f "$data" ]; then
  echo "run-nn: $data not found; set TABTUNE_DATA_DIR to the folder with s4e2_train.csv" >&2
  exit 1
fi
target="${CARGO_TARGET_DIR:-target}"
features="${TABTUNE_NN_FEATURES:-}"
out_dir="${OUT:-$target/bench-results}"
mkdir -p "$out_dir"
result="$out_dir/nn.json"
# The dev profile builds burn and every dependency at opt-level 3 (as benches/run-trees.sh).
cargo build -q -p tabtune-train --example nn_bench ${features:+--features "$features"}
cargo build -q -p tabtune ${features:+--features "$features"}
bench="$target/debug/examples/nn_bench"
{
  echo "=== MLP epoch time on $device"
  "$bench" epoch "$data" 6 "$device" | tee "$out_dir/nn-epoch.json"
  if [ "$device" = cpu ]; then
    python="$(scripts/py-env.sh torch)"
    read -r rows feats classes < <(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["rows"], d["features"], d["classes"])' "$out_dir/nn-epoch.json")
    echo "=== PyTorch CPU peer, same shapes ($rows x $feats, $classes classes)"
    "$python" benches/peers/torch_mlp.py --rows "$rows" --features "$feats" --classes "$classes" \
      --epochs 6 --threads 2 | tee "$out_dir/nn-torch.json"
  fi
  echo "=== population P=$population vs $population sequential trials on $device"
  "$bench" population "$data" "$population" 3 "$device" | tee "$out_dir/nn-population.json"
  if [ "$skip_cv" = 0 ]; then
    for model in mlp tabm; do
      echo "=== 5-fold CV, default $model on $device"
      "$target/debug/tabtune" train --model "$model" --device "$device" --folds 5 --json \
        --input "$data" --oof "$out_dir/oof-$model.csv" -q \
        | python3 -c 'import json,sys; d=json.load(sys.stdin); print(json.dumps({k: d[k] for k in ("model","device","folds","accuracy_mean","accuracy_std","logloss_mean","seconds")}))' \
        | tee "$out_dir/nn-cv-$model.json"
    done
  fi
} 2> >(grep -v XDG_RUNTIME_DIR >&2)
python3 - "$out_dir" "$result" <<'PY'
import json, os, sys
d, out = sys.argv[1], sys.argv[2]
res = {}
for name in ("epoch", "torch", "population", "cv-mlp", "cv-tabm"):
    p = os.path.join(d, f"nn-{name}.json")
    if os.path.exists(p):
        res[name] = json.load(open(p))
if "epoch" in res and "torch" in res:
    res["epoch_time_ratio_tabtune_over_torch"] = (
        res["epoch"]["epoch_seconds_median"] / res["torch"]["epoch_seconds_median"])
json.dump(res, open(out, "w"), indent=2)
print(json.dumps({k: v for k, v in res.items() if not isinstance(v, dict)}))
print(f"results: {out}")
PY
