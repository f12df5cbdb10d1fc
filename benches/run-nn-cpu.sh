#!/usr/bin/env bash
# Neural training on the CPU, before and after, side by side in one run (benches/README.md,
# "Neural training on the CPU uses the whole machine"; issue 19 §3):
#   1. 5-fold CV of the default TabM (`tabtune train --model tabm --device cpu --folds 5`) with
#      the tabtune of BEFORE (a git revision, built here in a temporary worktree) and with this
#      checkout's: wall, user and system seconds, accuracy and log loss. Target: after <= 0.5x
#      before's wall time at the same accuracy.
#   2. The MLP epoch time of this checkout (`nn_bench epoch`, 2 threads) against PyTorch CPU
#      with the same shapes and threads (benches/peers/torch_mlp.py). Target: <= 1.0x.
# Usage: benches/run-nn-cpu.sh [--before REV | --before-json FILE] [--model tabm|mlp] [--skip-torch]
#   --before REV         the revision to compare with (default 99f5fc3: before the CPU changes)
#   --before-json FILE   reuse the `before` result of an earlier run of this script (its
#                        nn-cpu-before.json) instead of building and timing REV again (the
#                        default TabM takes about an hour on 2 cores before the change)
# Writes $CARGO_TARGET_DIR/bench-results/nn-cpu.json (or $OUT/nn-cpu.json when OUT is set).
# Run it on a quiet machine: both CV runs use every core.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
before=99f5fc3
before_json=
model=tabm
skip_torch=0
while [ $# -gt 0 ]; do
  case "$1" in
    --before) before="$2"; shift 2 ;;
    --before-json) before_json="$2"; shift 2 ;;
    --model) model="$2"; shift 2 ;;
    --skip-torch) skip_torch=1; shift ;;
    *) echo "run-nn-cpu: unknown argument $1" >&2; exit 2 ;;
  esac
done
data_dir="${TABTUNE_DATA_DIR:-../shared/data}"
data="$(cd "$data_dir" 2>/dev/null && pwd)/s4e2_train.csv"
if [ ! -f "$data" ]; then
  echo "run-nn-cpu: $data_dir/s4e2_train.csv not found; set TABTUNE_DATA_DIR" >&2
  exit 1
fi
# The config's data folder: with it the input is the config's training file, so both runs
# append the config's extra-train (UCI) rows to every training fold, as `tabtune train` does by
# default (a different --input gets no extra rows). The report refuses runs that differ here.
TABTUNE_DATA_DIR="$(dirname "$data")"
export TABTUNE_DATA_DIR
git rev-parse --verify -q "$before^{commit}" >/dev/null \
  || { echo "run-nn-cpu: --before $before is not a revision of this repository" >&2; exit 2; }
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tabtune/target}"
target="$CARGO_TARGET_DIR"
out_dir="${OUT:-$target/bench-results}"
mkdir -p "$out_dir"
result="$out_dir/nn-cpu.json"
bins="$(mktemp -d)"
tree="$(mktemp -d)/before"
cleanup() {
  git -C "$root" worktree remove --force "$tree" 2>/dev/null || true
  rm -rf "$bins"
}
trap cleanup EXIT

# Both binaries: the dev profile (burn and every dependency at opt-level 3), as every bench.
if [ -z "$before_json" ]; then
  echo "=== building tabtune at $before (worktree $tree)" >&2
  git worktree add -q --detach "$tree" "$before"
  (cd "$tree" && cargo build -q -p tabtune)
  cp "$target/debug/tabtune" "$bins/tabtune-before"
fi
echo "=== building tabtune at $(git rev-parse --short HEAD) (this checkout)" >&2
cargo build -q -p tabtune
cargo build -q -p tabtune-train --example nn_bench
cp "$target/debug/tabtune" "$bins/tabtune-after"

