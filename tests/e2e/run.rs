//! `tabtune run` end to end on the real data with a reduced budget: every artifact checked, the
//! champion served over HTTP and queried; and the run's bad inputs.

use std::path::Path;
use std::process::{Command, Stdio};

use tabtune_test::real_data;

use crate::{dir_of, json_of, listening_url};

/// Small boosting trials (two families, so the registry compares them).
const TREES: &str = r#"
direction = "maximize"
metric = "accuracy"

[fixed]
rounds = 40

[params.family]
type = "categorical"
choices = ["gbdt-leafwise", "gbdt-oblivious"]

[params.learning_rate]
type = "float"
low = 0.1
high = 0.3
log = true
"#;

/// Tiny MLPs: two epochs.
const NEURAL: &str = r#"
direction = "maximize"
metric = "accuracy"

[fixed]
family = "mlp"
epochs = 2
batch_size = 512
depth = 1

[params.width]
type = "int"
low = 8
high = 16
step = 8
"#;

/// The default config with its `[run]` section replaced by `run` (the default's is last).
fn config_with_run(dir: &Path, run: &str) -> std::path::PathBuf {
    let default = std::fs::read_to_string(tabtune_test::default_config()).expect("config");
    let at = default
        .find("\n[run]")
        .expect("the default config has [run]");
    let path = dir.join("run.toml");
    std::fs::write(&path, format!("{}\n{run}", &default[..at])).expect("write config");
    path
}

fn run_cmd(cwd: &Path, config: &Path, data: &Path) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("tabtune").expect("the tabtune binary is built");
    cmd.current_dir(cwd)
        .env_remove("TABTUNE_DATA_DIR")
        .env_remove("TABTUNE_CONFIG")
        .env_remove("RUST_LOG")
        .env_remove("MLFLOW_TRACKING_URI")
        .env_remove("TABTUNE_REGISTRY_DIR")
        .arg("--config")
        .arg(config)
        .arg("--data-dir")
        .arg(data);
    cmd
}

