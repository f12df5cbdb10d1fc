//! In-process prediction speed of a bundle on raw rows (the work behind one `/predict` call,
//! without HTTP): single-row latency and batch throughput. Run by `benches/run-serve.sh`:
//!
//! `cargo bench -p tabtune-infer --bench predict -- --model DIR --input FILE [--single N] [--repeat R]`
//!
//! Prints one JSON object on stdout.
#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::time::Instant;

use tabtune_features::TargetPresence;
use tabtune_features::io::LoadOptions;
use tabtune_infer::load_bundle;

fn percentile(sorted: &[f64], q: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut model = None;
    let mut input = None;
    let mut single = 2000usize;
    let mut repeat = 10usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--model" => model = args.next().map(PathBuf::from),
            "--input" => input = args.next().map(PathBuf::from),
            "--single" => single = args.next().ok_or("--single N")?.parse()?,
            "--repeat" => repeat = args.next().ok_or("--repeat R")?.parse()?,
            // cargo bench passes --bench; ignore it.
            _ => {}
        }
    }
    let (Some(model), Some(input)) = (model, input) else {
        return Err("usage: predict --model DIR --input FILE [--single N] [--repeat R]".into());
    };
    let predictor = load_bundle(&model)?;
    let options = LoadOptions {
        target: TargetPresence::Optional,
        ..LoadOptions::default()
    };
    let table = predictor.load(&input, &options)?.table;
    let n = table.n_rows();
    let single = single.min(n);
    // Single rows: one-row tables cut beforehand (the server parses JSON into one), then
    // preprocess + predict per call, as /predict does.
    let rows: Vec<_> = (0..single).map(|i| table.select_rows(&[i])).collect();
    for r in rows.iter().take(100) {
        predictor.predict(r)?;
    }
    let mut latencies = Vec::with_capacity(single);
    for r in &rows {
        let t = Instant::now();
        let p = predictor.predict(r)?;
        latencies.push(t.elapsed().as_secs_f64());
        std::hint::black_box(p);
    }
    latencies.sort_by(f64::total_cmp);
    let mean = latencies.iter().sum::<f64>() / latencies.len() as f64;
    predictor.predict(&table)?;
    let mut batch = Vec::with_capacity(repeat);
    for _ in 0..repeat {
        let t = Instant::now();
        let p = predictor.predict(&table)?;
        batch.push(t.elapsed().as_secs_f64());
        std::hint::black_box(p);
    }
    batch.sort_by(f64::total_cmp);
    let median = batch[batch.len() / 2];
    println!(
        "{}",
        serde_json::json!({
            "impl": "tabtune",
            "model": predictor.bundle().meta.name,
            "family": predictor.bundle().meta.family,
            "single_rows": single,
            "single_p50_us": 1e6 * percentile(&latencies, 0.5),
            "single_p99_us": 1e6 * percentile(&latencies, 0.99),
            "single_mean_us": 1e6 * mean,
            "batch_rows": n,
            "batch_median_s": median,
            "batch_rows_per_s": n as f64 / median,
        })
    );
    Ok(())
}
