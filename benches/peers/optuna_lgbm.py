#!/usr/bin/env python3
"""Python peer of `tabtune sweep` for the sweep benchmark: Optuna (TPE) tuning LightGBM.

Same search space as configs/sweeps/lgbm.toml, same budget, same validation scheme: a stratified
80/20 holdout whose validation rows are the rows tabtune puts in fold 0 (read from --folds), on
the feature table tabtune prepared (--features). Each trial trains LightGBM for up to 300 rounds
with early stopping after 30 rounds without improvement of the validation log loss, and its value
is the validation accuracy of the best round. With --pruner median, every boosting round reports
the validation accuracy so far and Optuna's MedianPruner may stop the trial (as tabtune reports
each boosting round's accuracy to its median pruner).

Prints one JSON object: best_value, best_params, n_complete, n_pruned, seconds (wall time of
`study.optimize`, data loading excluded). Errors go to stderr with exit code 2.
"""
import argparse
import json
import sys
import time

import numpy as np
import pandas as pd

TARGET = "NObeyesdad"


def fail(msg):
    print(f"optuna_lgbm.py: {msg}", file=sys.stderr)
    sys.exit(2)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--features", required=True)
    ap.add_argument("--folds", required=True, help="CSV row,fold; fold 0 is the holdout")
    ap.add_argument("--n-trials", type=int, default=30)
    ap.add_argument("--pruner", choices=["none", "median"], default="none")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import lightgbm as lgb
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        df = pd.read_csv(args.features)
        folds = pd.read_csv(args.folds)
    except (OSError, pd.errors.ParserError) as e:
        fail(str(e))
    if TARGET not in df.columns:
        fail(f"{args.features}: no `{TARGET}` column")
    if len(folds) != len(df):
        fail(f"{args.folds} has {len(folds)} rows, {args.features} has {len(df)}")
    classes = sorted(df[TARGET].unique())
    y = df[TARGET].map({c: i for i, c in enumerate(classes)}).to_numpy()
    x = df.drop(columns=[c for c in ("id", TARGET) if c in df.columns]).to_numpy(np.float32)
    fold = folds.sort_values("row")["fold"].to_numpy()
    tr, va = fold != 0, fold == 0
    dtrain = lgb.Dataset(x[tr], y[tr], free_raw_data=False)
    dvalid = lgb.Dataset(x[va], y[va], reference=dtrain, free_raw_data=False)
    yv = y[va]

    def objective(trial):
        params = {
            "objective": "multiclass",
            "num_class": len(classes),
            "metric": ["multi_logloss", "multi_error"],
            "verbosity": -1,
            "num_threads": args.threads,
            "seed": args.seed,
            "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.3, log=True),
            "num_leaves": trial.suggest_int("num_leaves", 8, 128, log=True),
            "min_data_in_leaf": trial.suggest_int("min_data_in_leaf", 5, 100, log=True),
            "lambda_l2": trial.suggest_float("lambda", 1e-8, 10.0, log=True),
            "bagging_fraction": trial.suggest_float("subsample", 0.5, 1.0),
            "bagging_freq": 1,
            "feature_fraction": trial.suggest_float("colsample_bytree", 0.4, 1.0),
        }
        callbacks = [lgb.early_stopping(30, first_metric_only=True, verbose=False)]
        if args.pruner == "median":
            def report(env):
                # Accuracy of the model so far on the holdout (1 - LightGBM's multi_error,
                # computed from the scores it tracks), as tabtune reports it every round.
                err = next(r[2] for r in env.evaluation_result_list if r[1] == "multi_error")
                trial.report(1.0 - err, env.iteration)
                if trial.should_prune():
                    raise optuna.TrialPruned()
            callbacks.append(report)
        booster = lgb.train(params, dtrain, num_boost_round=300, valid_sets=[dvalid],
                            callbacks=callbacks)
        proba = booster.predict(x[va], num_iteration=booster.best_iteration)
        return float((proba.argmax(axis=1) == yv).mean())

    pruner = optuna.pruners.MedianPruner() if args.pruner == "median" else optuna.pruners.NopPruner()
    study = optuna.create_study(direction="maximize", pruner=pruner,
                                sampler=optuna.samplers.TPESampler(seed=args.seed))
    t = time.perf_counter()
    study.optimize(objective, n_trials=args.n_trials)
    seconds = time.perf_counter() - t
    states = [tr.state for tr in study.trials]
    print(json.dumps({
        "best_value": study.best_value,
        "best_params": study.best_params,
        "n_complete": sum(s == optuna.trial.TrialState.COMPLETE for s in states),
        "n_pruned": sum(s == optuna.trial.TrialState.PRUNED for s in states),
        "seconds": seconds,
        "optuna": optuna.__version__,
        "lightgbm": lgb.__version__,
    }))


if __name__ == "__main__":
    main()
