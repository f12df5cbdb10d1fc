//! Interop with the real `optuna` package (venv `optuna`, scripts/requirements-optuna.txt): a
//! study written by tabtune opens in `optuna.load_study` with the same trials, and a study
//! written by Optuna opens in tabtune.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tabtune_tune::executor::{OptimizeOptions, TrialError, WorkerContext, optimize};
use tabtune_tune::storage::{self, Storage};
use tabtune_tune::study::{Study, TrialHandle};
use tabtune_tune::{Choice, FrozenTrial, ParamValue, TrialState};

use crate::common::{postgres_url, quadratic, toy_study, unique_name};

/// Dumps a study as JSON with Optuna: every trial (number, state, value, params,
/// intermediate values, attributes), the best trial, and the distributions' repr.
const DUMP: &str = r#"
import json, math, sys, optuna
optuna.logging.set_verbosity(optuna.logging.WARNING)
s = optuna.load_study(study_name=sys.argv[2], storage=sys.argv[1])
def num(v):
    if v is None: return None
    if math.isnan(v): return "nan"
    if math.isinf(v): return "inf" if v > 0 else "-inf"
    return v
out = {"direction": s.direction.name, "user_attrs": s.user_attrs, "system_attrs": s._storage.get_study_system_attrs(s._study_id), "trials": []}
for t in s.get_trials(deepcopy=False):
    out["trials"].append({"number": t.number, "state": t.state.name, "value": num(t.value),
        "params": t.params, "intermediate": {str(k): num(v) for k, v in t.intermediate_values.items()},
        "user_attrs": t.user_attrs, "system_attrs": t.system_attrs,
        "start": t.datetime_start.isoformat(sep=" ") if t.datetime_start else None,
        "distributions": {k: type(d).__name__ for k, d in t.distributions.items()}})
b = s.best_trial
out["best"] = {"number": b.number, "value": b.value, "params": b.params}
print(json.dumps(out))
"#;

fn python(script: &str, args: &[&str]) -> Value {
    let py = tabtune_test::python_env("optuna");
    let out = Command::new(py)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn json_num(v: f64) -> Value {
    if v.is_nan() {
        Value::from("nan")
    } else if v.is_infinite() {
        Value::from(if v > 0.0 { "inf" } else { "-inf" })
    } else {
        Value::from(v)
    }
}

fn param_json(v: &ParamValue) -> Value {
    v.to_json()
}

fn same_trial(ours: &FrozenTrial, theirs: &Value) {
    let n = ours.number;
    assert_eq!(theirs["number"], Value::from(n));
    assert_eq!(
        theirs["state"],
        Value::from(ours.state.as_optuna()),
        "trial {n}"
    );
    assert_eq!(
        theirs["value"],
        ours.value.map_or(Value::Null, json_num),
        "trial {n}"
    );
    let params = theirs["params"].as_object().unwrap();
    assert_eq!(params.len(), ours.params.len(), "trial {n}");
    for (k, v) in &ours.params {
        assert_eq!(params[k], param_json(v), "trial {n} param {k}");
    }
    let inter = theirs["intermediate"].as_object().unwrap();
    assert_eq!(inter.len(), ours.intermediate.len(), "trial {n}");
    for (step, v) in &ours.intermediate {
        assert_eq!(
            inter[&step.to_string()],
            json_num(*v),
            "trial {n} step {step}"
        );
    }
    for (k, v) in &ours.user_attrs {
        assert_eq!(&theirs["user_attrs"][k], v, "trial {n} user attr {k}");
    }
    for (k, v) in &ours.system_attrs {
        assert_eq!(&theirs["system_attrs"][k], v, "trial {n} system attr {k}");
    }
}

/// SQLAlchemy 2 picks psycopg 3 for `postgresql://`; the venv has psycopg2.
fn sqlalchemy_url(url: &str) -> String {
    url.replacen("postgresql://", "postgresql+psycopg2://", 1)
}

#[test]
fn a_tabtune_study_opens_in_optuna_with_identical_trials() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:///{}", dir.path().join("tabtune.db").display());
    tabtune_study_in_optuna(&url, "interop");
}

#[test]
fn a_tabtune_study_in_postgres_opens_in_optuna() {
    if let Some(url) = postgres_url() {
        tabtune_study_in_optuna(&url, &unique_name("interop"));
    }
}

