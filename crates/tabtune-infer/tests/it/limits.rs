//! The server's limits against real sockets on 127.0.0.1 (issue 17): the amplification body,
//! an over-limit `Content-Length`, slow headers, a stalled body, idle connections, connections
//! beyond the cap, and a self-loop bundle reloaded into a live server followed by a good one.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tabtune_features::io::{seal_manifest, sha256_file};
use tabtune_infer::load_bundle;
use tabtune_infer::serve::{AppState, ModelSource, ReloadError, ServeOptions, Server};

use crate::{predictor, record, trained};

fn start(options: ServeOptions) -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = predictor(dir.path());
    let server = Server::start(
        AppState::new(p, options),
        SocketAddr::from(([127, 0, 0, 1], 0)),
        2,
    )
    .expect("binds");
    (dir, server)
}

/// An HTTP client that gives up after 20 s (a hung server fails the test instead of hanging it).
fn client() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into()
}

fn post(server: &Server, path: &str, body: &str) -> (u16, String) {
    let mut r = client()
        .post(&format!("http://{}{path}", server.addr()))
        .header("content-type", "application/json")
        .send(body)
        .expect("request");
    (
        r.status().as_u16(),
        r.body_mut().read_to_string().expect("body"),
    )
}

fn health(server: &Server) -> u16 {
    client()
        .get(&format!("http://{}/health", server.addr()))
        .call()
        .expect("health answers")
        .status()
        .as_u16()
}

/// A raw connection with a read timeout.
fn raw(server: &Server, timeout: Duration) -> TcpStream {
    let s = TcpStream::connect(server.addr()).expect("connect");
    s.set_read_timeout(Some(timeout)).expect("timeout");
    s
}

/// Reads until the server closes the connection (or `limit` passes: `None`); returns what came.
fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Option<String> {
    let started = Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while started.elapsed() < limit {
        match stream.read(&mut buf) {
            Ok(0) => return Some(String::from_utf8_lossy(&out).into_owned()),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return Some(String::from_utf8_lossy(&out).into_owned());
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("read: {e}"),
        }
    }
    None
}

fn json_body(response: &str) -> Value {
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    serde_json::from_str(body).unwrap_or(Value::String(body.to_owned()))
}

#[test]
fn an_amplification_body_gets_a_short_answer_at_once() {
    let (_dir, server) = start(ServeOptions::default());
    // 340,000 empty records in 1 MB: over the records limit, refused before validation.
    let body = format!("[{}]", vec!["{}"; 340_000].join(","));
    assert!(body.len() < 1 << 20);
    let (status, text) = post(&server, "/predict", &body);
    assert_eq!(status, 413, "{text}");
    assert!(text.len() < 1000, "{} bytes", text.len());
    let v: Value = serde_json::from_str(&text).expect("JSON");
    assert!(
        v["error"]
            .as_str()
            .is_some_and(|e| e.contains("340000 records") && e.contains("at most 10000")),
        "{v}"
    );
    // 10,000 empty records (the limit): 160,000 problems, 100 listed, all counted.
    let body = format!("[{}]", vec!["{}"; 10_000].join(","));
    let (status, text) = post(&server, "/predict", &body);
    assert_eq!(status, 422);
    assert!(text.len() < 64 << 10, "{} bytes", text.len());
    let v: Value = serde_json::from_str(&text).expect("JSON");
    let features = 16;
    assert_eq!(v["errors_total"], json!(10_000 * features));
    assert_eq!(v["details"].as_array().map(Vec::len), Some(100));
    assert!(
        v["error"]
            .as_str()
            .is_some_and(|e| e.contains("the first 100 are listed")),
        "{v}"
    );
    // The same for feedback.
    let (status, _) = post(
        &server,
        "/feedback",
        &format!("[{}]", vec!["{}"; 10_001].join(",")),
    );
    assert_eq!(status, 413);
    // A value of 500 kB is quoted by its first 200 bytes and its length.
    let mut big = record();
    big["Gender"] = json!("x".repeat(500_000));
    let (status, text) = post(&server, "/predict", &big.to_string());
    assert_eq!(status, 422);
    assert!(text.len() < 2000 && text.contains("bytes in all"), "{text}");
    assert_eq!(health(&server), 200);
}

#[test]
fn an_over_limit_content_length_is_refused_before_the_body_and_as_json() {
    let options = ServeOptions {
        max_body_bytes: 1000,
        ..ServeOptions::default()
    };
    let (_dir, server) = start(options);
    // Headers only: the server must not wait for 100 MB that never come.
    let mut s = raw(&server, Duration::from_millis(200));
    s.write_all(
        b"POST /predict HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100000000\r\n\r\n",
    )
    .expect("write");
    let answer = read_until_closed(&mut s, Duration::from_secs(5)).expect("answered and closed");
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    let v = json_body(&answer);
    assert!(
        v["error"]
            .as_str()
            .is_some_and(|e| e.contains("100000000 bytes") && e.contains("at most 1000")),
        "{answer}"
    );
    // A chunked body that grows past the limit: 413 as JSON too.
    let (status, text) = post(&server, "/predict", &"[".repeat(5000));
    assert_eq!(status, 413, "{text}");
    assert!(serde_json::from_str::<Value>(&text).is_ok(), "{text}");
}

