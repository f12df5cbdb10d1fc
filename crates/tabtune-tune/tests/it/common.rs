//! Shared helpers: a toy space and objective, storages to test on, the worker process.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tabtune_tune::executor::{OptimizeOptions, TrialError, WorkerContext, optimize};
use tabtune_tune::storage::{self, Storage};
use tabtune_tune::study::{Engine, Study, TrialHandle};
use tabtune_tune::{
    Choice, Direction, Distribution, ParamSpec, ParamValue, SearchSpace, pruner_from_name,
    sampler_from_name,
};

/// Environment variable with the URL of a PostgreSQL server for the tests (`.ci/run` starts
/// one with `scripts/postgres.sh`).
pub const PG_ENV: &str = "TABTUNE_TEST_POSTGRES_URL";

/// The test PostgreSQL URL; fails the test under `CI=true` when it is not set, else skips.
pub fn postgres_url() -> Option<String> {
    let in_ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    match std::env::var(PG_ENV) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                !in_ci,
                "CI=true but {PG_ENV} is not set: the PostgreSQL tests must run in CI \
                 (url=$(scripts/postgres.sh start))"
            );
            eprintln!("SKIPPED: {PG_ENV} is not set; PostgreSQL test not run");
            None
        }
    }
}

/// A study name no other test (or earlier run on a shared database) uses.
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{prefix}-{}-{t}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// A float, a log-scale float, a stepped int and a categorical.
pub fn toy_space() -> SearchSpace {
    let mut fixed = BTreeMap::new();
    fixed.insert("objective".to_owned(), serde_json::json!("quadratic"));
    SearchSpace::new(
        vec![
            ParamSpec::new(
                "x",
                Distribution::Float {
                    low: -5.0,
                    high: 5.0,
                    log: false,
                    step: None,
                },
            ),
            ParamSpec::new(
                "lr",
                Distribution::Float {
                    low: 1e-3,
                    high: 1.0,
                    log: true,
                    step: None,
                },
            ),
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
                    choices: vec![
                        Choice::Str("a".into()),
                        Choice::Str("b".into()),
                        Choice::Int(3),
                    ],
                },
            ),
        ],
        fixed,
        None,
        None,
    )
    .unwrap()
}

/// A random-sampler engine on the toy space with short heartbeats.
pub fn toy_engine(seed: u64, heartbeat: Duration, grace: Duration) -> Engine {
    let space = toy_space();
    let sampler = sampler_from_name("random", seed, &space).unwrap();
    let mut e = Engine::new(space, sampler, pruner_from_name("none").unwrap());
    e.heartbeat_interval = heartbeat;
    e.grace_period = grace;
    e
}

/// Opens the toy study `name` (minimize) in `url`.
pub fn toy_study(url: &str, name: &str, seed: u64) -> Study {
    let s: Arc<dyn Storage> = Arc::new(storage::open(url).unwrap());
    Study::open(
        s,
        name,
        Direction::Minimize,
        toy_engine(seed, Duration::from_millis(300), Duration::from_secs(2)),
    )
    .unwrap()
}

/// (x - 1)^2 + a term per choice; reports `steps` intermediate values, sleeping `sleep` each.
pub fn quadratic(
    h: &mut TrialHandle,
    steps: u64,
    sleep: Duration,
) -> std::result::Result<f64, TrialError> {
    let x = h.param("x")?.as_f64().unwrap();
    let n = match h.param("n")? {
        ParamValue::Int(n) => *n as f64,
        other => return Err(TrialError::Failed(format!("n = {other}"))),
    };
    let value = (x - 1.0).powi(2) + n / 10.0;
    for step in 0..steps {
        std::thread::sleep(sleep);
        if h.report(step, value + (steps - step) as f64)? {
            return Err(TrialError::Pruned);
        }
    }
    Ok(value)
}

/// Env var that turns the `worker_process` test into a sweep worker:
/// `URL|STUDY|N_TRIALS|WORKERS|SEED|SLEEP_MS`.
pub const WORKER_ENV: &str = "TABTUNE_TUNE_TEST_WORKER";

/// Spawns this test binary as a worker process running the toy sweep.
pub fn spawn_worker(
    url: &str,
    study: &str,
    n_trials: u64,
    workers: usize,
    seed: u64,
    sleep_ms: u64,
) -> std::process::Child {
    std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "common::worker_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(
            WORKER_ENV,
            format!("{url}|{study}|{n_trials}|{workers}|{seed}|{sleep_ms}"),
        )
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// Not a test on its own: a no-op unless `WORKER_ENV` is set, then a sweep worker (the
/// multi-process tests start this binary with it).
#[test]
fn worker_process() {
    let Ok(spec) = std::env::var(WORKER_ENV) else {
        return;
    };
    let f: Vec<&str> = spec.split('|').collect();
    let (url, name) = (f[0], f[1]);
    let n_trials: u64 = f[2].parse().unwrap();
    let workers: usize = f[3].parse().unwrap();
    let seed: u64 = f[4].parse().unwrap();
    let sleep = Duration::from_millis(f[5].parse().unwrap());
    let study = toy_study(url, name, seed);
    let objective = |h: &mut TrialHandle, _: WorkerContext| quadratic(h, 3, sleep);
    let options = OptimizeOptions {
        n_trials: Some(n_trials),
        workers,
        ..OptimizeOptions::default()
    };
    optimize(&study, &objective, &options, None).unwrap();
}
