"""AutoML benchmark: `tabtune run --preset P` against AutoGluon (best_quality) and FLAML at the
same wall time, on the same stratified 80/20 split of the training file, scored on the 20%.

Driven by benches/run-automl.sh. Every system trains on the same 80% (tabtune also gets the
config's extra-train file, as its config says; AutoGluon and FLAML get the 80% only, as a user
would run them). Held-out accuracy of each, the paired difference tabtune − peer with a
bootstrap 95% interval (same rows resampled for both), wall times. Optional ablations rerun
tabtune with one technique switched off (a config variant each) and score it the same way.

Writes one JSON file (--out) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent

# Each ablation: (name, what it switches off, edits of the copied configs/ tree).
ABLATIONS = {
    "baseline": "nothing (the reference the other ablations are compared with, same preset)",
    "no-extra": "UCI rows never appended (extra_repeats pinned to 0)",
    "no-nn": "the neural sweep removed (boosting families only)",
    "refit": 'final = "refit" (one model refitted on all rows per member)',
    "no-reallocate": "reallocate = false (the configured shares, one round)",
    "no-greedy": "decision layer without greedy ensemble selection",
    "no-stack": "decision layer without the stacker",
    "no-biases": "decision layer without per-class logit biases",
    "single": "decision layer off (the best single trial ships)",
    "forest-for-nn": "a variant, not an ablation: the random-forest sweep in place of the MLP's",
    "engineered": "the raw columns off: the 12 engineered features, rounded ordinals and Age bins "
    "(the default config before 691dae4)",
}

# What the `engineered` ablation puts back into obesity.toml (tabtune_test::engineered_config).
ENGINEERED = {
    "enabled = []": 'enabled = ["BMI", "BSA", "IBW", "DIFF_IBW", "BMR", "PAL", "TDEE", "SWC", '
    '"IS", "INMM", "EVEMM", "HH"]',
    "round = []": 'round = ["FCVC", "NCP", "CH2O", "FAF", "TUE"]',
    "bins = []": 'bins = [{ column = "Age", bins = 4 }]',
}


def split(data_dir: Path, target: str, seed: int, holdout: float):
    from sklearn.model_selection import train_test_split

    df = pd.read_csv(data_dir / "s4e2_train.csv")
    train, test = train_test_split(df, test_size=holdout, random_state=seed, stratify=df[target])
    return train.reset_index(drop=True), test.reset_index(drop=True)


def edit_configs(tree: Path, ablation: str | None, preset: str) -> None:
    """Applies an ablation to the copied configs/ tree (obesity.toml and the sweep spaces)."""
    cfg = tree / "obesity.toml"
    text = cfg.read_text()

    def run_key(text: str, key: str, value: str) -> str:
        # Set `key` in [run] (before its first sub-table) and drop it from the preset.
        text = re.sub(rf"(?m)^{re.escape(key)} = .*\n", "", text)
        return text.replace("\n[run]\n", f"\n[run]\n{key} = {value}\n", 1)

    if ablation in (None, "baseline"):
        pass
    elif ablation == "no-extra":
        for space in (tree / "sweeps").glob("*.toml"):
            s = space.read_text()
            s = re.sub(
                r"(?ms)^\[params\.extra_repeats\]\n(?:[a-z]+ = .*\n)+",
                "",
                s,
            )
            space.write_text(s)
        # Only the [[data.extra-train]] entries' repeats (not [cv]'s).
        text = re.sub(
            r"(?m)(^\[\[data\.extra-train\]\]\n(?:[a-z-]+ = .*\n)*?)repeats = \d+",
            r"\1repeats = 0",
            text,
        )
    elif ablation == "no-nn":
        text = re.sub(
            r'(?ms)^\[\[run\.sweeps\]\]\nspace = "configs/sweeps/quick-nn\.toml"\n(?:[a-z-]+ = .*\n)*',
            "",
            text,
        )
        text = re.sub(r'"configs/sweeps/quick-nn\.toml",?\s*', "", text)
    elif ablation == "forest-for-nn":
        text = text.replace('"configs/sweeps/quick-nn.toml"', '"configs/sweeps/random-forest.toml"')
    elif ablation == "engineered":
        for plain, full in ENGINEERED.items():
            if text.count(plain) != 1:
                raise SystemExit(f"{cfg}: expected `{plain}` once for the engineered ablation")
            text = text.replace(plain, full)
    elif ablation == "refit":
        text = run_key(text, "final", '"refit"')
    elif ablation == "no-reallocate":
        text = run_key(text, "reallocate", "false")
    elif ablation in ("no-greedy", "no-stack", "no-biases", "single"):
        keep = {"greedy", "stack", "biases"}
        if ablation != "single":
            keep.discard(ablation.removeprefix("no-"))
        else:
            keep = set()
        value = "[" + ", ".join(f'"{k}"' for k in sorted(keep)) + "]"
        text = run_key(text, "decision", value)
    else:
        raise SystemExit(f"unknown ablation {ablation!r}; known: {', '.join(ABLATIONS)}")
    cfg.write_text(text)


def run_tabtune(args, train, test_x, ablation=None):
    work = Path(tempfile.mkdtemp(prefix=f"tabtune-automl-{ablation or 'main'}-"))
    data = work / "data"
    data.mkdir()
    train.to_csv(data / "s4e2_train.csv", index=False)
    test_x.to_csv(data / "s4e2_test.csv", index=False)
    shutil.copy(args.data_dir / "obesity_uci.csv", data / "obesity_uci.csv")
    shutil.copytree(ROOT / "configs", work / "configs")
    edit_configs(work / "configs", ablation, args.preset)
    cmd = [
        str(args.tabtune),
        "--config",
        "configs/obesity.toml",
        "--data-dir",
        "data",
        "--json",
        "-q",
        "run",
        "--no-fetch",
        "--no-track",
        "--preset",
        args.preset,
    ]
    env = dict(os.environ, TABTUNE_REGISTRY_DIR=str(work / "registry"))
    env.pop("MLFLOW_TRACKING_URI", None)
    t = time.perf_counter()
    out = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if out.returncode != 0:
        sys.stderr.write(out.stderr[-4000:])
        raise SystemExit(f"tabtune run failed ({ablation or 'main'}): exit {out.returncode}")
    outcome = json.loads(out.stdout)
    (work / "outcome.json").write_text(out.stdout)
    sub = pd.read_csv(work / outcome["reports"]["submission"])
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return sub, wall, outcome


def run_autogluon(train, test_x, target, seconds, seed):
    from autogluon.tabular import TabularPredictor

    path = tempfile.mkdtemp(prefix="ag-")
    t = time.perf_counter()
    predictor = TabularPredictor(label=target, eval_metric="accuracy", path=path, verbosity=1)
    predictor.fit(
        train.drop(columns=["id"]),
        presets="best_quality",
        time_limit=seconds,
        num_cpus=os.cpu_count(),
    )
    pred = predictor.predict(test_x.drop(columns=["id"]))
    wall = time.perf_counter() - t
    import sklearn
    import xgboost

    # Every model it trained (a family that failed to train or save is missing here).
    info = {
        "best_model": predictor.model_best,
        "models": predictor.model_names(),
        "versions": {"xgboost": xgboost.__version__, "scikit-learn": sklearn.__version__},
    }
    shutil.rmtree(path, ignore_errors=True)
    return np.asarray(pred), wall, info


def run_flaml(args, train, test_x, seconds):
    """FLAML in its own venv (scripts/requirements-flaml.txt), through benches/peers/flaml_peer.py."""
    with tempfile.TemporaryDirectory(prefix="flaml-") as tmp:
        tmp = Path(tmp)
        train.to_csv(tmp / "train.csv", index=False)
        test_x.to_csv(tmp / "test.csv", index=False)
        out = tmp / "pred.csv"
        subprocess.run(
            [
                str(args.flaml_python),
                str(ROOT / "benches" / "peers" / "flaml_peer.py"),
                "--train", str(tmp / "train.csv"),
                "--test", str(tmp / "test.csv"),
                "--target", args.target,
                "--seconds", str(seconds),
                "--seed", str(args.seed),
                "--out", str(out),
            ],
            check=True,
        )
        pred = pd.read_csv(out)["prediction"].to_numpy()
        info = json.loads(Path(str(out) + ".json").read_text())
    return pred, info.pop("seconds"), info


def paired(a_hits, b_hits, rng, n_boot=4000):
    n = len(a_hits)
    idx = rng.integers(0, n, size=(n_boot, n))
    d = a_hits[idx].mean(axis=1) - b_hits[idx].mean(axis=1)
    return float(a_hits.mean() - b_hits.mean()), float(np.quantile(d, 0.025)), float(
        np.quantile(d, 0.975)
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tabtune", type=Path, required=True)
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--preset", default="best")
    ap.add_argument("--target", default="NObeyesdad")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--holdout", type=float, default=0.2)
    ap.add_argument("--peers", default="autogluon,flaml", help="comma list, or 'none'")
    ap.add_argument(
        "--flaml-python",
        type=Path,
        default=None,
        help="python of the flaml venv (scripts/py-env.sh flaml); needed with the flaml peer",
    )
    ap.add_argument("--ablations", default="", help=f"comma list of {', '.join(ABLATIONS)}")
    ap.add_argument("--ablation-preset", default=None, help="preset of the ablation runs")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--keep", action="store_true", help="keep tabtune's work folders")
    ap.add_argument(
        "--main-from",
        type=Path,
        default=None,
        help="a kept work folder of an earlier run of the same split: its submission and "
        "outcome stand in for the main run",
    )
    args = ap.parse_args()
    args.tabtune = args.tabtune.resolve()
    args.data_dir = args.data_dir.resolve()

    train, test = split(args.data_dir, args.target, args.seed, args.holdout)
    y = test[args.target].to_numpy()
    test_x = test.drop(columns=[args.target])
    print(
        f"split: {len(train)} training rows, {len(test)} held-out rows (seed {args.seed})",
        file=sys.stderr,
    )
    rng = np.random.default_rng(args.seed)
    results = {}

    def score(name, pred, wall, info):
        hits = (np.asarray(pred) == y).astype(float)
        results[name] = {"accuracy": float(hits.mean()), "seconds": wall, "info": info, "_hits": hits}
        print(f"{name}: held-out accuracy {hits.mean():.5f} in {wall:.0f} s", file=sys.stderr)

    if args.main_from:
        outcome = json.loads((args.main_from / "outcome.json").read_text())
        sub = pd.read_csv(args.main_from / outcome["reports"]["submission"])
        wall = outcome["seconds"]
    else:
        sub, wall, outcome = run_tabtune(args, train, test_x)
    pred = sub.set_index("id").loc[test_x["id"], args.target].to_numpy()
    score(
        f"tabtune run --preset {args.preset}",
        pred,
        wall,
        {
            "champion": outcome["family"],
            "cv_accuracy": outcome["cv_accuracy"],
            "decision": outcome.get("decision"),
            "allocation": outcome.get("allocation"),
        },
    )
    main_name = f"tabtune run --preset {args.preset}"
    budget = int(round(wall))
    peers = [] if args.peers == "none" else [p for p in args.peers.split(",") if p]
    if "flaml" in peers and args.flaml_python is None:
        raise SystemExit("the flaml peer needs --flaml-python (scripts/py-env.sh flaml)")
    for peer in peers:
        if peer == "autogluon":
            p, w, info = run_autogluon(train, test_x, args.target, budget, args.seed)
            score("AutoGluon best_quality", p, w, info)
        elif peer == "flaml":
            p, w, info = run_flaml(args, train, test_x, budget)
            score("FLAML", p, w, info)
        else:
            raise SystemExit(f"unknown peer {peer!r}")
    for ab in [a for a in args.ablations.split(",") if a]:
        if args.ablation_preset:
            args_ab = argparse.Namespace(**{**vars(args), "preset": args.ablation_preset})
        else:
            args_ab = args
        try:
            sub, w, o = run_tabtune(args_ab, train, test_x, ablation=ab)
        except SystemExit as e:
            print(f"ablation {ab} failed: {e}", file=sys.stderr)
            continue
        p = sub.set_index("id").loc[test_x["id"], args.target].to_numpy()
        score(
            f"ablation {ab} ({args_ab.preset})",
            p,
            w,
            {"off": ABLATIONS[ab], "champion": o["family"], "cv_accuracy": o["cv_accuracy"]},
        )

    base = results[main_name]["_hits"]
    ablation_base = next(
        (r["_hits"] for n, r in results.items() if n.startswith("ablation baseline")), None
    )
    if ablation_base is None and args.ablation_preset in (None, args.preset):
        # The main run is the baseline when the ablations use its preset: same configs, same
        # split, and the run is deterministic (an explicit `baseline` ablation reproduces it).
        ablation_base = base
    for name, r in results.items():
        if name == main_name or name.startswith("ablation baseline"):
            continue
        if name.startswith("ablation ") and ablation_base is not None:
            # What switching the technique off costs: baseline − ablation, same preset.
            d, lo, hi = paired(ablation_base, r["_hits"], rng)
            r["baseline_minus_this"] = {"diff": d, "ci95": [lo, hi]}
        else:
            d, lo, hi = paired(base, r["_hits"], rng)
            r["tabtune_minus_this"] = {"diff": d, "ci95": [lo, hi]}
    se = float(np.sqrt(base.mean() * (1 - base.mean()) / len(base)))
    for r in results.values():
        r.pop("_hits")
    report = {
        "split": {"train_rows": len(train), "holdout_rows": len(test), "seed": args.seed},
        "standard_error": se,
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str))
    print("| system | wall s | CV accuracy | held-out accuracy | paired difference (95% CI) |")
    print("| --- | ---: | ---: | ---: | --- |")
    for name, r in results.items():
        diff = r.get("tabtune_minus_this")
        label = "tabtune − this"
        if diff is None:
            diff = r.get("baseline_minus_this")
            label = "baseline − this"
        cell = (
            f"{label} {diff['diff']:+.4f} [{diff['ci95'][0]:+.4f}, {diff['ci95'][1]:+.4f}]"
            if diff
            else "—"
        )
        cv = r["info"].get("cv_accuracy")
        cv = f"{cv:.4f}" if isinstance(cv, float) else "—"
        print(f"| {name} | {r['seconds']:.0f} | {cv} | {r['accuracy']:.4f} | {cell} |")
    print(f"\nheld-out rows: {len(test)}, standard error of one accuracy ≈ {se:.4f}")


if __name__ == "__main__":
    main()
