#!/usr/bin/env python3
"""pandas peer of tabtune's feature pipeline (tabtune-features' `pipeline` bench).

Does the same work as `load_table` + `PreprocessorSpec::fit` + `Preprocessor::transform` with
configs/obesity.toml with every feature step on (tabtune_test::engineered_config): read the CSV, validate every cell against the schema (missing/extra
columns, unparsable numbers, NaN/empty, ranges, levels, duplicate ids, duplicate rows), engineer
the 12 features, convert Height to cm, round the ordinals, Age quartile bins, log1p(Age),
standard-scale the continuous columns, one-hot the categoricals with an unknown slot, label-encode
the target, and build the float32 matrix. Prints one JSON object with its timings.
"""
import argparse
import json
import statistics
import time

import numpy as np
import pandas as pd

NUMERIC = {  # column: (low, high)
    "Age": (1, 120), "Height": (0.5, 2.5), "Weight": (10, 400), "FCVC": (1, 3), "NCP": (1, 4),
    "CH2O": (1, 3), "FAF": (0, 3), "TUE": (0, 2),
}
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
TARGET = "NObeyesdad"
CLASSES = ["Insufficient_Weight", "Normal_Weight", "Overweight_Level_I", "Overweight_Level_II",
           "Obesity_Type_I", "Obesity_Type_II", "Obesity_Type_III"]
ORDER = ["Gender", "Age", "Height", "Weight", "family_history_with_overweight", "FAVC", "FCVC",
         "NCP", "CAEC", "SMOKE", "CH2O", "SCC", "FAF", "TUE", "CALC", "MTRANS"]
ROUND = ["FCVC", "NCP", "CH2O", "FAF", "TUE"]


def load_and_validate(path):
    df = pd.read_csv(path, dtype=str, keep_default_na=False, skip_blank_lines=True)
    expected = set(NUMERIC) | set(CATEGORICAL) | {TARGET, "id"}
    missing = expected - {"id"} - set(df.columns)
    extra = set(df.columns) - expected
    if missing or extra or df.columns.duplicated().any():
        raise ValueError(f"{path}: header: missing {missing}, extra {extra}")
    bad = pd.Series(False, index=df.index)
    out = pd.DataFrame(index=df.index)
    for col, (lo, hi) in NUMERIC.items():
        values = pd.to_numeric(df[col], errors="coerce")
        bad |= values.isna() | ~np.isfinite(values) | (values < lo) | (values > hi)
        out[col] = values
    for col, levels in CATEGORICAL.items():
        bad |= ~df[col].isin(levels)
        out[col] = pd.Categorical(df[col], categories=levels)
    bad |= ~df[TARGET].isin(CLASSES)
    out[TARGET] = pd.Categorical(df[TARGET], categories=CLASSES)
    if "id" in df:
        bad |= (df["id"] == "") | df["id"].duplicated()
        out["id"] = df["id"]
    if bad.any():
        raise ValueError(f"{path}: {int(bad.sum())} invalid rows, first at row {int(bad.idxmax()) + 2}")
    duplicates = int(out.drop(columns=["id"], errors="ignore").duplicated().sum())
    return out, duplicates


def engineer(df):
    h_m = df["Height"]
    h_cm = h_m * 100.0
    w = df["Weight"]
    male = (df["Gender"] == "Male").to_numpy()
    ibw = np.where(male, 50.0, 45.5) + 0.9055 * (h_cm - 152.4)
    bmr = 10.0 * w + 6.25 * h_cm - 5.0 * df["Age"] + np.where(male, 5.0, -161.0)
    pal = 1.2 + 0.175 * df["FAF"].clip(0, 3)
    e = pd.DataFrame(index=df.index)
    e["BMI"] = w / (h_m * h_m)
    e["BSA"] = np.sqrt(h_cm * w / 3600.0)
    e["IBW"] = ibw
    e["DIFF_IBW"] = w - ibw
    e["BMR"] = bmr
    e["PAL"] = pal
    e["TDEE"] = bmr * pal
    e["SWC"] = (df["CH2O"] >= 2).astype(float)
    e["IS"] = (df["FAF"] <= 1).astype(float)
    e["INMM"] = (np.floor(df["NCP"] + 0.5) == 3).astype(float)
    e["EVEMM"] = (np.floor(df["FCVC"] + 0.5) == 3).astype(float)
    e["HH"] = ((df["FAVC"] == "no") & (df["FCVC"] >= 2) & (df["SMOKE"] == "no")
               & (df["FAF"] >= 1)).astype(float)
    return e


def fit_transform(df):
    num = pd.DataFrame(index=df.index)
    for col in NUMERIC:
        v = df[col].astype(float)
        if col == "Height":
            v = v * 100.0
        if col in ROUND:
            lo, hi = NUMERIC[col]
            v = np.floor(v + 0.5).clip(lo, hi)  # half away from zero for positives
        num[col] = v
    age_bin = pd.qcut(num["Age"], 4, labels=False, duplicates="drop").astype(float)
    num["Age"] = np.log1p(num["Age"])
    num = num.rename(columns={"Age": "log1p_Age"})
    eng = engineer(df)
    continuous = pd.concat([num, eng[["BMI", "BSA", "IBW", "DIFF_IBW", "BMR", "PAL", "TDEE"]]], axis=1)
    scaled = (continuous - continuous.mean()) / continuous.std(ddof=0).replace(0, 1)
    flags = eng[["SWC", "IS", "INMM", "EVEMM", "HH"]]
    onehots = []
    for col, levels in CATEGORICAL.items():
        seen = [l for l in levels if (df[col] == l).any()]
        d = pd.get_dummies(df[col].astype(str)).reindex(columns=seen, fill_value=False).astype(float)
        d.columns = [f"{col}={l}" for l in seen]
        d[f"{col}=<unknown>"] = (~df[col].isin(seen)).astype(float)
        onehots.append(d)
    matrix = pd.concat([scaled, flags, age_bin.rename("Age_bin")] + onehots, axis=1)
    labels = df[TARGET].cat.codes.to_numpy()
    return matrix.to_numpy(dtype=np.float32), labels


def run(path):
    df, _ = load_and_validate(path)
    return fit_transform(df)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--input", required=True)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    args = ap.parse_args()
    for _ in range(args.warmup):
        matrix, _ = run(args.input)
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        matrix, labels = run(args.input)
        times.append(time.perf_counter() - t0)
    print(json.dumps({
        "peer": "pandas", "pandas": pd.__version__, "numpy": np.__version__,
        "rows": int(matrix.shape[0]), "columns": int(matrix.shape[1]),
        "median_s": statistics.median(times), "min_s": min(times), "repeat": args.repeat,
        "times_s": times,
    }))


if __name__ == "__main__":
    main()
