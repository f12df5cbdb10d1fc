#!/usr/bin/env bash
# GPU check of the neural family (issue 4): CUDA tests and GPU benchmarks, results in $OUT,
# under 8 minutes on the GPU machine.
#
# The GPU machine has no Rust toolchain and no network (so no crates.io), which is why this runs
# in two steps:
#
#   scripts/gpu-check.sh prepare   # HERE (CPU machine with cargo): release build with
#                                  # --features cuda of the tabtune-train test binary, the
#                                  # nn_bench example and the tabtune CLI, stripped and gzipped,
#                                  # plus the data files, into .gpu-check/ (git-ignored via
#                                  # .git/info/exclude; < 64 MiB)
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
#   - 5-fold CV accuracy of the default mlp and tabm on cuda:0, and of a few variants
#   - `tabtune sweep --population 16` on cuda:0 (many neural trials as one population) vs the
#     same sweep one trial at a time, per-trial throughput (sweep-population.json / sweep-one.json)
#   - `tabtune sweep --population 16 --device cuda:0` of the depth-wise boosting space (16 trials
#     x 5 folds per batched fit) vs the same space on the CPU one trial at a time
#     (sweep-trees-gpu.json / sweep-trees-cpu.json)
#   - `tabtune train` 5-fold CV of the random forest (500 trees) and the decision tree on cuda:0
#     (trees grown together on the GPU) vs the CPU engine, wall times (forest-*.json, tree-*.json)
#   - `tabtune run --device cuda:0` with the time left (run.json)
#
# Trees (issue 16: the batched tree fit), a separate pack and mode because of the 64 MiB carry:
#
#   scripts/gpu-check.sh prepare-trees   # HERE: release --features cuda batched_bench example and
#                                        # the feature table, into .gpu-trees/ (about 4 MiB;
#                                        # .gitignore'd, so it travels only when carried)
#   scripts/gpu-check.sh prepare-xgboost # HERE: the XGBoost 3.2.0 wheel (132 MB, too big for one
#                                        # carry) split into .gpu-xgb1/ .gpu-xgb2/ .gpu-xgb3/
#   scripts/gpu-check.sh trees           # THERE: carry .gpu-trees (and the last xgb part); the
#                                        # xgb parts reach /tmp/xgb-parts in earlier calls:
#                                        # `mkdir -p /tmp/xgb-parts && cp .gpu-xgbN/* /tmp/xgb-parts/`
#                                        # (one call per part, each within the machine's 30 s warm
#                                        # window of the previous one)
#
# The tree check (each line JSON in $OUT/gpu-trees.jsonl): the batched fit on cuda:0 against the
# CPU reference (`batched_bench check`: same splits, leaf values within 1e-6), one 500-round
# depth-wise fit (target: <= 1.0x XGBoost device="cuda", accuracy within 0.003), 32 trials x 5
# folds as one batch against the same 160 fits by XGBoost one by one (target: >= 10x the
# throughput; the peer stops after GPU_CHECK_XGB_SECONDS, default 150, and extrapolates). Without
# XGBoost (no wheel carried) the tabtune side still runs and the record says the peer is missing.
# GPU_CHECK_TREE_TRIALS (default 32) sizes the batch.
#
# GPU_CHECK_SKIP (comma-separated: benches, torch, sweep, trees-sweep, forest, cv, run) leaves parts out
# when a lease is short and they were measured before; GPU_CHECK_CV lists the CV variants (one per line,
# `MODEL [KEY=VALUE ...]`), which train side by side on the GPU (each is launch-bound on its
# own), GPU_CHECK_CV_SECONDS caps them.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
pack="$root/.gpu-check"
mode="${1:-run}"
# Leave margin inside the 8-minute budget; GPU_CHECK_SECONDS shortens it for a tight lease.
deadline=$((SECONDS + ${GPU_CHECK_SECONDS:-470}))

