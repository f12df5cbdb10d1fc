//! Bearer token, hot reload, the window of recent predictions and its monitoring reports,
//! feedback, 405 / 415, and a fuzz run over every route.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tabtune_infer::load_bundle;
use tabtune_infer::serve::{AppState, ModelSource, ReloadError, ServeOptions, Server};

use crate::{agent, record, trained};

/// The first `n` rows of a CSV written by `synthetic_obesity_csv` as JSON records, with or
/// without the target field.
fn records(path: &Path, n: usize, with_target: bool) -> Vec<Value> {
    let text = std::fs::read_to_string(path).expect("csv");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    lines
        .take(n)
        .map(|line| {
            let mut map = serde_json::Map::new();
            for (h, f) in header.iter().zip(line.split(',')) {
                if *h == "NObeyesdad" && !with_target {
                    continue;
                }
                let v = match f.parse::<f64>() {
                    Ok(x) if *h != "id" => json!(x),
                    _ => json!(f),
                };
                map.insert((*h).to_owned(), v);
            }
            Value::Object(map)
        })
        .collect()
}

fn send(
    server: &Server,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<(&str, &str)>,
) -> (u16, Option<String>, String) {
    let url = format!("http://{}{path}", server.addr());
    let agent = agent();
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut response = match (method, body) {
        ("GET", _) => {
            let mut r = agent.get(&url);
            if let Some(a) = &auth {
                r = r.header("authorization", a);
            }
            r.call()
        }
        (_, body) => {
            let mut r = agent.post(&url);
            if let Some(a) = &auth {
                r = r.header("authorization", a);
            }
            match body {
                Some((content_type, text)) => r.header("content-type", content_type).send(text),
                None => r.send_empty(),
            }
        }
    }
    .expect("request");
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().expect("ascii").to_owned());
    (
        response.status().as_u16(),
        challenge,
        response.body_mut().read_to_string().expect("body"),
    )
}

/// One JSON record as a validated table, through a CSV file and the batch loader.
fn table_of(p: &tabtune_infer::Predictor, record: &Value, dir: &Path) -> tabtune_features::Table {
    let header: Vec<&str> = tabtune_test::OBESITY_HEADER
        .split(',')
        .filter(|h| *h != "NObeyesdad")
        .collect();
    let row: Vec<String> = header
        .iter()
        .map(|h| match &record[*h] {
            Value::String(s) => s.clone(),
            v => v.to_string(),
        })
        .collect();
    let path = dir.join("one.csv");
    std::fs::write(&path, format!("{}\n{}\n", header.join(","), row.join(","))).expect("write");
    let options = tabtune_features::io::LoadOptions {
        target: tabtune_features::TargetPresence::Optional,
        ..Default::default()
    };
    p.load(&path, &options).expect("valid").table
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

struct Setup {
    dir: tempfile::TempDir,
    server: Server,
    predictor: tabtune_infer::Predictor,
    source: Arc<Mutex<PathBuf>>,
}

fn setup(options: ServeOptions, token: Option<&str>, reference: bool) -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let (predictor, _, table) = trained(dir.path(), "first", 10);
    let source = Arc::new(Mutex::new(dir.path().join("first")));
    let from = source.clone();
    let mut state = AppState::new(predictor.clone(), options)
        .with_token(token.map(str::to_owned))
        .with_source(ModelSource {
            description: "test bundle".into(),
            reload: Arc::new(move || {
                let path = from.lock().expect("lock").clone();
                load_bundle(&path).map_err(|e| ReloadError {
                    message: e.to_string(),
                    bad_input: e.is_bad_input(),
                })
            }),
        });
    if reference {
        state = state.with_reference(table);
    }
    let server = Server::start(state, SocketAddr::from(([127, 0, 0, 1], 0)), 2).expect("binds");
    Setup {
        dir,
        server,
        predictor,
        source,
    }
}

fn small_window() -> ServeOptions {
    ServeOptions {
        window: 50,
        min_window_rows: 10,
        ..ServeOptions::default()
    }
}

