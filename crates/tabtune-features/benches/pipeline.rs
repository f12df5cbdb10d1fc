//! Feature pipeline benchmark, side by side with pandas in the same run: load + validate +
//! engineer + fit + transform `s4e2_train.csv` with the default config and every feature step
//! on (`tabtune_test::engineered_config`: the twelve engineered features, rounding, bins; the
//! default config itself ships the raw columns), in rows per second.
//!
//! Run it with `benches/run-features.sh` (it prepares the pandas venv), or directly:
//! `TABTUNE_DATA_DIR=../shared/data PYTHON=<python with pandas> cargo bench -p tabtune-features
//! --bench pipeline`. Writes `target/bench-results/features_vs_pandas.json`.

#![allow(clippy::print_stdout, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use tabtune_features::io::{LoadOptions, load_table};
use tabtune_features::{Config, PreprocessorSpec};

const WARMUP: usize = 3;
const REPEAT: usize = 30;
const ROUNDS: usize = 3;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; a filter that is not ours means "not this bench".
    if std::env::args()
        .skip(1)
        .any(|a| !a.starts_with('-') && !"pipeline".contains(a.as_str()))
    {
        return;
    }
    let root = workspace();
    let config = Config::from_toml(
        &tabtune_test::engineered_config_text(),
        Path::new("obesity-engineered.toml"),
    )
    .expect("the engineered config");
    let Some(dir) = std::env::var_os("TABTUNE_DATA_DIR").map(PathBuf::from) else {
        eprintln!("error: set TABTUNE_DATA_DIR to the folder with s4e2_train.csv");
        std::process::exit(2);
    };
    let dir = if dir.is_relative() {
        root.join(dir)
    } else {
        dir
    };
    let input = dir.join(&config.data.train);

    let run = || {
        let table = load_table(&input, &config.schema, &LoadOptions::default())
            .expect("valid")
            .table;
        let p = PreprocessorSpec::from_config(&config)
            .fit(&table)
            .expect("fits");
        p.transform(&table).expect("transforms")
    };
    let mut shape = (0, 0);
    for _ in 0..WARMUP {
        let m = run();
        shape = (m.values.nrows(), m.values.ncols());
    }
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let script = root.join("benches/peers/pandas_features.py");
    // Rounds alternate between the two implementations so that a slow spell of this shared
    // machine hits both alike.
    let mut times = Vec::with_capacity(REPEAT);
    let mut peer_times = Vec::with_capacity(REPEAT);
    let mut peer = serde_json::Value::Null;
    for _ in 0..ROUNDS {
        for _ in 0..REPEAT / ROUNDS {
            let t = Instant::now();
            std::hint::black_box(run());
            times.push(t.elapsed().as_secs_f64());
        }
        let out = Command::new(&python)
            .arg(&script)
            .arg("--input")
            .arg(&input)
            .args(["--repeat", &(REPEAT / ROUNDS).to_string(), "--warmup", "1"])
            .output()
            .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
        assert!(
            out.status.success(),
            "the pandas peer failed (is pandas installed for {python}? benches/run-features.sh \
             sets one up):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        peer = serde_json::from_slice(&out.stdout).expect("peer prints JSON");
        peer_times.extend(
            peer["times_s"]
                .as_array()
                .expect("times_s")
                .iter()
                .filter_map(serde_json::Value::as_f64),
        );
    }
    let ours_min = times.iter().copied().fold(f64::INFINITY, f64::min);
    let theirs_min = peer_times.iter().copied().fold(f64::INFINITY, f64::min);
    let ours = median(times);
    let theirs = median(peer_times);
    let rows = shape.0 as f64;
    println!(
        "feature pipeline on {} ({} rows -> {} features), median of {REPEAT}",
        input.display(),
        shape.0,
        shape.1
    );
    println!(
        "{:<22} {:>12} {:>14} {:>12}",
        "implementation", "median ms", "rows/s", "columns"
    );
    println!(
        "{:<22} {:>12.2} {:>14.0} {:>12}",
        "tabtune (Rust)",
        ours * 1e3,
        rows / ours,
        shape.1
    );
    let label = format!("pandas {}", peer["pandas"].as_str().unwrap_or("?"));
    println!(
        "{:<22} {:>12.2} {:>14.0} {:>12}",
        label,
        theirs * 1e3,
        rows / theirs,
        peer["columns"]
    );
    println!(
        "speed-up vs pandas: {:.1}x on medians, {:.1}x on minima (target: >= 5x)",
        theirs / ours,
        theirs_min / ours_min
    );
    let result = serde_json::json!({
        "input": input, "rows": shape.0, "columns": shape.1, "repeat": REPEAT,
        "tabtune_median_s": ours, "tabtune_min_s": ours_min,
        "pandas_median_s": theirs, "pandas_min_s": theirs_min, "pandas_version": peer["pandas"],
        "pandas_columns": peer["columns"], "speedup": theirs / ours,
    });
    let dir = root.join("target/bench-results");
    std::fs::create_dir_all(&dir).expect("results dir");
    std::fs::write(
        dir.join("features_vs_pandas.json"),
        serde_json::to_string_pretty(&result).expect("json"),
    )
    .expect("write results");
}
