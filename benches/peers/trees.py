#!/usr/bin/env python3
"""Python peer of `tabtune train` for the gradient-boosted tree benchmark.

Trains one Python model (LightGBM, XGBoost, CatBoost, or a scikit-learn random forest or
decision tree) with k-fold cross-validation on a feature table that tabtune has already prepared,
using the fold assignment that tabtune wrote, so both sides see the same rows in the same folds.
The hyperparameters are matched to the tabtune side. Prints one JSON object on stdout with
per-fold accuracy and log loss and the wall time of training + prediction over all folds (CSV
reading and metric computation are not timed).

Inputs:
  --features  CSV: `id`, the float feature columns, then `NObeyesdad` (class names).
  --folds     CSV with header `row,fold`: 0-based row position in the features file, fold 0..k-1.
              Every row must appear exactly once.
  --oof       optional output CSV of out-of-fold probabilities: `row,fold,<7 class names>`.

Errors (missing or malformed files, unknown model) are reported on stderr with exit code 2.
"""
import argparse
import json
import sys
import time

import numpy as np
import pandas as pd

TARGET = "NObeyesdad"
CLASSES = ["Insufficient_Weight", "Normal_Weight", "Overweight_Level_I", "Overweight_Level_II",
           "Obesity_Type_I", "Obesity_Type_II", "Obesity_Type_III"]
MODELS = ["lightgbm", "xgboost", "catboost", "random-forest", "decision-tree"]
DEFAULT_ROUNDS = 500
DEFAULT_MAX_DEPTH = 6  # for xgboost and catboost; the decision tree is unlimited unless given


class InputError(Exception):
    """A problem with the command line or the input files; reported with exit code 2."""


def read_csv(path, what):
    try:
        return pd.read_csv(path)
    except FileNotFoundError:
        raise InputError(f"{what} file not found: {path}")
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read {what} file {path}: {e}")


def load_features(path):
    df = read_csv(path, "features")
    cols = list(df.columns)
    if len(cols) < 3 or cols[0] != "id" or cols[-1] != TARGET:
        raise InputError(f"{path}: expected columns id, <features...>, {TARGET}; got {cols[:3]}...")
    if len(df) == 0:
        raise InputError(f"{path}: no rows")
    feats = df[cols[1:-1]]
    for col in feats.columns:
        values = pd.to_numeric(feats[col], errors="coerce")
        bad = values.isna() | ~np.isfinite(values)
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise InputError(f"{path}: column {col!r} row {row}: not a finite number: "
                             f"{feats[col].iloc[row]!r}")
    # tabtune trains on a float32 matrix; give the peers the same values.
    x = feats.to_numpy(dtype=np.float32)
    labels = df[TARGET].astype(str)
    unknown = sorted(set(labels) - set(CLASSES))
    if unknown:
        raise InputError(f"{path}: unknown {TARGET} classes {unknown}; expected {CLASSES}")
    y = labels.map({c: i for i, c in enumerate(CLASSES)}).to_numpy(dtype=np.int64)
    return x, y, list(feats.columns)


def load_folds(path, n_rows):
    df = read_csv(path, "folds")
    if list(df.columns) != ["row", "fold"]:
        raise InputError(f"{path}: expected header row,fold; got {','.join(map(str, df.columns))}")
    for col in ("row", "fold"):
        if not pd.api.types.is_integer_dtype(df[col]):
            raise InputError(f"{path}: column {col!r} must hold integers only")
    rows = df["row"].to_numpy(dtype=np.int64)
    folds = df["fold"].to_numpy(dtype=np.int64)
    if len(rows) != n_rows:
        raise InputError(f"{path}: {len(rows)} rows assigned, features file has {n_rows}")
    if rows.min() < 0 or rows.max() >= n_rows:
        raise InputError(f"{path}: row index out of range 0..{n_rows - 1}")
    if len(np.unique(rows)) != n_rows:
        raise InputError(f"{path}: some rows are assigned more than once")
    k = int(folds.max()) + 1 if len(folds) else 0
    if folds.min() < 0 or k < 2 or len(np.unique(folds)) != k:
        raise InputError(f"{path}: fold indices must be 0..k-1 with k >= 2 and no fold empty")
    fold_of = np.empty(n_rows, dtype=np.int64)
    fold_of[rows] = folds
    return fold_of, k