#[test]
fn slow_headers_stalled_bodies_and_idle_connections_are_closed() {
    let options = ServeOptions {
        header_timeout: Duration::from_millis(600),
        idle_timeout: Duration::from_millis(800),
        body_timeout: Duration::from_millis(600),
        ..ServeOptions::default()
    };
    let (_dir, server) = start(options);
    // One header byte every 100 ms (slowloris): closed soon after the header timeout.
    let mut s = raw(&server, Duration::from_millis(50));
    let started = Instant::now();
    s.write_all(b"GET /health HTTP/1.1\r\n").expect("write");
    let mut closed = None;
    for b in b"x-slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        .iter()
        .cycle()
    {
        if s.write_all(&[*b]).is_err() {
            closed = Some(started.elapsed());
            break;
        }
        if let Some(rest) = read_until_closed(&mut s, Duration::from_millis(100)) {
            assert!(rest.is_empty() || rest.contains("408"), "{rest}");
            closed = Some(started.elapsed());
            break;
        }
        if started.elapsed() > Duration::from_secs(8) {
            break;
        }
    }
    let closed = closed.expect("the slow connection was closed");
    assert!(closed < Duration::from_secs(3), "closed after {closed:?}");
    // Nothing sent at all: closed after the idle timeout.
    let mut idle = raw(&server, Duration::from_millis(100));
    let started = Instant::now();
    let rest = read_until_closed(&mut idle, Duration::from_secs(5)).expect("closed");
    assert!(rest.is_empty(), "{rest}");
    assert!(started.elapsed() < Duration::from_secs(3));
    // Keep-alive: one request, then silence: closed after the idle timeout.
    let mut keep = raw(&server, Duration::from_millis(100));
    keep.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        .expect("write");
    let started = Instant::now();
    let answer = read_until_closed(&mut keep, Duration::from_secs(5)).expect("closed");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(3));
    // A body that stops coming: 408 as JSON, then closed.
    let mut stalled = raw(&server, Duration::from_millis(100));
    stalled
        .write_all(b"POST /predict HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n[{\"Age\":")
        .expect("write");
    let answer = read_until_closed(&mut stalled, Duration::from_secs(5)).expect("closed");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        json_body(&answer)["error"]
            .as_str()
            .is_some_and(|e| e.contains("did not arrive"))
    );
    assert_eq!(health(&server), 200);
}

#[test]
fn idle_connections_beyond_the_cap_make_room_and_health_answers() {
    let options = ServeOptions {
        max_connections: 8,
        idle_timeout: Duration::from_mins(1),
        header_timeout: Duration::from_mins(1),
        ..ServeOptions::default()
    };
    let (_dir, server) = start(options);
    let mut idle: Vec<TcpStream> = (0..40)
        .map(|_| {
            let s = raw(&server, Duration::from_millis(20));
            // Let the server accept it before the next one.
            std::thread::sleep(Duration::from_millis(5));
            s
        })
        .collect();
    let started = Instant::now();
    assert_eq!(health(&server), 200, "a new client is served at the cap");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        server.open_connections() <= 8,
        "{}",
        server.open_connections()
    );
    // The idle connections beyond the cap were closed by the server (oldest first).
    let closed = idle
        .iter_mut()
        .filter_map(|s| read_until_closed(s, Duration::from_millis(200)))
        .count();
    assert!(closed >= 32, "{closed} of 40 idle connections closed");
    // When every connection is busy, a new one gets 503 JSON at once.
    drop(idle);
    std::thread::sleep(Duration::from_millis(200));
    let busy: Vec<TcpStream> = (0..8)
        .map(|_| {
            let mut s = raw(&server, Duration::from_millis(20));
            // Headers done, body pending: a request in progress.
            s.write_all(b"POST /predict HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\n[")
                .expect("write");
            std::thread::sleep(Duration::from_millis(20));
            s
        })
        .collect();
    let mut extra = raw(&server, Duration::from_millis(100));
    let answer = read_until_closed(&mut extra, Duration::from_secs(5)).expect("answered");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        json_body(&answer)["error"]
            .as_str()
            .is_some_and(|e| e.contains("--max-connections"))
    );
    drop(busy);
}

