#!/usr/bin/env bash
# GPU check of the neural family (issue 4): CUDA tests and GPU benchmarks, results in $OUT,
# under 8 minutes on the GPU machine.
#
# The GPU machine has no Rust toolchain and no network (so no crates.io), which is why this runs
# in two steps:
#
#   scripts/gpu-check.sh prepare   # HERE (CPU machine with cargo): release build with
#                                  # --features cuda of the tabtune-train test binary and the
#                                  # nn_bench example, stripped, plus s4e2_train.csv, into
#                                  # .gpu-check/ (git-ignored via .git/info/exclude; < 64 MiB)
#   scripts/gpu-check.sh           # THERE, e.g. through the device tool with carry [".gpu-check"]
#                                  # and OUT set: nvidia-smi, the CUDA tests, the benchmarks
#
# Where cargo and the crate sources ARE present (a GPU workstation), `scripts/gpu-check.sh build`
# does both steps in one go. Every failure says what was missing and exits non-zero.
#
# Benchmarks (each line one JSON object in $OUT/gpu-bench.jsonl):
#   - MLP epoch time on cuda:0 (same shapes as benches/run-nn.sh; the PyTorch peer runs on CUDA
#     when torch sees the GPU)
#   - population P=16 vs 16 sequential trials on cuda:0
#   - population P=64 vs ONE trial on cuda:0 (target: 64 trials in under 3x one trial's time)
#   - 5-fold CV accuracy of the default mlp on cuda:0
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
pack="$root/.gpu-check"
mode="${1:-run}"
deadline=$((SECONDS + 470)) # leave margin inside the 8-minute budget

die() {
  echo "gpu-check: $*" >&2
  exit 1
}

left() { echo $((deadline - SECONDS)); }

prepare() {
  command -v cargo >/dev/null || die "prepare needs cargo (run it on the development machine)"
  local data="${TABTUNE_DATA_DIR:-../shared/data}/s4e2_train.csv"
  [ -f "$data" ] || die "$data not found; set TABTUNE_DATA_DIR"
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tabtune/target}"
  echo "gpu-check: building tabtune-train (release, --features cuda) ..." >&2
  local tests
  tests="$(cargo test --release -p tabtune-train --features cuda --lib --no-run \
    --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "tabtune_train":
        print(m["executable"])' | tail -1)"
  [ -n "$tests" ] && [ -x "$tests" ] || die "the release test binary of tabtune-train was not built"
  cargo build --release -p tabtune-train --features cuda --example nn_bench
  rm -rf "$pack"
  mkdir -p "$pack/bin"
  cp "$tests" "$pack/bin/tabtune-train-tests"
  cp "$CARGO_TARGET_DIR/release/examples/nn_bench" "$pack/bin/nn_bench"
  strip "$pack/bin/"* 2>/dev/null || true
  cp "$data" "$pack/s4e2_train.csv"
  grep -qx '/.gpu-check/' .git/info/exclude 2>/dev/null || echo '/.gpu-check/' >>.git/info/exclude
  local size
  size="$(du -sm "$pack" | cut -f1)"
  echo "gpu-check: $pack is ${size} MiB" >&2
  [ "$size" -lt 64 ] || die "$pack is ${size} MiB; the device tool carries at most 64 MiB"
}

run_checks() {
  : "${OUT:?gpu-check: set OUT to the folder for the results}"
  mkdir -p "$OUT"
  command -v nvidia-smi >/dev/null || die "nvidia-smi not found: this is not a GPU machine"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader \
    | tee "$OUT/gpu-card.txt" || die "nvidia-smi cannot see a GPU"
  local bin="$pack/bin" data="$pack/s4e2_train.csv"
  [ -x "$bin/tabtune-train-tests" ] && [ -x "$bin/nn_bench" ] && [ -f "$data" ] \
    || die "$pack is incomplete: run 'scripts/gpu-check.sh prepare' on the development machine and carry .gpu-check"
  # nn_bench reads configs/obesity.toml through the workspace root.
  export CARGO_MANIFEST_DIR="$root/crates/tabtune-train"
  export RUST_LOG="${RUST_LOG:-info}"
  local status=0
  echo "=== CUDA tests ($(left) s left)" >&2
  timeout "$(left)" "$bin/tabtune-train-tests" --include-ignored cuda_ 2>&1 \
    | tee "$OUT/gpu-tests.log" || status=1
  grep -q "test result: ok" "$OUT/gpu-tests.log" || status=1
  grep -q "cuda_trains_a_population_like_the_cpu ... ok" "$OUT/gpu-tests.log" \
    || { echo "gpu-check: the CUDA population test did not pass" >&2; status=1; }
  : >"$OUT/gpu-bench.jsonl"
  bench() {
    local secs
    secs="$(left)"
    if [ "$secs" -lt 20 ]; then
      echo "gpu-check: out of time before: nn_bench $*" >&2
      status=1
      return
    fi
    echo "=== nn_bench $* (${secs} s left)" >&2
    timeout "$secs" "$bin/nn_bench" "$@" 2>>"$OUT/gpu-bench.log" | tee -a "$OUT/gpu-bench.jsonl" \
      || { echo "gpu-check: nn_bench $* failed (see gpu-bench.log)" >&2; status=1; }
  }
  bench epoch "$data" 6 cuda:0
  bench population "$data" 16 3 cuda:0
  bench population-vs-one "$data" 64 3 cuda:0
  bench cv "$data" mlp cuda:0
  if python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    local shape
    shape="$(python3 -c 'import json,sys
for l in open(sys.argv[1]):
    d = json.loads(l)
    if d.get("bench") == "mlp_epoch":
        print(d["rows"], d["features"], d["classes"])' "$OUT/gpu-bench.jsonl" | head -1)"
    if [ -n "$shape" ]; then
      read -r rows feats classes <<<"$shape"
      echo "=== PyTorch peer on CUDA" >&2
      timeout "$(left)" python3 benches/peers/torch_mlp.py --rows "$rows" --features "$feats" \
        --classes "$classes" --epochs 6 --device cuda | tee -a "$OUT/gpu-bench.jsonl" || status=1
    fi
  fi
  echo "gpu-check: results in $OUT (status $status, $((SECONDS)) s)" >&2
  return "$status"
}

case "$mode" in
  prepare) prepare ;;
  run) run_checks ;;
  build) prepare && run_checks ;;
  *) die "unknown mode $mode; expected prepare, run or build" ;;
esac
