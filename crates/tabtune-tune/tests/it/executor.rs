//! The executor: n_trials as a study target (resume), failures, Ctrl-C, timeout, progress,
//! population mode.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tabtune_tune::TrialState;
use tabtune_tune::executor::{
    OptimizeOptions, StopReason, TrialError, TrialEvent, WorkerContext, optimize,
    optimize_population,
};
use tabtune_tune::study::TrialHandle;

use crate::common::{quadratic, toy_study};

#[test]
fn rerunning_resumes_up_to_n_trials_and_reports_progress() {
    let study = toy_study("memory", "resume", 11);
    let objective = |h: &mut TrialHandle, _: WorkerContext| quadratic(h, 2, Duration::ZERO);
    let events = Mutex::new(Vec::<TrialEvent>::new());
    let progress = |e: &TrialEvent| events.lock().unwrap().push(e.clone());
    let five = OptimizeOptions {
        n_trials: Some(5),
        workers: 3,
        ..OptimizeOptions::default()
    };
    let s = optimize(&study, &objective, &five, Some(&progress)).unwrap();
    assert_eq!((s.reason, s.n_complete, s.n_run), (StopReason::Done, 5, 5));
    let eight = OptimizeOptions {
        n_trials: Some(8),
        ..five.clone()
    };
    let s = optimize(&study, &objective, &eight, Some(&progress)).unwrap();
    assert_eq!(
        (s.n_complete, s.n_run),
        (8, 3),
        "the rerun only adds the missing trials"
    );
    let s = optimize(&study, &objective, &eight, None).unwrap();
    assert_eq!((s.n_complete, s.n_run), (8, 0), "nothing left to do");

    let events = events.into_inner().unwrap();
    assert_eq!(events.len(), 8);
    let best = study.best_trial().unwrap().unwrap();
    let last = events.iter().max_by_key(|e| e.n_complete).unwrap();
    assert_eq!(last.best.as_ref().unwrap().value, best.value);
    assert!(
        events
            .iter()
            .all(|e| e.trial.state == TrialState::Complete && e.worker < 3)
    );
    assert_eq!(s.best.unwrap().number, best.number);
}