cv() { # NAME BINARY
  local name="$1" bin="$2" work
  work="$(mktemp -d)"
  cp -r "$root/configs" "$work/"
  echo "=== 5-fold CV, default $model, --device cpu: $name" >&2
  (cd "$work" && /usr/bin/time -f '%e %U %S %M' -o "$work/time" "$bin" train --model "$model" \
    --device cpu --folds 5 --json --input "$data" -q > "$work/cv.json")
  python3 - "$name" "$work/cv.json" "$work/time" "$out_dir/nn-cpu-$name.json" <<'PY'
import json, sys
name, cv, timing, out = sys.argv[1:]
d = json.load(open(cv))
wall, user, system, rss = open(timing).read().split()[-4:]
r = {"binary": name, "accuracy_mean": d["accuracy_mean"], "accuracy_std": d["accuracy_std"],
     "logloss_mean": d["logloss_mean"], "folds": [f["accuracy"] for f in d["fold_results"]],
     "best_epochs": [f["rounds"] for f in d["fold_results"]], "extra_rows": d["extra_rows"],
     "wall_seconds": float(wall), "user_seconds": float(user), "system_seconds": float(system),
     "max_rss_mib": int(rss) / 1024}
json.dump(r, open(out, "w"))
print(json.dumps(r))
PY
  rm -rf "$work"
}
if [ -n "$before_json" ]; then
  echo "=== before: reusing $before_json" >&2
  cp "$before_json" "$out_dir/nn-cpu-before.json.tmp" && mv "$out_dir/nn-cpu-before.json.tmp" "$out_dir/nn-cpu-before.json"
else
  cv before "$bins/tabtune-before"
fi
cv after "$bins/tabtune-after"

if [ "$skip_torch" = 0 ]; then
  echo "=== MLP epoch time on the CPU (this checkout)" >&2
  "$target/debug/examples/nn_bench" epoch "$data" 6 cpu > "$out_dir/nn-cpu-epoch.json"
  read -r rows feats classes < <(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["rows"], d["features"], d["classes"])' "$out_dir/nn-cpu-epoch.json")
  python="$(scripts/py-env.sh torch)"
  echo "=== PyTorch CPU peer, same shapes ($rows x $feats, $classes classes), 2 threads" >&2
  "$python" benches/peers/torch_mlp.py --rows "$rows" --features "$feats" --classes "$classes" \
    --epochs 6 --threads 2 > "$out_dir/nn-cpu-torch.json"
fi

after="$(git rev-parse --short HEAD)"
git diff --quiet HEAD -- crates kernels Cargo.toml Cargo.lock || after="$after+uncommitted"
python3 - "$out_dir" "$result" "$before" "$after" "$model" <<'PY'
import json, os, sys
d, out, before, after, model = sys.argv[1:]
load = lambda n: json.load(open(os.path.join(d, f"nn-cpu-{n}.json")))
res = {"model": model, "before_rev": before, "after_rev": after,
       "cores": os.cpu_count(), "before": load("before"), "after": load("after")}
if res["before"]["extra_rows"] != res["after"]["extra_rows"]:
    sys.exit(f"run-nn-cpu: before trained with {res['before']['extra_rows']} extra rows, after with "
             f"{res['after']['extra_rows']}: not the same work, no comparison")
res["wall_ratio_after_over_before"] = res["after"]["wall_seconds"] / res["before"]["wall_seconds"]
res["accuracy_difference"] = res["after"]["accuracy_mean"] - res["before"]["accuracy_mean"]
if os.path.exists(os.path.join(d, "nn-cpu-torch.json")):
    res["mlp_epoch"] = load("epoch")
    res["torch_epoch"] = load("torch")
    res["mlp_epoch_ratio_tabtune_over_torch"] = (
        res["mlp_epoch"]["epoch_seconds_median"] / res["torch_epoch"]["epoch_seconds_median"])
json.dump(res, open(out, "w"), indent=2)
print(json.dumps({k: v for k, v in res.items() if not isinstance(v, dict)}))
print(f"results: {out}")
PY