#[test]
fn run_builds_the_whole_pipeline_and_the_champion_serves() {
    let Some(train) = real_data("s4e2_train.csv") else {
        return;
    };
    let data = dir_of(&train);
    let tmp = tempfile::tempdir().expect("tempdir");
    let cwd = tmp.path();
    std::fs::write(cwd.join("trees.toml"), TREES).expect("write");
    std::fs::write(cwd.join("neural.toml"), NEURAL).expect("write");
    let config = config_with_run(
        cwd,
        r#"[run]
budget-minutes = 10
register = "obesity"
top-k = 3

[[run.sweeps]]
space = "trees.toml"
n-trials = 3
share = 0.7

[[run.sweeps]]
space = "neural.toml"
n-trials = 2
"#,
    );
    let out = json_of(
        run_cmd(cwd, &config, &data).args([
            "run",
            "--json",
            "--folds",
            "3",
            "--device",
            "cpu",
            "--storage",
            "sqlite:///studies.db",
        ]),
        0,
    );

    // The champion: a verified bundle, the registry's champion, with its CV accuracy.
    let champion = cwd.join(out["champion"].as_str().expect("champion path"));
    tabtune_models::bundle::Bundle::load(&champion).expect("the champion's checksums verify");
    let accuracy = out["cv_accuracy"].as_f64().expect("cv_accuracy");
    assert!(accuracy > 0.8 && accuracy <= 1.0, "{accuracy}");
    assert_eq!(out["champion_ref"], "models:/obesity@champion");
    let shown = json_of(
        run_cmd(cwd, &config, &data).args(["registry", "show", "obesity", "--json"]),
        0,
    );
    assert_eq!(
        shown["aliases"]["champion"], out["version"],
        "the registry's champion is the run's: {shown}"
    );

    // Both sweeps ran, stored their trials and registered their best.
    let studies = out["studies"].as_array().expect("studies");
    assert_eq!(studies.len(), 2, "{out}");
    for s in studies {
        let n = s["n_complete"].as_u64().expect("n_complete") + s["n_pruned"].as_u64().expect("n");
        assert!(n >= 1, "{s}");
        assert!(s["registered"]["version"].as_u64().is_some(), "{s}");
    }
    // The decision layer (every trial of both sweeps, every method scored by nested
    // cross-fitting) picked the champion: its version holds the alias, with the winning
    // method's cross-fitted accuracy.
    let decision = &out["decision"];
    assert_eq!(decision["version"], out["version"], "{out}");
    let methods = decision["methods"].as_array().expect("methods");
    assert_eq!(methods.len(), 6, "{decision}");
    let winner = methods
        .iter()
        .find(|m| m["method"] == decision["champion"])
        .expect("the champion is a scored method");
    assert!((winner["cv_accuracy"].as_f64().expect("acc") - accuracy).abs() < 1e-12);
    for m in methods {
        assert!(
            m["cv_accuracy"].as_f64().expect("acc") <= accuracy,
            "{decision}"
        );
    }
    assert!(
        decision["candidates"].as_u64().expect("candidates") >= 2,
        "{decision}"
    );

    // Reports: present and non-empty HTML.
    let reports = &out["reports"];
    let mut html = vec![
        reports["run"].as_str().expect("run").to_owned(),
        reports["eda"].as_str().expect("eda").to_owned(),
        reports["monitor"].as_str().expect("monitor").to_owned(),
    ];
    html.extend(
        reports["studies"]
            .as_array()
            .expect("studies")
            .iter()
            .map(|r| r.as_str().expect("path").to_owned()),
    );
    for r in &html {
        let text = std::fs::read_to_string(cwd.join(r)).unwrap_or_else(|e| panic!("{r}: {e}"));
        assert!(text.len() > 1000 && text.contains("<html"), "{r}");
    }
    let run_report = std::fs::read_to_string(cwd.join(reports["run"].as_str().expect("run")))
        .expect("run report");
    for needle in [
        "Time allocation",
        "Decision layer",
        "stack+biases",
        "greedy-ensemble",
    ] {
        assert!(run_report.contains(needle), "the run report lacks {needle}");
    }
    assert!(out["dataset_drift"].is_boolean(), "{out}");
    assert!(out["decision"]["accuracy"].as_f64().is_some(), "{out}");

    // The Kaggle submission: header, then one row per test row, every class known.
    let submission = reports["submission"].as_str().expect("submission");
    let text = std::fs::read_to_string(cwd.join(submission)).expect("submission file");
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("id,NObeyesdad"));
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 13840);
    assert_eq!(out["submission_rows"], 13840);
    let classes = [
        "Insufficient_Weight",
        "Normal_Weight",
        "Overweight_Level_I",
        "Overweight_Level_II",
        "Obesity_Type_I",
        "Obesity_Type_II",
        "Obesity_Type_III",
    ];
    for r in &rows {
        let (id, class) = r.split_once(',').expect("id,class");
        assert!(id.parse::<u64>().is_ok() && classes.contains(&class), "{r}");
    }

    // Serve the champion through the registry and ask it about a real test row: it answers
    // what the submission says.
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("tabtune"))
        .current_dir(cwd)
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(&data)
        .args([
            "serve",
            "--model",
            "models:/obesity@champion",
            "--port",
            "0",
        ])
        .env_remove("TABTUNE_REGISTRY_DIR")
        .env_remove("MLFLOW_TRACKING_URI")
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve starts");
    let url = listening_url(&mut child);
    let test = std::fs::read_to_string(data.join("s4e2_test.csv")).expect("test file");
    let mut test_lines = test.lines();
    let header: Vec<&str> = test_lines.next().expect("header").split(',').collect();
    let first: Vec<&str> = test_lines.next().expect("row").split(',').collect();
    let record: serde_json::Map<String, serde_json::Value> = header
        .iter()
        .zip(&first)
        .map(|(k, v)| {
            let value = if *k == "id" {
                serde_json::json!(v)
            } else {
                v.parse::<f64>()
                    .map_or_else(|_| serde_json::json!(v), |x| serde_json::json!(x))
            };
            ((*k).to_owned(), value)
        })
        .collect();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut r = agent
        .post(&format!("{url}/predict"))
        .header("content-type", "application/json")
        .send(serde_json::json!([record]).to_string())
        .expect("predict");
    let status = r.status().as_u16();
    let body: serde_json::Value =
        serde_json::from_str(&r.body_mut().read_to_string().expect("body")).expect("json");
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    assert_eq!(status, 200, "{body}");
    let served = body["predictions"][0]["class"]
        .as_str()
        .unwrap_or_else(|| panic!("a class in {body}"));
    let expected = rows[0].split_once(',').expect("id,class").1;
    assert_eq!(served, expected, "{body}");
}