#[test]
fn the_token_guards_monitoring_feedback_and_reload_only() {
    let s = setup(small_window(), Some("s3cret"), true);
    for (method, path) in [
        ("GET", "/monitor/data-drift"),
        ("GET", "/monitor/target-drift"),
        ("GET", "/monitor/data-quality"),
        ("GET", "/monitor/model-performance"),
        ("POST", "/feedback"),
        ("POST", "/admin/reload"),
    ] {
        let body = Some(("application/json", "{}"));
        let (status, challenge, text) = send(&s.server, method, path, None, body);
        assert_eq!(status, 401, "{path}: {text}");
        assert_eq!(
            challenge.as_deref(),
            Some("Bearer realm=\"tabtune\""),
            "{path}"
        );
        let (status, challenge, _) = send(&s.server, method, path, Some("wrong"), body);
        assert_eq!(status, 401, "{path}");
        assert!(
            challenge.is_some_and(|c| c.starts_with("Bearer") && c.contains("invalid_token")),
            "{path}"
        );
        let (status, _, text) = send(&s.server, method, path, Some("s3cret"), body);
        assert_ne!(status, 401, "{path}: {text}");
    }
    for path in ["/health", "/version", "/metrics", "/openapi.json"] {
        assert_eq!(send(&s.server, "GET", path, None, None).0, 200, "{path}");
    }
    let (status, _, text) = send(
        &s.server,
        "POST",
        "/predict",
        None,
        Some(("application/json", &record().to_string())),
    );
    assert_eq!(status, 200, "{text}");
}

#[test]
fn reload_swaps_the_model_and_a_failed_reload_keeps_the_old_one() {
    let s = setup(ServeOptions::default(), None, false);
    let body = record().to_string();
    let predict = || {
        let (status, _, text) = send(
            &s.server,
            "POST",
            "/predict",
            None,
            Some(("application/json", &body)),
        );
        assert_eq!(status, 200, "{text}");
        json_of(&text)
    };
    assert_eq!(predict()["model"], "first");
    // A second bundle with more trees: the reload serves it, and /version says so.
    let (second, _, _) = trained(s.dir.path(), "second", 30);
    *s.source.lock().expect("lock") = s.dir.path().join("second");
    let (status, _, text) = send(&s.server, "POST", "/admin/reload", None, None);
    assert_eq!(status, 200, "{text}");
    let v = json_of(&text);
    assert_eq!(
        (
            v["previous"]["model"].as_str(),
            v["current"]["model"].as_str()
        ),
        (Some("first"), Some("second"))
    );
    let (_, _, text) = send(&s.server, "GET", "/version", None, None);
    let version = json_of(&text);
    assert_eq!(version["model"], "second");
    assert_eq!(version["reloads"], 1);
    assert_eq!(version["source"], "test bundle");
    let served = predict();
    assert_eq!(served["model"], "second");
    let table = table_of(&second, &record(), s.dir.path());
    let batch = second.predict(&table).expect("predicts");
    for (c, class) in second.classes().iter().enumerate() {
        let p = served["probabilities"][class].as_f64().expect("p");
        assert!((p - batch.proba[[0, c]]).abs() < 1e-12, "{class}");
    }
    // A source that no longer loads: 409 with the reason; the old model keeps serving.
    *s.source.lock().expect("lock") = s.dir.path().join("gone");
    let (status, _, text) = send(&s.server, "POST", "/admin/reload", None, None);
    assert_eq!(status, 409, "{text}");
    assert!(
        text.contains("still serving second") && text.contains("gone"),
        "{text}"
    );
    assert_eq!(predict()["model"], "second");
    // A tampered bundle is refused the same way.
    let tampered = s.dir.path().join("first/preprocessor.json");
    let pre = std::fs::read_to_string(&tampered).expect("pre");
    std::fs::write(&tampered, pre.replacen('1', "2", 1)).expect("tamper");
    *s.source.lock().expect("lock") = s.dir.path().join("first");
    let (status, _, text) = send(&s.server, "POST", "/admin/reload", None, None);
    assert_eq!(status, 409, "{text}");
    assert!(text.contains("sha256"), "{text}");
    assert_eq!(predict()["model"], "second");
    drop(s.predictor);
}

#[test]
fn reload_without_a_source_is_409() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = crate::predictor(dir.path());
    let server = Server::start(
        AppState::new(p, ServeOptions::default()),
        SocketAddr::from(([127, 0, 0, 1], 0)),
        1,
    )
    .expect("binds");
    let (status, _, text) = send(&server, "POST", "/admin/reload", None, None);
    assert_eq!(status, 409, "{text}");
}