fn tabtune_study_in_optuna(url: &str, name: &str) {
    let study = toy_study(url, name, 7);
    // Complete trials, pruned ones (every third), a failed one, infinite and NaN
    // intermediate values.
    let objective = |h: &mut TrialHandle, _: WorkerContext| -> Result<f64, TrialError> {
        let n = h.number();
        h.set_user_attr("worker_note", serde_json::json!({"n": n}))?;
        if n == 4 {
            return Err(TrialError::Failed("out of memory (simulated)".into()));
        }
        if n == 6 {
            h.report(0, f64::INFINITY)?;
            h.report(1, f64::NAN)?;
        }
        if n % 3 == 2 {
            h.report(0, 10.0 + n as f64)?;
            return Err(TrialError::Pruned);
        }
        quadratic(h, 2, Duration::ZERO)
    };
    let options = OptimizeOptions {
        n_trials: Some(10),
        workers: 2,
        ..OptimizeOptions::default()
    };
    let summary = optimize(&study, &objective, &options, None).unwrap();
    assert_eq!(summary.n_complete + summary.n_pruned, 10);
    assert_eq!(summary.n_failed, 1);

    let dumped = python(DUMP, &[&sqlalchemy_url(url), name]);
    assert_eq!(dumped["direction"], "MINIMIZE");
    assert_eq!(
        dumped["user_attrs"]["fixed_params"]["objective"],
        "quadratic"
    );
    assert_eq!(dumped["system_attrs"]["tabtune:sampler"], "random");
    let ours = study.trials().unwrap();
    let theirs = dumped["trials"].as_array().unwrap();
    assert_eq!(ours.len(), theirs.len());
    assert_eq!(ours.len(), 11);
    for (o, t) in ours.iter().zip(theirs) {
        same_trial(o, t);
        if o.number == 1 {
            assert_eq!(
                t["distributions"],
                serde_json::json!({"x": "FloatDistribution", "lr": "FloatDistribution",
                    "n": "IntDistribution", "kind": "CategoricalDistribution"})
            );
        }
    }
    let failed = ours.iter().find(|t| t.state == TrialState::Fail).unwrap();
    assert_eq!(
        failed.system_attrs["fail_reason"],
        "out of memory (simulated)"
    );
    let best = study.best_trial().unwrap().unwrap();
    assert_eq!(dumped["best"]["number"], Value::from(best.number));
    assert_eq!(dumped["best"]["value"], Value::from(best.value.unwrap()));
    for (k, v) in &best.params {
        assert_eq!(dumped["best"]["params"][k], param_json(v));
    }
}

/// Optuna writes a study (all distribution kinds, intermediate values, attributes, a pruned, a
/// failed and an enqueued trial); tabtune reads the same.
const WRITE: &str = r#"
import json, sys, optuna
optuna.logging.set_verbosity(optuna.logging.WARNING)
s = optuna.create_study(study_name=sys.argv[2], storage=sys.argv[1], direction="maximize")
s.set_user_attr("owner", "optuna")
def obj(t):
    x = t.suggest_float("x", 0.001, 1.0, log=True)
    n = t.suggest_int("n", 1, 9, step=2)
    c = t.suggest_categorical("c", ["a", None, 3, 2.5, True])
    q = t.suggest_float("q", 0.0, 1.0, step=0.25)
    t.report(x, 0); t.report(float("inf"), 1)
    t.set_user_attr("u", [1, "two"])
    if t.number == 2: raise optuna.TrialPruned()
    if t.number == 3: raise RuntimeError("boom")
    return x + n
s.optimize(obj, n_trials=5, catch=(RuntimeError,))
s.enqueue_trial({"x": 0.5})
print(json.dumps({"ok": True}))
"#;

#[test]
fn an_optuna_study_opens_in_tabtune() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:///{}", dir.path().join("optuna.db").display());
    optuna_study_in_tabtune(&url, "from-optuna");
}

#[test]
fn an_optuna_study_in_postgres_opens_in_tabtune() {
    if let Some(url) = postgres_url() {
        optuna_study_in_tabtune(&url, &unique_name("from-optuna"));
    }
}

fn optuna_study_in_tabtune(url: &str, name: &str) {
    python(WRITE, &[&sqlalchemy_url(url), name]);
    let dumped = python(DUMP, &[&sqlalchemy_url(url), name]);
    let s: Arc<dyn Storage> = Arc::new(storage::open(url).unwrap());
    let study = Study::load(s, name).unwrap();
    assert_eq!(study.direction(), tabtune_tune::Direction::Maximize);
    let ours = study.trials().unwrap();
    let theirs = dumped["trials"].as_array().unwrap();
    assert_eq!(ours.len(), 6);
    for (o, t) in ours.iter().zip(theirs) {
        same_trial(o, t);
    }
    assert_eq!(ours[2].state, TrialState::Pruned);
    assert_eq!(ours[3].state, TrialState::Fail);
    assert_eq!(ours[5].state, TrialState::Waiting);
    assert!(matches!(ours[0].params["c"], ParamValue::Choice(_)));
    assert!(
        ours.iter()
            .flat_map(|t| t.params.values())
            .all(|v| !matches!(v, ParamValue::Choice(Choice::Str(s)) if s.is_empty()))
    );
    let best = study.best_trial().unwrap().unwrap();
    assert_eq!(dumped["best"]["number"], Value::from(best.number));
    assert_eq!(dumped["best"]["value"], Value::from(best.value.unwrap()));
}