def build(args):
    """Returns (library name, version, make_model(), fit(model, x, y, xv, yv), params)."""
    rounds = args.rounds if args.rounds is not None else DEFAULT_ROUNDS
    depth = args.max_depth if args.max_depth is not None else DEFAULT_MAX_DEPTH
    es = args.early_stopping
    try:
        if args.model == "lightgbm":
            import lightgbm as lib
        elif args.model == "xgboost":
            import xgboost as lib
        elif args.model == "catboost":
            import catboost as lib
        else:
            import sklearn as lib
    except ImportError as e:
        raise InputError(f"cannot import the library for {args.model}: {e}")

    if args.model == "lightgbm":
        params = dict(objective="multiclass", n_estimators=rounds, learning_rate=args.learning_rate,
                      num_leaves=args.num_leaves, max_depth=-1, min_child_samples=20,
                      reg_lambda=0.0, n_jobs=args.threads, verbose=-1, random_state=args.seed)

        def fit(m, x, y, xv, yv):
            if es > 0:
                m.fit(x, y, eval_X=xv, eval_y=yv, eval_metric="multi_logloss",
                      callbacks=[lib.early_stopping(es, verbose=False)])
                return int(m.best_iteration_)
            m.fit(x, y)
            return None

        return "lightgbm", lib.__version__, lambda: lib.LGBMClassifier(**params), fit, params

    if args.model == "xgboost":
        params = dict(tree_method="hist", max_depth=depth, learning_rate=args.learning_rate,
                      n_estimators=rounds, n_jobs=args.threads, reg_lambda=1.0, max_bin=256,
                      random_state=args.seed, eval_metric="mlogloss")
        if es > 0:
            params["early_stopping_rounds"] = es

        def fit(m, x, y, xv, yv):
            if es > 0:
                m.fit(x, y, eval_set=[(xv, yv)], verbose=False)
                return int(m.best_iteration) + 1  # best_iteration is 0-based
            m.fit(x, y)
            return None

        return "xgboost", lib.__version__, lambda: lib.XGBClassifier(**params), fit, params

    if args.model == "catboost":
        params = dict(iterations=rounds, learning_rate=args.learning_rate, depth=depth,
                      thread_count=args.threads, loss_function="MultiClass",
                      random_seed=args.seed, verbose=False, allow_writing_files=False)
        if es > 0:
            params["early_stopping_rounds"] = es
            params["use_best_model"] = True

        def fit(m, x, y, xv, yv):
            if es > 0:
                m.fit(x, y, eval_set=(xv, yv))
                return int(m.get_best_iteration()) + 1  # 0-based
            m.fit(x, y)
            return None

        return "catboost", lib.__version__, lambda: lib.CatBoostClassifier(**params), fit, params

    if es > 0:
        print(f"trees.py: note: --early-stopping does not apply to {args.model}; ignored",
              file=sys.stderr)
    if args.model == "random-forest":
        from sklearn.ensemble import RandomForestClassifier as cls
        params = dict(n_estimators=rounds, max_features="sqrt", n_jobs=args.threads,
                      random_state=args.seed)
    else:
        from sklearn.tree import DecisionTreeClassifier as cls
        params = dict(max_depth=args.max_depth, random_state=args.seed)

    def fit(m, x, y, xv, yv):
        m.fit(x, y)
        return None

    return "scikit-learn", lib.__version__, lambda: cls(**params), fit, params


