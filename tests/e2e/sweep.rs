//! `tabtune sweep` and `tabtune export` on the real data: the `--json` contract, resuming a
//! study, the decision layer, registration with champion promotion, Optuna reading the study
//! (the real `optuna` package), pruning per boosting round, and bad input.

use std::path::Path;

use tabtune_test::real_data;

use crate::{dir_of, json_of, tabtune, tabtune_with};

/// A small, fast space: decision trees of varying depth and criterion.
const TREES: &str = r#"
direction = "maximize"
metric = "accuracy"

[fixed]
family = "decision-tree"

[params.max_depth]
type = "int"
low = 2
high = 12

[params.criterion]
type = "categorical"
choices = ["gini", "entropy"]
"#;

/// Leaf-wise boosting with few rounds, for pruning per round.
const BOOSTING: &str = r#"
[fixed]
family = "gbdt-leafwise"
rounds = 40

[params.learning_rate]
type = "float"
low = 0.01
high = 0.3
log = true

[params.num_leaves]
type = "int"
low = 4
high = 64
log = true
"#;

fn sweep(cwd: &Path, data: &Path, space: &str, study: &str, n: u64) -> assert_cmd::Command {
    let mut cmd = tabtune(cwd);
    cmd.env_remove("TABTUNE_REGISTRY_DIR")
        .args(["sweep", "--json", "--sweep", space, "--study", study])
        .args(["--storage", "sqlite:///studies.db", "--n-trials"])
        .arg(n.to_string())
        .arg("--data-dir")
        .arg(dir_of(data));
    cmd
}

