//! The serving soak (benches/run-soak.sh, benches/README.md "Serving soak"): the server under a
//! fixed rate of mixed valid and invalid requests plus slow connections, measured from the
//! client side. Three modes:
//!
//! - `soak bundle --train FILE --config FILE --out DIR`: fits the benchmark's leaf-wise GBDT
//!   (200 rounds, learning rate 0.1, 31 leaves, no L2) and saves it as a bundle;
//! - `soak serve --model DIR [--port P] [--threads T]`: serves it with the default limits
//!   (`ServeOptions::default()`); prints `listening on http://ADDR` on stderr;
//! - `soak load --addr HOST:PORT --rows FILE [--rate R] [--seconds S] [--connections C]
//!   [--slow N] [--burst-amplification K]`: an open-loop load of R requests/s for S seconds
//!   over C keep-alive connections (each request is due at `start + i / R`; its latency is
//!   counted from that moment, so a stalled server cannot hide its queue), mixed: 65% one valid
//!   record, 10% a batch of 10 valid records, 25% invalid (a missing field, a wrong type, an
//!   unknown level, malformed JSON, an empty list, and every 100th invalid one a 1 MB body of
//!   340,000 empty records or 10,000 empty records); plus N slow connections that send one
//!   header byte a second (slowloris) and reconnect when the server closes them (`--valid-only`:
//!   every request valid, to tell the mix's cost from the rest). With
//!   `--burst-amplification K` it first sends K amplification bodies back to back. Prints one
//!   JSON object on stdout.
//!
//! Plain blocking sockets and threads: the client is simple, and HTTP/1.1 with
//! `Content-Length` answers is all it needs to read.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

type Error = Box<dyn std::error::Error>;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn num<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> Result<T, Error> {
    match arg(args, name) {
        Some(v) => v
            .parse()
            .map_err(|_| format!("{name} {v}: not a number").into()),
        None => Ok(default),
    }
}

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("bundle") => bundle(&args),
        Some("serve") => serve(&args),
        Some("load") => load(&args),
        _ => Err("usage: soak bundle|serve|load ... (see the file's docs)".into()),
    }
}

fn bundle(args: &[String]) -> Result<(), Error> {
    use tabtune_features::io::{LoadOptions, load_table};
    use tabtune_features::{Config, PreprocessorSpec};
    use tabtune_models::AnyModel;
    use tabtune_models::bundle::{Bundle, BundleMeta, TrainingData};
    use tabtune_models::gbdt::{GbdtParams, Growth, Labelled};
    let train = PathBuf::from(arg(args, "--train").ok_or("--train FILE")?);
    let config = Config::load(&PathBuf::from(
        arg(args, "--config").ok_or("--config FILE")?,
    ))?;
    let out = PathBuf::from(arg(args, "--out").ok_or("--out DIR")?);
    let table = load_table(&train, &config.schema, &LoadOptions::default())?.table;
    let pre = PreprocessorSpec::from_config(&config).fit(&table)?;
    let m = pre.transform(&table)?;
    let y = m.target.clone().ok_or("the training file has no target")?;
    let mut p = GbdtParams::new(Growth::LeafWise);
    p.rounds = 200;
    p.learning_rate = 0.1;
    p.num_leaves = 31;
    p.lambda = 0.0;
    let model = p.fit(
        &m.names,
        pre.labels.classes.len(),
        Labelled {
            x: m.values.view(),
            y: &y,
        },
        None,
    )?;
    let data = TrainingData {
        file: train.display().to_string(),
        sha256: tabtune_features::io::sha256_file(&train)?,
        rows: table.n_rows(),
    };
    let meta = BundleMeta::new("soak", "gbdt-leafwise", &pre, json!({}), data);
    Bundle {
        meta,
        model: AnyModel::Gbdt(model),
        preprocessor: pre,
    }
    .save(&out)?;
    eprintln!("soak: bundle saved to {}", out.display());
    Ok(())
}

fn serve(args: &[String]) -> Result<(), Error> {
    use tabtune_infer::serve::{AppState, ServeOptions, Server};
    let model = PathBuf::from(arg(args, "--model").ok_or("--model DIR")?);
    let port: u16 = num(args, "--port", 0)?;
    let threads: usize = num(args, "--threads", 2)?;
    let predictor = tabtune_infer::load_bundle(&model)?;
    let state = AppState::new(predictor, ServeOptions::default());
    let server = Server::start(state, SocketAddr::from(([127, 0, 0, 1], port)), threads)?;
    eprintln!("soak: listening on http://{}", server.addr());
    server.run_until_signal()?;
    Ok(())
}

/// Request kinds, for counting (latencies are kept for the valid ones).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Valid,
    ValidBatch,
    Invalid,
    Amplification,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::Valid => "valid",
            Self::ValidBatch => "valid_batch_10",
            Self::Invalid => "invalid",
            Self::Amplification => "amplification",
        }
    }
}

