//! Runs a study's trials on worker threads: [`optimize`] (one trial per objective call) and
//! [`optimize_population`] (P trials per call, for the neural population trainer).
//!
//! `n_trials` is a target for the study, not for this call: the run ends when the study holds
//! `n_trials` finished trials (COMPLETE + PRUNED), so rerunning the same command resumes up to
//! N. Creating a trial checks the budget in the same transaction as the insert, so workers in
//! other threads, processes or machines never overshoot it. Failed trials do not count; a trial
//! whose worker died is failed once its heartbeat is stale and retried with the same
//! parameters.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::error::{Result, TuneError};
use crate::model::{FrozenTrial, TrialState};
use crate::study::{Outcome, Study, TrialHandle, best_of};

/// Why an objective call did not produce a value.
#[derive(Clone, Debug, PartialEq)]
pub enum TrialError {
    /// The objective stopped because [`TrialHandle::report`] said so (the pruner).
    Pruned,
    /// The objective failed; the message is stored with the trial (`fail_reason`) and the
    /// sweep goes on.
    Failed(String),
}

impl<E: std::fmt::Display> From<E> for TrialError {
    fn from(e: E) -> Self {
        Self::Failed(e.to_string())
    }
}

/// What an objective learns about where it runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkerContext {
    /// The worker's index, `0..workers` (the CLI maps it to a device slot, e.g. worker `w` on
    /// `cuda:{w / trials_per_device}`).
    pub worker: usize,
}

/// One trial's objective: read the handle's parameters, report intermediate values, return the
/// value.
pub type Objective<'a> =
    dyn Fn(&mut TrialHandle, WorkerContext) -> std::result::Result<f64, TrialError> + Sync + 'a;

/// A population objective: P trials trained together, one result per trial, in order.
pub type PopulationObjective<'a> = dyn Fn(&mut [TrialHandle], WorkerContext) -> Vec<std::result::Result<f64, TrialError>>
    + Sync
    + 'a;

/// Progress after each finished trial (the CLI draws its bar from this).
#[derive(Clone, Debug)]
pub struct TrialEvent {
    /// The trial as stored, finished.
    pub trial: FrozenTrial,
    /// The study's best COMPLETE trial so far.
    pub best: Option<FrozenTrial>,
    /// COMPLETE trials in the study.
    pub n_complete: u64,
    /// PRUNED trials in the study.
    pub n_pruned: u64,
    /// FAIL trials in the study.
    pub n_failed: u64,
    /// The worker that ran it.
    pub worker: usize,
}

/// Called after each finished trial, from the worker thread that ran it.
pub type Progress<'a> = dyn Fn(&TrialEvent) + Sync + 'a;

/// The most worker threads one study run starts (each holds a thread and a trial's memory;
/// more trials at once come from population batching, not threads).
pub const MAX_WORKERS: usize = 1024;

/// How long [`optimize`] runs and with how many workers.
#[derive(Clone, Debug)]
pub struct OptimizeOptions {
    /// Stop when the study holds this many COMPLETE + PRUNED trials (`None`: until the timeout
    /// or the stop flag).
    pub n_trials: Option<u64>,
    /// Start no new trial after this long (running trials finish, as in Optuna).
    pub timeout: Option<Duration>,
    /// Worker threads, 1 to [`MAX_WORKERS`].
    pub workers: usize,
    /// Set it (e.g. on Ctrl-C) to stop: objectives see it through
    /// [`TrialHandle::interrupted`] and `report`, their trials are failed with a reason, no new
    /// trial starts.
    pub stop: Arc<AtomicBool>,
    /// Stop the run with an error after this many failed trials in a row (`None`: never), so a
    /// broken configuration does not fail trials forever.
    pub max_consecutive_failures: Option<u64>,
    /// How long an idle worker waits before looking again when the budget is taken by trials
    /// running elsewhere (they may fail and free it).
    pub poll: Duration,
}

impl Default for OptimizeOptions {
    fn default() -> Self {
        Self {
            n_trials: None,
            timeout: None,
            workers: 1,
            stop: Arc::new(AtomicBool::new(false)),
            max_consecutive_failures: Some(10),
            poll: Duration::from_millis(250),
        }
    }
}

/// Why the run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The study holds `n_trials` finished trials.
    Done,
    /// The timeout passed.
    Timeout,
    /// The stop flag was set.
    Interrupted,
    /// The sampler has no more proposals (a grid was exhausted).
    Exhausted,
}