die() {
  echo "gpu-check: $*" >&2
  exit 1
}

left() { echo $((deadline - SECONDS)); }

skipped() { [[ ",${GPU_CHECK_SKIP:-}," == *",$1,"* ]]; }

prepare() {
  command -v cargo >/dev/null || die "prepare needs cargo (run it on the development machine)"
  local data="${TABTUNE_DATA_DIR:-../shared/data}/s4e2_train.csv"
  [ -f "$data" ] || die "$data not found; set TABTUNE_DATA_DIR"
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tabtune/target}"
  # No toolkit here, so cudarc cannot ask nvcc: bind to the CUDA 13.0 driver API (driver 580,
  # what the lent H100/H200 machines run) rather than cudarc's newest fallback, whose extra
  # symbols an older driver lacks. Override with CUDARC_CUDA_VERSION=12080 etc.
  export CUDARC_CUDA_VERSION="${CUDARC_CUDA_VERSION:-13000}"
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
  cargo build --release -p tabtune --features cuda
  rm -rf "$pack"
  mkdir -p "$pack/bin" "$pack/data"
  cp "$tests" "$pack/bin/tabtune-train-tests"
  cp "$CARGO_TARGET_DIR/release/examples/nn_bench" "$pack/bin/nn_bench"
  cp "$CARGO_TARGET_DIR/release/tabtune" "$pack/bin/tabtune"
  strip "$pack/bin/"* 2>/dev/null || true
  # Compressed (about 4x): the device tool carries at most 64 MiB.
  gzip -9 "$pack/bin/"*
  cp "$data" "$pack/s4e2_train.csv"
  local dir
  dir="$(dirname "$data")"
  cp "$data" "$dir/s4e2_test.csv" "$dir/obesity_uci.csv" "$pack/data/"
  grep -qx '/.gpu-check/' .git/info/exclude 2>/dev/null || echo '/.gpu-check/' >>.git/info/exclude
  local size
  size="$(du -sm "$pack" | cut -f1)"
  echo "gpu-check: $pack is ${size} MiB" >&2
  [ "$size" -lt 64 ] || die "$pack is ${size} MiB; the device tool carries at most 64 MiB"
}

prepare_trees() {
  command -v cargo >/dev/null || die "prepare-trees needs cargo (run it on the development machine)"
  local data="${TABTUNE_DATA_DIR:-../shared/data}/s4e2_train.csv"
  [ -f "$data" ] || die "$data not found; set TABTUNE_DATA_DIR"
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tabtune/target}"
  export CUDARC_CUDA_VERSION="${CUDARC_CUDA_VERSION:-13000}"
  echo "gpu-check: building batched_bench (release, --features cuda) ..." >&2
  cargo build --release -p tabtune-models --features cuda --example batched_bench
  # Only for the feature table: the dev profile (what the tests and benches build) will do.
  cargo build -q -p tabtune
  local trees="$root/.gpu-trees"
  rm -rf "$trees"
  mkdir -p "$trees"
  cp "$CARGO_TARGET_DIR/release/examples/batched_bench" "$trees/batched_bench"
  strip "$trees/batched_bench" 2>/dev/null || true
  gzip -9 "$trees/batched_bench"
  "$CARGO_TARGET_DIR/debug/tabtune" --data-dir "$(dirname "$data")" -q features \
    --output "$trees/features.csv" --preprocessor "$trees/preprocessor.json" >/dev/null
  gzip -9 "$trees/features.csv"
  git rev-parse --short=12 HEAD >"$trees/COMMIT"
  echo "gpu-check: $trees is $(du -sm "$trees" | cut -f1) MiB" >&2
}

