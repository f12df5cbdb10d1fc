#!/usr/bin/env bash
# ONNX benchmark, side by side in one run (benches/README.md, "ONNX export"): an exported tabtune
# model in onnxruntime (CPU) vs tabtune itself vs LightGBM's own predict, single-row latency and
# the latency of one 10,000-row batch, on raw rows of s4e2_test.csv.
#   - onnxruntime: benches/peers/onnx_ort.py on the model exported from the bundle
#     (`tabtune export --model BUNDLE --format onnx`);
#   - tabtune in process: `cargo bench -p tabtune-infer --bench predict` (one-row tables through
#     the bundle's preprocessor and model, as `/predict` does; the 10k-row table);
#   - `tabtune predict` as a command: wall time on a 1-row and the 10k-row file (process start,
#     bundle load and checksums, CSV parsing and validation, prediction, CSV output);
#   - LightGBM 4.7.0 (the same kind of model on the same rows): `booster.predict` on prepared
#     frames (benches/peers/onnx_lgbm.py), and with the frame built per call as a FastAPI
#     handler does (benches/peers/serve_lgbm.py bench).
# Both models: leaf-wise GBDT, 200 rounds, learning rate 0.1, 31 leaves, no L2, fitted on
# s4e2_train.csv (as benches/run-serve.sh). Two threads everywhere (the machine has 2 cores).
# Usage: benches/run-onnx.sh   (TABTUNE_DATA_DIR defaults to ../shared/data; TABTUNE_BIN=path
# skips the release build of the CLI). Results: $CARGO_TARGET_DIR/bench-results/onnx/summary.json.
set -euo pipefail
cd "$(dirname "$0")/.."
data="${TABTUNE_DATA_DIR:-../shared/data}"
target="${CARGO_TARGET_DIR:-target}"
out="$target/bench-results/onnx"
mkdir -p "$out"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
py_onnx="$(scripts/py-env.sh onnx)"
py_lgbm="$(scripts/py-env.sh serve)"

echo "== release builds: the CLI, the in-process bench" >&2
if [ -z "${TABTUNE_BIN:-}" ]; then
  cargo build --release -q -p tabtune
fi
tabtune="${TABTUNE_BIN:-$(cd "$target/release" && pwd)/tabtune}"
cargo bench -q -p tabtune-infer --bench predict --no-run

echo "== training both models on s4e2_train.csv" >&2
"$tabtune" train --json -q --data-dir "$data" --model gbdt-leafwise --folds 2 \
  --param rounds=200 --param learning_rate=0.1 --param num_leaves=31 --param lambda=0 \
  --save "$work/bundle" >"$out/train-tabtune.json"
"$py_lgbm" benches/peers/serve_lgbm.py train --input "$data/s4e2_train.csv" \
  --output "$work/lgbm.txt" --rounds 200 --learning-rate 0.1 --num-leaves 31 \
  >"$out/train-lightgbm.json"

echo "== exporting the bundle to ONNX" >&2
"$tabtune" export --json -q --model "$work/bundle" --format onnx --output "$work/model.onnx" \
  >"$out/export.json"

# The first 10,000 rows of the test file, and one row.
head -n 10001 "$data/s4e2_test.csv" >"$work/test10k.csv"
head -n 2 "$data/s4e2_test.csv" >"$work/test1.csv"

echo "== single rows and the 10k-row batch" >&2
"$py_onnx" benches/peers/onnx_ort.py --model "$work/model.onnx" --input "$work/test10k.csv" \
  --single 2000 --repeat 10 --classes "$work/onnx-classes.txt" >"$out/onnxruntime.json"
cargo bench -q -p tabtune-infer --bench predict -- --model "$work/bundle" \
  --input "$work/test10k.csv" --single 2000 --repeat 10 >"$out/tabtune-inproc.json"
"$py_lgbm" benches/peers/onnx_lgbm.py --model "$work/lgbm.txt" --input "$work/test10k.csv" \
  --single 2000 --repeat 10 >"$out/lightgbm-predict.json"
"$py_lgbm" benches/peers/serve_lgbm.py bench --model "$work/lgbm.txt" \
  --input "$work/test10k.csv" --single 2000 --repeat 10 >"$out/lightgbm-handler.json"

echo "== tabtune predict (the command)" >&2
cli() { # input output runs -> median wall seconds of `tabtune predict`
  "$py_onnx" - "$tabtune" "$work/bundle" "$1" "$2" "$3" <<'PY'
import statistics, subprocess, sys, time
tabtune, bundle, inp, outp, runs = sys.argv[1:6]
times = []
for _ in range(int(runs)):
    t = time.perf_counter()
    subprocess.run([tabtune, "-q", "predict", "--model", bundle, "--input", inp, "--output", outp],
                   check=True, stdout=subprocess.DEVNULL)
    times.append(time.perf_counter() - t)
print(statistics.median(times))
PY
}
cli_1="$(cli "$work/test1.csv" "$work/pred1.csv" 11)"
cli_10k="$(cli "$work/test10k.csv" "$work/pred10k.csv" 5)"

"$py_onnx" - "$out" "$work" "$cli_1" "$cli_10k" <<'PY' | tee "$out/summary.json"
import csv, json, sys
out, work, cli_1, cli_10k = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
def j(name): return json.load(open(f"{out}/{name}"))
ort_, tab, lgb_p, lgb_h = j("onnxruntime.json"), j("tabtune-inproc.json"), j("lightgbm-predict.json"), j("lightgbm-handler.json")
onnx_classes = open(f"{work}/onnx-classes.txt").read().split()
tabtune_classes = [r["predicted"] for r in csv.DictReader(open(f"{work}/pred10k.csv"))]
agree = sum(a == b for a, b in zip(onnx_classes, tabtune_classes))
row = lambda d: {"single_p50_us": d["single_p50_us"], "single_p99_us": d["single_p99_us"],
                 "batch_10k_ms": 1e3 * d["batch_median_s"]}
s = {
    "rows": ort_["batch_rows"],
    "classes_agree_with_tabtune_predict": f"{agree}/{len(tabtune_classes)}",
    "onnxruntime": row(ort_) | {"version": ort_["onnxruntime"], "session_load_s": ort_["session_load_s"]},
    "tabtune_in_process": row(tab),
    "tabtune_predict_command": {"one_row_s": cli_1, "batch_10k_s": cli_10k},
    "lightgbm_predict": row(lgb_p) | {"version": lgb_p["lightgbm"]},
    "lightgbm_with_frame_per_call": row(lgb_h),
    "export": j("export.json"),
    "train_cv_accuracy_tabtune": j("train-tabtune.json").get("accuracy_mean"),
}
s["ratios"] = {
    "single_p50_onnxruntime_over_tabtune": ort_["single_p50_us"] / tab["single_p50_us"],
    "single_p50_onnxruntime_over_lightgbm_predict": ort_["single_p50_us"] / lgb_p["single_p50_us"],
    "batch_onnxruntime_over_tabtune": ort_["batch_median_s"] / tab["batch_median_s"],
    "batch_onnxruntime_over_lightgbm_predict": ort_["batch_median_s"] / lgb_p["batch_median_s"],
}
print(json.dumps(s, indent=2))
PY