/// The outcome of [`optimize`].
#[derive(Clone, Debug)]
pub struct Summary {
    /// Why the run ended.
    pub reason: StopReason,
    /// COMPLETE trials in the study.
    pub n_complete: u64,
    /// PRUNED trials in the study.
    pub n_pruned: u64,
    /// FAIL trials in the study.
    pub n_failed: u64,
    /// Trials this call ran to an end (any state).
    pub n_run: u64,
    /// The best COMPLETE trial of the study.
    pub best: Option<FrozenTrial>,
    /// Wall time of the call.
    pub seconds: f64,
}

/// Runs `objective` on `options.workers` threads until the study holds `n_trials` finished
/// trials, the timeout passes, or the stop flag is set. An objective error or panic fails that
/// trial (its message stored as `fail_reason`) and the run goes on; storage errors end it.
pub fn optimize(
    study: &Study,
    objective: &Objective<'_>,
    options: &OptimizeOptions,
    progress: Option<&Progress<'_>>,
) -> Result<Summary> {
    let batch = |handles: &mut [TrialHandle], ctx: WorkerContext| {
        handles
            .iter_mut()
            .map(|h| objective(h, ctx))
            .collect::<Vec<_>>()
    };
    run(study, 1, &batch, options, progress)
}

/// Like [`optimize`], but each objective call gets up to `p` trials at once (sampled together,
/// later ones seeing the earlier ones as RUNNING) and returns one result per trial.
pub fn optimize_population(
    study: &Study,
    p: usize,
    objective: &PopulationObjective<'_>,
    options: &OptimizeOptions,
    progress: Option<&Progress<'_>>,
) -> Result<Summary> {
    if p == 0 {
        return Err(TuneError::Setting {
            name: "population size p",
            value: p.to_string(),
            expected: "must be at least 1 (one trial at a time)",
        });
    }
    run(study, p, objective, options, progress)
}

struct Shared {
    failure: Mutex<Option<TuneError>>,
    consecutive_failures: AtomicU64,
    n_run: AtomicU64,
    halt: AtomicBool,
    reason: Mutex<Option<StopReason>>,
}

impl Shared {
    fn end(&self, reason: StopReason) {
        self.reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert(reason);
        self.halt.store(true, Ordering::SeqCst);
    }

    fn fail(&self, e: TuneError) {
        self.failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert(e);
        self.halt.store(true, Ordering::SeqCst);
    }
}

