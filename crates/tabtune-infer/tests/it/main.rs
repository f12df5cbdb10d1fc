//! The HTTP API against a real client on 127.0.0.1: every route, every error status, and
//! predictions equal to the batch predictor's; monitoring reports.

mod limits;
mod quality;
mod registry;
mod serving;

use std::net::SocketAddr;

use serde_json::{Value, json};
use tabtune_features::io::{LoadOptions, load_table};
use tabtune_features::{Config, PreprocessorSpec};
use tabtune_infer::serve::{AppState, ServeOptions, Server};
use tabtune_infer::{Predictor, load_bundle};
use tabtune_models::AnyModel;
use tabtune_models::bundle::{Bundle, BundleMeta, TrainingData};
use tabtune_models::gbdt::{GbdtParams, Growth, Labelled};

/// A small bundle trained on synthetic rows, loaded back as a predictor.
pub(crate) fn predictor(dir: &std::path::Path) -> Predictor {
    trained(dir, "toy", 10).0
}

/// A bundle `name` with `rounds` trees saved under `dir/name`, loaded back, with the trainer's
/// own probabilities for the training rows and the training table.
pub(crate) fn trained(
    dir: &std::path::Path,
    name: &str,
    rounds: usize,
) -> (Predictor, ndarray::Array2<f64>, tabtune_features::Table) {
    let path = dir.join("train.csv");
    std::fs::write(&path, tabtune_test::synthetic_obesity_csv(210, 3)).expect("write");
    let config = Config::load(&tabtune_test::engineered_config(dir)).expect("config");
    let table = load_table(&path, &config.schema, &LoadOptions::default())
        .expect("valid")
        .table;
    let pre = PreprocessorSpec::from_config(&config)
        .fit(&table)
        .expect("fits");
    let m = pre.transform(&table).expect("transforms");
    let mut p = GbdtParams::new(Growth::LeafWise);
    p.rounds = rounds;
    let y = m.target.clone().expect("labels");
    let model = p
        .fit(
            &m.names,
            7,
            Labelled {
                x: m.values.view(),
                y: &y,
            },
            None,
        )
        .expect("fits");
    let data = TrainingData {
        file: "train.csv".into(),
        sha256: "0".repeat(64),
        rows: 210,
    };
    let trainer_proba = model.predict_proba(m.values.view()).expect("predicts");
    let meta = BundleMeta::new(name, "gbdt-leafwise", &pre, json!({}), data);
    let out = dir.join(name);
    Bundle {
        meta,
        model: AnyModel::Gbdt(model),
        preprocessor: pre,
    }
    .save(&out)
    .expect("saves");
    (load_bundle(&out).expect("loads"), trainer_proba, table)
}

pub(crate) fn record() -> Value {
    json!({
        "id": "7", "Gender": "Male", "Age": 24.0, "Height": 1.75, "Weight": 85.0,
        "family_history_with_overweight": "yes", "FAVC": "yes", "FCVC": 2.0, "NCP": 3.0,
        "CAEC": "Sometimes", "SMOKE": "no", "CH2O": 2.0, "SCC": "no", "FAF": 1.0, "TUE": 0.5,
        "CALC": "Always", "MTRANS": "Public_Transportation"
    })
}

fn start(options: ServeOptions) -> (tempfile::TempDir, Server, Predictor) {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = predictor(dir.path());
    let server = Server::start(
        AppState::new(p.clone(), options),
        SocketAddr::from(([127, 0, 0, 1], 0)),
        2,
    )
    .expect("binds");
    (dir, server, p)
}

pub(crate) fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

