//! `tabtune serve`: a real process, a real client, a graceful stop on SIGTERM.

use std::process::{Command, Stdio};

use tabtune_test::synthetic_obesity_csv;

use crate::{json_of, listening_url, tabtune};

#[test]
fn serve_prints_its_url_answers_and_stops_on_sigterm() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("t.csv");
    std::fs::write(&path, synthetic_obesity_csv(140, 2)).expect("write");
    json_of(
        tabtune(tmp.path())
            .args([
                "train",
                "--json",
                "--model",
                "gbdt-depthwise",
                "--folds",
                "2",
                "--param",
                "rounds=5",
                "--save",
                "b",
                "--input",
            ])
            .arg(&path),
        0,
    );
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("tabtune"))
        .current_dir(tmp.path())
        .args(["--config"])
        .arg(tabtune_test::default_config())
        .args(["serve", "--model", "b", "--port", "0"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    let url = listening_url(&mut child);
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut r = agent.get(&format!("{url}/health")).call().expect("health");
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.body_mut().read_to_string().expect("body").contains("ok"));
    let record = std::fs::read_to_string(&path).expect("csv");
    let fields: Vec<&str> = record.lines().nth(1).expect("row").split(',').collect();
    let header: Vec<&str> = tabtune_test::OBESITY_HEADER.split(',').collect();
    let mut body = serde_json::Map::new();
    for (h, f) in header.iter().zip(&fields).take(17) {
        let v = f
            .parse::<f64>()
            .map_or_else(|_| serde_json::json!(f), |x| serde_json::json!(x));
        body.insert(
            (*h).to_owned(),
            if *h == "id" { serde_json::json!(f) } else { v },
        );
    }
    let mut r = agent
        .post(&format!("{url}/predict"))
        .header("content-type", "application/json")
        .send(serde_json::Value::Object(body).to_string())
        .expect("predict");
    let text = r.body_mut().read_to_string().expect("body");
    assert_eq!(r.status().as_u16(), 200, "{text}");
    assert!(text.contains("\"class\""), "{text}");

    // Every row through the server equals `tabtune predict` on the same file and bundle:
    // same class, probabilities within the CSV's 6 decimals.
    let body: Vec<serde_json::Value> = record
        .lines()
        .skip(1)
        .map(|line| {
            let mut obj = serde_json::Map::new();
            for (h, f) in header.iter().zip(line.split(',')).take(17) {
                let v = if *h == "id" {
                    serde_json::json!(f)
                } else {
                    f.parse::<f64>()
                        .map_or_else(|_| serde_json::json!(f), |x| serde_json::json!(x))
                };
                obj.insert((*h).to_owned(), v);
            }
            serde_json::Value::Object(obj)
        })
        .collect();
    let mut r = agent
        .post(&format!("{url}/predict"))
        .header("content-type", "application/json")
        .send(serde_json::Value::Array(body).to_string())
        .expect("predict many");
    let text = r.body_mut().read_to_string().expect("body");
    assert_eq!(r.status().as_u16(), 200, "{text}");
    let served: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    let served = served["predictions"].as_array().expect("predictions");
    json_of(
        tabtune(tmp.path())
            .args([
                "predict", "--json", "--model", "b", "--output", "p.csv", "--input",
            ])
            .arg(&path),
        0,
    );
    let batch = std::fs::read_to_string(tmp.path().join("p.csv")).expect("p.csv");
    let mut lines = batch.lines();
    let columns: Vec<&str> = lines.next().expect("header").split(',').collect();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), served.len());
    for (row, item) in rows.iter().zip(served) {
        let predicted = columns
            .iter()
            .position(|c| *c == "predicted")
            .expect("predicted");
        assert_eq!(item["class"], row[predicted], "{item}");
        for (c, name) in columns.iter().enumerate().skip(predicted + 1) {
            let p: f64 = row[c].parse().expect("probability");
            let q = item["probabilities"][*name].as_f64().expect("probability");
            assert!((p - q).abs() < 1e-6, "{name}: batch {p} vs served {q}");
        }
    }

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let exit = child.wait().expect("exits");
    assert_eq!(exit.code(), Some(0), "a graceful stop");
}

#[test]
fn serve_refuses_bad_limits_naming_the_flag() {
    let tmp = tempfile::tempdir().expect("tempdir");
    for (flag, value, expected) in [
        ("--threads", "100000", "this machine has"),
        ("--threads", "0", "an integer in 1..="),
        ("--max-records", "0", "at least 1"),
        ("--max-connections", "0", "at least 1"),
        ("--header-timeout", "0", "a number of seconds"),
        ("--idle-timeout", "nan", "a number of seconds"),
        ("--body-timeout", "1e9", "a number of seconds"),
    ] {
        let out = tabtune(tmp.path())
            .args([
                "serve",
                "--model",
                "missing-bundle",
                "--port",
                "0",
                flag,
                value,
            ])
            .output()
            .expect("runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {stderr}");
        assert!(
            stderr.contains(flag) && stderr.contains(expected),
            "{flag} {value}: {stderr}"
        );
    }
}
