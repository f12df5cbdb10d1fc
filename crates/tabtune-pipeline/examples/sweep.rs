//! A sweep from Rust: six pruned trials of the quick GBDT space on the competition's training
//! file, the leaderboard, and the best trial exported as a bundle.
//!
//! ```sh
//! TABTUNE_DATA_DIR=../shared/data cargo run -p tabtune-pipeline --example sweep
//! ```

#![allow(clippy::print_stdout)] // an example prints its results

use std::path::PathBuf;
use std::sync::Arc;

use tabtune_features::Config;
use tabtune_pipeline::export::{ExportSettings, export_trial};
use tabtune_pipeline::tracking::Tracking;
use tabtune_pipeline::{Hooks, Silent, SweepSettings, sweep};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The task: schema, features, transforms and folds. The data folder may be elsewhere.
    let mut config = Config::load("configs/obesity.toml".as_ref())?;
    if let Some(dir) = std::env::var_os("TABTUNE_DATA_DIR") {
        config.data.dir = PathBuf::from(dir);
    }
    let config = Arc::new(config);

    // Six trials, median pruning after each fold, nothing sent to MLflow.
    let mut settings = SweepSettings::new(Arc::clone(&config), "configs/sweeps/quick-gbdt.toml");
    settings.study = Some("example-sweep".into());
    settings.storage = "sqlite:///reports/example-sweep.db".into();
    settings.n_trials = 6;
    settings.pruner = "median:n_startup_trials=2".into();
    settings.top_k = 0;
    settings.tracking = Tracking::off();
    let outcome = sweep(&settings, &Hooks::default())?;

    println!(
        "study {}: {} complete, {} pruned ({})",
        outcome.study,
        outcome.summary.n_complete,
        outcome.summary.n_pruned,
        outcome.stop_reason()
    );
    println!("rank  trial  {:<9} params", outcome.metric.name());
    for (rank, trial) in outcome.ranked().iter().enumerate() {
        let params: Vec<String> = trial
            .params
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        println!(
            "{:>4}  {:>5}  {:<9.5} {}",
            rank + 1,
            trial.number,
            trial.value.unwrap_or(f64::NAN),
            params.join(" ")
        );
    }

    // The best trial, fitted on every row, as a bundle `tabtune predict` and `serve` load.
    let mut export = ExportSettings::new("example-sweep");
    export.storage.clone_from(&settings.storage);
    export.output = Some("checkpoints/example-sweep-best".into());
    let exported = export_trial(&config, &export, &Silent)?;
    println!(
        "best trial {} ({}) -> {}",
        exported.trial.number,
        exported.family.name(),
        exported.bundle.display()
    );
    Ok(())
}
