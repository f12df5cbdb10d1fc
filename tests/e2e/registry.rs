//! `tabtune registry` and `models:/` references: local registry (register, promote, list,
//! show), predict through an alias, tampered registered bundles, bad references; `train`
//! tracking to the local store and TensorBoard, and to an MLflow server that is down.

use std::path::Path;

use tabtune_test::real_data;

use crate::{dir_of, json_of, tabtune};

/// `tabtune` with the local registry (no MLflow from the environment).
fn local(cwd: &Path) -> assert_cmd::Command {
    let mut cmd = tabtune(cwd);
    cmd.env_remove("MLFLOW_TRACKING_URI")
        .env_remove("TABTUNE_REGISTRY_DIR");
    cmd
}

/// Trains a small decision tree and saves its bundle to `cwd/<dir>`.
fn train_bundle(cwd: &Path, data: &Path, dir: &str, extra: &[&str]) -> serde_json::Value {
    json_of(
        local(cwd)
            .args([
                "train",
                "--json",
                "--model",
                "decision-tree",
                "--folds",
                "2",
            ])
            .args(extra)
            .args(["--save", dir, "--data-dir"])
            .arg(dir_of(data)),
        0,
    )
}

#[test]
fn register_promote_and_predict_through_an_alias() {
    let (Some(train), Some(test)) = (real_data("s4e2_train.csv"), real_data("s4e2_test.csv"))
    else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    train_bundle(
        tmp.path(),
        &train,
        "checkpoints/a",
        &["--param", "max_depth=4"],
    );
    train_bundle(
        tmp.path(),
        &train,
        "checkpoints/b",
        &["--param", "max_depth=10"],
    );
    let register = |bundle: &str| {
        json_of(
            local(tmp.path()).args([
                "registry",
                "register",
                "--json",
                "--name",
                "obesity",
                "--bundle",
                bundle,
                "--promote-on",
                "cv_accuracy_mean",
            ]),
            0,
        )
    };
    let first = register("checkpoints/a");
    assert_eq!(first["version"], 1);
    assert_eq!(first["promotion"]["promoted"], true);
    let second = register("checkpoints/b");
    assert_eq!(second["version"], 2);
    // The deeper tree scores better in CV here; either way the decision follows the scores.
    let better = second["promotion"]["score"].as_f64().expect("score")
        > first["promotion"]["score"].as_f64().expect("score");
    assert_eq!(second["promotion"]["promoted"], better);
    let champion = if better { 2 } else { 1 };

    let listed = json_of(local(tmp.path()).args(["registry", "list", "--json"]), 0);
    assert_eq!(listed["models"][0]["name"], "obesity");
    assert_eq!(listed["models"][0]["versions"], 2);
    assert_eq!(listed["models"][0]["aliases"]["champion"], champion);

    json_of(
        local(tmp.path()).args([
            "registry",
            "promote",
            "--json",
            "obesity",
            "1",
            "--alias",
            "challenger",
        ]),
        0,
    );
    let shown = json_of(
        local(tmp.path()).args(["registry", "show", "--json", "obesity"]),
        0,
    );
    assert_eq!(shown["aliases"]["challenger"], 1);
    assert_eq!(shown["versions"][1]["family"], "decision-tree");
    assert!(shown["versions"][0]["metrics"]["cv_accuracy_mean"].is_number());

    let predicted = json_of(
        local(tmp.path())
            .args([
                "predict",
                "--json",
                "--model",
                "models:/obesity@champion",
                "--input",
            ])
            .arg(&test)
            .args(["--output", "p.csv"]),
        0,
    );
    assert_eq!(predicted["rows"], 13840);
    let by_number = json_of(
        local(tmp.path())
            .args([
                "predict",
                "--json",
                "--model",
                "models:/obesity/1",
                "--input",
            ])
            .arg(&test)
            .args(["--output", "p1.csv"]),
        0,
    );
    assert_eq!(by_number["rows"], 13840);

    // A registered copy modified afterwards is refused, naming the file and the checksum.
    let model_file = tmp
        .path()
        .join("checkpoints/registry/obesity/versions/1/model.json");
    let mut bytes = std::fs::read(&model_file).expect("read");
    bytes.push(b' ');
    std::fs::write(&model_file, bytes).expect("tamper");
    let out = local(tmp.path())
        .args([
            "predict",
            "--model",
            "models:/obesity@challenger",
            "--input",
        ])
        .arg(&test)
        .args(["--output", "p2.csv"])
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("versions/1/model.json") && stderr.contains("sha256"),
        "{stderr}"
    );
    assert!(!tmp.path().join("p2.csv").exists());
}

