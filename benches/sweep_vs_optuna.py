#!/usr/bin/env python3
"""Side-by-side sweep benchmark: `tabtune sweep` vs Optuna + LightGBM, same space, budget and split.

Both sides tune LightGBM-style leaf-wise boosting over configs/sweeps/lgbm.toml's space for
--n-trials trials with TPE, on the same engineered feature table, validating on the same stratified
20% holdout (tabtune's fold 0 of a stratified 5-fold split). Run once without pruning and once with
median pruning (each boosting round's holdout accuracy reported on both sides). Prints wall time
and best holdout accuracy side by side; results go to target/bench-results/sweep.json.

Usage: benches/run-sweep.sh [--n-trials N] [--pruners none,median] (sets up the venv and builds
tabtune).
"""
import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def run(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"failed ({out.returncode}): {' '.join(cmd)}\n{out.stderr}")
    return json.loads(out.stdout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tabtune", required=True)
    ap.add_argument("--python", required=True)
    ap.add_argument("--data-dir", default=os.environ.get("TABTUNE_DATA_DIR", "../shared/data"))
    ap.add_argument("--n-trials", type=int, default=30)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--pruners", default="none,median",
                    help="comma-separated runs: none, median (default: both)")
    args = ap.parse_args()
    config = os.path.join(ROOT, "configs/obesity.toml")
    work = tempfile.mkdtemp(prefix="tabtune-sweep-")
    base = [args.tabtune, "--config", config, "--data-dir", args.data_dir, "-q"]
    features = os.path.join(work, "features.csv")
    run(base + ["features", "--json", "--output", features,
                "--preprocessor", os.path.join(work, "pre.json")])
    oof = os.path.join(work, "split.csv")
    run(base + ["train", "--json", "--model", "gbdt-leafwise", "--folds", "5", "--seed",
                str(args.seed), "--oof", oof, "--param", "rounds=1"])
    folds = os.path.join(work, "folds.csv")
    with open(oof) as f, open(folds, "w") as out:
        out.write("row,fold\n")
        for row in csv.DictReader(f):
            out.write(f"{row['index']},{row['fold']}\n")
    results = []
    for pruner in args.pruners.split(","):
        # The machine is shared: the 1-minute load average before and after each pair says
        # whether a run's times are comparable.
        load_before = os.getloadavg()[0]
        t = time.perf_counter()
        ours = run(base + ["sweep", "--json", "--sweep", os.path.join(ROOT, "configs/sweeps/lgbm.toml"),
                           "--study", f"bench-{pruner}", "--storage",
                           f"sqlite:///{os.path.join(work, 'studies.db')}", "--holdout", "0.2",
                           "--n-trials", str(args.n_trials), "--workers", "1", "--sampler",
                           "tpe-multivariate", "--pruner", pruner, "--seed", str(args.seed),
                           "--top-k", "0", "--report", os.path.join(work, f"{pruner}.html")])
        ours_wall = time.perf_counter() - t
        theirs = run([args.python, os.path.join(HERE, "peers/optuna_lgbm.py"), "--features",
                      features, "--folds", folds, "--n-trials", str(args.n_trials), "--pruner",
                      pruner, "--seed", str(args.seed)])
        r = {"pruner": pruner, "tabtune_seconds": ours["seconds"], "tabtune_wall": ours_wall,
             "tabtune_best": ours["best_value"], "tabtune_pruned": ours["n_pruned"],
             "optuna_seconds": theirs["seconds"], "optuna_best": theirs["best_value"],
             "optuna_pruned": theirs["n_pruned"],
             "peer": f"optuna {theirs['optuna']} + lightgbm {theirs['lightgbm']}",
             "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(unset)"),
             "load_before": load_before, "load_after": os.getloadavg()[0]}
        results.append(r)
        print(f"pruner {pruner:6} | tabtune {r['tabtune_seconds']:6.1f}s best {r['tabtune_best']:.4f} "
              f"pruned {r['tabtune_pruned']:2} | {r['peer']} {r['optuna_seconds']:6.1f}s best "
              f"{r['optuna_best']:.4f} pruned {r['optuna_pruned']:2} | time ratio "
              f"{r['tabtune_seconds'] / r['optuna_seconds']:.2f}x, dacc "
              f"{r['tabtune_best'] - r['optuna_best']:+.4f} | OMP_WAIT_POLICY "
              f"{r['omp_wait_policy']}, load {r['load_before']:.2f} -> {r['load_after']:.2f}",
              flush=True)
    os.makedirs(os.path.join(ROOT, "target/bench-results"), exist_ok=True)
    with open(os.path.join(ROOT, "target/bench-results/sweep.json"), "w") as f:
        json.dump({"n_trials": args.n_trials, "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
