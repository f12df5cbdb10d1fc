"""Optuna peer of crates/tabtune-tune/examples/storage_overhead.rs: per-trial overhead of a study
on a SQLite file with RandomSampler and a trivial objective (3 reported values), same space.

Usage: storage_optuna.py DB_PATH N_TRIALS  -> one JSON object on stdout.
"""
import json
import sys
import time

import optuna

optuna.logging.set_verbosity(optuna.logging.WARNING)
db, n = sys.argv[1], int(sys.argv[2])
study = optuna.create_study(
    study_name="overhead",
    storage=f"sqlite:///{db}",
    sampler=optuna.samplers.RandomSampler(seed=1),
    direction="minimize",
)
starts = []


def objective(trial):
    starts.append(time.perf_counter())
    x = trial.suggest_float("x", -5.0, 5.0)
    trial.suggest_float("lr", 1e-3, 1.0, log=True)
    trial.suggest_int("n", 1, 9, step=2)
    trial.suggest_categorical("kind", ["a", "b"])
    for step in range(3):
        trial.report(x * x + step, step)
    return x * x


t0 = time.perf_counter()
study.optimize(objective, n_trials=n)
total = time.perf_counter() - t0
last = starts[-101:]
print(json.dumps({
    "optuna": optuna.__version__,
    "n_trials": n,
    "seconds": round(total, 3),
    "ms_per_trial": round(total * 1e3 / n, 3),
    "ms_per_trial_last_100": round((last[-1] - last[0]) * 1e3 / (len(last) - 1), 3),
}))
