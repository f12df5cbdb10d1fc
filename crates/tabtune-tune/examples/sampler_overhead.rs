//! Sampler overhead at a study with many finished trials (benches/run-sampler.sh runs it beside
//! Optuna's TPE on the same history).
//!
//! `cargo run --release -p tabtune-tune --example sampler_overhead -- SPACE.toml N_TRIALS REPEATS
//! HISTORY.json` builds `N_TRIALS` complete trials (random parameters, a fixed synthetic
//! objective), writes them to `HISTORY.json` for the Python peer, then times `REPEATS` proposals
//! of each sampler at that history and prints one JSON object: milliseconds per proposal.
#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::{Value, json};
use tabtune_tune::{
    Direction, FrozenTrial, ParamValue, SearchSpace, TrialState, sampler_from_name,
};

/// A fixed objective over whatever parameters a trial has (smaller is better).
fn objective(params: &BTreeMap<String, ParamValue>) -> f64 {
    params
        .iter()
        .enumerate()
        .map(|(i, (name, v))| {
            let x = v
                .as_f64()
                .unwrap_or_else(|| name.len() as f64 + v.to_string().len() as f64);
            let x = if x > 0.0 { x.ln_1p() } else { x };
            (x - 0.3 * i as f64).powi(2)
        })
        .sum()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, space, n, repeats, history] = args.as_slice() else {
        return Err("usage: sampler_overhead SPACE.toml N_TRIALS REPEATS HISTORY.json".into());
    };
    let space = SearchSpace::from_toml_file(std::path::Path::new(space))?;
    let n: u64 = n.parse()?;
    let repeats: u64 = repeats.parse()?;
    let random = sampler_from_name("random", 0, &space)?;
    let mut trials = Vec::new();
    for number in 0..n {
        let proposal = random.sample(&space, &trials, Direction::Minimize, number)?;
        let mut t = FrozenTrial::new(number as i64, number);
        for (name, d, v) in proposal {
            t.params.insert(name.clone(), v);
            t.distributions.insert(name, d);
        }
        t.state = TrialState::Complete;
        t.value = Some(objective(&t.params));
        trials.push(t);
    }
    let rows: Vec<Value> = trials
        .iter()
        .map(|t| {
            let params: serde_json::Map<String, Value> = t
                .params
                .iter()
                .map(|(k, v)| (k.clone(), v.to_json()))
                .collect();
            json!({"params": params, "value": t.value})
        })
        .collect();
    std::fs::write(history, serde_json::to_string(&rows)?)?;
    let mut out = serde_json::Map::new();
    out.insert("n_trials".into(), json!(n));
    for name in ["tpe-multivariate", "tpe", "random", "qmc"] {
        let sampler = sampler_from_name(name, 1, &space)?;
        let start = Instant::now();
        for r in 0..repeats {
            let p = sampler.sample(&space, &trials, Direction::Minimize, n + r)?;
            std::hint::black_box(p);
        }
        let ms = start.elapsed().as_secs_f64() * 1e3 / repeats as f64;
        out.insert(format!("{name}_ms"), json!(ms));
    }
    println!("{}", Value::Object(out));
    Ok(())
}
