//! Several worker processes on one study: two on a SQLite file, three on PostgreSQL; and a
//! worker killed with SIGKILL, then the sweep resumed.

use std::time::{Duration, Instant};

use tabtune_tune::TrialState;
use tabtune_tune::executor::{OptimizeOptions, WorkerContext, optimize};
use tabtune_tune::study::TrialHandle;

use crate::common::{postgres_url, quadratic, spawn_worker, toy_study, unique_name};

/// Every trial number once, 0..len; `n` finished trials; nothing left running.
fn check_study(url: &str, name: &str, n: u64) {
    let study = toy_study(url, name, 0);
    let trials = study.trials().unwrap();
    let numbers: Vec<u64> = trials.iter().map(|t| t.number).collect();
    assert_eq!(
        numbers,
        (0..trials.len() as u64).collect::<Vec<_>>(),
        "unique, gapless numbers"
    );
    let finished = trials
        .iter()
        .filter(|t| matches!(t.state, TrialState::Complete | TrialState::Pruned))
        .count() as u64;
    assert_eq!(finished, n, "exactly n_trials finished trials: {trials:#?}");
    assert!(
        trials.iter().all(|t| t.state.is_finished()),
        "nothing left running"
    );
    for t in &trials {
        assert_eq!(t.params.len(), 4, "trial {} has all its params", t.number);
        if t.state == TrialState::Complete {
            assert_eq!(t.intermediate.len(), 3, "trial {}", t.number);
        }
    }
}

fn run_processes(url: &str, name: &str, processes: usize, threads: usize, n: u64) {
    let mut children: Vec<_> = (0..processes)
        .map(|i| spawn_worker(url, name, n, threads, i as u64 + 1, 20))
        .collect();
    for c in &mut children {
        let status = c.wait().unwrap();
        assert!(status.success(), "worker exited with {status}");
    }
    check_study(url, name, n);
}

#[test]
fn two_processes_share_one_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:///{}", dir.path().join("shared.db").display());
    // Both create the file, the schema and the study at the same moment.
    run_processes(&url, "two-processes", 2, 2, 24);
}

#[test]
fn three_workers_share_one_postgres_study() {
    let Some(url) = postgres_url() else { return };
    run_processes(&url, &unique_name("three-workers"), 3, 1, 24);
}

#[test]
fn a_killed_worker_loses_no_completed_trial_and_its_trial_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:///{}", dir.path().join("killed.db").display());
    let name = "killed";
    let n = 8;
    // Slow trials (3 steps of 200 ms), so the kill lands inside one.
    let mut child = spawn_worker(&url, name, n, 1, 3, 200);
    let study = toy_study(&url, name, 0);
    let deadline = Instant::now() + Duration::from_mins(2);
    loop {
        assert!(Instant::now() < deadline, "the worker made no progress");
        let trials = study.trials().unwrap_or_default();
        let complete = trials
            .iter()
            .filter(|t| t.state == TrialState::Complete)
            .count();
        let running = trials
            .iter()
            .any(|t| t.state == TrialState::Running && !t.intermediate.is_empty());
        if complete >= 2 && running {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let before = study.trials().unwrap();
    let killed: Vec<_> = before
        .iter()
        .filter(|t| t.state == TrialState::Running)
        .collect();
    assert_eq!(killed.len(), 1, "{before:#?}");
    let killed = killed[0].clone();
    let completed: Vec<_> = before
        .iter()
        .filter(|t| t.state == TrialState::Complete)
        .cloned()
        .collect();

    // Resume: the same study, the same n_trials. The killed trial goes stale after the grace
    // period (2 s), is failed and retried with its params.
    let objective = |h: &mut TrialHandle, _: WorkerContext| quadratic(h, 3, Duration::ZERO);
    let options = OptimizeOptions {
        n_trials: Some(n),
        ..OptimizeOptions::default()
    };
    let summary = optimize(&study, &objective, &options, None).unwrap();
    assert_eq!(summary.n_complete, n);
    let after = study.trials().unwrap();
    for t in &completed {
        assert_eq!(
            &after[t.number as usize], t,
            "completed trial {} unchanged",
            t.number
        );
    }
    let failed = &after[killed.number as usize];
    assert_eq!(failed.state, TrialState::Fail);
    assert!(
        failed.system_attrs["fail_reason"]
            .as_str()
            .unwrap()
            .contains("heartbeat")
    );
    let retry = after
        .iter()
        .find(|t| t.system_attrs.get("failed_trial") == Some(&serde_json::json!(killed.number)))
        .expect("a retry of the killed trial");
    assert_eq!(retry.state, TrialState::Complete);
    assert_eq!(retry.params, killed.params);
    check_study_allowing_failures(&after, n);
}

fn check_study_allowing_failures(trials: &[tabtune_tune::FrozenTrial], n: u64) {
    let numbers: Vec<u64> = trials.iter().map(|t| t.number).collect();
    assert_eq!(numbers, (0..trials.len() as u64).collect::<Vec<_>>());
    let complete = trials
        .iter()
        .filter(|t| t.state == TrialState::Complete)
        .count() as u64;
    assert_eq!(complete, n);
    assert!(trials.iter().all(|t| t.state.is_finished()));
}
