//! Benchmarks of the batched tree fit on a feature table (what `tabtune features --output`
//! writes: an optional `id` column, numeric features, the class label last). Fold `f` of 5 holds
//! the rows `i` with `i % 5 == f`. Every fit computes every round's validation metrics (what a
//! sweep's pruner needs). Prints one JSON object per line.
//!
//! ```text
//! batched_bench cpu FEATURES.csv [ROUNDS] [STYLES]
//!     per growth style (default leafwise,depthwise,oblivious): the 5 folds of the style's
//!     default parameters (quantize = nearest) fitted one after another by the engine, and as
//!     one batch on the CPU; both models compared (they must be identical); the default
//!     unquantized engine timed too, for reference.
//! batched_bench gpu FEATURES.csv DEVICE [ROUNDS] [TRIALS] [PARAMS_OUT]
//!     DEVICE = cuda:N or wgpu. One depth-wise fit of ROUNDS (default 500) rounds on fold 0
//!     (the default parameters), then TRIALS (default 32) random depth-wise trials × 5 folds as
//!     one batch. Writes the trials' parameters to PARAMS_OUT (JSON), for the XGBoost peer
//!     (benches/trees_gpu_peer.py) to fit the same 160 models.
//! batched_bench check FEATURES.csv DEVICE
//!     per growth style, a small batch (2 trials x 3 folds, 15 rounds, sampling and stochastic
//!     rounding on) on DEVICE and on the CPU: the trees must be the same (splits exactly, leaf
//!     values within 1e-6); exits non-zero otherwise.
//! ```
#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::time::Instant;

use ndarray::{Array2, Axis};
use tabtune_features::rng::SplitMix64;
use tabtune_models::gbdt::batched::{
    BatchData, BatchDevice, BatchMember, BatchOptions, MemberFit, fit_batched,
};
use tabtune_models::gbdt::{GbdtModel, GbdtParams, Growth, Labelled, Node};
use tabtune_models::metrics::Control;

type Error = Box<dyn std::error::Error>;

/// The table: features, labels, names, classes.
struct Table {
    x: Array2<f32>,
    y: Vec<u32>,
    names: Vec<String>,
    n_classes: usize,
}

fn load(path: &str) -> Result<Table, Error> {
    let text = std::fs::read_to_string(path)?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().ok_or("empty file")?.split(',').collect();
    let skip_id = usize::from(header.first() == Some(&"id"));
    let names: Vec<String> = header[skip_id..header.len() - 1]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    let mut classes = BTreeMap::new();
    let (mut values, mut labels) = (Vec::new(), Vec::new());
    for line in lines {
        let fields: Vec<&str> = line.split(',').collect();
        let label = *fields.last().ok_or("empty line")?;
        let n = classes.len();
        labels.push(*classes.entry(label.to_owned()).or_insert(n));
        for v in &fields[skip_id..fields.len() - 1] {
            values.push(v.parse::<f32>()?);
        }
    }
    // Class codes in label order, as the trainer numbers them.
    let mut order = vec![0u32; classes.len()];
    for (rank, &code) in classes.values().enumerate() {
        order[code] = rank as u32;
    }
    let y: Vec<u32> = labels.into_iter().map(|c| order[c]).collect();
    let x = Array2::from_shape_vec((y.len(), names.len()), values)?;
    Ok(Table {
        x,
        y,
        names,
        n_classes: classes.len(),
    })
}

fn folds(n: usize) -> Vec<(Vec<u32>, Vec<u32>)> {
    (0..5u32)
        .map(|f| {
            let (valid, train): (Vec<u32>, Vec<u32>) = (0..n as u32).partition(|r| r % 5 == f);
            (train, valid)
        })
        .collect()
}