fn run(
    study: &Study,
    p: usize,
    objective: &PopulationObjective<'_>,
    options: &OptimizeOptions,
    progress: Option<&Progress<'_>>,
) -> Result<Summary> {
    if !(1..=MAX_WORKERS).contains(&options.workers) {
        return Err(TuneError::Setting {
            name: "workers",
            value: options.workers.to_string(),
            expected: "must be in 1..=1024 (MAX_WORKERS)",
        });
    }
    if options.n_trials == Some(0) {
        return Err(TuneError::Setting {
            name: "n_trials",
            value: "0".to_owned(),
            expected: "must be at least 1",
        });
    }
    let started = Instant::now();
    // A grid sampler has a fixed number of proposals: the study cannot hold more trials.
    let limit = study.max_trials()?;
    let options = &OptimizeOptions {
        n_trials: match (options.n_trials, limit) {
            (Some(n), Some(l)) => Some(n.min(l)),
            (n, l) => n.or(l),
        },
        ..options.clone()
    };
    let exhausted = limit.is_some() && options.n_trials == limit;
    let shared = Shared {
        failure: Mutex::new(None),
        consecutive_failures: AtomicU64::new(0),
        n_run: AtomicU64::new(0),
        halt: AtomicBool::new(false),
        reason: Mutex::new(None),
    };
    std::thread::scope(|scope| {
        for worker in 0..options.workers {
            let shared = &shared;
            let spawned = std::thread::Builder::new()
                .name(format!("trial-worker-{worker}"))
                .spawn_scoped(scope, move || {
                    if let Err(e) = worker_loop(
                        study,
                        p,
                        objective,
                        options,
                        progress,
                        (worker, exhausted),
                        started,
                        shared,
                    ) {
                        shared.fail(e);
                    }
                });
            if let Err(source) = spawned {
                // The workers already running stop with the failure; no trial is left behind.
                shared.fail(TuneError::WorkerThread { worker, source });
                break;
            }
        }
    });
    if let Some(e) = shared
        .failure
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner)
    {
        return Err(e);
    }
    let counts = study.counts()?;
    let get = |s: TrialState| counts.get(s.as_optuna()).copied().unwrap_or(0);
    Ok(Summary {
        reason: shared
            .reason
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
            .unwrap_or(StopReason::Done),
        n_complete: get(TrialState::Complete),
        n_pruned: get(TrialState::Pruned),
        n_failed: get(TrialState::Fail),
        n_run: shared.n_run.load(Ordering::SeqCst),
        best: study.best_trial()?,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Whether a grid study (of `budget` points) has a finished trial (COMPLETE, PRUNED or FAIL)
/// for every point and none waiting to be retried.
fn grid_visited(study: &Study, budget: Option<u64>) -> Result<bool> {
    let Some(n) = budget else {
        return Ok(false);
    };
    let trials = study.trials()?;
    if trials.iter().any(|t| t.state == TrialState::Waiting) {
        return Ok(false);
    }
    let points: std::collections::HashSet<String> = trials
        .iter()
        .filter(|t| t.state.is_finished())
        .map(|t| format!("{:?}", t.params))
        .collect();
    Ok(points.len() as u64 >= n)
}

#[allow(clippy::too_many_arguments)]
fn worker_loop(
    study: &Study,
    p: usize,
    objective: &PopulationObjective<'_>,
    options: &OptimizeOptions,
    progress: Option<&Progress<'_>>,
    (worker, exhausted): (usize, bool),
    started: Instant,
    shared: &Shared,
) -> Result<()> {
    let budget = options.n_trials;
    loop {
        if shared.halt.load(Ordering::SeqCst) {
            return Ok(());
        }
        if options.stop.load(Ordering::SeqCst) {
            shared.end(StopReason::Interrupted);
            return Ok(());
        }
        if options.timeout.is_some_and(|t| started.elapsed() >= t) {
            shared.end(StopReason::Timeout);
            return Ok(());
        }
        if exhausted && grid_visited(study, budget)? {
            // Every point has a finished trial, some of them FAIL: the grid has nothing more
            // to propose, although fewer than `n_trials` trials completed.
            shared.end(StopReason::Exhausted);
            return Ok(());
        }
        let mut handles = study.ask_batch(p, budget)?;
        if handles.is_empty() {
            // The budget is taken: done, or trials running elsewhere may still fail.
            let counts = study.counts()?;
            let finished = counts.get("COMPLETE").copied().unwrap_or(0)
                + counts.get("PRUNED").copied().unwrap_or(0);
            if budget.is_none_or(|n| finished >= n) {
                shared.end(if exhausted {
                    StopReason::Exhausted
                } else {
                    StopReason::Done
                });
                return Ok(());
            }
            std::thread::sleep(options.poll);
            continue;
        }
        for h in &mut handles {
            h.watch(Arc::clone(&options.stop));
        }
        let ctx = WorkerContext { worker };
        let results = match catch_unwind(AssertUnwindSafe(|| objective(&mut handles, ctx))) {
            Ok(r) => r,
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_else(|| "unknown panic".to_owned());
                vec![
                    Err(TrialError::Failed(format!("the objective panicked: {msg}")));
                    handles.len()
                ]
            }
        };
        let interrupted = options.stop.load(Ordering::SeqCst);
        let mut results = results.into_iter();
        for h in handles {
            let outcome = match results.next() {
                Some(Ok(v)) => Outcome::Complete(v),
                Some(Err(_)) | None if interrupted => Outcome::Fail(
                    "interrupted: the run was stopped (Ctrl-C) while the trial was running".into(),
                ),
                Some(Err(TrialError::Pruned)) => Outcome::Pruned,
                Some(Err(TrialError::Failed(why))) => Outcome::Fail(why),
                None => Outcome::Fail(
                    "the population objective returned fewer results than trials".into(),
                ),
            };
            let trial = h.tell(outcome)?;
            shared.n_run.fetch_add(1, Ordering::SeqCst);
            if trial.state == TrialState::Fail {
                let n = shared.consecutive_failures.fetch_add(1, Ordering::SeqCst) + 1;
                if !interrupted && options.max_consecutive_failures.is_some_and(|m| n >= m) {
                    let why = trial
                        .system_attrs
                        .get("fail_reason")
                        .and_then(|v| v.as_str())
                        .unwrap_or("no reason recorded")
                        .to_owned();
                    shared.fail(TuneError::ObjectiveFailing {
                        study: study.name().to_owned(),
                        failures: n,
                        last_trial: trial.number,
                        reason: why,
                    });
                }
            } else {
                shared.consecutive_failures.store(0, Ordering::SeqCst);
            }
            if let Some(progress) = progress {
                let trials = study.trials()?;
                let count = |s: TrialState| trials.iter().filter(|t| t.state == s).count() as u64;
                progress(&TrialEvent {
                    best: best_of(&trials, study.direction()).cloned(),
                    n_complete: count(TrialState::Complete),
                    n_pruned: count(TrialState::Pruned),
                    n_failed: count(TrialState::Fail),
                    trial,
                    worker,
                });
            }
        }
    }
}