#[test]
fn monitoring_reports_over_the_window_of_recent_predictions() {
    let s = setup(small_window(), None, true);
    let train = s.dir.path().join("train.csv");
    let get = |path: &str| send(&s.server, "GET", path, None, None);
    // Nothing predicted yet: not enough data, a clear 409.
    for route in [
        "data-drift",
        "target-drift",
        "data-quality",
        "model-performance",
    ] {
        let (status, _, text) = get(&format!("/monitor/{route}"));
        assert_eq!(status, 409, "{route}: {text}");
        assert!(text.contains("not enough data"), "{text}");
    }
    // 40 rows without labels.
    let rows = records(&train, 40, false);
    let (status, _, text) = send(
        &s.server,
        "POST",
        "/predict",
        None,
        Some(("application/json", &json!(rows).to_string())),
    );
    assert_eq!(status, 200, "{text}");
    let predictions = json_of(&text)["predictions"].clone();
    let ids: Vec<u64> = predictions
        .as_array()
        .expect("list")
        .iter()
        .map(|p| p["prediction_id"].as_u64().expect("id"))
        .collect();
    assert_eq!(ids, (1..=40).collect::<Vec<u64>>());

    let (status, _, text) = get("/monitor/data-drift");
    assert_eq!(status, 200, "{text}");
    let drift = json_of(&text);
    assert_eq!(drift["window"], 40);
    assert_eq!(drift["columns"].as_array().map(Vec::len), Some(16));
    // The window's rows are the first 40 training rows: no column drifts from its own data.
    assert_eq!(drift["dataset_drift"], false, "{drift}");
    let (status, _, text) = get("/monitor/data-drift?window=10&format=json");
    assert_eq!((status, json_of(&text)["window"].clone()), (200, json!(10)));
    let (status, _, text) = get("/monitor/data-drift?format=html");
    assert_eq!(status, 200);
    assert!(
        text.starts_with("<!DOCTYPE html>") && text.contains("<svg"),
        "{text}"
    );
    for bad in [
        "window=0",
        "window=51",
        "window=x",
        "format=xml",
        "colour=red",
    ] {
        let (status, _, text) = get(&format!("/monitor/data-drift?{bad}"));
        assert_eq!(status, 422, "{bad}: {text}");
        let path = bad.split('=').next().expect("key");
        assert_eq!(json_of(&text)["details"][0]["path"], path, "{text}");
    }
    let (status, _, text) = get("/monitor/data-drift?window=5");
    assert_eq!(status, 409, "under min_window_rows: {text}");

    let (status, _, text) = get("/monitor/data-quality");
    assert_eq!(status, 200, "{text}");
    let quality = json_of(&text);
    assert_eq!(quality["rows"], json!([210, 40]));
    assert_eq!(quality["columns"].as_array().map(Vec::len), Some(16));
    assert_eq!(quality["duplicate_rows"][1], 0);
    let (status, _, text) = get("/monitor/data-quality?format=html");
    assert!(status == 200 && text.contains("Data quality"), "{text}");

    let (status, _, text) = get("/monitor/target-drift");
    assert_eq!(status, 200, "{text}");
    let target = json_of(&text);
    assert!(target["target"].is_null(), "no labels yet: {target}");
    assert_eq!(target["prediction"]["column"], "prediction");

    // Performance needs labels: 409, then feedback labels 30 rows.
    let (status, _, text) = get("/monitor/model-performance");
    assert_eq!(status, 409, "{text}");
    assert!(text.contains("labelled"), "{text}");
    let labelled = records(&train, 40, true);
    let truth: Vec<&str> = labelled
        .iter()
        .map(|r| r["NObeyesdad"].as_str().expect("label"))
        .collect();
    let feedback: Vec<Value> = (0..30)
        .map(|i| {
            if i % 2 == 0 {
                json!({ "prediction_id": ids[i], "label": truth[i] })
            } else {
                json!({ "id": labelled[i]["id"], "label": truth[i] })
            }
        })
        .collect();
    let post = |path: &str, body: &str| {
        send(
            &s.server,
            "POST",
            path,
            None,
            Some(("application/json", body)),
        )
    };
    let (status, _, text) = post("/feedback", &json!(feedback).to_string());
    assert_eq!(status, 200, "{text}");
    assert_eq!(json_of(&text)["window_labelled"], 30);
    let (status, _, text) = get("/monitor/model-performance");
    assert_eq!(status, 200, "{text}");
    let perf = json_of(&text);
    assert_eq!(perf["rows"], 30);
    // The same accuracy by hand from the served classes.
    let correct = (0..30)
        .filter(|&i| predictions[i]["class"] == truth[i])
        .count();
    let accuracy = perf["accuracy"].as_f64().expect("accuracy");
    assert!((accuracy - correct as f64 / 30.0).abs() < 1e-12, "{perf}");
    let (status, _, text) = get("/monitor/model-performance?format=html");
    assert!(status == 200 && text.contains("F1 per class"), "{text}");
    let (status, _, text) = get("/monitor/target-drift");
    assert_eq!(status, 200);
    assert_eq!(json_of(&text)["labelled_rows"], 30);

    // Feedback errors: bad label and missing key (422 with paths), unknown prediction (404,
    // nothing applied), wrong content type (415), not JSON (400).
    let (status, _, text) = post(
        "/feedback",
        &json!([{ "prediction_id": 1, "label": "Tall" }, { "label": "Normal_Weight" }]).to_string(),
    );
    assert_eq!(status, 422, "{text}");
    let paths: Vec<String> = json_of(&text)["details"]
        .as_array()
        .expect("details")
        .iter()
        .map(|d| d["path"].as_str().expect("path").to_owned())
        .collect();
    assert_eq!(paths, ["[0].label", "[1].prediction_id"]);
    let (status, _, text) = post(
        "/feedback",
        &json!([{ "prediction_id": 31, "label": truth[30] }, { "prediction_id": 999, "label": truth[0] }]).to_string(),
    );
    assert_eq!(status, 404, "{text}");
    assert_eq!(json_of(&text)["details"][0]["path"], "[1]");
    let (_, _, text) = get("/monitor/model-performance");
    assert_eq!(json_of(&text)["rows"], 30, "all or nothing");
    let (status, _, text) = send(
        &s.server,
        "POST",
        "/feedback",
        None,
        Some(("text/plain", "{}")),
    );
    assert_eq!(status, 415, "{text}");
    assert_eq!(post("/feedback", "{").0, 400);

    // Labelled records count as feedback; the window keeps only the newest 50 rows.
    let (status, _, _) = post("/predict", &json!(records(&train, 20, true)).to_string());
    assert_eq!(status, 200);
    let (_, _, text) = get("/monitor/model-performance");
    let perf = json_of(&text);
    assert_eq!(perf["window"], 50);
    // 40 + 20 rows predicted; the oldest 10 (labelled ones among them) left the window.
    assert_eq!(perf["rows"], 20 + 20, "{perf}");
}

