//! Shared helpers: the MLflow server under test, raw REST calls, fake bundles.

use std::io::Read as _;
use std::path::Path;

use serde_json::Value;

/// `MLFLOW_TRACKING_URI`; fails under `CI=true` when unset, else skips (returns `None`).
pub fn tracking_uri() -> Option<String> {
    let in_ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    match std::env::var("MLFLOW_TRACKING_URI") {
        Ok(uri) if !uri.is_empty() => Some(uri),
        _ => {
            assert!(
                !in_ci,
                "CI=true but MLFLOW_TRACKING_URI is not set: start scripts/mlflow-server.sh (.ci/run does)"
            );
            eprintln!("SKIPPED: MLFLOW_TRACKING_URI is not set; MLflow integration test not run");
            None
        }
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

fn read(mut response: ureq::http::Response<ureq::Body>, what: &str) -> Value {
    let status = response.status().as_u16();
    let mut text = String::new();
    response
        .body_mut()
        .as_reader()
        .read_to_string(&mut text)
        .expect("read body");
    assert!(
        (200..300).contains(&status),
        "{what}: HTTP {status}: {text}"
    );
    serde_json::from_str(&text).expect("JSON answer")
}

/// `GET /api/2.0/mlflow/<endpoint>?query`, straight through MLflow's REST API.
pub fn rest_get(uri: &str, endpoint: &str, query: &[(&str, &str)]) -> Value {
    let mut req = agent().get(format!("{uri}/api/2.0/mlflow/{endpoint}"));
    for (k, v) in query {
        req = req.query(*k, *v);
    }
    read(req.call().expect("GET"), endpoint)
}

/// `POST /api/2.0/mlflow/<endpoint>` with a JSON body.
pub fn rest_post(uri: &str, endpoint: &str, body: &Value) -> Value {
    let response = agent()
        .post(format!("{uri}/api/2.0/mlflow/{endpoint}"))
        .content_type("application/json")
        .send(body.to_string().as_bytes())
        .expect("POST");
    read(response, endpoint)
}

/// A unique name for this test process.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_nanos()
    )
}

/// A bundle folder with correct checksums, `cv_accuracy_mean` = `accuracy`, and a larger
/// binary file to exercise uploads.
pub fn fake_bundle(dir: &Path, accuracy: f64) {
    std::fs::create_dir_all(dir).expect("mkdir");
    std::fs::write(dir.join("model.json"), format!("{{\"acc\":{accuracy}}}")).expect("write");
    let weights: Vec<u8> = (0..200_000u32).map(|i| (i * 31 % 251) as u8).collect();
    std::fs::write(dir.join("model.safetensors"), weights).expect("write");
    let sha = |f: &str| tabtune_features::io::sha256_file(&dir.join(f)).expect("sha");
    let meta = serde_json::json!({
        "format": "tabtune-bundle", "format_version": 1, "name": "fake", "family": "gbdt",
        "metrics": {"cv_accuracy_mean": accuracy, "cv_logloss_mean": 1.0 - accuracy},
        "files": {"model.json": sha("model.json"), "model.safetensors": sha("model.safetensors")},
    });
    std::fs::write(dir.join("bundle.json"), meta.to_string()).expect("write");
}
