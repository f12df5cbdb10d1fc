//! Profiling aid for population training on the CPU: times ONE run, either P MLP trials as one
//! population or the same P trials one after another, so `perf record` sees one mode only.
//!
//! `nn_profile DATA.csv population|sequential P EPOCHS [KEY=VALUE ...]`
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::time::Instant;

use tabtune_features::io::{LoadOptions, load_table};
use tabtune_features::{Config, PreprocessorSpec};
use tabtune_models::metrics::Control;
use tabtune_models::nn::{NetKind, NeuralParams};
use tabtune_train::nn::{DeviceChoice, EpochMetrics, Member, PopulationData, train_population};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = std::path::PathBuf::from(&args[0]);
    let mode = args[1].clone();
    let p: usize = args[2].parse().unwrap();
    let epochs: usize = args[3].parse().unwrap();
    let config_path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/obesity.toml");
    let config = Config::load(&config_path).unwrap();
    let table = load_table(&path, &config.schema, &LoadOptions::default())
        .unwrap()
        .table;
    let spec = PreprocessorSpec::from_config(&config);
    let m = spec.fit(&table).unwrap().transform(&table).unwrap();
    let y = m.target.clone().unwrap();
    let data = PopulationData::single(&m.names, m.classes.len(), m.values.view(), &y).unwrap();
    let all: Vec<usize> = (0..table.n_rows()).collect();
    let members: Vec<Member> = (0..p)
        .map(|i| {
            let mut params = NeuralParams::new(NetKind::Mlp);
            params.epochs = epochs;
            params.patience = 0;
            for kv in &args[4..] {
                let (k, v) = kv.split_once('=').unwrap();
                params.set(k, v).unwrap();
            }
            params.learning_rate = 1e-3 * (1.0 + i as f64 * 0.25);
            params.seed = i as u64;
            Member {
                params,
                block: 0,
                train_rows: all.clone(),
                valid_rows: Vec::new(),
            }
        })
        .collect();
    let cpu = DeviceChoice::cpu("profile");
    // Seconds at the end of each epoch of member 0 (of each run, when sequential).
    let mut stamps = Vec::new();
    let mut hook = |m: usize, e: &EpochMetrics| {
        if m == 0 {
            stamps.push(e.seconds);
        }
        Control::Continue
    };
    let start = Instant::now();
    if mode == "population" {
        train_population(&data, &members, &cpu, &mut hook).unwrap();
    } else {
        for m in &members {
            train_population(&data, std::slice::from_ref(m), &cpu, &mut hook).unwrap();
        }
    }
    println!(
        "{}",
        serde_json::json!({"mode": mode, "members": p, "epochs": epochs,
            "rows": table.n_rows(), "seconds": start.elapsed().as_secs_f64(),
            "epoch_end_seconds": stamps})
    );
}