/// Runs `script` with the optuna venv's Python in `cwd` (it must succeed) and parses the JSON it
/// prints.
fn optuna_python<T: serde::de::DeserializeOwned>(cwd: &Path, script: &str) -> T {
    let out = std::process::Command::new(tabtune_test::python_env("optuna"))
        .current_dir(cwd)
        .args(["-c", script])
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

#[test]
fn sweep_resumes_registers_exports_and_opens_in_optuna() {
    let (Some(train), Some(test)) = (real_data("s4e2_train.csv"), real_data("s4e2_test.csv"))
    else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(tmp.path().join("trees.toml"), TREES).expect("write");
    let first = json_of(
        sweep(tmp.path(), &train, "trees.toml", "dt", 4).args([
            "--folds",
            "3",
            "--workers",
            "2",
            "--sampler",
            "tpe",
            "--pruner",
            "median",
            "--register",
            "obesity-e2e",
        ]),
        0,
    );
    for key in [
        "study",
        "storage",
        "n_trials",
        "n_complete",
        "n_pruned",
        "best_value",
        "best_params",
        "seconds",
    ] {
        assert!(first.get(key).is_some(), "missing {key}: {first}");
    }
    let finished = |v: &serde_json::Value| {
        v["n_complete"].as_u64().expect("n_complete") + v["n_pruned"].as_u64().expect("n_pruned")
    };
    assert_eq!(finished(&first), 4, "{first}");
    let best = first["best_value"].as_f64().expect("best value");
    assert!((0.5..1.0).contains(&best), "{best}");
    assert!(first["best_params"]["max_depth"].is_i64(), "{first}");
    // Registered as version 1 and champion (nothing to beat yet).
    assert_eq!(first["registered"]["version"], 1, "{first}");
    assert_eq!(first["registered"]["champion"], true, "{first}");
    let bundle = tmp.path().join(first["bundle"].as_str().expect("bundle"));
    assert!(bundle.join("bundle.json").is_file());
    // The decision layer ran on OOF predictions of the complete trials (k-fold mode).
    // (4 trials stay under the median pruner's 5 startup trials: all complete.)
    assert_eq!(first["n_complete"], 4, "{first}");
    let decision = &first["decision"];
    assert!(decision["raw_best_single"]["accuracy"].is_f64(), "{first}");
    let methods = decision["methods"].as_array().expect("methods");
    let names: Vec<&str> = methods
        .iter()
        .map(|m| m["method"].as_str().expect("name"))
        .collect();
    assert_eq!(
        names,
        [
            "single",
            "single+biases",
            "greedy-ensemble",
            "greedy-ensemble+biases",
            "stack",
            "stack+biases"
        ],
        "{first}"
    );
    assert!(
        methods
            .iter()
            .all(|m| m["cv_accuracy"].is_f64() && m["cv_logloss"].is_f64())
    );
    assert!(names.contains(&decision["champion"].as_str().expect("champion")));
    let report = tmp.path().join(first["report"].as_str().expect("report"));
    let html = std::fs::read_to_string(&report).expect("report written");
    assert!(html.contains("Leaderboard") && html.contains("<svg"));
    // Every trial was tracked locally and in TensorBoard.
    let runs = std::fs::read_dir(tmp.path().join("reports/runs/dt"))
        .expect("local runs")
        .count();
    assert!(runs >= 4, "{runs} runs");
    assert!(tmp.path().join("reports/tensorboard/dt/trial-0").is_dir());

    // The same command with a larger budget resumes: two more trials, not six.
    let second = json_of(
        sweep(tmp.path(), &train, "trees.toml", "dt", 6).args([
            "--folds",
            "3",
            "--sampler",
            "tpe",
            "--top-k",
            "0",
        ]),
        0,
    );
    assert_eq!(finished(&second), 6, "{second}");
    assert_eq!(second["n_run"], 2, "{second}");

    // Optuna itself reads the study: same trial count, same best value.
    let script = "import json, optuna, sys\n\
        s = optuna.load_study(study_name='dt', storage='sqlite:///studies.db')\n\
        done = [t for t in s.trials if t.state.is_finished()]\n\
        print(json.dumps({'n': len(done), 'best': s.best_value, \
        'params': s.best_trial.params, 'direction': s.direction.name}))";
    let optuna: serde_json::Value = optuna_python(tmp.path(), script);
    assert_eq!(optuna["n"], 6);
    assert_eq!(optuna["direction"], "MAXIMIZE");
    assert!(
        (optuna["best"].as_f64().expect("best") - second["best_value"].as_f64().expect("best"))
            .abs()
            < 1e-12
    );
    assert_eq!(optuna["params"], second["best_params"]);

    // optuna-dashboard (its WSGI app, called in process) lists the study and serves its trials,
    // values and the study page.
    let script = "import json, optuna\n\
        from wsgiref.util import setup_testing_defaults\n\
        from optuna_dashboard import wsgi\n\
        app = wsgi(optuna.storages.RDBStorage('sqlite:///studies.db'))\n\
        def get(path):\n\
        \x20   env = {}\n\
        \x20   setup_testing_defaults(env)\n\
        \x20   env['PATH_INFO'] = path\n\
        \x20   status = []\n\
        \x20   body = b''.join(app(env, lambda s, h, e=None: status.append(s)))\n\
        \x20   return status[0], body\n\
        s1, b1 = get('/api/studies')\n\
        sid = [x['study_id'] for x in json.loads(b1)['study_summaries'] if x['study_name'] == 'dt'][0]\n\
        s2, b2 = get('/api/studies/%d' % sid)\n\
        d = json.loads(b2)\n\
        s3, _ = get('/dashboard/studies/%d' % sid)\n\
        done = [t for t in d['trials'] if t['state'] in ('Complete', 'Pruned')]\n\
        print(json.dumps({'status': [s1, s2, s3], 'n': len(done), \
        'best': d['best_trials'][0]['values'][0], 'params': {p['name']: p['param_external_value'] \
        for p in d['best_trials'][0]['params']}}))";
    let dashboard: serde_json::Value = optuna_python(tmp.path(), script);
    assert_eq!(
        dashboard["status"],
        serde_json::json!(["200 OK", "200 OK", "200 OK"])
    );
    assert_eq!(dashboard["n"], 6);
    assert!(
        (dashboard["best"].as_f64().expect("best") - second["best_value"].as_f64().expect("best"))
            .abs()
            < 1e-12
    );
    // The dashboard shows parameter values as text.
    let shown: serde_json::Map<String, serde_json::Value> = second["best_params"]
        .as_object()
        .expect("params")
        .iter()
        .map(|(k, v)| {
            let text = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
            (k.clone(), serde_json::Value::String(text))
        })
        .collect();
    assert_eq!(dashboard["params"], serde_json::Value::Object(shown));

    // Export the best trial and predict with it; the champion answers through the registry.
    let exported = json_of(
        tabtune(tmp.path())
            .args([
                "export",
                "--json",
                "--study",
                "dt",
                "--storage",
                "sqlite:///studies.db",
            ])
            .args(["--output", "checkpoints/dt-export", "--data-dir"])
            .arg(dir_of(&train)),
        0,
    );
    assert_eq!(exported["bundle"], "checkpoints/dt-export");
    assert_eq!(exported["value"], second["best_value"]);
    let predicted = json_of(
        tabtune(tmp.path())
            .env_remove("TABTUNE_REGISTRY_DIR")
            .args([
                "predict",
                "--json",
                "--model",
                "models:/obesity-e2e@champion",
            ])
            .arg("--input")
            .arg(&test)
            .args(["--output", "submission.csv", "--submission"]),
        0,
    );
    assert_eq!(predicted["rows"], 13840);

    // The study's best as one ONNX file: the bundle is written first, then the model.
    let onnx = json_of(
        tabtune(tmp.path())
            .args(["export", "--json", "--study", "dt", "--storage"])
            .args([
                "sqlite:///studies.db",
                "--format",
                "onnx",
                "--output",
                "dt.onnx",
            ])
            .arg("--data-dir")
            .arg(dir_of(&train)),
        0,
    );
    assert_eq!(onnx["output"], "dt.onnx");
    assert_eq!(onnx["trial"], second["best_trial"]);
    assert_eq!(onnx["family"], onnx["model"]);
    let bundle = tmp.path().join(onnx["bundle"].as_str().expect("bundle"));
    assert!(bundle.join("bundle.json").is_file(), "{onnx}");
    assert!(tmp.path().join("dt.onnx").is_file());
}

#[test]
fn a_holdout_sweep_reports_every_boosting_round_and_prunes() {
    let Some(train) = real_data("s4e2_train.csv") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(tmp.path().join("gbdt.toml"), BOOSTING).expect("write");
    let v = json_of(
        sweep(tmp.path(), &train, "gbdt.toml", "rounds", 8).args([
            "--holdout",
            "0.2",
            "--sampler",
            "random",
            "--pruner",
            "median:n_startup_trials=2,n_warmup_steps=5",
        ]),
        0,
    );
    assert_eq!(
        v["n_complete"].as_u64().expect("complete") + v["n_pruned"].as_u64().expect("pruned"),
        8
    );
    assert!(v["decision"].is_null(), "no decision layer on a holdout");
    let script = "import json, optuna\n\
        s = optuna.load_study(study_name='rounds', storage='sqlite:///studies.db')\n\
        print(json.dumps([[t.state.name, len(t.intermediate_values)] for t in s.trials]))";
    let trials: Vec<(String, usize)> = optuna_python(tmp.path(), script);
    // Complete trials reported each of their (up to 40) rounds; pruned ones stopped early.
    for (state, steps) in &trials {
        assert!(*steps >= 1, "{trials:?}");
        if state == "PRUNED" {
            assert!(*steps < 40, "{trials:?}");
        }
    }
    assert!(
        trials.iter().any(|(s, n)| s == "COMPLETE" && *n > 5),
        "{trials:?}"
    );
}

#[test]
fn bad_sweeps_and_exports_exit_2_naming_the_problem() {
    let Some(train) = real_data("s4e2_train.csv") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(tmp.path().join("trees.toml"), TREES).expect("write");
    std::fs::write(
        tmp.path().join("typo.toml"),
        TREES.replace("[params.max_depth]", "[params.max_depth]\nlow_ = 1"),
    )
    .expect("write");
    let cases: &[(&[&str], &str)] = &[
        (&["--sweep", "missing.toml"], "missing.toml"),
        (&["--sweep", "typo.toml"], "low_"),
        (&["--sweep", "trees.toml", "--sampler", "cmaes"], "cmaes"),
        (
            &["--sweep", "trees.toml", "--pruner", "median:bogus=1"],
            "bogus",
        ),
        (&["--sweep", "trees.toml", "--workers", "0"], "--workers"),
        (&["--sweep", "trees.toml", "--holdout", "0.9"], "--holdout"),
        (
            &["--sweep", "trees.toml", "--storage", "mysql://x"],
            "mysql",
        ),
        (&["--sweep", "trees.toml", "--folds", "1"], "fold"),
    ];
    for (args, needle) in cases {
        let v = json_of(
            tabtune(tmp.path())
                .args(["sweep", "--json", "--n-trials", "1"])
                .args(*args)
                .arg("--data-dir")
                .arg(dir_of(&train)),
            2,
        );
        let e = v["error"].as_str().expect("error");
        assert!(e.contains(needle), "{args:?}: {e}");
    }
    // No study: export says which study and storage.
    let v = json_of(
        tabtune(tmp.path()).args(["export", "--json", "--study", "nope"]),
        2,
    );
    assert!(v["error"].as_str().expect("error").contains("nope"), "{v}");
}

/// The MLflow server of `.ci/run` (`MLFLOW_TRACKING_URI`); under `CI=true` a missing one fails.
fn mlflow_uri() -> Option<String> {
    match std::env::var("MLFLOW_TRACKING_URI") {
        Ok(u) if !u.trim().is_empty() => Some(u.trim_end_matches('/').to_owned()),
        _ => {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
            assert!(
                !ci,
                "CI=true but MLFLOW_TRACKING_URI is not set: start scripts/mlflow-server.sh (.ci/run does)"
            );
            eprintln!("SKIPPED: MLFLOW_TRACKING_URI is not set; sweep-to-MLflow test not run");
            None
        }
    }
}

#[test]
fn sweep_logs_every_trial_to_mlflow_and_registers_the_champion() {
    let Some(train) = real_data("s4e2_train.csv") else {
        return;
    };
    let Some(uri) = mlflow_uri() else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(tmp.path().join("trees.toml"), TREES).expect("write");
    // Unique names: the server outlives the test.
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis();
    let study = format!("e2e-sweep-{stamp}");
    let model = format!("e2e-model-{stamp}");
    let v = json_of(
        sweep(tmp.path(), &train, "trees.toml", &study, 3).args([
            "--folds",
            "2",
            "--tracking-uri",
            &uri,
            "--register",
            &model,
        ]),
        0,
    );
    assert_eq!(v["registered"]["champion"], true, "{v}");

    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let get = |path: &str| -> serde_json::Value {
        let mut r = agent
            .get(&format!("{uri}/api/2.0/mlflow/{path}"))
            .call()
            .expect("MLflow answers");
        let text = r.body_mut().read_to_string().expect("body");
        assert_eq!(r.status().as_u16(), 200, "{path}: {text}");
        serde_json::from_str(&text).expect("JSON")
    };
    let experiment = get(&format!("experiments/get-by-name?experiment_name={study}"));
    let id = experiment["experiment"]["experiment_id"]
        .as_str()
        .expect("experiment id")
        .to_owned();
    let mut r = agent
        .post(&format!("{uri}/api/2.0/mlflow/runs/search"))
        .header("content-type", "application/json")
        .send(serde_json::json!({"experiment_ids": [id], "max_results": 100}).to_string())
        .expect("search");
    let runs: serde_json::Value =
        serde_json::from_str(&r.body_mut().read_to_string().expect("body")).expect("JSON");
    let runs = runs["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 3, "one MLflow run per trial");
    let mut trials: Vec<String> = Vec::new();
    for run in runs {
        let data = &run["data"];
        let find = |list: &str, key: &str| {
            data[list]
                .as_array()
                .and_then(|l| l.iter().find(|e| e["key"] == key))
                .map(|e| e["value"].clone())
        };
        assert_eq!(
            find("tags", "tabtune.study"),
            Some(serde_json::json!(study))
        );
        trials.push(
            find("tags", "tabtune.trial")
                .and_then(|t| t.as_str().map(str::to_owned))
                .expect("trial tag"),
        );
        assert!(find("params", "max_depth").is_some(), "{run}");
        assert!(find("metrics", "cv_accuracy_mean").is_some(), "{run}");
        assert_eq!(run["info"]["status"], "FINISHED", "{run}");
    }
    trials.sort();
    assert_eq!(trials, ["0", "1", "2"]);
    let alias = get(&format!(
        "registered-models/alias?name={model}&alias=champion"
    ));
    assert_eq!(alias["model_version"]["version"], "1", "{alias}");
}

#[test]
fn select_finds_a_small_feature_set_that_feeds_a_sweep_and_the_bundle() {
    let (Some(train), Some(test)) = (real_data("s4e2_train.csv"), real_data("s4e2_test.csv"))
    else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    // Forward selection with a fast model, keeping 2..4 of the features.
    let select = |extra: &[&str]| {
        let mut cmd = tabtune(tmp.path());
        cmd.args([
            "select",
            "--json",
            "--model",
            "decision-tree",
            "--param",
            "max_depth=6",
        ])
        .args(["--folds", "2", "--min-share", "0.04", "--max-share", "0.08"])
        .args(["--storage", "sqlite:///studies.db", "--study", "sel"])
        .args(extra)
        .arg("--data-dir")
        .arg(dir_of(&train));
        cmd
    };
    let v = json_of(&mut select(&["--output", "features.json"]), 0);
    let n_total = v["n_total"].as_u64().expect("n_total");
    let n = v["n_features"].as_u64().expect("n_features");
    let lo = (0.04 * n_total as f64).ceil() as u64;
    let hi = (0.08 * n_total as f64).floor() as u64;
    assert!((lo..=hi).contains(&n), "{n} of {n_total}: {v}");
    let chosen: Vec<String> = serde_json::from_value(v["features"].clone()).expect("list");
    assert_eq!(chosen.len() as u64, n);
    // Weight decides most of this task (the default config has no BMI): a good small set
    // has it.
    assert!(chosen.iter().any(|f| f == "Weight"), "{chosen:?}");
    assert!(v["accuracy"].as_f64().expect("accuracy") > 0.7, "{v}");
    assert!(
        v["evaluations"].as_u64().expect("evaluations") > n_total,
        "{v}"
    );
    // A rerun resumes from the stored trials: nothing is evaluated again.
    let again = json_of(&mut select(&["--output", "features.json"]), 0);
    assert_eq!(again["evaluations"], 0, "{again}");
    assert_eq!(again["features"], v["features"]);

    // The list feeds a sweep; the exported bundle sees only those features and predicts.
    std::fs::write(tmp.path().join("trees.toml"), TREES).expect("write");
    let s = json_of(
        sweep(tmp.path(), &train, "trees.toml", "on-subset", 2).args([
            "--folds",
            "2",
            "--features",
            "features.json",
            "--top-k",
            "0",
        ]),
        0,
    );
    assert_eq!(s["n_complete"], 2, "{s}");
    json_of(
        tabtune(tmp.path())
            .args(["export", "--json", "--study", "on-subset", "--storage"])
            .args([
                "sqlite:///studies.db",
                "--output",
                "subset-bundle",
                "--data-dir",
            ])
            .arg(dir_of(&train)),
        0,
    );
    let pre: serde_json::Value = serde_json::from_slice(
        &std::fs::read(tmp.path().join("subset-bundle/preprocessor.json")).expect("read"),
    )
    .expect("JSON");
    let kept: Vec<String> = serde_json::from_value(pre["keep"].clone()).expect("keep");
    let mut sorted = chosen.clone();
    sorted.sort();
    let mut kept_sorted = kept.clone();
    kept_sorted.sort();
    assert_eq!(kept_sorted, sorted);
    let p = json_of(
        tabtune(tmp.path())
            .args(["predict", "--json", "--model", "subset-bundle", "--input"])
            .arg(&test)
            .args(["--output", "p.csv"]),
        0,
    );
    assert_eq!(p["rows"], 13840);

    // Another list for the same study is refused; bad lists name the problem.
    std::fs::write(tmp.path().join("other.json"), r#"["Weight"]"#).expect("write");
    let e = json_of(
        sweep(tmp.path(), &train, "trees.toml", "on-subset", 2).args([
            "--folds",
            "2",
            "--features",
            "other.json",
        ]),
        2,
    );
    assert!(
        e["error"]
            .as_str()
            .expect("error")
            .contains("another --features"),
        "{e}"
    );
    std::fs::write(tmp.path().join("typo.json"), r#"["BMII"]"#).expect("write");
    let e = json_of(
        sweep(tmp.path(), &train, "trees.toml", "typo", 1).args(["--features", "typo.json"]),
        2,
    );
    assert!(
        e["error"].as_str().expect("error").contains("`BMII`"),
        "{e}"
    );
    let e = json_of(
        tabtune(tmp.path())
            .args([
                "select",
                "--json",
                "--min-share",
                "0.5",
                "--max-share",
                "0.2",
            ])
            .arg("--data-dir")
            .arg(dir_of(&train)),
        2,
    );
    assert!(
        e["error"].as_str().expect("error").contains("--min-share"),
        "{e}"
    );
}

#[test]
fn a_sweep_finishes_with_mlflow_down_and_the_local_store_complete() {
    let Some(train) = real_data("s4e2_train.csv") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(tmp.path().join("trees.toml"), TREES).expect("write");
    // Nothing listens on port 9: every MLflow call fails at once.
    let out = sweep(tmp.path(), &train, "trees.toml", "down", 3)
        .args(["--folds", "2", "--tracking-uri", "http://127.0.0.1:9"])
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(v["n_complete"], 3, "{v}");
    // Registration needs the server: reported, not fatal; the bundle is there to register later.
    assert!(v["registered"].is_null(), "{v}");
    assert!(v["register_error"].is_string(), "{v}");
    assert!(
        tmp.path()
            .join("checkpoints/down-best/bundle.json")
            .is_file()
    );
    let runs: Vec<_> = std::fs::read_dir(tmp.path().join("reports/runs/down"))
        .expect("local store")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(runs.len(), 3, "every trial in the local store");
    for run in &runs {
        let record: serde_json::Value =
            serde_json::from_slice(&std::fs::read(run.join("run.json")).expect("run.json"))
                .expect("JSON");
        assert_eq!(record["status"], "FINISHED", "{record}");
    }
}

/// Tiny MLPs and TabMs (2 epochs) beside decision trees, for population mode.
const MIXED: &str = r#"
direction = "maximize"
metric = "accuracy"

[params.family]
type = "categorical"
choices = ["mlp", "tabm", "decision-tree"]

# Fixed for the neural families only (a fixed value would reach the trees too).
[params.epochs]
type = "categorical"
choices = [2]
when = { family = ["mlp", "tabm"] }

[params.batch_size]
type = "categorical"
choices = [64]
when = { family = ["mlp", "tabm"] }

[params.embedding]
type = "categorical"
choices = ["none"]
when = { family = ["mlp", "tabm"] }

[params.learning_rate]
type = "float"
low = 1e-3
high = 1e-2
log = true
when = { family = ["mlp", "tabm"] }

[params.width]
type = "int"
low = 8
high = 24
step = 8
when = { family = ["mlp", "tabm"] }

[params.dropout]
type = "float"
low = 0.0
high = 0.3
when = { family = ["mlp", "tabm"] }

[params.k]
type = "categorical"
choices = [2]
when = { family = "tabm" }

[params.max_depth]
type = "int"
low = 2
high = 8
when = { family = "decision-tree" }
"#;

/// Every trial of `study` in `dir/studies.db`, by number.
fn stored_trials(dir: &Path, study: &str) -> Vec<tabtune_tune::FrozenTrial> {
    let url = format!("sqlite:///{}", dir.join("studies.db").display());
    let storage = std::sync::Arc::new(tabtune_tune::storage::open(&url).expect("storage"));
    let mut trials = tabtune_tune::study::Study::load(storage, study)
        .expect("study")
        .trials()
        .expect("trials");
    trials.sort_by_key(|t| t.number);
    trials
}

fn synthetic(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("train.csv");
    std::fs::write(&path, tabtune_test::synthetic_obesity_csv(210, 3)).expect("write");
    path
}

#[test]
fn population_mode_trains_neural_trials_together_with_the_results_of_one_at_a_time() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let train = synthetic(tmp.path());
    std::fs::write(tmp.path().join("mixed.toml"), MIXED).expect("write");
    let run = |study: &str, population: &str, extra: &[&str]| {
        json_of(
            sweep(tmp.path(), &train, "mixed.toml", study, 8)
                .arg("--input")
                .arg(&train)
                .args(["--sampler", "random", "--seed", "11", "--no-track"])
                .args(["--population", population, "--device", "cpu"])
                .args(extra),
            0,
        )
    };
    let kfold = ["--folds", "3", "--pruner", "none", "--top-k", "0"];
    let together = run("together", "4", &kfold);
    let alone = run("alone", "1", &kfold);
    assert_eq!(together["n_complete"], 8, "{together}");
    assert_eq!(alone["n_complete"], 8, "{alone}");
    let (a, b) = (
        stored_trials(tmp.path(), "together"),
        stored_trials(tmp.path(), "alone"),
    );
    assert_eq!(a.len(), 8);
    let families: std::collections::BTreeSet<_> = a
        .iter()
        .map(|t| t.user_attrs["family"].as_str().expect("family").to_owned())
        .collect();
    assert!(
        families.contains("mlp") && families.len() >= 2,
        "the seed should give a mixed batch: {families:?}"
    );
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.params, y.params, "trial {}", x.number);
        let (vx, vy) = (x.value.expect("value"), y.value.expect("value"));
        assert!((vx - vy).abs() < 1e-4, "trial {}: {vx} vs {vy}", x.number);
        // One value per fold reached the pruner, in both modes.
        assert_eq!(
            x.intermediate.keys().copied().collect::<Vec<_>>(),
            vec![0, 1, 2]
        );
        for (s, v) in &x.intermediate {
            assert!((v - y.intermediate[s]).abs() < 1e-4, "trial {}", x.number);
        }
    }

    // Holdout: every epoch of the holdout fold is an intermediate value of its own trial.
    let holdout = run(
        "holdout",
        "4",
        &["--holdout", "0.2", "--pruner", "median:n_startup_trials=2"],
    );
    let finished =
        holdout["n_complete"].as_u64().expect("n") + holdout["n_pruned"].as_u64().expect("n");
    assert_eq!(finished, 8, "{holdout}");
    for t in stored_trials(tmp.path(), "holdout") {
        let neural = t.user_attrs["family"] != "decision-tree";
        if neural && t.state == tabtune_tune::TrialState::Complete {
            assert_eq!(
                t.intermediate.keys().copied().collect::<Vec<_>>(),
                vec![1, 2],
                "trial {}",
                t.number
            );
        }
    }
}

#[test]
fn population_with_a_tree_only_space_runs_as_usual_and_bad_values_exit_2() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let train = synthetic(tmp.path());
    std::fs::write(tmp.path().join("trees.toml"), TREES).expect("write");
    let run = |study: &str, population: &str| {
        json_of(
            sweep(tmp.path(), &train, "trees.toml", study, 5)
                .arg("--input")
                .arg(&train)
                .args(["--sampler", "random", "--seed", "4", "--no-track"])
                .args(["--folds", "3", "--top-k", "0", "--population", population]),
            0,
        )
    };
    let (p, one) = (run("p", "8"), run("one", "1"));
    assert_eq!(p["n_complete"], 5, "{p}");
    assert_eq!(p["best_value"], one["best_value"], "{p} vs {one}");
    let values = |s: &str| {
        stored_trials(tmp.path(), s)
            .iter()
            .map(|t| (t.params.clone(), t.value))
            .collect::<Vec<_>>()
    };
    assert_eq!(values("p"), values("one"));
    let v = json_of(
        sweep(tmp.path(), &train, "trees.toml", "bad", 1)
            .arg("--input")
            .arg(&train)
            .args(["--population", "0"]),
        2,
    );
    let e = v["error"].as_str().expect("error");
    assert!(e.contains("--population"), "{e}");
    // Not a count at all: clap refuses it before the command runs.
    for bad in ["-1", "many"] {
        let out = sweep(tmp.path(), &train, "trees.toml", "bad", 1)
            .arg(format!("--population={bad}"))
            .output()
            .expect("runs");
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("--population"), "{bad}: {stderr}");
    }
}