/// The engine alone on one fold with the batch's bins (`data`) or its own (`None`).
fn fit_alone(
    t: &Table,
    p: &GbdtParams,
    train: &[u32],
    valid: &[u32],
    data: Option<&BatchData>,
) -> Result<GbdtModel, Error> {
    let idx = |r: &[u32]| r.iter().map(|&i| i as usize).collect::<Vec<_>>();
    let (tr, va) = (idx(train), idx(valid));
    let tx = t.x.select(Axis(0), &tr);
    let ty: Vec<u32> = tr.iter().map(|&i| t.y[i]).collect();
    let vx = t.x.select(Axis(0), &va);
    let vy: Vec<u32> = va.iter().map(|&i| t.y[i]).collect();
    let bins = data.map(|d| d.binned(tx.view(), Some(vx.view())));
    Ok(GbdtModel::fit_binned(
        &p.check(t.n_classes)?,
        &t.names,
        t.n_classes,
        Labelled {
            x: tx.view(),
            y: &ty,
        },
        Some(Labelled {
            x: vx.view(),
            y: &vy,
        }),
        &mut |_, _| Control::Continue,
        bins.as_ref(),
    )?)
}

fn last_accuracy(fits: &[MemberFit]) -> f64 {
    fits.iter()
        .map(|f| f.evals.last().map_or(0.0, |e| e.accuracy))
        .sum::<f64>()
        / fits.len() as f64
}

fn growth_of(name: &str) -> Result<Growth, Error> {
    Ok(match name {
        "leafwise" => Growth::LeafWise,
        "depthwise" => Growth::DepthWise,
        "oblivious" => Growth::Oblivious,
        other => return Err(format!("unknown style {other}").into()),
    })
}

fn cpu(t: &Table, rounds: usize, styles: &str) -> Result<(), Error> {
    let folds = folds(t.y.len());
    for style in styles.split(',') {
        let mut p = GbdtParams::new(growth_of(style)?);
        p.rounds = rounds;
        let start = Instant::now();
        for (train, valid) in &folds {
            fit_alone(t, &p, train, valid, None)?;
        }
        let unquantized = start.elapsed().as_secs_f64();
        p.set("quantize", "nearest")?;
        // The sequential side bins each fold once (as a sweep's cache does); the batch bins
        // all rows once. Both are timed with their binning.
        let start = Instant::now();
        let data = BatchData::new(t.x.view(), &t.y, t.n_classes, &t.names, 255, false)?;
        let sequential: Vec<GbdtModel> = folds
            .iter()
            .map(|(train, valid)| fit_alone(t, &p, train, valid, Some(&data)))
            .collect::<Result<_, _>>()?;
        let sequential_s = start.elapsed().as_secs_f64();
        let start = Instant::now();
        let data = BatchData::new(t.x.view(), &t.y, t.n_classes, &t.names, 255, false)?;
        let members: Vec<BatchMember> = folds
            .iter()
            .map(|(train, valid)| BatchMember {
                params: p.clone(),
                train: train.clone(),
                valid: valid.clone(),
            })
            .collect();
        let fits = fit_batched(&data, &members, &BatchOptions::default(), &mut |_| {
            Control::Continue
        })?;
        let batched_s = start.elapsed().as_secs_f64();
        let identical = fits.iter().zip(&sequential).all(|(f, m)| f.model == *m);
        println!(
            "{{\"bench\": \"batched_cpu\", \"style\": \"{style}\", \"rounds\": {rounds}, \
             \"folds\": 5, \"rows\": {}, \"features\": {}, \"threads\": {}, \
             \"sequential_quantized_s\": {sequential_s:.3}, \"batched_s\": {batched_s:.3}, \
             \"batched_speedup\": {:.3}, \"sequential_unquantized_s\": {unquantized:.3}, \
             \"identical_models\": {identical}, \"accuracy_last_round\": {:.5}}}",
            t.y.len(),
            t.names.len(),
            rayon::current_num_threads(),
            sequential_s / batched_s,
            last_accuracy(&fits)
        );
        if !identical {
            return Err(format!("{style}: the batch's models differ from the engine's").into());
        }
    }
    Ok(())
}

