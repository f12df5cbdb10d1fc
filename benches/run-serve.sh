#!/usr/bin/env bash
# Serving benchmark, side by side in one run (benches/README.md, "Serving"):
#   1. in-process prediction on raw rows: tabtune (cargo bench -p tabtune-infer --bench predict)
#      vs LightGBM (benches/peers/serve_lgbm.py), single-row latency and batch rows/s;
#   2. HTTP on 127.0.0.1: `tabtune serve` (release build) vs FastAPI + uvicorn serving the same
#      kind of model (benches/peers/serve_fastapi.py): max throughput and latency under wrk,
#      p50/p99 at a fixed 1000 req/s under hey (-q: a rate limit per connection).
# Both models: leaf-wise GBDT, 200 rounds, learning rate 0.1, 31 leaves, no L2, on s4e2_train.csv.
# Usage: benches/run-serve.sh   (TABTUNE_DATA_DIR defaults to ../shared/data; needs wrk and hey:
# apt-get install wrk hey; TABTUNE_BIN=path skips the release build and uses that binary;
# SERVE_BENCH_SECONDS sets each load run's length, default 10).
# Results: $CARGO_TARGET_DIR/bench-results/serve/summary.json.
set -euo pipefail
cd "$(dirname "$0")/.."
data="${TABTUNE_DATA_DIR:-../shared/data}"
target="${CARGO_TARGET_DIR:-target}"
duration="${SERVE_BENCH_SECONDS:-10}"
for tool in wrk hey; do
  command -v "$tool" >/dev/null || { echo "run-serve: $tool is missing (apt-get install $tool)" >&2; exit 2; }
done
py="$(scripts/py-env.sh serve)"
out="$target/bench-results/serve"
mkdir -p "$out"
work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "== building the release binary and the in-process bench" >&2
if [ -z "${TABTUNE_BIN:-}" ]; then
  cargo build --release -q -p tabtune
fi
tabtune="${TABTUNE_BIN:-$(cd "$target/release" && pwd)/tabtune}"
cargo bench -q -p tabtune-infer --bench predict --no-run

echo "== training both models on s4e2_train.csv" >&2
"$tabtune" train --json -q --data-dir "$data" --model gbdt-leafwise --folds 2 \
  --param rounds=200 --param learning_rate=0.1 --param num_leaves=31 --param lambda=0 \
  --save "$work/bundle" >"$out/train-tabtune.json"
"$py" benches/peers/serve_lgbm.py train --input "$data/s4e2_train.csv" --output "$work/lgbm.txt" \
  --rounds 200 --learning-rate 0.1 --num-leaves 31 >"$out/train-lightgbm.json"

echo "== in-process prediction (s4e2_test.csv)" >&2
cargo bench -q -p tabtune-infer --bench predict -- --model "$work/bundle" \
  --input "$data/s4e2_test.csv" --single 2000 --repeat 10 >"$out/inproc-tabtune.json"
"$py" benches/peers/serve_lgbm.py bench --model "$work/lgbm.txt" --input "$data/s4e2_test.csv" \
  --single 2000 --repeat 10 >"$out/inproc-lightgbm.json"

echo "== HTTP" >&2
# One record of the test file as the request body.
"$py" - "$data/s4e2_test.csv" >"$work/body.json" <<'PY'
import csv, json, sys
row = next(csv.DictReader(open(sys.argv[1])))
print(json.dumps({k: (v if k == "id" or not v.replace(".", "", 1).isdigit() else float(v)) for k, v in row.items()}))
PY
cat >"$work/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [[$(cat "$work/body.json")]]
LUA
wait_up() {
  for _ in $(seq 1 100); do
    curl -sf "$1/health" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "run-serve: $1 did not come up" >&2
  exit 1
}
load() { # name url
  curl -sf -H 'content-type: application/json' -d @"$work/body.json" "$2/predict" >"$out/http-$1-answer.json"
  wrk -t2 -c32 -d"${duration}s" --latency -s "$work/post.lua" "$2/predict" >"$out/http-$1-wrk.txt"
  hey -z "${duration}s" -c 10 -q 100 -m POST -T application/json -D "$work/body.json" \
    "$2/predict" >"$out/http-$1-hey1000.txt"
}
"$tabtune" -q serve --model "$work/bundle" --port 18080 --threads 2 --window 1000 2>"$work/serve.log" &
pids+=($!)
wait_up http://127.0.0.1:18080
load tabtune http://127.0.0.1:18080
kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true
(cd benches/peers && TABTUNE_PEER_MODEL="$work/lgbm.txt" "$(dirname "$py")/uvicorn" serve_fastapi:app \
  --host 127.0.0.1 --port 18081 --workers 2 --log-level warning) &
pids+=($!)
wait_up http://127.0.0.1:18081
load fastapi http://127.0.0.1:18081

"$py" - "$out" <<'PY' | tee "$out/summary.json"
import json, re, sys
out = sys.argv[1]
def j(name): return json.load(open(f"{out}/{name}"))
def ms(v, unit): return float(v) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]
def wrk(name):
    t = open(f"{out}/http-{name}-wrk.txt").read()
    lat = {p: ms(v, u) for p, v, u in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", t, re.M)}
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1)),
            "p50_ms": lat.get("50"), "p99_ms": lat.get("99"),
            "non_2xx": int(errors.group(1)) if errors else 0}
def hey(name):
    t = open(f"{out}/http-{name}-hey1000.txt").read()
    lat = {p: 1e3 * float(v) for p, v in re.findall(r"^\s+(50|90|99)% in ([\d.]+) secs", t, re.M)}
    codes = dict(re.findall(r"\[(\d+)\]\s+(\d+) responses", t))
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1)),
            "p50_ms": lat.get("50"), "p99_ms": lat.get("99"), "status_codes": codes}
a, b = j("inproc-tabtune.json"), j("inproc-lightgbm.json")
s = {
    "train": {"tabtune": j("train-tabtune.json").get("accuracy_mean"), "lightgbm": j("train-lightgbm.json")},
    "in_process": {"tabtune": a, "lightgbm": b,
                   "single_row_latency_ratio_p50": b["single_p50_us"] / a["single_p50_us"],
                   "batch_throughput_ratio": a["batch_rows_per_s"] / b["batch_rows_per_s"]},
    "http_max": {"tabtune": wrk("tabtune"), "fastapi": wrk("fastapi")},
    "http_1000rps": {"tabtune": hey("tabtune"), "fastapi": hey("fastapi")},
}
s["http_max"]["throughput_ratio"] = s["http_max"]["tabtune"]["rps"] / s["http_max"]["fastapi"]["rps"]
print(json.dumps(s, indent=2))
PY
