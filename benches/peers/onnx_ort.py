#!/usr/bin/env python3
"""onnxruntime side of the ONNX benchmark (benches/run-onnx.sh): an exported tabtune model on
raw rows, on the CPU.

Single rows: per row, the feeds (a [1, 1] array per input column) are built beforehand, as a
server holding the decoded request has them; `session.run` alone is timed. Batch: the feeds of
the whole input file ([N, 1] per column), `session.run` timed, median of `--repeat`. Also writes
the predicted classes of the batch (`--classes FILE`) so the run can check they match tabtune's.
Prints one JSON object.
"""
import argparse
import csv
import json
import statistics
import time

import numpy as np
import onnxruntime as ort


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--single", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--classes")
    args = ap.parse_args()
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    t0 = time.perf_counter()
    session = ort.InferenceSession(args.model, options, providers=["CPUExecutionProvider"])
    load_s = time.perf_counter() - t0
    with open(args.input, newline="") as f:
        rows = list(csv.DictReader(f))
    inputs = session.get_inputs()

    def feeds(part):
        out = {}
        for i in inputs:
            if i.type == "tensor(double)":
                out[i.name] = np.array([[float(r[i.name])] for r in part], dtype=np.float64)
            else:
                out[i.name] = np.array([[r[i.name]] for r in part], dtype=object)
        return out

    single = min(args.single, len(rows))
    one_row = [feeds([r]) for r in rows[:single]]
    for f in one_row[:100]:
        session.run(None, f)
    latencies = []
    for f in one_row:
        t = time.perf_counter()
        session.run(None, f)
        latencies.append(time.perf_counter() - t)
    latencies.sort()
    batch_feeds = feeds(rows)
    classes, _ = session.run(None, batch_feeds)
    batch = []
    for _ in range(args.repeat):
        t = time.perf_counter()
        session.run(None, batch_feeds)
        batch.append(time.perf_counter() - t)
    median = statistics.median(batch)
    if args.classes:
        with open(args.classes, "w") as f:
            f.writelines(f"{c}\n" for c in classes)
    pct = lambda q: latencies[round((len(latencies) - 1) * q)]
    print(json.dumps({
        "impl": "onnxruntime", "onnxruntime": ort.__version__, "threads": args.threads,
        "session_load_s": load_s, "single_rows": single,
        "single_p50_us": 1e6 * pct(0.5), "single_p99_us": 1e6 * pct(0.99),
        "single_mean_us": 1e6 * statistics.mean(latencies),
        "batch_rows": len(rows), "batch_median_s": median, "batch_rows_per_s": len(rows) / median,
    }))


if __name__ == "__main__":
    main()