def full_proba(model, xv):
    """predict_proba with one column per class in CLASSES order, even if a class was absent from
    the training fold. Rows are renormalised in float64: XGBoost returns float32 probabilities
    whose rows are off by ~1e-7, which sklearn's log_loss warns about."""
    p = np.asarray(model.predict_proba(xv), dtype=np.float64)
    out = np.zeros((len(xv), len(CLASSES)))
    out[:, np.asarray(model.classes_, dtype=np.int64)] = p
    return out / out.sum(axis=1, keepdims=True)


def parse_args(argv):
    ap = argparse.ArgumentParser(description="Python peer of `tabtune train` (tree benchmark).")
    ap.add_argument("--features", required=True, help="prepared feature CSV (id, features, target)")
    ap.add_argument("--folds", required=True, help="CSV with header row,fold")
    ap.add_argument("--model", required=True, choices=MODELS)
    ap.add_argument("--rounds", type=int, default=None,
                    help=f"boosting rounds / forest size (default {DEFAULT_ROUNDS})")
    ap.add_argument("--learning-rate", type=float, default=0.05)
    ap.add_argument("--num-leaves", type=int, default=31, help="LightGBM only")
    ap.add_argument("--max-depth", type=int, default=None,
                    help=f"XGBoost/CatBoost depth (default {DEFAULT_MAX_DEPTH}); decision tree "
                         "depth (default unlimited); LightGBM always uses -1")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--early-stopping", type=int, default=0,
                    help="patience on the validation fold; 0 = off (boosters only)")
    ap.add_argument("--oof", help="write out-of-fold probabilities to this CSV")
    args = ap.parse_args(argv)
    for name in ("rounds", "num_leaves", "max_depth", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.early_stopping < 0:
        ap.error("--early-stopping must be >= 0")
    if not args.learning_rate > 0:
        ap.error("--learning-rate must be > 0")
    return args


def run(args):
    from sklearn.metrics import accuracy_score, log_loss

    x, y, _ = load_features(args.features)
    fold_of, k = load_folds(args.folds, len(y))
    library, version, make_model, fit, params = build(args)

    oof = np.zeros((len(y), len(CLASSES)))
    seconds = 0.0
    best_iterations = []
    for fold in range(k):
        val = fold_of == fold
        xt, yt, xv, yv = x[~val], y[~val], x[val], y[val]
        t0 = time.perf_counter()
        model = make_model()
        best = fit(model, xt, yt, xv, yv)
        proba = full_proba(model, xv)
        seconds += time.perf_counter() - t0
        oof[val] = proba
        if best is not None:
            best_iterations.append(best)

    fold_acc, fold_ll = [], []
    for fold in range(k):
        val = fold_of == fold
        fold_acc.append(float(accuracy_score(y[val], oof[val].argmax(axis=1))))
        fold_ll.append(float(log_loss(y[val], oof[val], labels=list(range(len(CLASSES))))))

    used = dict(params)
    used["early_stopping"] = args.early_stopping if library != "scikit-learn" else 0
    if best_iterations:
        used["best_iterations"] = best_iterations

    if args.oof:
        out = pd.DataFrame(oof, columns=CLASSES)
        out.insert(0, "fold", fold_of)
        out.insert(0, "row", np.arange(len(y)))
        try:
            out.to_csv(args.oof, index=False)
        except OSError as e:
            raise InputError(f"cannot write --oof file {args.oof}: {e}")

    return {
        "model": args.model,
        "library": library,
        "version": version,
        "folds": k,
        "accuracy_mean": float(np.mean(fold_acc)),
        "accuracy_std": float(np.std(fold_acc)),  # population std (ddof=0)
        "logloss_mean": float(np.mean(fold_ll)),
        "fold_accuracy": fold_acc,
        "fold_logloss": fold_ll,
        "seconds": seconds,
        "params": used,
        "threads": args.threads,
    }


def main(argv=None):
    args = parse_args(argv)
    try:
        result = run(args)
    except InputError as e:
        print(f"trees.py: error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