fn post(server: &Server, body: &str) -> (u16, Value) {
    let mut r = agent()
        .post(&format!("http://{}/predict", server.addr()))
        .header("content-type", "application/json")
        .send(body)
        .expect("request");
    let status = r.status().as_u16();
    let text = r.body_mut().read_to_string().expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn get(server: &Server, path: &str) -> (u16, String) {
    let mut r = agent()
        .get(&format!("http://{}{path}", server.addr()))
        .call()
        .expect("request");
    (
        r.status().as_u16(),
        r.body_mut().read_to_string().expect("body"),
    )
}

#[test]
fn predictions_match_the_batch_predictor_for_one_record_and_a_list() {
    let (_dir, server, p) = start(ServeOptions::default());
    let (status, one) = post(&server, &record().to_string());
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["model"], "toy");
    assert_eq!(one["id"], "7");
    let classes = p.classes().to_vec();
    assert!(classes.contains(&one["class"].as_str().expect("class").to_owned()));
    let total: f64 = one["probabilities"]
        .as_object()
        .expect("probs")
        .values()
        .map(|v| v.as_f64().expect("p"))
        .sum();
    assert!((total - 1.0).abs() < 1e-9);

    let mut second = record();
    second["Weight"] = json!(55.0);
    second["id"] = json!(8);
    let (status, many) = post(&server, &json!([record(), second]).to_string());
    assert_eq!(status, 200, "{many}");
    let preds = many["predictions"].as_array().expect("list");
    assert_eq!(preds.len(), 2);
    assert_eq!(preds[1]["id"], "8");
    // The same rows through the batch path give the same probabilities.
    let csv = format!(
        "{}\n7,Male,24.0,1.75,85.0,yes,yes,2.0,3.0,Sometimes,no,2.0,no,1.0,0.5,Always,Public_Transportation\n8,Male,24.0,1.75,55.0,yes,yes,2.0,3.0,Sometimes,no,2.0,no,1.0,0.5,Always,Public_Transportation\n",
        tabtune_test::OBESITY_HEADER.trim_end_matches(",NObeyesdad")
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("two.csv");
    std::fs::write(&path, csv).expect("write");
    let options = LoadOptions {
        target: tabtune_features::TargetPresence::Optional,
        ..LoadOptions::default()
    };
    let batch = p
        .predict(&p.load(&path, &options).expect("valid").table)
        .expect("predicts");
    for (i, pred) in preds.iter().enumerate() {
        for (c, class) in classes.iter().enumerate() {
            let served = pred["probabilities"][class].as_f64().expect("p");
            assert!(
                (served - batch.proba[[i, c]]).abs() < 1e-12,
                "row {i}, {class}"
            );
        }
    }
    server.stop().expect("stops");
}

#[test]
fn invalid_requests_get_422_with_every_field_path() {
    let (_dir, server, _) = start(ServeOptions::default());
    let mut bad = record();
    bad["Age"] = json!("old");
    bad["Height"] = json!(9.0);
    bad["CALC"] = json!("Sometimez");
    bad.as_object_mut().expect("object").remove("MTRANS");
    bad["Shoe"] = json!(42);
    let (status, body) = post(&server, &json!([record(), bad]).to_string());
    assert_eq!(status, 422, "{body}");
    let paths: Vec<&str> = body["details"]
        .as_array()
        .expect("details")
        .iter()
        .map(|d| d["path"].as_str().expect("path"))
        .collect();
    for expected in [
        "[1].Age",
        "[1].Height",
        "[1].CALC",
        "[1].MTRANS",
        "[1].Shoe",
    ] {
        assert!(
            paths.contains(&expected),
            "{expected} missing from {paths:?}"
        );
    }
    let (status, body) = post(&server, "{\"Age\": ");
    assert_eq!(status, 400, "{body}");
    let (status, _) = post(&server, "[]");
    assert_eq!(status, 422);
    let (status, _) = post(&server, "42");
    assert_eq!(status, 422);
    let (status, _) = get(&server, "/nope");
    assert_eq!(status, 404);
}

#[test]
fn oversized_bodies_get_413_and_a_full_queue_429() {
    let (_dir, server, _) = start(ServeOptions {
        max_body_bytes: 2048,
        ..ServeOptions::default()
    });
    let big = json!(vec![record(); 50]).to_string();
    let (status, _) = post(&server, &big);
    assert_eq!(status, 413);
    server.stop().expect("stops");
    let (_dir, server, _) = start(ServeOptions {
        max_in_flight: 0,
        ..ServeOptions::default()
    });
    let (status, body) = post(&server, &record().to_string());
    assert_eq!(status, 429, "{body}");
}

#[test]
fn health_version_and_metrics() {
    let (_dir, server, _) = start(ServeOptions::default());
    let (status, body) = get(&server, "/health");
    assert_eq!((status, body.contains("ok")), (200, true));
    let (status, body) = get(&server, "/version");
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["model"], "toy");
    assert_eq!(v["classes"].as_array().map(Vec::len), Some(7));
    post(&server, &record().to_string());
    post(&server, "{}");
    let (status, text) = get(&server, "/metrics");
    assert_eq!(status, 200);
    assert!(
        text.contains("tabtune_requests_total{route=\"/predict\",status=\"200\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("tabtune_requests_total{route=\"/predict\",status=\"422\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("tabtune_request_duration_seconds_count"),
        "{text}"
    );
    assert!(text.contains("tabtune_predictions_total{class="), "{text}");
}

#[test]
fn random_and_malformed_bodies_never_get_a_5xx() {
    let (_dir, server, _) = start(ServeOptions::default());
    let mut state = 12345u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let pieces = [
        "{",
        "}",
        "[",
        "]",
        "\"Age\"",
        ":",
        ",",
        "1e999",
        "-1",
        "null",
        "\"Male\"",
        "true",
        "\"\\u0000\"",
        "1.5",
        "{}",
        "[{}]",
    ];
    for i in 0..400 {
        let body: String = if i % 4 == 0 {
            let mut r = record();
            let keys: Vec<String> = r.as_object().expect("object").keys().cloned().collect();
            let key = &keys[(next() % keys.len() as u64) as usize];
            r[key] = [
                json!(null),
                json!(-1e300),
                json!("x"),
                json!([1]),
                json!({"a": 1}),
                json!(f64::MAX),
            ][(next() % 6) as usize]
                .clone();
            r.to_string()
        } else {
            (0..(next() % 12))
                .map(|_| pieces[(next() % pieces.len() as u64) as usize])
                .collect()
        };
        let (status, out) = post(&server, &body);
        assert!(status < 500, "{body} -> {status} {out}");
    }
}

#[test]
fn drift_is_found_in_shifted_data_and_not_in_the_reference_itself() {
    use tabtune_infer::monitor::data_drift;
    let dir = tempfile::tempdir().expect("tempdir");
    let p = predictor(dir.path());
    let options = LoadOptions::default();
    let reference = p
        .load(&dir.path().join("train.csv"), &options)
        .expect("valid")
        .table;
    let same = data_drift(&p, &reference, &reference).expect("drift");
    assert!(
        !same.dataset_drift && same.drifted_columns().is_empty(),
        "{:?}",
        same.drifted_columns()
    );
    assert_eq!(same.columns.len(), 16);
    assert!(same.target.is_some() && !same.prediction.drifted);
    // Everyone 25 kg heavier and 15 years older: weight, age and the predictions drift.
    let text = std::fs::read_to_string(dir.path().join("train.csv")).expect("csv");
    let mut shifted = String::new();
    for (i, line) in text.lines().enumerate() {
        if i == 0 {
            shifted.push_str(line);
        } else {
            let mut f: Vec<String> = line.split(',').map(str::to_owned).collect();
            f[2] = format!("{:.3}", f[2].parse::<f64>().expect("age") + 15.0);
            f[4] = format!("{:.3}", f[4].parse::<f64>().expect("weight") + 25.0);
            shifted.push_str(&f.join(","));
        }
        shifted.push('\n');
    }
    let path = dir.path().join("shifted.csv");
    std::fs::write(&path, shifted).expect("write");
    let current = p.load(&path, &options).expect("valid").table;
    let report = data_drift(&p, &reference, &current).expect("drift");
    let drifted = report.drifted_columns();
    assert!(
        drifted.contains(&"Age") && drifted.contains(&"Weight"),
        "{drifted:?}"
    );
    assert!(
        report.prediction.drifted,
        "heavier people get other predictions"
    );
    let html = tabtune_infer::monitor::drift_html(&report, "toy").expect("html");
    assert!(html.contains("<svg") && html.contains("Weight"));
}

#[test]
fn the_openapi_document_follows_the_schema() {
    let (_dir, server, _) = start(ServeOptions::default());
    let (status, body) = get(&server, "/openapi.json");
    assert_eq!(status, 200);
    let doc: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(doc["openapi"], "3.0.3");
    let record = &doc["components"]["schemas"]["Record"];
    assert_eq!(record["required"].as_array().map(Vec::len), Some(16));
    assert_eq!(record["properties"]["Age"]["maximum"], 120.0);
    assert_eq!(
        record["properties"]["CALC"]["enum"]
            .as_array()
            .map(Vec::len),
        Some(4)
    );
    for code in ["200", "400", "413", "422", "429"] {
        assert!(
            doc["paths"]["/predict"]["post"]["responses"][code].is_object(),
            "{code}"
        );
    }
}