#[test]
fn a_failing_objective_fails_its_trial_and_the_sweep_goes_on() {
    let study = toy_study("memory", "failures", 12);
    let objective = |h: &mut TrialHandle, _: WorkerContext| -> Result<f64, TrialError> {
        match h.number() {
            1 => Err(TrialError::Failed("diverged: loss is inf".into())),
            2 => panic!("index out of bounds (simulated)"),
            3 => Ok(f64::NAN),
            _ => quadratic(h, 1, Duration::ZERO),
        }
    };
    let options = OptimizeOptions {
        n_trials: Some(4),
        ..OptimizeOptions::default()
    };
    let s = optimize(&study, &objective, &options, None).unwrap();
    assert_eq!((s.n_complete, s.n_failed), (4, 3));
    let trials = study.trials().unwrap();
    let reason = |n: usize| {
        trials[n].system_attrs["fail_reason"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(reason(1), "diverged: loss is inf");
    assert!(reason(2).contains("panicked") && reason(2).contains("index out of bounds"));
    assert_eq!(reason(3), "the objective returned NaN");
}

#[test]
fn a_broken_objective_stops_the_run_with_its_error() {
    let study = toy_study("memory", "broken", 13);
    let objective = |_: &mut TrialHandle, _: WorkerContext| -> Result<f64, TrialError> {
        Err(TrialError::Failed("column `Age` missing".into()))
    };
    let options = OptimizeOptions {
        n_trials: Some(50),
        max_consecutive_failures: Some(4),
        ..OptimizeOptions::default()
    };
    let e = optimize(&study, &objective, &options, None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("4 trials failed in a row") && e.contains("column `Age` missing"),
        "{e}"
    );
}

#[test]
fn the_stop_flag_fails_running_trials_with_a_reason() {
    let study = toy_study("memory", "ctrl-c", 14);
    let stop = Arc::new(AtomicBool::new(false));
    let started = AtomicU64::new(0);
    let objective = |h: &mut TrialHandle, _: WorkerContext| -> Result<f64, TrialError> {
        if started.fetch_add(1, Ordering::SeqCst) == 2 {
            stop.store(true, Ordering::SeqCst); // Ctrl-C while trial 2 runs
        }
        for step in 0..100 {
            if h.report(step, 1.0)? {
                return Err(TrialError::Pruned);
            }
        }
        Ok(1.0)
    };
    let options = OptimizeOptions {
        n_trials: Some(10),
        stop: Arc::clone(&stop),
        ..OptimizeOptions::default()
    };
    let s = optimize(&study, &objective, &options, None).unwrap();
    assert_eq!(s.reason, StopReason::Interrupted);
    let trials = study.trials().unwrap();
    assert_eq!(trials.len(), 3, "no trial starts after the stop");
    assert_eq!(trials[2].state, TrialState::Fail);
    assert!(
        trials[2].system_attrs["fail_reason"]
            .as_str()
            .unwrap()
            .contains("interrupted")
    );
    assert!(trials.iter().all(|t| t.state.is_finished()));
}

#[test]
fn the_timeout_starts_no_new_trial() {
    let study = toy_study("memory", "timeout", 15);
    let objective =
        |h: &mut TrialHandle, _: WorkerContext| quadratic(h, 1, Duration::from_millis(100));
    let options = OptimizeOptions {
        timeout: Some(Duration::from_millis(250)),
        workers: 2,
        ..OptimizeOptions::default()
    };
    let s = optimize(&study, &objective, &options, None).unwrap();
    assert_eq!(s.reason, StopReason::Timeout);
    assert!((2..=8).contains(&s.n_complete), "{}", s.n_complete);
    assert!(
        study
            .trials()
            .unwrap()
            .iter()
            .all(|t| t.state == TrialState::Complete)
    );
}

#[test]
fn population_mode_hands_out_compatible_batches() {
    let study = toy_study("memory", "population", 16);
    let sizes = Mutex::new(Vec::new());
    let objective = |hs: &mut [TrialHandle], _: WorkerContext| {
        sizes.lock().unwrap().push(hs.len());
        hs.iter_mut()
            .map(|h| quadratic(h, 2, Duration::ZERO))
            .collect::<Vec<_>>()
    };
    let options = OptimizeOptions {
        n_trials: Some(10),
        ..OptimizeOptions::default()
    };
    let s = optimize_population(&study, 4, &objective, &options, None).unwrap();
    assert_eq!(s.n_complete, 10);
    assert_eq!(*sizes.lock().unwrap(), [4, 4, 2]);
    assert!(optimize_population(&study, 0, &objective, &options, None).is_err());
    let e = optimize(
        &study,
        &|h: &mut TrialHandle, _: WorkerContext| quadratic(h, 1, Duration::ZERO),
        &OptimizeOptions {
            workers: 0,
            ..OptimizeOptions::default()
        },
        None,
    )
    .unwrap_err();
    assert!(e.is_bad_input() && e.to_string().contains("workers"), "{e}");
}

/// The toy study with a real pruner.
fn pruned_study(pruner: &str) -> tabtune_tune::study::Study {
    use tabtune_tune::{Direction, pruner_from_name, sampler_from_name, storage};
    let space = crate::common::toy_space();
    let sampler = sampler_from_name("random", 21, &space).unwrap();
    let engine =
        tabtune_tune::study::Engine::new(space, sampler, pruner_from_name(pruner).unwrap());
    let s: Arc<dyn storage::Storage> = Arc::new(storage::open("memory").unwrap());
    tabtune_tune::study::Study::open(s, "pruned", Direction::Minimize, engine).unwrap()
}

/// Reports (x - 1)^2 + 1 / (step + 1) for 6 steps.
fn curve(h: &mut TrialHandle, _: WorkerContext) -> Result<f64, TrialError> {
    let x = h.param("x")?.as_f64().unwrap();
    let mut v = 0.0;
    for step in 0..6 {
        v = (x - 1.0).powi(2) + 1.0 / (step as f64 + 1.0);
        if h.report(step, v)? {
            return Err(TrialError::Pruned);
        }
    }
    Ok(v)
}

#[test]
fn the_median_pruner_stops_trials_through_report() {
    let study = pruned_study("median:n_startup_trials=3");
    let options = OptimizeOptions {
        n_trials: Some(30),
        ..OptimizeOptions::default()
    };
    let s = optimize(&study, &curve, &options, None).unwrap();
    assert_eq!(s.n_complete + s.n_pruned, 30);
    assert!(
        s.n_pruned > 0,
        "some of 30 random trials are worse than the median"
    );
    for t in study.trials().unwrap() {
        if t.state == TrialState::Pruned {
            // Optuna's rule: a pruned trial's value is its last intermediate value.
            assert_eq!(
                t.value,
                Some(t.last_step().unwrap().1),
                "trial {}",
                t.number
            );
        } else {
            assert_eq!(t.intermediate.len(), 6, "trial {}", t.number);
        }
    }
}

#[test]
fn asha_records_its_rungs_on_the_trials() {
    let study = pruned_study("asha:min_resource=1,reduction_factor=2");
    let options = OptimizeOptions {
        n_trials: Some(12),
        ..OptimizeOptions::default()
    };
    let s = optimize(&study, &curve, &options, None).unwrap();
    assert!(s.n_pruned > 0);
    let trials = study.trials().unwrap();
    assert!(
        trials
            .iter()
            .all(|t| t.system_attrs.contains_key("completed_rung_0")),
        "the storage keeps what the pruner records"
    );
}

#[test]
fn a_grid_with_a_failed_point_ends_exhausted_instead_of_failing() {
    use tabtune_tune::storage::{self, Storage};
    use tabtune_tune::study::{Engine, Study};
    use tabtune_tune::{Direction, SearchSpace, pruner_from_name, sampler_from_name};

    let space = SearchSpace::from_toml_str(
        "[params.x]\ntype = \"categorical\"\nchoices = [1, 2, 3]\n",
        "grid",
    )
    .unwrap();
    let engine = Engine::new(
        space.clone(),
        sampler_from_name("grid", 3, &space).unwrap(),
        pruner_from_name("none").unwrap(),
    );
    let s: Arc<dyn Storage> = Arc::new(storage::open("memory").unwrap());
    let study = Study::open(s, "grid-fail", Direction::Minimize, engine).unwrap();
    let objective = |h: &mut TrialHandle, _: WorkerContext| -> Result<f64, TrialError> {
        let x = h.params()["x"].as_f64().unwrap();
        if x == 2.0 {
            Err(TrialError::Failed("x = 2 breaks".into()))
        } else {
            Ok(x)
        }
    };
    let options = OptimizeOptions {
        n_trials: Some(10),
        ..OptimizeOptions::default()
    };
    let s = optimize(&study, &objective, &options, None).unwrap();
    assert_eq!(
        (s.reason, s.n_complete, s.n_failed, s.n_run),
        (StopReason::Exhausted, 2, 1, 3)
    );
}