/// Copies a bundle folder, makes node `left` of the first split of the first tree point at
/// itself, and reseals checksums and manifest (only the structural check can catch it).
fn self_loop_copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("list") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
    }
    let model = to.join("model.json");
    let mut v: Value = serde_json::from_slice(&std::fs::read(&model).expect("read")).expect("json");
    let nodes = v["trees"][0][0]["nodes"].as_array_mut().expect("nodes");
    let i = nodes
        .iter()
        .position(|n| n["kind"] == "split")
        .expect("a split");
    nodes[i]["left"] = json!(i);
    std::fs::write(&model, serde_json::to_vec(&v).expect("json")).expect("write");
    let meta_path = to.join("bundle.json");
    let mut meta: Value =
        serde_json::from_slice(&std::fs::read(&meta_path).expect("read")).expect("json");
    meta["files"]["model.json"] = json!(sha256_file(&model).expect("sha"));
    seal_manifest(&mut meta);
    std::fs::write(&meta_path, serde_json::to_vec(&meta).expect("json")).expect("write");
}

#[test]
fn a_self_loop_bundle_reloaded_into_a_live_server_is_refused_then_a_good_one_serves() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (first, _, _) = trained(dir.path(), "first", 6);
    let (_, good_proba, good_table) = trained(dir.path(), "good", 14);
    let looped = dir.path().join("looped");
    self_loop_copy(&dir.path().join("first"), &looped);
    let current: Arc<Mutex<PathBuf>> = Arc::new(Mutex::new(dir.path().join("first")));
    let source = current.clone();
    let state = AppState::new(first, ServeOptions::default()).with_source(ModelSource {
        description: "test".into(),
        reload: Arc::new(move || {
            let path = source.lock().expect("lock").clone();
            load_bundle(&path).map_err(|e| ReloadError {
                message: e.to_string(),
                bad_input: e.is_bad_input(),
            })
        }),
    });
    let server = Server::start(state, SocketAddr::from(([127, 0, 0, 1], 0)), 2).expect("binds");
    let predict = |server: &Server| post(server, "/predict", &record().to_string());
    assert_eq!(predict(&server).0, 200);

    *current.lock().expect("lock") = looped;
    let (status, text) = post(&server, "/admin/reload", "");
    assert_eq!(status, 409, "{text}");
    assert!(
        text.contains("model.json")
            && text.contains("a second time")
            && text.contains("still serving first"),
        "{text}"
    );
    // Still serving, promptly, the old model.
    let started = Instant::now();
    let (status, text) = predict(&server);
    assert_eq!(status, 200, "{text}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        serde_json::from_str::<Value>(&text).expect("json")["model"],
        "first"
    );

    *current.lock().expect("lock") = dir.path().join("good");
    let (status, text) = post(&server, "/admin/reload", "");
    assert_eq!(status, 200, "{text}");
    // The good model serves, and gives the trainer's own probabilities.
    let path = dir.path().join("train.csv");
    let text = std::fs::read_to_string(path).expect("csv");
    let header: Vec<&str> = text.lines().next().expect("header").split(',').collect();
    let row: Vec<&str> = text.lines().nth(1).expect("row").split(',').collect();
    let mut rec = serde_json::Map::new();
    for (h, f) in header.iter().zip(&row) {
        if *h == "NObeyesdad" {
            continue;
        }
        let v = match f.parse::<f64>() {
            Ok(x) if *h != "id" => json!(x),
            _ => json!(f),
        };
        rec.insert((*h).to_owned(), v);
    }
    let (status, text) = post(&server, "/predict", &Value::Object(rec).to_string());
    assert_eq!(status, 200, "{text}");
    let answer: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(answer["model"], "good");
    let classes = load_bundle(&dir.path().join("good"))
        .expect("loads")
        .classes()
        .to_vec();
    assert_eq!(good_table.rows[0], 2, "the first data row");
    for (label, class) in classes.iter().enumerate() {
        let p = answer["probabilities"][class].as_f64().expect("p");
        assert!((p - good_proba[[0, label]]).abs() < 1e-9, "{class}: {p}");
    }
    server.stop().expect("stops");
}

#[test]
fn shutdown_does_not_wait_for_idle_connections() {
    let (_dir, server) = start(ServeOptions {
        idle_timeout: Duration::from_mins(1),
        ..ServeOptions::default()
    });
    let _idle: Vec<TcpStream> = (0..5)
        .map(|_| raw(&server, Duration::from_millis(20)))
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    server.stop().expect("stops");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn zero_limits_are_refused_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = predictor(dir.path());
    let options = ServeOptions {
        max_connections: 0,
        ..ServeOptions::default()
    };
    let err = Server::start(
        AppState::new(p, options),
        SocketAddr::from(([127, 0, 0, 1], 0)),
        1,
    )
    .err()
    .expect("refused");
    assert!(err.to_string().contains("max_connections is 0"), "{err}");
}