/// The first `n` data rows of the test CSV as JSON records.
fn records(path: &PathBuf, n: usize) -> Result<Vec<Value>, Error> {
    let text = std::fs::read_to_string(path)?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().ok_or("empty file")?.split(',').collect();
    Ok(lines
        .take(n)
        .map(|line| {
            let mut map = serde_json::Map::new();
            for (h, f) in header.iter().zip(line.split(',')) {
                let v = match f.parse::<f64>() {
                    Ok(x) if *h != "id" => json!(x),
                    _ => json!(f),
                };
                map.insert((*h).to_owned(), v);
            }
            Value::Object(map)
        })
        .collect())
}

/// The body of request `i`.
fn body(i: u64, rows: &[Value], amplification: &str, empties: &str) -> (Kind, String) {
    let row = &rows[i as usize % rows.len()];
    match i % 20 {
        0..13 => (Kind::Valid, row.to_string()),
        13 | 14 => {
            let batch: Vec<&Value> = (0..10)
                .map(|k| &rows[(i as usize + k) % rows.len()])
                .collect();
            (Kind::ValidBatch, json!(batch).to_string())
        }
        _ => {
            let invalid = i / 20;
            if invalid % 100 == 7 {
                return (Kind::Amplification, amplification.to_owned());
            }
            if invalid % 100 == 57 {
                return (Kind::Amplification, empties.to_owned());
            }
            let mut r = row.clone();
            let text = match invalid % 5 {
                0 => {
                    r.as_object_mut().map(|m| m.remove("Weight"));
                    r.to_string()
                }
                1 => {
                    r["Age"] = json!("old");
                    r.to_string()
                }
                2 => {
                    r["MTRANS"] = json!("Rocket");
                    r.to_string()
                }
                3 => "{\"Age\": ".to_owned(),
                _ => "[]".to_owned(),
            };
            (Kind::Invalid, text)
        }
    }
}

/// One keep-alive HTTP/1.1 connection.
struct Conn {
    addr: SocketAddr,
    reader: Option<BufReader<TcpStream>>,
}

impl Conn {
    fn stream(&mut self) -> std::io::Result<&mut BufReader<TcpStream>> {
        if self.reader.is_none() {
            let s = TcpStream::connect(self.addr)?;
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(Duration::from_secs(30)))?;
            self.reader = Some(BufReader::new(s));
        }
        Ok(self.reader.as_mut().expect("connected above"))
    }

    /// Sends one POST /predict and returns the status (the connection is dropped when the
    /// server closes it or on any error).
    fn post(&mut self, body: &str) -> std::io::Result<u16> {
        let result = self.post_once(body);
        if result.is_err() {
            self.reader = None;
        }
        result
    }

    fn post_once(&mut self, body: &str) -> std::io::Result<u16> {
        let reader = self.stream()?;
        let head = format!(
            "POST /predict HTTP/1.1\r\nhost: soak\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        let stream = reader.get_mut();
        stream.write_all(head.as_bytes())?;
        stream.write_all(body.as_bytes())?;
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
        let mut length = 0usize;
        let mut close = false;
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                return Err(std::io::Error::other("closed in the headers"));
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((k, v)) = header.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                } else if k.eq_ignore_ascii_case("connection") && v.trim() == "close" {
                    close = true;
                }
            }
        }
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body)?;
        if close {
            self.reader = None;
        }
        Ok(status)
    }
}

#[derive(Default)]
struct Tally {
    /// Latencies of valid requests, µs, with their due time (s since start).
    valid: Vec<(f64, u64)>,
    statuses: BTreeMap<(Kind, u16), u64>,
    errors: u64,
}

fn percentile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i] as f64 / 1000.0
}

