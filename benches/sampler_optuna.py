"""Optuna's TPE overhead per trial on the history tabtune's sampler_overhead example wrote.

python benches/sampler_optuna.py SPACE.toml HISTORY.json REPEATS -> one JSON object on stdout.
The space (configs/sweeps/*.toml, conditions included) is suggested define-by-run, as an Optuna
objective would; the history is added with study.add_trials; each timed step is study.ask()
plus the suggestions (what TPE does to propose one trial), then tell(FAIL) so the history stays
the same for the next step.
"""

import json
import sys
import time
import tomllib

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

optuna.logging.set_verbosity(optuna.logging.WARNING)


def distribution(spec):
    kind = spec["type"]
    if kind == "float":
        return FloatDistribution(
            float(spec["low"]), float(spec["high"]), log=spec.get("log", False), step=spec.get("step")
        )
    if kind == "int":
        return IntDistribution(spec["low"], spec["high"], log=spec.get("log", False), step=spec.get("step", 1))
    return CategoricalDistribution(spec["choices"])


def ordered(params):
    """Parents before the parameters they gate, then by name (as tabtune orders them)."""
    depth = {}

    def d(name):
        if name not in depth:
            when = params[name].get("when", {})
            depth[name] = 1 + max((d(p) for p in when), default=-1)
        return depth[name]

    return sorted(params, key=lambda n: (d(n), n))


def main():
    space_path, history_path, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with open(space_path, "rb") as f:
        params = tomllib.load(f)["params"]
    names = ordered(params)
    dists = {n: distribution(params[n]) for n in names}

    def active(name, values):
        for parent, allowed in params[name].get("when", {}).items():
            allowed = allowed if isinstance(allowed, list) else [allowed]
            if values.get(parent) not in allowed:
                return False
        return True

    def suggest(trial):
        values = {}
        for n in names:
            if active(n, values):
                values[n] = trial._suggest(n, dists[n])
        return values

    with open(history_path) as f:
        history = json.load(f)
    out = {"n_trials": len(history), "optuna": optuna.__version__}
    for label, sampler in [
        ("optuna_tpe_ms", optuna.samplers.TPESampler(seed=1)),
        ("optuna_tpe_independent_ms", optuna.samplers.TPESampler(seed=1, multivariate=False)),
        ("optuna_random_ms", optuna.samplers.RandomSampler(seed=1)),
    ]:
        study = optuna.create_study(sampler=sampler)
        study.add_trials(
            [
                optuna.trial.create_trial(
                    params=row["params"],
                    distributions={k: dists[k] for k in row["params"]},
                    value=row["value"],
                )
                for row in history
            ]
        )
        start = time.perf_counter()
        for _ in range(repeats):
            trial = study.ask()
            suggest(trial)
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        out[label] = (time.perf_counter() - start) * 1e3 / repeats
    print(json.dumps(out))


if __name__ == "__main__":
    main()