/// `TRIALS` random depth-wise parameter sets (seeded), the XGBoost-compatible ones.
fn trials(n: usize, rounds: usize) -> Vec<GbdtParams> {
    let mut rng = SplitMix64::new(2024);
    let mut u = move || (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    let log_uniform = move |lo: f64, hi: f64, u: f64| (lo.ln() + u * (hi / lo).ln()).exp();
    (0..n)
        .map(|_| {
            let mut p = GbdtParams::new(Growth::DepthWise);
            p.rounds = rounds;
            p.quantize = tabtune_models::gbdt::Quantize::Nearest;
            p.learning_rate = log_uniform(0.02, 0.3, u());
            p.max_depth = 3 + (u() * 6.0) as usize;
            p.lambda = log_uniform(1e-3, 10.0, u());
            p.alpha = if u() < 0.5 {
                0.0
            } else {
                log_uniform(1e-3, 1.0, u())
            };
            p.min_child_weight = log_uniform(1e-3, 10.0, u());
            p.min_data_in_leaf = 1;
            p.subsample = 0.6 + 0.4 * u();
            p.colsample_bytree = 0.5 + 0.5 * u();
            p
        })
        .collect()
}

fn device_of(name: &str) -> Result<BatchDevice, Error> {
    Ok(match name {
        "cpu" => BatchDevice::Cpu,
        "wgpu" => BatchDevice::Wgpu,
        "cuda" => BatchDevice::Cuda(0),
        other => match other.strip_prefix("cuda:") {
            Some(i) => BatchDevice::Cuda(i.parse()?),
            None => return Err(format!("unknown device {other}").into()),
        },
    })
}

fn gpu(
    t: &Table,
    device: &str,
    rounds: usize,
    n_trials: usize,
    params_out: Option<&str>,
) -> Result<(), Error> {
    let options = BatchOptions {
        device: device_of(device)?,
        ..BatchOptions::default()
    };
    let folds = folds(t.y.len());
    let data = BatchData::new(t.x.view(), &t.y, t.n_classes, &t.names, 255, false)?;
    let run = |members: &[BatchMember]| -> Result<(Vec<MemberFit>, f64), Error> {
        let start = Instant::now();
        let fits = fit_batched(&data, members, &options, &mut |_| Control::Continue)?;
        Ok((fits, start.elapsed().as_secs_f64()))
    };
    // Warm-up: kernels compile on first use.
    let mut p = GbdtParams::new(Growth::DepthWise);
    p.quantize = tabtune_models::gbdt::Quantize::Nearest;
    p.rounds = 2;
    let one = |p: &GbdtParams| BatchMember {
        params: p.clone(),
        train: folds[0].0.clone(),
        valid: folds[0].1.clone(),
    };
    let (_, warm) = run(&[one(&p)])?;
    p.rounds = rounds;
    let (fit, seconds) = run(&[one(&p)])?;
    println!(
        "{{\"bench\": \"tree_single_fit\", \"device\": \"{device}\", \"rounds\": {rounds}, \
         \"rows\": {}, \"features\": {}, \"seconds\": {seconds:.3}, \"warmup_s\": {warm:.3}, \
         \"accuracy\": {:.5}, \"logloss\": {:.5}}}",
        folds[0].0.len(),
        t.names.len(),
        fit[0].evals.last().map_or(0.0, |e| e.accuracy),
        fit[0].evals.last().map_or(0.0, |e| e.logloss)
    );
    let trials = trials(n_trials, rounds);
    if let Some(path) = params_out {
        let json: Vec<String> = trials
            .iter()
            .map(|p| {
                format!(
                    "{{\"learning_rate\": {}, \"max_depth\": {}, \"lambda\": {}, \"alpha\": {}, \
                     \"min_child_weight\": {}, \"subsample\": {}, \"colsample_bytree\": {}, \
                     \"rounds\": {}}}",
                    p.learning_rate,
                    p.max_depth,
                    p.lambda,
                    p.alpha,
                    p.min_child_weight,
                    p.subsample,
                    p.colsample_bytree,
                    p.rounds
                )
            })
            .collect();
        std::fs::write(path, format!("[{}]\n", json.join(",\n")))?;
    }
    let members: Vec<BatchMember> = trials
        .iter()
        .flat_map(|p| {
            folds.iter().map(move |(train, valid)| BatchMember {
                params: p.clone(),
                train: train.clone(),
                valid: valid.clone(),
            })
        })
        .collect();
    let (fits, seconds) = run(&members)?;
    let per_trial: Vec<f64> = fits.chunks(5).map(last_accuracy).collect();
    let best = per_trial.iter().copied().fold(0.0f64, f64::max);
    println!(
        "{{\"bench\": \"tree_batch\", \"device\": \"{device}\", \"trials\": {n_trials}, \
         \"folds\": 5, \"fits\": {}, \"rounds\": {rounds}, \"seconds\": {seconds:.3}, \
         \"fits_per_second\": {:.4}, \"best_trial_cv_accuracy\": {best:.5}, \
         \"mean_trial_cv_accuracy\": {:.5}}}",
        fits.len(),
        fits.len() as f64 / seconds,
        per_trial.iter().sum::<f64>() / per_trial.len() as f64
    );
    Ok(())
}

/// Device vs CPU on small batches of every growth style.
fn check(t: &Table, device: &str) -> Result<(), Error> {
    let folds = folds(t.y.len());
    let data = BatchData::new(t.x.view(), &t.y, t.n_classes, &t.names, 255, false)?;
    let mut failed = false;
    for style in ["depthwise", "leafwise", "oblivious"] {
        let growth = growth_of(style)?;
        let mut members = Vec::new();
        for (i, extra) in [
            &[("subsample", "0.8"), ("colsample_bynode", "0.7")][..],
            &[
                ("quantize", "stochastic"),
                ("lambda", "3"),
                ("max_depth", "4"),
            ][..],
        ]
        .iter()
        .enumerate()
        {
            let mut p = GbdtParams::new(growth);
            p.set("rounds", "15")?;
            p.set("learning_rate", "0.2")?;
            p.set("quantize", "nearest")?;
            p.set("seed", &format!("{}", 7 + i))?;
            for (name, value) in *extra {
                p.set(name, value)?;
            }
            for (train, valid) in folds.iter().take(3) {
                members.push(BatchMember {
                    params: p.clone(),
                    train: train.clone(),
                    valid: valid.clone(),
                });
            }
        }
        let fit = |options: &BatchOptions| {
            fit_batched(&data, &members, options, &mut |_| Control::Continue)
        };
        let cpu = fit(&BatchOptions::default())?;
        let gpu = fit(&BatchOptions {
            device: device_of(device)?,
            ..BatchOptions::default()
        })?;
        let (mut leaves, mut exact, mut max_diff, mut same) = (0usize, 0usize, 0.0f32, true);
        for (g, c) in gpu.iter().zip(&cpu) {
            same &= g.model.trees.len() == c.model.trees.len() && g.rounds == c.rounds;
            for (a, b) in g
                .model
                .trees
                .iter()
                .flatten()
                .zip(c.model.trees.iter().flatten())
            {
                same &= a.nodes.len() == b.nodes.len();
                for (na, nb) in a.nodes.iter().zip(&b.nodes) {
                    match (na, nb) {
                        (Node::Leaf { value: va }, Node::Leaf { value: vb }) => {
                            leaves += 1;
                            exact += usize::from(va == vb);
                            max_diff = max_diff.max((va - vb).abs());
                        }
                        _ => same &= na == nb,
                    }
                }
            }
        }
        let pass = same && max_diff <= 1e-6;
        failed |= !pass;
        println!(
            "{{\"check\": \"batched_device_equals_cpu\", \"style\": \"{style}\", \"device\": \
             \"{device}\", \"members\": {}, \"leaves\": {leaves}, \"bit_identical\": {exact}, \
             \"max_leaf_diff\": {max_diff:e}, \"same_splits\": {same}, \"pass\": {pass}}}",
            members.len()
        );
    }
    if failed {
        return Err("the device's trees differ from the CPU reference".into());
    }
    Ok(())
}

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: batched_bench cpu FEATURES.csv [ROUNDS] [STYLES] | batched_bench gpu \
                 FEATURES.csv DEVICE [ROUNDS] [TRIALS] [PARAMS_OUT] | batched_bench check \
                 FEATURES.csv DEVICE";
    let (mode, path) = match (args.first(), args.get(1)) {
        (Some(m), Some(p)) => (m.as_str(), p.as_str()),
        _ => return Err(usage.into()),
    };
    let t = load(path)?;
    match mode {
        "cpu" => cpu(
            &t,
            args.get(2).map_or(Ok(500), |r| r.parse())?,
            args.get(3)
                .map_or("leafwise,depthwise,oblivious", String::as_str),
        ),
        "gpu" => gpu(
            &t,
            args.get(2).ok_or(usage)?,
            args.get(3).map_or(Ok(500), |r| r.parse())?,
            args.get(4).map_or(Ok(32), |r| r.parse())?,
            args.get(5).map(String::as_str),
        ),
        "check" => check(&t, args.get(2).ok_or(usage)?),
        _ => Err(usage.into()),
    }
}