prepare_xgboost() {
  local dir
  dir="$(mktemp -d)"
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 -d "$dir" xgboost==3.2.0
  local wheel
  wheel="$(ls "$dir"/xgboost-*.whl)"
  rm -rf "$root"/.gpu-xgb1 "$root"/.gpu-xgb2 "$root"/.gpu-xgb3
  split -n 3 -d -a 1 "$wheel" "$dir/part-"
  for i in 0 1 2; do
    mkdir -p "$root/.gpu-xgb$((i + 1))"
    mv "$dir/part-$i" "$root/.gpu-xgb$((i + 1))/"
  done
  (cd "$dir" && sha256sum "$(basename "$wheel")") >"$root/.gpu-xgb3/SHA256SUMS"
  basename "$wheel" >"$root/.gpu-xgb3/NAME"
  rm -rf "$dir"
  du -sm "$root"/.gpu-xgb* >&2
}

# The XGBoost wheel from its parts (carried in earlier calls to /tmp/xgb-parts, or here), if any.
install_xgboost() {
  python3 -c 'import xgboost' 2>/dev/null && return 0
  local parts="${XGB_PARTS:-/tmp/xgb-parts}"
  mkdir -p "$parts"
  for d in "$root"/.gpu-xgb1 "$root"/.gpu-xgb2 "$root"/.gpu-xgb3; do
    [ -d "$d" ] && cp "$d"/* "$parts/"
  done
  [ -f "$parts/NAME" ] && [ -f "$parts/part-0" ] && [ -f "$parts/part-1" ] && [ -f "$parts/part-2" ] \
    || return 1
  local wheel
  wheel="/tmp/$(cat "$parts/NAME")"
  cat "$parts"/part-0 "$parts"/part-1 "$parts"/part-2 >"$wheel"
  (cd /tmp && sha256sum -c "$parts/SHA256SUMS" >/dev/null) || { echo "gpu-check: xgboost wheel checksum mismatch" >&2; return 1; }
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/xgb-site "$wheel" || return 1
  export PYTHONPATH="/tmp/xgb-site${PYTHONPATH:+:$PYTHONPATH}"
  python3 -c 'import xgboost' 2>/dev/null
}

run_trees() {
  : "${OUT:?gpu-check: set OUT to the folder for the results}"
  mkdir -p "$OUT"
  command -v nvidia-smi >/dev/null || die "nvidia-smi not found: this is not a GPU machine"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader \
    | tee "$OUT/gpu-card.txt" || die "nvidia-smi cannot see a GPU"
  if [ -z "${CUDA_PATH:-}" ] && [ -d /usr/local/cuda ]; then export CUDA_PATH=/usr/local/cuda; fi
  for d in /usr/local/nvidia/lib64 /usr/local/cuda/lib64; do
    [ -d "$d" ] && export LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  done
  local trees="$root/.gpu-trees" work
  [ -f "$trees/batched_bench.gz" ] && [ -f "$trees/features.csv.gz" ] \
    || die "$trees is incomplete: run 'scripts/gpu-check.sh prepare-trees' here and carry .gpu-trees"
  work="$(mktemp -d)"
  gunzip -c "$trees/batched_bench.gz" >"$work/batched_bench" && chmod +x "$work/batched_bench"
  gunzip -c "$trees/features.csv.gz" >"$work/features.csv"
  local status=0 out="$OUT/gpu-trees.jsonl" n="${GPU_CHECK_TREE_TRIALS:-32}"
  : >"$out"
  echo "{\"commit\": \"$(cat "$trees/COMMIT" 2>/dev/null || echo unknown)\", \"card\": \"$(head -1 "$OUT/gpu-card.txt")\"}" >>"$out"
  echo "=== batched trees: cuda:0 vs the CPU reference ($(left) s left)" >&2
  timeout "$(left)" "$work/batched_bench" check "$work/features.csv" cuda:0 2>>"$OUT/gpu-trees.log" \
    | tee -a "$out" || { echo "gpu-check: the batched CUDA check failed (see gpu-trees.log)" >&2; status=1; }
  echo "=== batched trees: one 500-round fit, then $n trials x 5 folds in one batch ($(left) s left)" >&2
  timeout "$(left)" "$work/batched_bench" gpu "$work/features.csv" cuda:0 500 "$n" "$work/trials.json" \
    2>>"$OUT/gpu-trees.log" | tee -a "$out" \
    || { echo "gpu-check: batched_bench gpu failed (see gpu-trees.log)" >&2; status=1; }
  if install_xgboost; then
    local secs=$(( $(left) - 20 ))
    [ "$secs" -gt "${GPU_CHECK_XGB_SECONDS:-150}" ] && secs="${GPU_CHECK_XGB_SECONDS:-150}"
    if [ -f "$work/trials.json" ] && [ "$secs" -ge 30 ]; then
      echo "=== XGBoost device=cuda peer (${secs} s for the one-by-one fits)" >&2
      timeout "$(left)" python3 benches/trees_gpu_peer.py "$work/features.csv" "$work/trials.json" \
        --device cuda --max-seconds "$secs" 2>>"$OUT/gpu-trees.log" | tee -a "$out" || status=1
    else
      echo "gpu-check: no time (or no trials file) left for the XGBoost peer" >&2
      status=1
    fi
  else
    echo '{"peer": "xgboost", "missing": "no xgboost on the machine and no wheel parts carried (prepare-xgboost)"}' \
      | tee -a "$out"
  fi
  echo "gpu-check: tree results in $out (status $status, $SECONDS s)" >&2
  return "$status"
}

run_checks() {
  : "${OUT:?gpu-check: set OUT to the folder for the results}"
  mkdir -p "$OUT"
  command -v nvidia-smi >/dev/null || die "nvidia-smi not found: this is not a GPU machine"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader \
    | tee "$OUT/gpu-card.txt" || die "nvidia-smi cannot see a GPU"
  # cubecl compiles its kernels with NVRTC at run time and needs the toolkit's headers.
  if [ -z "${CUDA_PATH:-}" ] && [ -d /usr/local/cuda ]; then export CUDA_PATH=/usr/local/cuda; fi
  local libs="${CUDA_PATH:-/usr/local/cuda}/lib64"
  for d in /usr/local/nvidia/lib64 /usr/local/cuda/lib64 "$libs"; do
    [ -d "$d" ] && export LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  done
  {
    echo "CUDA_PATH=${CUDA_PATH:-unset}"
    echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-unset}"
    command -v nvcc >/dev/null && nvcc --version | tail -2
    ldconfig -p 2>/dev/null | grep -E 'libcuda\.so|libnvrtc\.so' || true
    find "$libs/" -maxdepth 1 -name 'libnvrtc*' 2>/dev/null | grep . || echo "no libnvrtc under $libs"
  } 2>&1 | tee "$OUT/gpu-env.txt"
  local bin data="$pack/s4e2_train.csv"
  bin="$(mktemp -d)"
  for f in "$pack/bin/"*.gz; do
    [ -f "$f" ] || die "$pack/bin has no binaries: run 'scripts/gpu-check.sh prepare' on the development machine and carry .gpu-check"
    gunzip -c "$f" >"$bin/$(basename "$f" .gz)"
    chmod +x "$bin/$(basename "$f" .gz)"
  done
  [ -x "$bin/tabtune-train-tests" ] && [ -x "$bin/nn_bench" ] && [ -x "$bin/tabtune" ] \
    && [ -f "$data" ] && [ -f "$pack/data/s4e2_test.csv" ] \
    || die "$pack is incomplete: run 'scripts/gpu-check.sh prepare' on the development machine and carry .gpu-check"
  # nn_bench reads configs/obesity.toml through the workspace root.
  export CARGO_MANIFEST_DIR="$root/crates/tabtune-train"
  export RUST_LOG="${RUST_LOG:-info}"
  local status=0
  echo "=== CUDA tests ($(left) s left)" >&2
  timeout "$(left)" "$bin/tabtune-train-tests" --include-ignored --nocapture cuda_ 2>&1 \
    | tee "$OUT/gpu-tests.log" || status=1
  grep -q "test result: ok" "$OUT/gpu-tests.log" || status=1
  for t in cuda_trains_a_population_like_the_cpu cuda_population_equals_separate_cuda_runs \
    cuda_dropout_masks_equal_the_host_reference; do
    grep -q "$t ... ok" "$OUT/gpu-tests.log" \
      || { echo "gpu-check: the CUDA test $t did not pass" >&2; status=1; }
  done
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
  if ! skipped benches; then
    bench epoch "$data" 6 cuda:0
    bench population "$data" 16 3 cuda:0
    bench population-vs-one "$data" 64 3 cuda:0
  fi
  if ! skipped benches && ! skipped torch \
    && python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
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
  # Many neural trials on one GPU: a sweep whose trials train as populations of 16, against the
  # same space one trial at a time (holdout, so every epoch reports to the pruner).
  local work
  work="$(mktemp -d)"
  cli() {
    (cd "$work" && timeout "$(left)" "$bin/tabtune" --config "$root/configs/obesity.toml" \
      --data-dir "$pack/data" --json -q "$@")
  }
  sweep_bench() {
    local name="$1" n="$2" population="$3"
    if [ "$(left)" -lt 40 ]; then
      echo "gpu-check: out of time before the $name sweep" >&2
      status=1
      return
    fi
    echo "=== tabtune sweep $name: $n trials, population $population ($(left) s left)" >&2
    cli sweep --sweep "$root/configs/sweeps/quick-nn.toml" --study "$name" \
      --storage "sqlite:///$work/studies.db" --holdout 0.2 --n-trials "$n" \
      --population "$population" --device cuda:0 --no-track --top-k 0 \
      >"$OUT/sweep-$name.json" 2>>"$OUT/gpu-bench.log" \
      || { echo "gpu-check: the $name sweep failed (see gpu-bench.log)" >&2; status=1; }
  }
  if ! skipped sweep; then
    sweep_bench population 48 16
    sweep_bench one 6 1
  fi
  # Many boosting trials on one GPU (issue 16): a 5-fold sweep of the depth-wise space whose
  # trials boost as batched fits of 16 trials x 5 folds, against the same space on the host's
  # CPU cores one trial at a time (the engine), per-trial throughput
  # (sweep-trees-gpu.json / sweep-trees-cpu.json).
  tree_sweep_bench() {
    local name="$1" n="$2" population="$3" device="$4"
    if [ "$(left)" -lt 60 ]; then
      echo "gpu-check: out of time before the $name tree sweep" >&2
      status=1
      return
    fi
    echo "=== tabtune sweep $name: $n depth-wise trials x 5 folds, population $population on $device ($(left) s left)" >&2
    cli sweep --sweep "$root/configs/sweeps/run-depthwise.toml" --study "$name" \
      --storage "sqlite:///$work/studies.db" --folds 5 --n-trials "$n" \
      --population "$population" --device "$device" --no-track --top-k 0 \
      >"$OUT/sweep-$name.json" 2>>"$OUT/gpu-bench.log" \
      || { echo "gpu-check: the $name tree sweep failed (see gpu-bench.log)" >&2; status=1; }
  }
  if ! skipped trees-sweep; then
    tree_sweep_bench trees-gpu 32 16 cuda:0
    tree_sweep_bench trees-cpu 4 1 cpu
  fi
  # Decision trees and random forests on the GPU (issue 16): `tabtune train` 5-fold CV of the
  # forest (500 trees) and the decision tree on cuda:0 (every fold's trees grown together) and
  # on the CPU engine, same seed: the same trees, so the same accuracy; wall times side by side
  # (forest-gpu.json / forest-cpu.json, ...).
  forest_bench() {
    local name="$1" model="$2" device="$3"
    shift 3
    if [ "$(left)" -lt 40 ]; then
      echo "gpu-check: out of time before the $name forest run" >&2
      status=1
      return
    fi
    echo "=== tabtune train --model $model --device $device ($(left) s left)" >&2
    local t0=$SECONDS
    cli train --model "$model" --folds 5 --device "$device" "$@" >"$OUT/$name.json" \
      2>>"$OUT/gpu-bench.log" \
      || { echo "gpu-check: the $name run failed (see gpu-bench.log)" >&2; status=1; }
    echo "{\"bench\": \"$name\", \"model\": \"$model\", \"device\": \"$device\", \"wall_s\": $((SECONDS - t0))}" \
      | tee -a "$OUT/gpu-bench.jsonl"
  }
  if ! skipped forest; then
    forest_bench forest-gpu random-forest cuda:0 --param n_trees=500
    forest_bench forest-cpu random-forest cpu --param n_trees=500
    forest_bench tree-gpu decision-tree cuda:0
    forest_bench tree-cpu decision-tree cpu
  fi
  # Accuracy (issue 4's target: 5-fold CV >= 0.900): the defaults and variants the CPU cannot
  # afford to compare (each CV trains its 5 folds as one population), side by side.
  local variants="${GPU_CHECK_CV:-mlp
tabm
tabm seed=1
mlp embedding=piecewise dropout=0.2 weight_decay=1e-3}"
  if ! skipped cv && [ "$(left)" -ge 60 ]; then
    local secs i=0 pids=() line
    secs="$(left)"
    [ -z "${GPU_CHECK_CV_SECONDS:-}" ] || [ "$GPU_CHECK_CV_SECONDS" -ge "$secs" ] \
      || secs="$GPU_CHECK_CV_SECONDS"
    echo "=== CV variants side by side (${secs} s)" >&2
    while read -r line; do
      [ -n "$line" ] || continue
      read -r -a words <<<"$line"
      timeout "$secs" "$bin/nn_bench" cv "$data" "${words[0]}" cuda:0 "${words[@]:1}" \
        >"$work/cv-$i.json" 2>"$work/cv-$i.log" &
      pids+=("$!")
      i=$((i + 1))
    done <<<"$variants"
    for ((j = 0; j < i; j++)); do
      wait "${pids[$j]}" || { echo "gpu-check: CV variant $j failed or ran out of time" >&2; status=1; }
      tee -a "$OUT/gpu-bench.jsonl" <"$work/cv-$j.json"
      cat "$work/cv-$j.log" >>"$OUT/gpu-bench.log"
    done
  fi
  # The whole pipeline on the GPU with what is left (at least 90 s).
  local budget=$(( ($(left) - 30) / 60 ))
  if skipped run; then
    echo "gpu-check: tabtune run skipped (GPU_CHECK_SKIP)" >&2
  elif [ "$budget" -ge 2 ]; then
    echo "=== tabtune run --device cuda:0 --budget-minutes $budget" >&2
    mkdir -p "$work/run" && cp -r "$root/configs" "$work/run/"
    (cd "$work/run" && timeout "$(left)" "$bin/tabtune" --data-dir "$pack/data" --json \
      run --device cuda:0 --budget-minutes "$budget" --no-track >"$OUT/run.json" \
      2>>"$OUT/gpu-bench.log") \
      || { echo "gpu-check: tabtune run failed (see gpu-bench.log)" >&2; status=1; }
  else
    echo "gpu-check: no time left for tabtune run" >&2
  fi
  echo "gpu-check: results in $OUT (status $status, $((SECONDS)) s)" >&2
  return "$status"
}

case "$mode" in
  prepare) prepare ;;
  prepare-trees) prepare_trees ;;
  prepare-xgboost) prepare_xgboost ;;
  run) run_checks ;;
  trees) run_trees ;;
  build) prepare && run_checks ;;
  *) die "unknown mode $mode; expected prepare, prepare-trees, prepare-xgboost, run, trees or build" ;;
esac