fn load(args: &[String]) -> Result<(), Error> {
    let addr: SocketAddr = arg(args, "--addr").ok_or("--addr HOST:PORT")?.parse()?;
    let rows = records(
        &PathBuf::from(arg(args, "--rows").ok_or("--rows FILE")?),
        500,
    )?;
    let rate: f64 = num(args, "--rate", 1000.0)?;
    let seconds: f64 = num(args, "--seconds", 120.0)?;
    let connections: usize = num(args, "--connections", 64)?;
    let slow: usize = num(args, "--slow", 200)?;
    let burst: usize = num(args, "--burst-amplification", 0)?;
    let valid_only = args.iter().any(|a| a == "--valid-only");
    let amplification = Arc::new(format!("[{}]", vec!["{}"; 340_000].join(",")));
    let empties = Arc::new(format!("[{}]", vec!["{}"; 10_000].join(",")));

    // The amplification bodies alone, back to back, before the soak.
    let mut burst_status = BTreeMap::new();
    let burst_started = Instant::now();
    let mut c = Conn { addr, reader: None };
    for _ in 0..burst {
        let s = c.post(&amplification).map_or(0, |s| s);
        *burst_status.entry(s).or_insert(0u64) += 1;
    }
    let burst_seconds = burst_started.elapsed().as_secs_f64();

    let stop = Arc::new(AtomicBool::new(false));
    let slow_opened = Arc::new(AtomicU64::new(0));
    let slow_closed = Arc::new(AtomicU64::new(0));
    let slow_threads: Vec<_> = (0..slow)
        .map(|k| {
            let (stop, opened, closed) = (stop.clone(), slow_opened.clone(), slow_closed.clone());
            std::thread::spawn(move || {
                // Spread the slow clients' starts over the first second.
                std::thread::sleep(Duration::from_millis(
                    (k as u64 * 1000) / slow.max(1) as u64,
                ));
                while !stop.load(Ordering::Relaxed) {
                    let Ok(mut s) = TcpStream::connect(addr) else {
                        std::thread::sleep(Duration::from_millis(100));
                        continue;
                    };
                    opened.fetch_add(1, Ordering::Relaxed);
                    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
                    let _ = s.write_all(b"POST /predict HTTP/1.1\r\nx-slow: ");
                    let mut buf = [0u8; 512];
                    loop {
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        // One byte a second; the server should close us after its header
                        // timeout.
                        if s.write_all(b"a").is_err() {
                            closed.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                        match s.read(&mut buf) {
                            Ok(0) => {
                                closed.fetch_add(1, Ordering::Relaxed);
                                break;
                            }
                            Ok(_) => {}
                            Err(e)
                                if matches!(
                                    e.kind(),
                                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                                ) => {}
                            Err(_) => {
                                closed.fetch_add(1, Ordering::Relaxed);
                                break;
                            }
                        }
                    }
                }
            })
        })
        .collect();
    // Let the slow connections settle in before timing.
    std::thread::sleep(Duration::from_secs(2));

    let total = (rate * seconds) as u64;
    let next = Arc::new(AtomicU64::new(0));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let rows = Arc::new(rows);
    let start = Instant::now();
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let (next, tally, rows) = (next.clone(), tally.clone(), rows.clone());
            let (amplification, empties) = (amplification.clone(), empties.clone());
            std::thread::spawn(move || {
                let mut conn = Conn { addr, reader: None };
                let mut local = Tally::default();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        break;
                    }
                    let due = start + Duration::from_secs_f64(i as f64 / rate);
                    let now = Instant::now();
                    if due > now {
                        std::thread::sleep(due - now);
                    }
                    // `--valid-only`: the same schedule with the invalid requests made valid.
                    let pick = if valid_only {
                        i - i % 20 + (i % 20) % 13
                    } else {
                        i
                    };
                    let (kind, text) = body(pick, &rows, &amplification, &empties);
                    match conn.post(&text) {
                        Ok(status) => {
                            *local.statuses.entry((kind, status)).or_default() += 1;
                            if matches!(kind, Kind::Valid | Kind::ValidBatch) && status == 200 {
                                let latency = due.elapsed().as_micros() as u64;
                                local.valid.push(((due - start).as_secs_f64(), latency));
                            }
                        }
                        Err(_) => local.errors += 1,
                    }
                }
                let mut t = tally.lock().expect("no panics while locked");
                t.valid.extend(local.valid);
                for (k, v) in local.statuses {
                    *t.statuses.entry(k).or_default() += v;
                }
                t.errors += local.errors;
            })
        })
        .collect();
    for w in workers {
        w.join().map_err(|_| "a load thread panicked")?;
    }
    let elapsed = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in slow_threads {
        let _ = t.join();
    }
    let tally = tally.lock().map_err(|_| "poisoned")?;
    let mut all: Vec<u64> = tally.valid.iter().map(|(_, l)| *l).collect();
    all.sort_unstable();
    // p99 per 10 s window: a latency that grows over the run shows here.
    let mut windows = Vec::new();
    let mut w = 0.0;
    while w < seconds {
        let mut part: Vec<u64> = tally
            .valid
            .iter()
            .filter(|(t, _)| *t >= w && *t < w + 10.0)
            .map(|(_, l)| *l)
            .collect();
        part.sort_unstable();
        windows
            .push(json!({"from_s": w, "requests": part.len(), "p99_ms": percentile(&part, 0.99)}));
        w += 10.0;
    }
    let statuses: BTreeMap<String, u64> = tally
        .statuses
        .iter()
        .map(|((k, s), n)| (format!("{} {s}", k.name()), *n))
        .collect();
    let sent: u64 = tally.statuses.values().sum::<u64>() + tally.errors;
    let out = json!({
        "rate_target": rate,
        "rate_achieved": sent as f64 / elapsed,
        "seconds": elapsed,
        "connections": connections,
        "valid_only": valid_only,
        "requests": sent,
        "transport_errors": tally.errors,
        "statuses": statuses,
        "valid_200": all.len(),
        "valid_latency_ms": {
            "p50": percentile(&all, 0.5),
            "p90": percentile(&all, 0.9),
            "p99": percentile(&all, 0.99),
            "p999": percentile(&all, 0.999),
            "max": percentile(&all, 1.0),
        },
        "valid_p99_ms_per_10s": windows,
        "slow_connections": {
            "clients": slow,
            "opened": slow_opened.load(Ordering::Relaxed),
            "closed_by_server": slow_closed.load(Ordering::Relaxed),
        },
        "burst_amplification": {
            "requests": burst,
            "seconds": burst_seconds,
            "statuses": burst_status.iter().map(|(s, n)| (s.to_string(), *n)).collect::<BTreeMap<_, _>>(),
        },
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
