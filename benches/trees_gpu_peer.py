"""XGBoost on the GPU, the peer of `batched_bench gpu` (tabtune's batched tree fit).

Same feature table, same folds (fold f = rows i with i % 5 == f), same depth-wise trials (the
JSON `batched_bench gpu` writes), validation metrics every round on both sides (what a pruner
needs). Prints one JSON object per line:
  tree_single_fit: one fit of the default depth-wise parameters on fold 0 (500 rounds);
  tree_one_by_one: the 160 fits of 32 trials x 5 folds, one after another; stops at
  --max-seconds and reports the fits done and the time per fit (then `extrapolated` is true).

Usage: python3 trees_gpu_peer.py FEATURES.csv TRIALS.json [--device cuda] [--rounds 500]
"""

import argparse
import json
import sys
import time

import numpy as np


def load(path):
    import csv

    with open(path) as f:
        rows = list(csv.reader(f))
    header, rows = rows[0], rows[1:]
    skip = 1 if header[0] == "id" else 0
    x = np.array([[float(v) for v in r[skip:-1]] for r in rows], dtype=np.float32)
    labels = [r[-1] for r in rows]
    classes = sorted(set(labels))
    y = np.array([classes.index(v) for v in labels], dtype=np.int32)
    return x, y, len(classes)


def fit(xgb, x, y, n_classes, fold, params, rounds, device):
    valid = np.arange(len(y)) % 5 == fold
    train = ~valid
    dtrain = xgb.DMatrix(x[train], label=y[train])
    dvalid = xgb.DMatrix(x[valid], label=y[valid])
    p = {
        "objective": "multi:softprob",
        "num_class": n_classes,
        "tree_method": "hist",
        "device": device,
        "max_bin": 255,
        "eval_metric": "mlogloss",
        "eta": params["learning_rate"],
        "max_depth": params["max_depth"],
        "reg_lambda": params["lambda"],
        "reg_alpha": params["alpha"],
        "min_child_weight": params["min_child_weight"],
        "subsample": params["subsample"],
        "colsample_bytree": params["colsample_bytree"],
        "seed": 42,
    }
    booster = xgb.train(p, dtrain, rounds, evals=[(dvalid, "valid")], verbose_eval=False)
    proba = booster.predict(dvalid)
    return float((proba.argmax(axis=1) == y[valid]).mean())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("features")
    ap.add_argument("trials")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--rounds", type=int, default=500)
    ap.add_argument("--max-seconds", type=float, default=240.0)
    a = ap.parse_args()
    import xgboost as xgb

    x, y, n_classes = load(a.features)
    trials = json.load(open(a.trials))
    default = {
        "learning_rate": 0.05,
        "max_depth": 6,
        "lambda": 1.0,
        "alpha": 0.0,
        "min_child_weight": 1e-3,
        "subsample": 1.0,
        "colsample_bytree": 1.0,
    }
    fit(xgb, x, y, n_classes, 0, default, 2, a.device)  # warm-up (CUDA context, kernels)
    start = time.perf_counter()
    acc = fit(xgb, x, y, n_classes, 0, default, a.rounds, a.device)
    seconds = time.perf_counter() - start
    print(json.dumps({"bench": "tree_single_fit", "peer": f"xgboost {xgb.__version__}",
                      "device": a.device, "rounds": a.rounds, "seconds": round(seconds, 3),
                      "accuracy": round(acc, 5)}), flush=True)
    start = time.perf_counter()
    done, accs = 0, []
    for t in trials:
        fold_accs = []
        for fold in range(5):
            if time.perf_counter() - start > a.max_seconds:
                break
            fold_accs.append(fit(xgb, x, y, n_classes, fold, t, t["rounds"], a.device))
            done += 1
        if len(fold_accs) == 5:
            accs.append(sum(fold_accs) / 5)
        else:
            break
    seconds = time.perf_counter() - start
    total = 5 * len(trials)
    print(json.dumps({"bench": "tree_one_by_one", "peer": f"xgboost {xgb.__version__}",
                      "device": a.device, "fits": total, "fits_done": done,
                      "seconds": round(seconds, 3),
                      "seconds_for_all": round(seconds / max(done, 1) * total, 3),
                      "fits_per_second": round(done / seconds, 4),
                      "extrapolated": done < total,
                      "best_trial_cv_accuracy": round(max(accs), 5) if accs else None,
                      "mean_trial_cv_accuracy": round(sum(accs) / len(accs), 5) if accs else None}),
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
