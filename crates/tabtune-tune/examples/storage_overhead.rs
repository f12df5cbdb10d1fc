//! Per-trial overhead of a study on a SQLite file (ask: stale check, claim or create, sample,
//! write params, heartbeat; report x3; tell), with the random sampler and a trivial objective,
//! so that storage and bookkeeping are all that is timed. The Python peer
//! (`benches/storage_optuna.py`) does the same with Optuna's RDB storage; `benches/run-storage.sh`
//! runs both.
//!
//! Usage: `storage_overhead DB_PATH N_TRIALS` — prints one JSON object: total seconds, mean ms per
//! trial, mean ms per trial over the last 100 trials (the study then holds ~N trials).
#![allow(clippy::print_stdout)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tabtune_tune::executor::{OptimizeOptions, TrialError, WorkerContext, optimize};
use tabtune_tune::storage::{self, Storage};
use tabtune_tune::study::{Engine, Study, TrialHandle};
use tabtune_tune::{
    Choice, Direction, Distribution, ParamSpec, SearchSpace, pruner_from_name, sampler_from_name,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(db), Some(n)) = (args.get(1), args.get(2)) else {
        return Err("usage: storage_overhead DB_PATH N_TRIALS".into());
    };
    let n: u64 = n.parse()?;
    let float = |low, high, log| Distribution::Float {
        low,
        high,
        log,
        step: None,
    };
    let space = SearchSpace::new(
        vec![
            ParamSpec::new("x", float(-5.0, 5.0, false)),
            ParamSpec::new("lr", float(1e-3, 1.0, true)),
            ParamSpec::new(
                "n",
                Distribution::Int {
                    low: 1,
                    high: 9,
                    log: false,
                    step: 2,
                },
            ),
            ParamSpec::new(
                "kind",
                Distribution::Categorical {
                    choices: vec![Choice::Str("a".into()), Choice::Str("b".into())],
                },
            ),
        ],
        std::collections::BTreeMap::new(),
        None,
        None,
    )?;
    let sampler = sampler_from_name("random", 1, &space)?;
    let mut engine = Engine::new(space, sampler, pruner_from_name("none")?);
    engine.heartbeat_interval = Duration::from_mins(1);
    let storage: Arc<dyn Storage> = Arc::new(storage::open(&format!("sqlite:///{db}"))?);
    let study = Study::open(storage, "overhead", Direction::Minimize, engine)?;
    let starts = Mutex::new(Vec::with_capacity(n as usize));
    let objective = |h: &mut TrialHandle, _: WorkerContext| -> Result<f64, TrialError> {
        starts
            .lock()
            .map_err(|e| e.to_string())?
            .push(Instant::now());
        let x = h.param("x")?.as_f64().unwrap_or(0.0);
        for step in 0..3 {
            h.report(step, x * x + step as f64)?;
        }
        Ok(x * x)
    };
    let options = OptimizeOptions {
        n_trials: Some(n),
        ..OptimizeOptions::default()
    };
    let t0 = Instant::now();
    optimize(&study, &objective, &options, None)?;
    let total = t0.elapsed().as_secs_f64();
    let starts = starts.into_inner().map_err(|e| e.to_string())?;
    let k = starts.len().min(101);
    let last = &starts[starts.len() - k..];
    let last_ms = (last[k - 1] - last[0]).as_secs_f64() * 1e3 / (k - 1) as f64;
    println!(
        "{{\"n_trials\": {n}, \"seconds\": {total:.3}, \"ms_per_trial\": {:.3}, \"ms_per_trial_last_100\": {last_ms:.3}}}",
        total * 1e3 / n as f64
    );
    Ok(())
}
