#!/usr/bin/env python3
"""LightGBM's own predict for the ONNX benchmark (benches/run-onnx.sh), timed the way
benches/peers/onnx_ort.py times onnxruntime: the model's input frames (serve_lgbm.features of
the raw rows: numbers, BMI, pandas categoricals) are built beforehand, one per single row and one
for the batch, and `booster.predict` alone is timed. (`serve_lgbm.py bench` times the same model
with the frame building, as a FastAPI handler pays it.) Prints one JSON object.
"""
import argparse
import json
import os
import statistics
import sys
import time

import lightgbm as lgb
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_lgbm import features  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--single", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    booster = lgb.Booster(model_file=args.model)
    df = pd.read_csv(args.input)
    single = min(args.single, len(df))
    frames = [features(df.iloc[[i]]) for i in range(single)]
    for f in frames[:100]:
        booster.predict(f, num_threads=args.threads)
    latencies = []
    for f in frames:
        t = time.perf_counter()
        booster.predict(f, num_threads=args.threads)
        latencies.append(time.perf_counter() - t)
    latencies.sort()
    whole = features(df)
    booster.predict(whole, num_threads=args.threads)
    batch = []
    for _ in range(args.repeat):
        t = time.perf_counter()
        booster.predict(whole, num_threads=args.threads)
        batch.append(time.perf_counter() - t)
    median = statistics.median(batch)
    pct = lambda q: latencies[round((len(latencies) - 1) * q)]
    print(json.dumps({
        "impl": "lightgbm-predict", "lightgbm": lgb.__version__, "threads": args.threads,
        "single_rows": single, "single_p50_us": 1e6 * pct(0.5), "single_p99_us": 1e6 * pct(0.99),
        "single_mean_us": 1e6 * statistics.mean(latencies),
        "batch_rows": len(df), "batch_median_s": median, "batch_rows_per_s": len(df) / median,
    }))


if __name__ == "__main__":
    main()
