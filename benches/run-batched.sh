#!/usr/bin/env bash
# Batched boosting on the CPU: the 5 folds of one configuration fitted one after another by the
# engine (quantized gradients, the batch's bins) and as one batch, side by side, per growth style;
# both sides' models must be identical. The default (unquantized) engine is timed too.
# Usage: benches/run-batched.sh [ROUNDS] [STYLES]   (TABTUNE_DATA_DIR defaults to ../shared/data)
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
# The dev profile builds the tree engine (tabtune-models) and its dependencies at opt-level 3.
cargo build -q -p tabtune
cargo build -q -p tabtune-models --example batched_bench
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$target/debug/tabtune" --data-dir "${TABTUNE_DATA_DIR:-../shared/data}" -q features \
  --output "$work/features.csv" --preprocessor "$work/preprocessor.json" >/dev/null
mkdir -p "$target/bench-results"
"$target/debug/examples/batched_bench" cpu "$work/features.csv" "${1:-500}" \
  "${2:-leafwise,depthwise,oblivious}" | tee "$target/bench-results/batched_cpu.jsonl"