#[test]
fn without_reference_or_window_the_reports_say_why() {
    let s = setup(small_window(), None, false);
    let (status, _, text) = send(&s.server, "GET", "/monitor/data-drift", None, None);
    assert_eq!(status, 409);
    assert!(text.contains("--reference"), "{text}");
    let s = setup(
        ServeOptions {
            window: 0,
            ..ServeOptions::default()
        },
        None,
        true,
    );
    let (status, _, text) = send(&s.server, "GET", "/monitor/data-quality", None, None);
    assert_eq!(status, 409);
    assert!(text.contains("--window 0"), "{text}");
}

#[test]
fn wrong_methods_get_405_and_wrong_content_types_415() {
    let s = setup(ServeOptions::default(), None, true);
    for (method, path) in [
        ("GET", "/predict"),
        ("POST", "/health"),
        ("GET", "/admin/reload"),
        ("POST", "/monitor/data-drift"),
    ] {
        let (status, _, text) = send(
            &s.server,
            method,
            path,
            None,
            Some(("application/json", "{}")),
        );
        assert_eq!(status, 405, "{method} {path}: {text}");
        assert!(json_of(&text)["error"].is_string());
    }
    let (status, _, text) = send(
        &s.server,
        "POST",
        "/predict",
        None,
        Some(("text/csv", "a,b\n1,2\n")),
    );
    assert_eq!(status, 415, "{text}");
    assert!(text.contains("application/json"), "{text}");
    let (status, _, _) = send(
        &s.server,
        "POST",
        "/predict",
        None,
        Some(("application/json; charset=utf-8", &record().to_string())),
    );
    assert_eq!(status, 200);
}