#[test]
fn shipped_forest_and_tree_spaces_sweep() {
    let Some(train) = real_data("s4e2_train.csv") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tabtune_test::workspace_root();
    for (space, family) in [
        ("random-forest.toml", "random-forest"),
        ("decision-tree.toml", "decision-tree"),
    ] {
        let path = root.join("configs/sweeps").join(space);
        let out = json_of(
            sweep(tmp.path(), &train, path.to_str().expect("utf-8"), family, 2).args([
                "--holdout",
                "0.2",
                "--top-k",
                "0",
            ]),
            0,
        );
        assert_eq!(out["n_complete"], 2, "{space}: {out}");
        let best = out["best_value"].as_f64().expect("best");
        assert!(best > 0.7 && best <= 1.0, "{space}: {best}");
    }
}

#[test]
fn an_interrupted_sweep_exits_130_with_its_summary() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("t.csv");
    std::fs::write(&data, tabtune_test::synthetic_obesity_csv(140, 3)).expect("write");
    std::fs::write(tmp.path().join("trees.toml"), TREES).expect("write");
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("tabtune"))
        .current_dir(tmp.path())
        .arg("--config")
        .arg(tabtune_test::default_config())
        .env_remove("MLFLOW_TRACKING_URI")
        .args(["sweep", "--json", "--sweep", "trees.toml", "--study", "s"])
        .args(["--storage", "sqlite:///studies.db", "--n-trials", "1000000"])
        .args(["--folds", "2", "--top-k", "0", "--input"])
        .arg(&data)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starts");
    // Let it get going (some trials stored), then Ctrl-C.
    let db = tmp.path().join("studies.db");
    let started = std::time::Instant::now();
    while !db.exists() && started.elapsed() < std::time::Duration::from_mins(1) {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_secs(3));
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let out = child.wait_with_output().expect("exits");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(json["stopped"], "interrupted", "{json}");
    assert!(
        json["n_complete"].as_u64().expect("n_complete") >= 1,
        "{json}"
    );
}

