"""FLAML peer of the AutoML benchmark (benches/automl_vs_peers.py runs it in the flaml venv).

Reads the training rows and the held-out features (CSV), fits `flaml.AutoML` for accuracy within
`--seconds`, predicts the held-out rows and writes them (one column, `prediction`) to `--out`, with
the wall time (fit + predict) and the best estimator in `--out`.json.
"""

import argparse
import json
import os
import time

import numpy as np
import pandas as pd


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", required=True)
    ap.add_argument("--test", required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("--seconds", type=int, required=True)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    from flaml import AutoML
    import sklearn
    import xgboost

    train = pd.read_csv(args.train)
    test_x = pd.read_csv(args.test)
    x = train.drop(columns=["id", args.target])
    y = train[args.target]
    t = time.perf_counter()
    automl = AutoML()
    automl.fit(
        x,
        y,
        task="classification",
        metric="accuracy",
        time_budget=args.seconds,
        seed=args.seed,
        verbose=0,
        n_jobs=os.cpu_count(),
    )
    pred = automl.predict(test_x.drop(columns=["id"]))
    wall = time.perf_counter() - t
    pd.DataFrame({"prediction": np.asarray(pred)}).to_csv(args.out, index=False)
    with open(args.out + ".json", "w") as f:
        json.dump(
            {
                "seconds": wall,
                "best_estimator": automl.best_estimator,
                "versions": {"xgboost": xgboost.__version__, "scikit-learn": sklearn.__version__},
            },
            f,
        )


if __name__ == "__main__":
    main()
