//! Times the boosting rounds of the sweep benchmark's five startup trials (the trials a median
//! pruner cannot stop, where a pruned sweep spends its time) on a feature table, without the
//! CLI, the preprocessing or the study around them.
//!
//! Usage: `cargo run -p tabtune-models --example gbdt_rounds -- FEATURES.csv [THREADS] [REPEATS]
//! [TRIALS]` where FEATURES.csv is what `tabtune features --output` writes (an optional `id` column, numeric
//! features, the class label last). Every fifth row is a validation row; every round's
//! validation metrics are computed, as a sweep's pruner needs them. Prints one line per trial
//! and the total (best of REPEATS, default 3). TRIALS (say `0,2`) runs only those trials.

#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::time::Instant;

use ndarray::Array2;
use tabtune_models::gbdt::{BinnedData, GbdtModel, GbdtParams, Growth, Labelled};
use tabtune_models::metrics::Control;

/// The startup trials of `benches/run-sweep.sh` (TPE's random start, seed 42), rounded.
const TRIALS: [&[(&str, &str)]; 5] = [
    &[
        ("learning_rate", "0.108"),
        ("num_leaves", "18"),
        ("min_data_in_leaf", "9"),
        ("lambda", "1e-6"),
        ("subsample", "0.617"),
        ("colsample_bytree", "0.694"),
    ],
    &[
        ("learning_rate", "0.064"),
        ("num_leaves", "52"),
        ("min_data_in_leaf", "11"),
        ("lambda", "1e-6"),
        ("subsample", "0.98"),
        ("colsample_bytree", "0.952"),
    ],
    &[
        ("learning_rate", "0.074"),
        ("num_leaves", "17"),
        ("min_data_in_leaf", "24"),
        ("lambda", "0.376"),
        ("subsample", "0.789"),
        ("colsample_bytree", "0.507"),
    ],
    &[
        ("learning_rate", "0.13"),
        ("num_leaves", "29"),
        ("min_data_in_leaf", "9"),
        ("lambda", "1e-6"),
        ("subsample", "0.717"),
        ("colsample_bytree", "0.962"),
    ],
    &[
        ("learning_rate", "0.234"),
        ("num_leaves", "71"),
        ("min_data_in_leaf", "65"),
        ("lambda", "0.001"),
        ("subsample", "0.877"),
        ("colsample_bytree", "0.841"),
    ],
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = args
        .first()
        .ok_or("usage: gbdt_rounds FEATURES.csv [THREADS] [REPEATS] [TRIALS]")?;
    let threads: usize = args.get(1).map_or(Ok(0), |t| t.parse())?;
    let repeats: usize = args.get(2).map_or(Ok(3), |t| t.parse())?;
    let chosen: Vec<usize> = match args.get(3) {
        Some(list) => list.split(',').map(str::parse).collect::<Result<_, _>>()?,
        None => (0..TRIALS.len()).collect(),
    };
    let text = std::fs::read_to_string(path)?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().ok_or("empty file")?.split(',').collect();
    let skip_id = usize::from(header.first() == Some(&"id"));
    let n_features = header.len() - 1 - skip_id;
    let names: Vec<String> = header[skip_id..header.len() - 1]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    let mut classes = BTreeMap::new();
    let (mut train, mut valid) = ((Vec::new(), Vec::new()), (Vec::new(), Vec::new()));
    for (i, line) in lines.enumerate() {
        let fields: Vec<&str> = line.split(',').collect();
        let label = *fields.last().ok_or("empty line")?;
        let n = classes.len();
        let class = *classes.entry(label.to_owned()).or_insert(n);
        let side = if i % 5 == 0 { &mut valid } else { &mut train };
        for v in &fields[skip_id..fields.len() - 1] {
            side.0.push(v.parse::<f32>()?);
        }
        side.1.push(class);
    }
    // Class codes in label order, as a trainer numbers them.
    let order: Vec<u32> = {
        let mut codes = vec![0u32; classes.len()];
        for (rank, &code) in classes.values().enumerate() {
            codes[code] = rank as u32;
        }
        codes
    };
    let relabel = |y: Vec<usize>| -> Vec<u32> { y.into_iter().map(|c| order[c]).collect() };
    let (train_y, valid_y) = (relabel(train.1), relabel(valid.1));
    let train_x = Array2::from_shape_vec((train_y.len(), n_features), train.0)?;
    let valid_x = Array2::from_shape_vec((valid_y.len(), n_features), valid.0)?;
    let n_classes = classes.len();
    let bins = BinnedData::new(train_x.view(), Some(valid_x.view()), &[], 255);
    println!(
        "{} training rows, {} validation rows, {n_features} features, {n_classes} classes, \
         threads {threads}",
        train_y.len(),
        valid_y.len()
    );
    let mut best_total = f64::INFINITY;
    for repeat in 0..repeats {
        let mut total = 0.0;
        for (t, trial) in TRIALS.iter().enumerate() {
            if !chosen.contains(&t) {
                continue;
            }
            let mut p = GbdtParams::new(Growth::LeafWise);
            for (name, value) in [
                ("rounds", "300"),
                ("early_stopping_rounds", "30"),
                ("threads", &threads.to_string()),
            ]
            .iter()
            .chain(trial.iter())
            {
                p.set(name, value)?;
            }
            let mut rounds = 0;
            let mut accuracy = 0.0;
            let start = Instant::now();
            GbdtModel::fit_binned(
                &p.check(n_classes)?,
                &names,
                n_classes,
                Labelled {
                    x: train_x.view(),
                    y: &train_y,
                },
                Some(Labelled {
                    x: valid_x.view(),
                    y: &valid_y,
                }),
                &mut |_, eval| {
                    rounds += 1;
                    accuracy = eval.map_or(0.0, |e| e.accuracy);
                    Control::Continue
                },
                Some(&bins),
            )?;
            let seconds = start.elapsed().as_secs_f64();
            total += seconds;
            if repeat == 0 {
                println!("trial {t}: {rounds} rounds, {seconds:.3} s, last accuracy {accuracy:.4}");
            }
        }
        println!("repeat {repeat}: {total:.3} s");
        best_total = best_total.min(total);
    }
    println!("best total: {best_total:.3} s");
    Ok(())
}