#[test]
fn select_tracks_every_candidate_set_in_mlflow_and_registers_each_family() {
    let Some(uri) = mlflow_uri() else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let train = synthetic(tmp.path());
    // The synthetic class follows BMI: the config with the engineered features (51 columns,
    // so that forward selection evaluates more than 50 candidate sets).
    let config = tabtune_test::engineered_config(tmp.path());
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let get = |path: &str| -> serde_json::Value {
        let mut r = agent
            .get(&format!("{uri}/api/2.0/mlflow/{path}"))
            .call()
            .expect("MLflow answers");
        let text = r.body_mut().read_to_string().expect("body");
        assert_eq!(r.status().as_u16(), 200, "{path}: {text}");
        serde_json::from_str(&text).expect("JSON")
    };
    // As the original workflow does: selection per family at default-ish parameters, every
    // candidate set a run, the best set's model registered under the family's name.
    for (family, param) in [
        ("decision-tree", "max_depth=4"),
        ("gbdt-oblivious", "rounds=5"),
    ] {
        let study = format!("e2e-select-{family}-{stamp}");
        let model = format!("e2e-select-{family}-{stamp}");
        let v = json_of(
            tabtune_with(tmp.path(), &config)
                .args(["select", "--json", "--model", family, "--param", param])
                .args(["--folds", "2", "--min-share", "0.02", "--max-share", "0.04"])
                .args([
                    "--study",
                    &study,
                    "--tracking-uri",
                    &uri,
                    "--register",
                    &model,
                ])
                .arg("--input")
                .arg(&train),
            0,
        );
        let evaluations = v["evaluations"].as_u64().expect("evaluations");
        assert!(evaluations > 50, "{v}");
        assert_eq!(v["tracked_runs"], evaluations, "{v}");
        assert_eq!(v["registered"]["name"], model.as_str(), "{v}");
        assert_eq!(v["registered"]["champion"], true, "{v}");
        let bundle = tmp
            .path()
            .join(v["registered"]["bundle"].as_str().expect("bundle"));
        assert!(bundle.join("bundle.json").is_file(), "{v}");

        let experiment = get(&format!("experiments/get-by-name?experiment_name={study}"));
        let id = experiment["experiment"]["experiment_id"]
            .as_str()
            .expect("experiment id")
            .to_owned();
        let mut r = agent
            .post(&format!("{uri}/api/2.0/mlflow/runs/search"))
            .header("content-type", "application/json")
            .send(serde_json::json!({"experiment_ids": [id], "max_results": 1000}).to_string())
            .expect("search");
        let runs: serde_json::Value =
            serde_json::from_str(&r.body_mut().read_to_string().expect("body")).expect("JSON");
        let runs = runs["runs"].as_array().expect("runs");
        assert_eq!(
            runs.len() as u64,
            evaluations,
            "one MLflow run per feature set"
        );
        for run in runs {
            let data = &run["data"];
            let find = |list: &str, key: &str| {
                data[list]
                    .as_array()
                    .and_then(|l| l.iter().find(|e| e["key"] == key))
                    .map(|e| e["value"].clone())
            };
            let features = find("params", "features").expect("features param");
            let n = find("params", "n_features").expect("n_features param");
            let listed = features.as_str().expect("text").split(',').count();
            assert_eq!(n.as_str(), Some(listed.to_string().as_str()), "{run}");
            assert_eq!(find("params", "family"), Some(serde_json::json!(family)));
            assert!(find("metrics", "cv_accuracy_mean").is_some(), "{run}");
            assert_eq!(
                find("tags", "tabtune.command"),
                Some(serde_json::json!("select"))
            );
            assert_eq!(run["info"]["status"], "FINISHED", "{run}");
        }
        let alias = get(&format!(
            "registered-models/alias?name={model}&alias=champion"
        ));
        assert_eq!(alias["model_version"]["version"], "1", "{alias}");
    }
}
