//! Against a real MLflow server: runs, params, batched metrics, tags, artifacts, the model
//! registry with aliases and promotion, downloads verified by checksum, and a server that dies
//! mid-run.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use tabtune_track::registry::{
    CHAMPION, Direction, MlflowRegistry, ModelRef, Registry, register_and_maybe_promote,
    verify_bundle,
};
use tabtune_track::{
    LocalStore, Mlflow, MlflowClient, MultiTracker, RunSpec, RunStatus, TAG_STUDY, TAG_TRIAL,
    TensorBoard, Tracker,
};

use crate::common::{fake_bundle, rest_get, rest_post, tracking_uri, unique};

#[test]
fn trial_runs_read_back_through_mlflow_rest() {
    let Some(uri) = tracking_uri() else { return };
    let study = unique("study");
    let sink = Mlflow::new(&uri).expect("sink");
    let tmp = tempfile::tempdir().expect("tempdir");
    let artifact = tmp.path().join("notes.txt");
    std::fs::write(&artifact, "hello").expect("write");
    for trial in 0..3u64 {
        let spec = RunSpec::new(&study, format!("trial-{trial}"))
            .trial(&study, trial)
            .param("learning_rate", 0.1 * (trial + 1) as f64)
            .param("growth", "leaf");
        let mut run = sink.start_run(&spec).expect("start");
        for step in 0..5 {
            run.log_metrics(
                step,
                &[("valid_accuracy", 0.5 + step as f64 * 0.1 + trial as f64)],
            )
            .expect("log");
        }
        if trial == 0 {
            // More metrics than one log-batch call may carry (MLflow's limit is 1000).
            let many: Vec<(String, f64)> =
                (0..1500).map(|i| (format!("m{i}"), f64::from(i))).collect();
            let refs: Vec<(&str, f64)> = many.iter().map(|(k, v)| (k.as_str(), *v)).collect();
            run.log_metrics(9, &refs).expect("log");
            run.log_artifact(&artifact).expect("artifact");
        }
        run.set_tags(&[("tabtune.state", "COMPLETE")])
            .expect("tags");
        run.end(RunStatus::Finished).expect("end");
    }
    sink.flush(Duration::from_mins(2)).expect("everything sent");
    assert_eq!(sink.warnings(), 0);

    let experiment = rest_get(
        &uri,
        "experiments/get-by-name",
        &[("experiment_name", &study)],
    );
    let experiment_id = experiment["experiment"]["experiment_id"]
        .as_str()
        .expect("experiment id")
        .to_owned();
    let found = rest_post(
        &uri,
        "runs/search",
        &json!({"experiment_ids": [experiment_id], "max_results": 100,
                "filter": format!("tags.`{TAG_STUDY}` = '{study}'")}),
    );
    let runs = found["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 3, "{found}");
    for run in runs {
        let tags: BTreeMap<&str, &str> = run["data"]["tags"]
            .as_array()
            .expect("tags")
            .iter()
            .map(|t| {
                (
                    t["key"].as_str().expect("k"),
                    t["value"].as_str().expect("v"),
                )
            })
            .collect();
        let trial: u64 = tags[TAG_TRIAL].parse().expect("trial number");
        assert_eq!(tags["mlflow.runName"], format!("trial-{trial}"));
        assert_eq!(tags["tabtune.state"], "COMPLETE");
        assert_eq!(run["info"]["status"], "FINISHED");
        let params: BTreeMap<&str, &str> = run["data"]["params"]
            .as_array()
            .expect("params")
            .iter()
            .map(|t| {
                (
                    t["key"].as_str().expect("k"),
                    t["value"].as_str().expect("v"),
                )
            })
            .collect();
        assert_eq!(params["growth"], "leaf");
        let lr: f64 = params["learning_rate"].parse().expect("number");
        assert!((lr - 0.1 * (trial + 1) as f64).abs() < 1e-12);
        let run_id = run["info"]["run_id"].as_str().expect("run id");
        let history = rest_get(
            &uri,
            "metrics/get-history",
            &[("run_id", run_id), ("metric_key", "valid_accuracy")],
        );
        let mut points: Vec<(u64, f64)> = history["metrics"]
            .as_array()
            .expect("history")
            .iter()
            .map(|m| {
                (
                    m["step"].as_u64().unwrap_or(0),
                    m["value"].as_f64().expect("value"),
                )
            })
            .collect();
        points.sort_by_key(|p| p.0);
        assert_eq!(points.len(), 5, "{history}");
        for (step, value) in points {
            assert!((value - (0.5 + step as f64 * 0.1 + trial as f64)).abs() < 1e-9);
        }
        if trial == 0 {
            let last = run["data"]["metrics"]
                .as_array()
                .expect("metrics")
                .iter()
                .filter(|m| m["key"].as_str().is_some_and(|k| k.starts_with('m')))
                .count();
            assert_eq!(last, 1500, "every metric of the oversized batch arrived");
            let listed = rest_get(&uri, "artifacts/list", &[("run_id", run_id)]);
            assert_eq!(listed["files"][0]["path"], "notes.txt", "{listed}");
        }
    }
}

#[test]
fn registered_versions_aliases_and_downloads() {
    let Some(uri) = tracking_uri() else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let registry = MlflowRegistry::new(&uri, tmp.path().join("cache")).expect("registry");
    let name = unique("obesity");
    let mut champions = Vec::new();
    for (i, accuracy) in [0.80, 0.86, 0.84].iter().enumerate() {
        let bundle = tmp.path().join(format!("bundle-{i}"));
        fake_bundle(&bundle, *accuracy);
        let (version, promotion) = register_and_maybe_promote(
            &registry,
            &name,
            &bundle,
            "cv_accuracy_mean",
            Direction::Maximize,
        )
        .expect("register");
        assert_eq!(version.version, i as u64 + 1);
        assert_eq!(version.metrics["cv_accuracy_mean"], *accuracy);
        champions.push(promotion.promoted);
    }
    assert_eq!(champions, vec![true, true, false]);

    // Read back through MLflow's own REST API.
    let alias = rest_get(
        &uri,
        "registered-models/alias",
        &[("name", &name), ("alias", CHAMPION)],
    );
    assert_eq!(alias["model_version"]["version"], "2", "{alias}");
    let source = alias["model_version"]["source"].as_str().expect("source");
    assert!(
        source.starts_with("runs:/") && source.ends_with("/bundle"),
        "{source}"
    );
    let versions = rest_get(
        &uri,
        "model-versions/search",
        &[("filter", &format!("name='{name}'"))],
    );
    assert_eq!(
        versions["model_versions"].as_array().expect("list").len(),
        3
    );

    // models:/name@champion downloads a verified copy, byte for byte the registered bundle.
    let reference = ModelRef::parse(&format!("models:/{name}@{CHAMPION}"))
        .expect("parse")
        .expect("a reference");
    let dir = registry.resolve(&reference).expect("resolve");
    verify_bundle(&dir).expect("intact");
    for file in ["bundle.json", "model.json", "model.safetensors"] {
        assert_eq!(
            std::fs::read(dir.join(file)).expect("downloaded"),
            std::fs::read(tmp.path().join("bundle-1").join(file)).expect("original"),
            "{file}"
        );
    }
    let by_number = ModelRef::parse(&format!("models:/{name}/3"))
        .expect("parse")
        .expect("a reference");
    let third = registry.resolve(&by_number).expect("resolve v3");
    assert_ne!(third, dir);

    // Tamper with the stored artifact on the server: the download is refused, naming the file.
    let version = registry.model(&name).expect("model").versions[0].clone();
    let run_id = version.run_id.expect("run id");
    let run = MlflowClient::new(&uri)
        .expect("client")
        .get_run(&run_id)
        .expect("run");
    let artifact_uri = run["run"]["info"]["artifact_uri"].as_str().expect("uri");
    let evil = tmp.path().join("model.json");
    std::fs::write(&evil, "{\"acc\": 1.0}").expect("write");
    MlflowClient::new(&uri)
        .expect("client")
        .upload_artifact(artifact_uri, "bundle/model.json", &evil)
        .expect("overwrite");
    let first = ModelRef::parse(&format!("models:/{name}/1"))
        .expect("parse")
        .expect("a reference");
    let err = registry.resolve(&first).expect_err("tampered download");
    let text = err.to_string();
    assert!(
        text.contains("model.json") && text.contains("does not match") && text.contains(&uri),
        "{text}"
    );

    // Unknown names and aliases are clear errors.
    let missing = ModelRef::parse(&format!("models:/{name}@challenger"))
        .expect("parse")
        .expect("a reference");
    let err = registry.resolve(&missing).expect_err("no such alias");
    assert!(err.to_string().contains("champion"), "{err}");
    let err = registry.model(&unique("nobody")).expect_err("no model");
    assert!(err.is_bad_input(), "{err}");
}

#[test]
fn a_server_that_dies_mid_run_never_stops_training() {
    if tracking_uri().is_none() {
        return;
    }
    // A second, private server that this test stops half-way.
    let tmp = tempfile::tempdir().expect("tempdir");
    let script = tabtune_test::workspace_root().join("scripts/mlflow-server.sh");
    let server_dir = tmp.path().join("server");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .arg("start")
        .arg(&server_dir)
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("start the server");
    assert!(out.status.success(), "mlflow-server.sh start failed");
    let uri = String::from_utf8(out.stdout)
        .expect("utf8")
        .trim()
        .to_owned();
    let stop = || {
        std::process::Command::new("bash")
            .arg(&script)
            .arg("stop")
            .arg(&server_dir)
            .status()
            .expect("stop the server")
    };

    let local = LocalStore::new(tmp.path().join("runs"));
    let mlflow = std::sync::Arc::new(
        Mlflow::with_client(
            MlflowClient::new(&uri)
                .expect("client")
                .with_retries(2, Duration::from_millis(50)),
            10_000,
        )
        .expect("sink"),
    );
    let tracker = MultiTracker::none()
        .with(local.clone())
        .with(TensorBoard::new(tmp.path().join("tb")))
        .with_shared(mlflow.clone());
    let started = std::time::Instant::now();
    for trial in 0..6u64 {
        if trial == 3 {
            mlflow
                .flush(Duration::from_mins(1))
                .expect("first half sent");
            assert!(stop().success());
        }
        let mut run =
            tracker.start_run(&RunSpec::new("dying", format!("t{trial}")).trial("dying", trial));
        for step in 0..20 {
            run.log_metrics(step, &[("loss", 1.0 / (step + 1) as f64)]);
        }
        let summary = run.end(RunStatus::Finished);
        assert!(summary.complete.contains(&"local".to_owned()));
    }
    let errors = tracker.flush(Duration::from_mins(1));
    assert!(
        started.elapsed() < Duration::from_mins(1),
        "training waited on the dead server: {:?}",
        started.elapsed()
    );
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(mlflow.is_down());
    assert_eq!(mlflow.warnings(), 1, "the dead server is reported once");
    let runs = local.runs("dying").expect("local runs");
    assert_eq!(runs.len(), 6);
    assert!(
        runs.iter()
            .all(|r| r.status == RunStatus::Finished && r.metrics.len() == 20)
    );
}

#[test]
fn bundles_that_do_not_load_are_neither_registered_nor_aliased() {
    let Some(uri) = tracking_uri() else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    // The stand-in for the caller's full bundle load: model.json is JSON with an `acc`.
    let check: tabtune_track::registry::LoadCheck = std::sync::Arc::new(|dir: &std::path::Path| {
        let v: serde_json::Value = serde_json::from_slice(
            &std::fs::read(dir.join("model.json")).map_err(|e| e.to_string())?,
        )
        .map_err(|e| format!("model.json: {e}"))?;
        v.get("acc")
            .map(|_| ())
            .ok_or_else(|| "model.json has no acc".to_owned())
    });
    let plain = MlflowRegistry::new(&uri, tmp.path().join("cache")).expect("registry");
    let checked = plain.clone().with_load_check(check);
    let name = unique("guarded");
    let good = tmp.path().join("good");
    fake_bundle(&good, 0.8);
    register_and_maybe_promote(
        &checked,
        &name,
        &good,
        "cv_accuracy_mean",
        Direction::Maximize,
    )
    .expect("registers");
    // A truncated model claiming 0.999, checksums recomputed.
    let bad = tmp.path().join("bad");
    fake_bundle(&bad, 0.999);
    std::fs::write(bad.join("model.json"), "{\"ac").expect("truncate");
    let meta_path = bad.join("bundle.json");
    let mut meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&meta_path).expect("read")).expect("json");
    meta["files"]["model.json"] =
        json!(tabtune_features::io::sha256_file(&bad.join("model.json")).expect("sha"));
    std::fs::write(&meta_path, meta.to_string()).expect("write");
    let err = register_and_maybe_promote(
        &checked,
        &name,
        &bad,
        "cv_accuracy_mean",
        Direction::Maximize,
    )
    .expect_err("does not load")
    .to_string();
    assert!(err.contains("does not load"), "{err}");
    assert_eq!(checked.model(&name).expect("model").versions.len(), 1);
    // Registered by a registry that does not load bundles (an older tabtune): no alias moves
    // to it through one that does.
    let version = plain
        .register(&name, &bad, &BTreeMap::new())
        .expect("registered unchecked");
    let err = checked
        .set_alias(&name, CHAMPION, version.version)
        .expect_err("does not load")
        .to_string();
    assert!(err.contains("does not load"), "{err}");
    let model = checked.model(&name).expect("model");
    assert_eq!(model.aliases[CHAMPION], 1);
}