#[test]
fn the_servers_predictions_equal_the_trainers_own() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (predictor, trainer, _) = trained(dir.path(), "own", 15);
    let server = Server::start(
        AppState::new(predictor.clone(), ServeOptions::default()),
        SocketAddr::from(([127, 0, 0, 1], 0)),
        2,
    )
    .expect("binds");
    let rows = records(&dir.path().join("train.csv"), 60, false);
    let (status, _, text) = send(
        &server,
        "POST",
        "/predict",
        None,
        Some(("application/json", &json!(rows).to_string())),
    );
    assert_eq!(status, 200, "{text}");
    let served = json_of(&text);
    for (i, p) in served["predictions"]
        .as_array()
        .expect("list")
        .iter()
        .enumerate()
    {
        for (c, class) in predictor.classes().iter().enumerate() {
            let got = p["probabilities"][class].as_f64().expect("p");
            assert!(
                (got - trainer[[i, c]]).abs() < 1e-9,
                "row {i}, {class}: served {got}, trainer {}",
                trainer[[i, c]]
            );
        }
    }
}

#[test]
fn thousands_of_random_requests_on_every_route_get_no_5xx() {
    let s = setup(
        ServeOptions {
            window: 200,
            min_window_rows: 1,
            ..ServeOptions::default()
        },
        None,
        true,
    );
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let fields = [
        "\"prediction_id\"",
        "\"id\"",
        "\"label\"",
        "\"Normal_Weight\"",
        "\"Age\"",
        "\"NObeyesdad\"",
        "1",
        "-1",
        "1e400",
        "null",
        "true",
        "\"\"",
        "18446744073709551616",
    ];
    let pieces = ["{", "}", "[", "]", ":", ",", "\"x\"", "0.5", "{}", "[]"];
    let queries = [
        "",
        "?window=1",
        "?window=0",
        "?window=-3",
        "?window=99999999999999999999",
        "?format=html",
        "?format=",
        "?=",
        "?&&",
        "?window",
        "?window=5&window=6",
        "?%ff=1",
        "?format=json&x=y",
    ];
    let routes = [
        "/monitor/data-drift",
        "/monitor/target-drift",
        "/monitor/data-quality",
        "/monitor/model-performance",
    ];
    let labelled = records(&s.dir.path().join("train.csv"), 5, true);
    for i in 0..3000u64 {
        let choice = next() % 10;
        let (method, path, body) = match choice {
            0..=3 => {
                let body = if i % 3 == 0 {
                    let mut r = labelled[(next() % 5) as usize].clone();
                    let keys: Vec<String> =
                        r.as_object().expect("object").keys().cloned().collect();
                    let key = &keys[(next() % keys.len() as u64) as usize];
                    r[key] = [
                        json!(null),
                        json!(-1e300),
                        json!("x"),
                        json!([1]),
                        json!({}),
                        json!(7),
                    ][(next() % 6) as usize]
                        .clone();
                    r.to_string()
                } else {
                    (0..(next() % 10))
                        .map(|_| pieces[(next() % pieces.len() as u64) as usize])
                        .collect()
                };
                ("POST", "/predict".to_owned(), Some(body))
            }
            4..=6 => {
                let body: String = (0..(next() % 14))
                    .map(|_| {
                        let all: Vec<&str> = fields.iter().chain(pieces.iter()).copied().collect();
                        all[(next() % all.len() as u64) as usize]
                    })
                    .collect();
                ("POST", "/feedback".to_owned(), Some(body))
            }
            7..=8 => {
                let route = routes[(next() % routes.len() as u64) as usize];
                let q = queries[(next() % queries.len() as u64) as usize];
                ("GET", format!("{route}{q}"), None)
            }
            _ => ("POST", "/admin/reload".to_owned(), None),
        };
        let (status, _, text) = send(
            &s.server,
            method,
            &path,
            None,
            body.as_deref().map(|b| ("application/json", b)),
        );
        assert!(status < 500, "{method} {path} {body:?} -> {status} {text}");
    }
    // Still serving.
    assert_eq!(send(&s.server, "GET", "/health", None, None).0, 200);
}
