#!/usr/bin/env python3
"""Python peer of tabtune's serving benchmark: LightGBM (leaf-wise GBDT) on s4e2.

`train`: fits LightGBM on the training file (the raw columns, categoricals as pandas categories,
plus BMI) and saves the model file the FastAPI peer serves.
`bench`: in-process prediction on raw records, as a FastAPI handler does it: a record (dict) ->
one-row DataFrame -> features -> booster.predict, timed per row; and batch prediction of the
whole input file (DataFrame -> features -> predict) in rows/s. Prints one JSON object.
"""
import argparse
import json
import statistics
import time

import lightgbm as lgb
import numpy as np
import pandas as pd

CATEGORICAL = {
    "Gender": ["Female", "Male"],
    "family_history_with_overweight": ["no", "yes"],
    "FAVC": ["no", "yes"],
    "CAEC": ["no", "Sometimes", "Frequently", "Always"],
    "SMOKE": ["no", "yes"],
    "SCC": ["no", "yes"],
    "CALC": ["no", "Sometimes", "Frequently", "Always"],
    "MTRANS": ["Public_Transportation", "Automobile", "Walking", "Motorbike", "Bike"],
}
NUMERIC = ["Age", "Height", "Weight", "FCVC", "NCP", "CH2O", "FAF", "TUE"]
CLASSES = ["Insufficient_Weight", "Normal_Weight", "Overweight_Level_I", "Overweight_Level_II",
           "Obesity_Type_I", "Obesity_Type_II", "Obesity_Type_III"]
TARGET = "NObeyesdad"


def features(df):
    """Raw records -> the model's input frame (same for training and serving)."""
    out = pd.DataFrame({c: df[c].astype(float) for c in NUMERIC})
    out["BMI"] = out["Weight"] / (out["Height"] * out["Height"])
    for col, levels in CATEGORICAL.items():
        out[col] = pd.Categorical(df[col], categories=levels)
    return out


def train(args):
    df = pd.read_csv(args.input)
    y = pd.Categorical(df[TARGET], categories=CLASSES).codes
    params = {"objective": "multiclass", "num_class": len(CLASSES), "learning_rate": args.learning_rate,
              "num_leaves": args.num_leaves, "lambda_l2": 0.0, "num_threads": args.threads,
              "verbosity": -1, "seed": 42}
    booster = lgb.train(params, lgb.Dataset(features(df), label=y), num_boost_round=args.rounds)
    booster.save_model(args.output)
    print(json.dumps({"peer": "lightgbm", "version": lgb.__version__, "model": args.output,
                      "rounds": args.rounds}))


def bench(args):
    booster = lgb.Booster(model_file=args.model)
    df = pd.read_csv(args.input)
    records = df.drop(columns=[c for c in ("id", TARGET) if c in df]).to_dict(orient="records")
    single = min(args.single, len(records))
    predict_one = lambda r: booster.predict(features(pd.DataFrame([r])), num_threads=args.threads)
    for r in records[:100]:
        predict_one(r)
    latencies = []
    for r in records[:single]:
        t0 = time.perf_counter()
        predict_one(r)
        latencies.append(time.perf_counter() - t0)
    latencies.sort()
    booster.predict(features(df), num_threads=args.threads)
    batch = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        booster.predict(features(df), num_threads=args.threads)
        batch.append(time.perf_counter() - t0)
    median = statistics.median(batch)
    pct = lambda q: latencies[round((len(latencies) - 1) * q)]
    print(json.dumps({
        "impl": "lightgbm", "lightgbm": lgb.__version__, "pandas": pd.__version__,
        "numpy": np.__version__, "single_rows": single, "single_p50_us": 1e6 * pct(0.5),
        "single_p99_us": 1e6 * pct(0.99), "single_mean_us": 1e6 * statistics.mean(latencies),
        "batch_rows": len(df), "batch_median_s": median, "batch_rows_per_s": len(df) / median,
    }))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--input", required=True)
    t.add_argument("--output", required=True)
    t.add_argument("--rounds", type=int, default=200)
    t.add_argument("--learning-rate", type=float, default=0.1)
    t.add_argument("--num-leaves", type=int, default=31)
    t.add_argument("--threads", type=int, default=2)
    b = sub.add_parser("bench")
    b.add_argument("--model", required=True)
    b.add_argument("--input", required=True)
    b.add_argument("--single", type=int, default=2000)
    b.add_argument("--repeat", type=int, default=10)
    b.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    train(args) if args.cmd == "train" else bench(args)


if __name__ == "__main__":
    main()
