//! In-process tracking overhead, as a sweep would see it: `TRIALS` trials (default 100) in one
//! process, each a fixed CPU-bound workload standing in for training (`WORK_MS`, default 500 ms
//! of floating-point work, calibrated once) that logs 3 metrics per round for 30 rounds, per-fold
//! metrics and params, run once with no tracking and once with the local store + TensorBoard +
//! MLflow (`MLFLOW_TRACKING_URI`), interleaved trial by trial. The MLflow sink sends on its
//! background thread while the next trial computes; the final flush is inside the measurement.
//! Prints one JSON object. Used by `benches/run-tracking.sh`.
//!
//! Run: `MLFLOW_TRACKING_URI=http://127.0.0.1:PORT cargo run --release -p tabtune-track
//! --example tracking_overhead -- OUT_DIR`.
#![allow(clippy::print_stdout)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use tabtune_track::{LocalStore, Mlflow, MultiTracker, RunSpec, RunStatus, TensorBoard};

/// Floating-point work: `n` steps of a logistic-map iteration.
fn work(n: u64) -> f64 {
    let mut x = 0.3f64;
    for _ in 0..n {
        x = 3.99 * x * (1.0 - x);
    }
    black_box(x)
}

fn trial(tracker: &MultiTracker, study: &str, number: u64, steps_per_round: u64) {
    let spec = RunSpec::new(study, format!("trial-{number}"))
        .trial(study, number)
        .param("learning_rate", 0.05 + number as f64 / 1000.0)
        .param("num_leaves", 31)
        .param("growth", "leaf");
    let mut run = tracker.start_run(&spec);
    for round in 0..30u64 {
        let x = work(steps_per_round);
        run.log_metrics(
            round,
            &[
                ("train_loss", x),
                ("valid_logloss", x / 2.0),
                ("valid_accuracy", 1.0 - x / 3.0),
            ],
        );
    }
    for fold in 0..3u64 {
        run.log_metrics(fold, &[("fold_accuracy", 0.9), ("fold_logloss", 0.3)]);
    }
    run.log_metrics(0, &[("cv_accuracy_mean", 0.9), ("cv_logloss_mean", 0.3)]);
    run.end(RunStatus::Finished);
}

fn main() {
    let out = std::env::args()
        .nth(1)
        .expect("usage: tracking_overhead OUT_DIR");
    let trials: u64 = std::env::var("TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let work_ms: u64 = std::env::var("WORK_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let uri = std::env::var("MLFLOW_TRACKING_URI").expect("MLFLOW_TRACKING_URI must be set");
    // Calibrate: steps per round so that 30 rounds take WORK_MS.
    let probe = 20_000_000u64;
    let started = Instant::now();
    work(probe);
    let per_step = started.elapsed().as_secs_f64() / probe as f64;
    let steps_per_round = ((work_ms as f64 / 1000.0 / 30.0) / per_step) as u64;

    let study = format!("bench-inprocess-{}", std::process::id());
    let off = MultiTracker::none();
    let on = MultiTracker::none()
        .with(LocalStore::new(format!("{out}/runs")))
        .with(TensorBoard::new(format!("{out}/tensorboard")))
        .with(Mlflow::new(&uri).expect("MLflow sink"));
    let (mut t_off, mut t_on) = (Duration::ZERO, Duration::ZERO);
    for number in 0..trials {
        let order: [bool; 2] = if number % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for tracked in order {
            let started = Instant::now();
            if tracked {
                trial(&on, &study, number, steps_per_round);
            } else {
                trial(&off, &study, number, steps_per_round);
            }
            if tracked {
                t_on += started.elapsed();
            } else {
                t_off += started.elapsed();
            }
        }
    }
    let started = Instant::now();
    let errors = on.flush(Duration::from_mins(2));
    let flush = started.elapsed();
    t_on += flush;
    assert!(errors.is_empty(), "MLflow errors: {errors:?}");
    println!(
        "{}",
        serde_json::json!({
            "trials": trials,
            "work_ms_per_trial": work_ms,
            "study": study,
            "seconds_off": t_off.as_secs_f64(),
            "seconds_on": t_on.as_secs_f64(),
            "final_flush_seconds": flush.as_secs_f64(),
            "overhead_percent": 100.0 * (t_on.as_secs_f64() - t_off.as_secs_f64()) / t_off.as_secs_f64(),
        })
    );
}
