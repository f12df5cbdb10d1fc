#!/usr/bin/env python3
"""Side-by-side tree benchmark: each tabtune GBDT style against its Python peer, same folds.

For every pair (gbdt-leafwise / LightGBM, gbdt-depthwise / XGBoost, gbdt-oblivious / CatBoost)
this runs `tabtune train` (k-fold CV, preprocessing fitted per fold) and then the peer through
`peers/trees.py` on the same engineered feature table and the same fold assignment (read from
tabtune's out-of-fold file), with matched hyperparameters, and prints accuracy, log loss and wall
time side by side. Results go to target/bench-results/trees.json.

Usage: benches/run-trees.sh (sets up the venv and builds tabtune), or
  python benches/trees_vs_peers.py --tabtune target/debug/tabtune --data-dir ../shared/data
"""
import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# (tabtune family, its extra params, peer, peer flags): defaults matched to the peer's own.
PAIRS = [
    ("gbdt-leafwise", ["lambda=0", "min_data_in_leaf=20", "min_child_weight=0.001"], "lightgbm", []),
    ("gbdt-depthwise", ["lambda=1", "min_data_in_leaf=1", "min_child_weight=1", "max_depth=6"], "xgboost", []),
    ("gbdt-oblivious", ["lambda=3", "min_data_in_leaf=1", "max_depth=6"], "catboost", []),
    # scikit-learn's defaults: 500 trees here, √n features per split, unlimited depth, bootstrap.
    ("random-forest", [], "random-forest", []),
    # One tree, depth 6 on both sides (scikit-learn's unlimited default overfits).
    ("decision-tree", ["max_depth=6"], "decision-tree", []),
]


def run(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"failed ({out.returncode}): {' '.join(cmd)}\n{out.stderr}")
    return json.loads(out.stdout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tabtune", default=os.path.join(ROOT, "target/debug/tabtune"))
    ap.add_argument("--data-dir", default=os.environ.get("TABTUNE_DATA_DIR", "../shared/data"))
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--rounds", type=int, default=500)
    ap.add_argument("--learning-rate", type=float, default=0.05)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--only", help="run only this tabtune family")
    args = ap.parse_args()
    config = os.path.join(ROOT, "configs/obesity.toml")
    work = tempfile.mkdtemp(prefix="tabtune-trees-")
    features = os.path.join(work, "features.csv")
    base = [args.tabtune, "--config", config, "--data-dir", args.data_dir, "-q"]
    run(base + ["features", "--json", "--output", features,
                "--preprocessor", os.path.join(work, "pre.json")])
    results = []
    for family, extra, peer, peer_flags in PAIRS:
        if args.only and family != args.only:
            continue
        oof = os.path.join(work, f"{family}.csv")
        cmd = base + ["train", "--json", "--model", family, "--folds", str(args.folds),
                      "--seed", "42", "--oof", oof, "--param", f"threads={args.threads}"]
        if family.startswith("gbdt"):
            cmd += ["--param", f"rounds={args.rounds}", "--param", f"learning_rate={args.learning_rate}",
                    "--param", "num_leaves=31"]
        elif family == "random-forest":
            cmd += ["--param", f"n_trees={args.rounds}"]
        for p in extra:
            cmd += ["--param", p]
        ours = run(cmd)
        folds = os.path.join(work, "folds.csv")
        with open(oof) as f, open(folds, "w") as out:
            out.write("row,fold\n")
            for row in csv.DictReader(f):
                out.write(f"{row['index']},{row['fold']}\n")
        peer_cmd = [args.python, os.path.join(HERE, "peers/trees.py"), "--features", features,
                    "--folds", folds, "--model", peer, "--rounds", str(args.rounds),
                    "--learning-rate", str(args.learning_rate), "--num-leaves", "31",
                    "--threads", str(args.threads)] + peer_flags
        if peer != "random-forest":
            peer_cmd += ["--max-depth", "6"]
        theirs = run(peer_cmd)
        results.append({"tabtune": family, "peer": f"{theirs['library']} {theirs['version']}",
                        "tabtune_accuracy": ours["accuracy_mean"], "peer_accuracy": theirs["accuracy_mean"],
                        "tabtune_logloss": ours["logloss_mean"], "peer_logloss": theirs["logloss_mean"],
                        "tabtune_seconds": ours["seconds"], "peer_seconds": theirs["seconds"]})
        r = results[-1]
        print(f"{family:15} acc {r['tabtune_accuracy']:.4f} ll {r['tabtune_logloss']:.4f} "
              f"{r['tabtune_seconds']:6.1f}s | {r['peer']:17} acc {r['peer_accuracy']:.4f} "
              f"ll {r['peer_logloss']:.4f} {r['peer_seconds']:6.1f}s | "
              f"dacc {r['tabtune_accuracy'] - r['peer_accuracy']:+.4f} "
              f"speed {r['peer_seconds'] / r['tabtune_seconds']:.2f}x", flush=True)
    os.makedirs(os.path.join(ROOT, "target/bench-results"), exist_ok=True)
    with open(os.path.join(ROOT, "target/bench-results/trees.json"), "w") as f:
        json.dump({"rounds": args.rounds, "learning_rate": args.learning_rate,
                   "threads": args.threads, "folds": args.folds, "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