#[test]
fn bad_references_and_names_are_input_errors() {
    let tmp = tempfile::tempdir().expect("tempdir");
    for (args, needle) in [
        (
            vec![
                "predict",
                "--json",
                "--model",
                "models:/obesity/zero",
                "--input",
                "x.csv",
            ],
            "not a positive whole number",
        ),
        (
            vec![
                "predict",
                "--json",
                "--model",
                "models:/obesity@champion",
                "--input",
                "x.csv",
            ],
            "nothing is registered yet",
        ),
        (vec!["registry", "show", "--json", "nobody"], "not found"),
        (
            vec![
                "registry", "register", "--json", "--name", "m", "--bundle", "missing",
            ],
            "bundle.json",
        ),
        (
            vec![
                "registry", "register", "--json", "--name", "bad name", "--bundle", "missing",
            ],
            "model name",
        ),
    ] {
        let v = json_of(local(tmp.path()).args(&args), 2);
        let error = v["error"].as_str().expect("error text");
        assert!(error.contains(needle), "{args:?}: {error}");
    }
    let out = local(tmp.path())
        .args(["registry", "list", "--tracking-uri", "localhost:5000"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("http://127.0.0.1:5000"));
}

#[test]
fn train_tracks_locally_and_survives_a_dead_mlflow_server() {
    let Some(train) = real_data("s4e2_train.csv") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    // Nothing listens on port 9: every MLflow call fails at once.
    let out = local(tmp.path())
        .args([
            "train",
            "--json",
            "--model",
            "decision-tree",
            "--folds",
            "3",
        ])
        .args(["--save", "checkpoints/dt", "--experiment", "e2e"])
        .args(["--tracking-uri", "http://127.0.0.1:9", "--data-dir"])
        .arg(dir_of(&train))
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let warnings = stderr
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("MLflow"))
        .count();
    assert_eq!(warnings, 1, "the dead server is reported once:\n{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");

    let experiment = tmp.path().join("reports/runs/e2e");
    let runs: Vec<_> = std::fs::read_dir(&experiment)
        .expect("local store")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(runs.len(), 1);
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(runs[0].join("run.json")).expect("run.json"))
            .expect("JSON");
    assert_eq!(record["status"], "FINISHED");
    assert_eq!(record["params"]["family"], "decision-tree");
    assert_eq!(record["artifacts"][0], "dt");
    assert!(runs[0].join("artifacts/dt/bundle.json").is_file());
    let metrics = std::fs::read_to_string(runs[0].join("metrics.jsonl")).expect("metrics");
    assert_eq!(
        metrics
            .lines()
            .filter(|l| l.contains("\"fold_accuracy\""))
            .count(),
        3
    );
    let mean_line = metrics
        .lines()
        .find(|l| l.contains("\"cv_accuracy_mean\""))
        .expect("CV mean logged");
    let mean: serde_json::Value = serde_json::from_str(mean_line).expect("JSON line");
    assert!(
        (mean["value"].as_f64().expect("value") - v["accuracy_mean"].as_f64().expect("mean")).abs()
            < 1e-12
    );
    let tb = tmp
        .path()
        .join("reports/tensorboard/e2e/train-decision-tree");
    assert!(
        std::fs::read_dir(&tb)
            .expect("tensorboard folder")
            .any(|e| e
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .starts_with("events.out.tfevents.")),
    );

    // --no-track records nothing.
    let tmp2 = tempfile::tempdir().expect("tempdir");
    json_of(
        local(tmp2.path())
            .args([
                "train",
                "--json",
                "--model",
                "decision-tree",
                "--folds",
                "2",
                "--no-track",
            ])
            .args(["--data-dir"])
            .arg(dir_of(&train)),
        0,
    );
    assert!(!tmp2.path().join("reports/runs").exists());
    assert!(!tmp2.path().join("reports/tensorboard").exists());
}