#[test]
fn bad_runs_exit_2_naming_the_problem() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cwd = tmp.path();
    let empty = tmp.path().join("nodata");
    std::fs::create_dir_all(&empty).expect("dir");

    // Runs `tabtune run --no-fetch` with `section` as the config's [run]: exit 2, stderr back.
    let refused = |section: &str| {
        let config = config_with_run(cwd, section);
        let out = run_cmd(cwd, &config, &empty)
            .args(["run", "--no-fetch"])
            .output()
            .expect("runs");
        assert_eq!(out.status.code(), Some(2), "{section}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };

    // No sweeps planned.
    let err = refused("[run]\nbudget-minutes = 1\n");
    assert!(
        err.contains("run.sweeps") && err.contains("run.toml"),
        "{err}"
    );

    // A space that does not exist.
    let err = refused("[[run.sweeps]]\nspace = \"missing.toml\"\n");
    assert!(
        err.contains("run.sweeps[0].space") && err.contains("missing.toml"),
        "{err}"
    );

    // Data missing and fetching forbidden: names the file and what to do.
    std::fs::write(cwd.join("trees.toml"), TREES).expect("write");
    let err = refused("[[run.sweeps]]\nspace = \"trees.toml\"\n");
    assert!(
        err.contains("s4e2_train.csv") && err.contains("--no-fetch") && err.contains("--data-dir"),
        "{err}"
    );

    // Flags.
    let config = config_with_run(cwd, "[[run.sweeps]]\nspace = \"trees.toml\"\n");
    for (flags, needle) in [
        (vec!["--budget-minutes", "0"], "--budget-minutes"),
        (vec!["--n-trials", "0"], "--n-trials"),
    ] {
        let out = run_cmd(cwd, &config, &empty)
            .arg("run")
            .args(&flags)
            .output()
            .expect("runs");
        assert_eq!(out.status.code(), Some(2), "{flags:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{flags:?}: {err}");
    }
    // Nothing was written for the failed runs.
    assert!(!cwd.join("reports").exists());
    assert!(!cwd.join("checkpoints").exists());
}

#[test]
fn run_with_forward_selection_feeds_the_chosen_features_to_its_sweeps() {
    let Some(train) = real_data("s4e2_train.csv") else {
        return;
    };
    let data = dir_of(&train);
    let tmp = tempfile::tempdir().expect("tempdir");
    let cwd = tmp.path();
    std::fs::write(cwd.join("trees.toml"), TREES).expect("write");
    let config = config_with_run(
        cwd,
        r#"[run]
budget-minutes = 10
register = "obesity-selected"
top-k = 3
select = "forward"
select-model = "decision-tree"

[[run.sweeps]]
space = "trees.toml"
n-trials = 2
"#,
    );
    let out = json_of(
        run_cmd(cwd, &config, &data).args([
            "run",
            "--json",
            "--folds",
            "2",
            "--device",
            "cpu",
            "--no-track",
            "--storage",
            "sqlite:///studies.db",
        ]),
        0,
    );
    let select = &out["select"];
    let chosen: Vec<String> = serde_json::from_value(select["features"].clone()).expect("list");
    let n_total = select["n_total"].as_u64().expect("n_total") as usize;
    // The default shares: 10% to 40% of the features.
    assert!(
        chosen.len() * 10 >= n_total && chosen.len() * 10 <= 4 * n_total,
        "{select}"
    );
    let steps: Vec<&str> = out["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| s["step"].as_str().expect("name"))
        .collect();
    assert_eq!(steps[..3], ["data", "eda", "select"], "{steps:?}");
    // The champion reads only the chosen features: its preprocessor's `keep` list (a fold
    // ensemble: every member's) is the chosen set.
    let champion = cwd.join(out["champion"].as_str().expect("champion path"));
    tabtune_models::bundle::Bundle::load(&champion).expect("the champion loads");
    let mut want = chosen.clone();
    want.sort();
    let mut lists = Vec::new();
    for file in ["preprocessor.json", "model.json"] {
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(champion.join(file)).expect("read"))
                .expect("JSON");
        keep_lists(&v, &mut lists);
    }
    assert!(!lists.is_empty(), "no keep list in {}", champion.display());
    for mut list in lists {
        list.sort();
        assert_eq!(list, want);
    }
}

/// Every non-null `keep` list in a JSON document.
fn keep_lists(v: &serde_json::Value, out: &mut Vec<Vec<String>>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, x) in map {
                if k == "keep" && x.is_array() {
                    out.push(serde_json::from_value(x.clone()).expect("names"));
                } else {
                    keep_lists(x, out);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|x| keep_lists(x, out)),
        _ => {}
    }
}
