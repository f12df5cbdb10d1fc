//! Neural benchmarks (driven by benches/run-nn.sh; prints one JSON object per measurement).
//!
//! `nn_bench epoch DATA.csv EPOCHS [DEVICE]`: MLP (3 × 256, ReLU, dropout 0.1, batch 256,
//! AdamW) epoch time on the preprocessed table, with the shape for the PyTorch peer.
//! `nn_bench population DATA.csv P EPOCHS [DEVICE]`: P MLP trials (different learning rates and
//! seeds) as one population vs the same P trials one after another.
//! `nn_bench population-vs-one DATA.csv P EPOCHS [DEVICE]`: P trials as one population vs ONE
//! trial (the GPU target: 64 trials in under 3× one trial's time).
//! `nn_bench cv DATA.csv MODEL [DEVICE [KEY=VALUE ...]]`: 5-fold CV of `mlp` or `tabm` with its
//! defaults, or with the given hyperparameters overridden (the folds train as one population), as
//! `tabtune train --model MODEL --param KEY=VALUE` runs it.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::time::Instant;

use tabtune_features::io::{LoadOptions, load_table};
use tabtune_features::{Config, PreprocessorSpec};
use tabtune_models::metrics::Control;
use tabtune_models::nn::{NetKind, NeuralParams};
use tabtune_train::nn::{
    DeviceRequest, EpochMetrics, Member, PopulationData, device, train_population,
};

fn mlp(epochs: usize) -> NeuralParams {
    let mut p = NeuralParams::new(NetKind::Mlp);
    p.epochs = epochs;
    p.patience = 0;
    p
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map_or("epoch", String::as_str).to_owned();
    let path = std::path::PathBuf::from(args.get(1).expect("usage: nn_bench MODE DATA.csv ..."));
    let config = Config::load(&tabtune_test::default_config()).unwrap();
    let table = load_table(&path, &config.schema, &LoadOptions::default())
        .unwrap()
        .table;
    let spec = PreprocessorSpec::from_config(&config);
    let m = spec.fit(&table).unwrap().transform(&table).unwrap();
    let n_classes = m.classes.len();
    let y = m.target.clone().unwrap();
    let data = PopulationData::single(&m.names, n_classes, m.values.view(), &y).unwrap();
    let all: Vec<usize> = (0..table.n_rows()).collect();
    let number = |i: usize, default: usize| args.get(i).map_or(default, |s| s.parse().unwrap());
    let device_arg = |i: usize| args.get(i).map_or("cpu", String::as_str).to_owned();
    let member = |params: NeuralParams| Member {
        params,
        block: 0,
        train_rows: all.clone(),
        valid_rows: Vec::new(),
    };
    match mode.as_str() {
        "epoch" => {
            let epochs = number(2, 5);
            let choice = device::select(DeviceRequest::parse(&device_arg(3)).unwrap()).unwrap();
            let mut stamps = Vec::new();
            let start = Instant::now();
            let mut hook = |_: usize, _: &EpochMetrics| {
                stamps.push(start.elapsed().as_secs_f64());
                Control::Continue
            };
            train_population(&data, &[member(mlp(epochs))], &choice, &mut hook).unwrap();
            // Epoch times after the first (warm-up) epoch.
            let times: Vec<f64> = stamps.windows(2).map(|w| w[1] - w[0]).collect();
            let mut sorted = times.clone();
            sorted.sort_by(f64::total_cmp);
            println!(
                "{}",
                serde_json::json!({
                    "bench": "mlp_epoch",
                    "device": choice.name,
                    "adapter": choice.adapter,
                    "rows": table.n_rows(),
                    "features": m.names.len(),
                    "classes": n_classes,
                    "depth": 3, "width": 256, "batch_size": 256, "dropout": 0.1,
                    "epoch_seconds": times,
                    "epoch_seconds_median": sorted.get(sorted.len() / 2),
                })
            );
        }
        "population" | "population-vs-one" => {
            let p = number(2, 16);
            let epochs = number(3, 3);
            let choice = device::select(DeviceRequest::parse(&device_arg(4)).unwrap()).unwrap();
            let members: Vec<Member> = (0..p)
                .map(|i| {
                    let mut params = mlp(epochs);
                    params.learning_rate = 1e-3 * (1.0 + i as f64 * 0.25);
                    params.seed = i as u64;
                    member(params)
                })
                .collect();
            let mut cont = |_: usize, _: &EpochMetrics| Control::Continue;
            // Warm-up, one epoch of each shape timed below: a GPU compiles (and autotunes) its
            // kernels per tensor shape, so a population of P needs its own warm-up.
            let warm: Vec<Member> = members
                .iter()
                .map(|m| {
                    let mut m = m.clone();
                    m.params.epochs = 1;
                    m
                })
                .collect();
            train_population(&data, &warm[..1], &choice, &mut cont).unwrap();
            train_population(&data, &warm, &choice, &mut cont).unwrap();
            let start = Instant::now();
            train_population(&data, &members, &choice, &mut cont).unwrap();
            let together = start.elapsed().as_secs_f64();
            let (baseline, label) = if mode == "population" {
                let start = Instant::now();
                for m in &members {
                    train_population(&data, std::slice::from_ref(m), &choice, &mut cont).unwrap();
                }
                (start.elapsed().as_secs_f64(), "sequential_seconds")
            } else {
                let start = Instant::now();
                train_population(&data, &members[..1], &choice, &mut cont).unwrap();
                (start.elapsed().as_secs_f64(), "one_trial_seconds")
            };
            println!(
                "{}",
                serde_json::json!({
                    "bench": mode,
                    "device": choice.name,
                    "adapter": choice.adapter,
                    "members": p,
                    "epochs": epochs,
                    "rows": table.n_rows(),
                    "population_seconds": together,
                    label: baseline,
                    "ratio": baseline / together,
                })
            );
        }
        "cv" => {
            let model = args.get(2).map_or("mlp", String::as_str);
            let choice = device::select(DeviceRequest::parse(&device_arg(3)).unwrap()).unwrap();
            let family = tabtune_train::Family::parse(model).unwrap();
            let overrides: Vec<(String, String)> = args
                .iter()
                .skip(4)
                .map(|kv| {
                    let (k, v) = kv.split_once('=').expect("overrides are KEY=VALUE");
                    (k.to_owned(), v.to_owned())
                })
                .collect();
            let params = family.params(&overrides).unwrap();
            let kfold = tabtune_features::KFold {
                folds: 5,
                repeats: 1,
                seed: config.cv.seed,
                stratify: true,
            };
            let report = tabtune_train::cross_validate_on(
                &table,
                &spec,
                &params,
                kfold,
                &choice,
                &mut |_| {},
                &mut |_, _| Control::Continue,
            )
            .unwrap();
            println!(
                "{}",
                serde_json::json!({
                    "bench": "cv",
                    "model": model,
                    "overrides": overrides,
                    "device": choice.name,
                    "adapter": choice.adapter,
                    "folds": report.folds.len(),
                    "accuracy_mean": report.accuracy_mean,
                    "accuracy_std": report.accuracy_std,
                    "logloss_mean": report.logloss_mean,
                    "best_epochs": report.folds.iter().map(|f| f.rounds).collect::<Vec<_>>(),
                    "seconds": report.seconds,
                })
            );
        }
        other => {
            panic!("unknown mode {other}; expected epoch, population, population-vs-one or cv")
        }
    }
}
