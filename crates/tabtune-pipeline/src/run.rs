//! The whole pipeline from one config: the data found (or fetched), the EDA report, the
//! config's sweeps (`[run]`: trees, then neural nets) within a time budget, each sweep's best
//! registered with the best of all as `champion`, the decision layer, a submission for the
//! test file, the monitoring report of the current data.
//!
//! ```no_run
//! use std::sync::Arc;
//! use tabtune_features::Config;
//! use tabtune_pipeline::{Hooks, RunPlan, run};
//!
//! let config = Arc::new(Config::load("configs/obesity.toml".as_ref())?);
//! let mut plan = RunPlan::from_config(config)?;
//! plan.settings.budget_minutes = 4.0;
//! let outcome = run(&plan, &Hooks::default())?;
//! println!("champion {} ({:?})", outcome.champion.dir.display(), outcome.champion.cv_accuracy);
//! # Ok::<(), tabtune_pipeline::PipelineError>(())
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ndarray::Array2;
use tabtune_features::fetch::{FetchStatus, fetch};
use tabtune_features::io::write_bytes_atomic;
use tabtune_features::{Config, FeaturesError};
use tabtune_track::registry::{CHAMPION, ModelRef, Selector, open_registry};
use tabtune_train::nn::device::{Device, select};
use tabtune_train::nn::{DeviceChoice, DeviceRequest};

use crate::data::{Input, fold_of, kfold, load_training};
use crate::decision::{DecisionReport, EnsembleBundle, Member, decide, ship_ensemble, top_oofs};
use crate::eda::{Eda, write_eda};
use crate::error::{PipelineError, Result};
use crate::monitor::{MonitorSettings, Monitored, monitor};
use crate::predict::{PredictSettings, Predicted, predict_file};
use crate::progress::Hooks;
use crate::select::SelectSettings;
use crate::settings::RunSettings;
use crate::sweep::storage::DEFAULT_STORAGE;
use crate::sweep::{SweepOutcome, SweepSettings, Validation, sweep};
use crate::tracking::Tracking;

/// Seconds kept back from the sweeps for what follows them (export and registration of each
/// sweep's best, the decision layer's members, the submission, the monitoring report): at least
/// this, and [`RESERVE_SHARE`] of a longer budget.
const RESERVE_SECONDS: f64 = 120.0;

/// The share of the budget kept back for the steps after the sweeps. They grow with the number
/// of candidates the sweeps leave: on the 10-minute default run (2 cores) they took 135-190 s,
/// and a fixed 120 s let the run end 48 s late.
const RESERVE_SHARE: f64 = 0.3;

/// What `run` does: the config's `[run]` plan and the overrides of one invocation.
#[derive(Clone, Debug)]
pub struct RunPlan {
    /// The task config.
    pub config: Arc<Config>,
    /// The `[run]` plan (budget, sweeps, decision layer size, registered name).
    pub settings: RunSettings,
    /// Trials of every sweep instead of each sweep's `n-trials` / `gpu-n-trials`.
    pub n_trials: Option<u64>,
    /// Folds of each trial's cross-validation; `None`: the config's `cv.folds`.
    pub folds: Option<usize>,
    /// Device of the neural trials: `auto`, `cpu`, `wgpu`, `cuda:N`.
    pub device: String,
    /// Study storage (one study per sweep, resumed when the run is repeated).
    pub storage: String,
    /// Seed of the samplers, splits and models; `None`: the config's `cv.seed`.
    pub seed: Option<u64>,
    /// Where trials are tracked; with an MLflow URI the champion goes to MLflow's registry.
    pub tracking: Tracking,
    /// Download missing data files from the config's `[[data.sources]]`.
    pub fetch: bool,
}

impl RunPlan {
    /// The config's `[run]` plan with its default preset (`run.preset`) and no overrides.
    pub fn from_config(config: Arc<Config>) -> Result<Self> {
        Self::with_preset(config, None)
    }

    /// The config's `[run]` plan with preset `preset` applied (`None`: the config's default
    /// preset, if it names one).
    pub fn with_preset(config: Arc<Config>, preset: Option<&str>) -> Result<Self> {
        let mut settings = RunSettings::from_config(&config)?;
        if let Some(name) = preset
            .map(str::to_owned)
            .or_else(|| settings.preset.clone())
        {
            settings = settings.with_preset(&name, &config.path)?;
        }
        Ok(Self {
            config,
            settings,
            n_trials: None,
            folds: None,
            device: "auto".to_owned(),
            storage: DEFAULT_STORAGE.to_owned(),
            seed: None,
            tracking: Tracking::default(),
            fetch: true,
        })
    }

    /// Checks the plan before anything runs: a budget, at least one sweep, every space file
    /// there.
    pub fn check(&self) -> Result<()> {
        let budget = self.settings.budget_minutes;
        if !(budget.is_finite() && budget > 0.0) {
            return Err(PipelineError::setting(
                "budget_minutes",
                budget,
                "a number of minutes > 0",
            ));
        }
        if self.n_trials == Some(0) {
            return Err(PipelineError::setting("n_trials", 0, "at least 1"));
        }
        let config = &self.config;
        if self.settings.sweeps.is_empty() {
            return Err(FeaturesError::ConfigValue {
                path: config.path.clone(),
                key: "run.sweeps".into(),
                message: "is empty: `tabtune run` needs at least one [[run.sweeps]] entry".into(),
            }
            .into());
        }
        for (i, s) in self.settings.sweeps.iter().enumerate() {
            if !s.space.is_file() {
                return Err(FeaturesError::ConfigValue {
                    path: config.path.clone(),
                    key: format!("run.sweeps[{i}].space"),
                    message: format!(
                        "{} does not exist (paths are relative to the current directory)",
                        s.space.display()
                    ),
                }
                .into());
            }
        }
        Ok(())
    }
}

/// One step's outcome for the summary.
#[derive(Clone, Debug)]
pub struct Step {
    /// `data`, `eda`, `sweep`, `decision`, `champion`, `submission`, `monitor`.
    pub name: &'static str,
    /// Wall seconds.
    pub seconds: f64,
    /// What it did, in words.
    pub detail: String,
}

/// Sweeps get at least this long in the second round, or none.
const MIN_SWEEP_SECONDS: f64 = 20.0;

/// How a sweep's time was allocated.
#[derive(Clone, Debug)]
pub struct Allocation {
    /// Its search space.
    pub space: PathBuf,
    /// Its configured share of the sweep time.
    pub share: f64,
    /// Seconds it was given in the first round.
    pub first_seconds: f64,
    /// Its best value after the first round.
    pub first_best: Option<f64>,
    /// Its weight for the second round (share × closeness to the best of all).
    pub weight: f64,
    /// Seconds it was given in the second round (0: none).
    pub second_seconds: f64,
}

/// How far behind the best family a family's weight halves, in accuracy (or log loss) units:
/// about one standard error of a 5-fold CV accuracy on this workload.
const REALLOCATION_SCALE: f64 = 0.002;

/// The second round's weights: share × 2^(−gap / scale), where gap is how far the sweep's best
/// is behind the best of all (a sweep without a complete trial keeps a quarter of its share).
fn reweigh(allocation: &mut [Allocation], done: &[Option<SweepRun>]) {
    let value = |i: usize| {
        done[i].as_ref().and_then(|d| {
            let metric = d.outcome.metric;
            d.outcome
                .summary
                .best
                .as_ref()
                .and_then(|b| b.value)
                .map(|v| metric.direction().as_loss(v))
        })
    };
    let best = (0..allocation.len())
        .filter_map(value)
        .fold(f64::INFINITY, f64::min);
    for (i, a) in allocation.iter_mut().enumerate() {
        a.weight = match value(i) {
            Some(loss) => a.share * (-(loss - best) / REALLOCATION_SCALE).exp2(),
            None => a.share * 0.25,
        };
    }
}

/// One sweep of the run.
#[derive(Clone, Debug)]
pub struct SweepRun {
    /// Its search space.
    pub space: PathBuf,
    /// Trials asked for.
    pub n_trials: u64,
    /// Population size.
    pub population: usize,
    /// Its time limit in seconds.
    pub timeout: f64,
    /// What it did.
    pub outcome: SweepOutcome,
}

/// The decision layer's outcome.
#[derive(Clone, Debug)]
pub struct Decided {
    /// Trials considered.
    pub candidates: usize,
    /// `study#trial` of each candidate (the report's indices).
    pub labels: Vec<String>,
    /// The leak-free scores.
    pub report: DecisionReport,
    /// The shipped ensemble.
    pub ensemble: EnsembleBundle,
    /// Its registered version.
    pub version: u64,
    /// Whether it became the champion.
    pub promoted: bool,
}

/// The champion after the run.
#[derive(Clone, Debug)]
pub struct Champion {
    /// `models:/<name>@champion`.
    pub reference: String,
    /// Its bundle folder on this machine.
    pub dir: PathBuf,
    /// Its version.
    pub version: u64,
    /// Its family.
    pub family: String,
    /// Its CV accuracy (cross-fitted for an ensemble).
    pub cv_accuracy: Option<f64>,
    /// Its CV log loss.
    pub cv_logloss: Option<f64>,
}

/// What `run` did and where everything went.
#[derive(Clone, Debug)]
pub struct RunOutcome {
    /// The steps, in order.
    pub steps: Vec<Step>,
    /// The device of the neural trials.
    pub device: DeviceChoice,
    /// The sweeps.
    pub sweeps: Vec<SweepRun>,
    /// How the sweep time was allocated (first round by share, the rest toward the winners).
    pub allocation: Vec<Allocation>,
    /// The decision layer, when it ran.
    pub decision: Option<Decided>,
    /// The feature-selection step (`[run] select`), when it ran.
    pub selected: Option<crate::select::SelectOutcome>,
    /// The champion.
    pub champion: Champion,
    /// Which registry holds it (`local checkpoints/registry`, `MLflow http://...`).
    pub registry: String,
    /// The EDA report.
    pub eda: Eda,
    /// The submission, when the config has a test file.
    pub submission: Option<Predicted>,
    /// The monitoring report, when the config has a current file.
    pub monitored: Option<Monitored>,
    /// The budget in minutes.
    pub budget_minutes: f64,
    /// The run's HTML report (steps, time allocation, sweeps, every decision-layer method).
    pub report: PathBuf,
    /// Wall seconds of the run.
    pub seconds: f64,
}

/// Runs the whole pipeline (see the module docs).
pub fn run(plan: &RunPlan, hooks: &Hooks) -> Result<RunOutcome> {
    let started = Instant::now();
    plan.check()?;
    let config = plan.config.as_ref();
    let settings = &plan.settings;
    let budget = settings.budget_minutes;
    let progress = hooks.progress.as_ref();
    let mut steps = Vec::new();

    // 1. The data: present, or fetched from the config's sources.
    let t = Instant::now();
    let fetched = ensure_data(config, plan.fetch, hooks)?;
    steps.push(Step {
        name: "data",
        seconds: t.elapsed().as_secs_f64(),
        detail: if fetched.is_empty() {
            format!("found in {}", config.data.dir.display())
        } else {
            format!("fetched {}", fetched.join(", "))
        },
    });

    // 2. EDA report of the training data.
    let t = Instant::now();
    let eda = write_eda(config, &Input::default(), None, progress)?;
    steps.push(Step {
        name: "eda",
        seconds: t.elapsed().as_secs_f64(),
        detail: format!("{} rows", eda.valid_rows),
    });

    // 3. Feature selection (`[run] select`), its list fed to every sweep; its time comes out
    //    of the sweeps' budget.
    let selected = match settings.select {
        Some(strategy) => {
            let t = Instant::now();
            let o = crate::select::select(
                config,
                &SelectSettings {
                    model: settings.select_model.clone(),
                    strategy,
                    // Fewer folds than the sweeps (3 by default): it scores hundreds of sets.
                    folds: plan.folds.unwrap_or(SelectSettings::default().folds),
                    study: Some(format!("{}-run-select", config.name)),
                    storage: plan.storage.clone(),
                    seed: plan.seed,
                    tracking: plan.tracking.clone(),
                    ..SelectSettings::default()
                },
                progress,
            )?;
            steps.push(Step {
                name: "select",
                seconds: t.elapsed().as_secs_f64(),
                detail: format!(
                    "{} {} of {} features by {} (CV accuracy {:.4}; all features {:.4})",
                    strategy.name(),
                    o.features.len(),
                    o.n_total,
                    o.model,
                    o.accuracy,
                    o.baseline_accuracy
                ),
            });
            Some(o)
        }
        None => None,
    };

    // 4. The sweeps, sized by the device and sharing the budget.
    let device = select(DeviceRequest::parse(&plan.device)?)?;
    let gpu = is_gpu(&device);
    tracing::info!(
        "device {}{}: {}",
        device.name,
        device
            .adapter
            .as_deref()
            .map(|a| format!(" ({a})"))
            .unwrap_or_default(),
        device.reason
    );
    let reserve = RESERVE_SECONDS.max(RESERVE_SHARE * budget * 60.0);
    let sweep_seconds = (budget * 60.0 - started.elapsed().as_secs_f64() - reserve)
        .max(30.0 * settings.sweeps.len() as f64);
    let n = settings.sweeps.len();
    // Round 1: every sweep gets its share of the first part of the time. Round 2: the rest
    // goes to the sweeps in proportion to their share and how close their best trial is to
    // the best of all (families that are winning get more time).
    let first = if settings.reallocate && n > 1 {
        settings.first_round
    } else {
        1.0
    };
    let mut done: Vec<Option<SweepRun>> = (0..n).map(|_| None).collect();
    let mut allocation: Vec<Allocation> = settings
        .sweeps
        .iter()
        .map(|s| Allocation {
            space: s.space.clone(),
            share: s.share,
            first_seconds: 0.0,
            first_best: None,
            weight: s.share,
            second_seconds: 0.0,
        })
        .collect();
    let sweeps_started = Instant::now();
    let last_round = usize::from(first < 1.0);
    for round in 0..=last_round {
        let remaining = (sweep_seconds - sweeps_started.elapsed().as_secs_f64()).max(0.0);
        if round == 1 {
            reweigh(&mut allocation, &done);
            // A sweep whose share of round 2 would not fit one more trial (its round-1 mean
            // trial time) gets none, and the others share its time.
            let per_trial: Vec<f64> = done
                .iter()
                .zip(&allocation)
                .map(|(d, a)| {
                    d.as_ref()
                        .map(|d| &d.outcome.summary)
                        .filter(|s| s.n_run > 0)
                        .map_or(a.first_seconds, |s| s.seconds / s.n_run as f64)
                })
                .collect();
            loop {
                let total: f64 = allocation.iter().map(|a| a.weight).sum();
                for a in &mut allocation {
                    a.second_seconds = remaining * a.weight / total.max(f64::MIN_POSITIVE);
                }
                let Some(i) = (0..n)
                    .filter(|&i| {
                        allocation[i].weight > 0.0
                            && allocation[i].second_seconds < per_trial[i].max(MIN_SWEEP_SECONDS)
                    })
                    .min_by(|&a, &b| allocation[a].weight.total_cmp(&allocation[b].weight))
                else {
                    break;
                };
                allocation[i].weight = 0.0;
            }
            tracing::info!(
                "reallocated {remaining:.0} s: {}",
                allocation
                    .iter()
                    .map(|a| format!("{} {:.0} s", a.space.display(), a.second_seconds))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        for (i, s) in settings.sweeps.iter().enumerate() {
            // A sweep given too little time in round 2 runs no more trials, but still
            // registers its best so that every sweep's best competes for champion.
            let register_only = round == 1 && allocation[i].second_seconds < MIN_SWEEP_SECONDS;
            let timeout = if round == 0 {
                (s.share * sweep_seconds * first).max(30.0)
            } else if register_only {
                1.0
            } else {
                allocation[i].second_seconds
            };
            if round == 0 {
                allocation[i].first_seconds = timeout;
            }
            let t = Instant::now();
            let mut n_trials =
                plan.n_trials
                    .unwrap_or(if gpu { s.gpu_n_trials } else { s.n_trials });
            if register_only {
                n_trials = done[i].as_ref().map_or(0, |d| {
                    d.outcome.summary.n_complete + d.outcome.summary.n_pruned
                });
                if n_trials == 0 {
                    continue;
                }
            }
            let population = if gpu { s.gpu_population } else { 1 };
            let stem = s
                .space
                .file_stem()
                .map_or_else(|| format!("sweep{i}"), |x| x.to_string_lossy().into_owned());
            tracing::info!(
                "sweep {}/{n}{}: {} ({n_trials} trials, at most {timeout:.0} s{})",
                i + 1,
                if last_round > 0 {
                    format!(" (round {})", round + 1)
                } else {
                    String::new()
                },
                s.space.display(),
                if population > 1 {
                    format!(", populations of {population}")
                } else {
                    String::new()
                }
            );
            let mut sweep_settings = SweepSettings::new(Arc::clone(&plan.config), &s.space);
            sweep_settings.study = Some(format!("{}-{stem}", config.name));
            sweep_settings.storage.clone_from(&plan.storage);
            sweep_settings.n_trials = n_trials;
            // Whole seconds, as the command line's --timeout took them.
            sweep_settings.timeout =
                Some(Duration::try_from_secs_f64(timeout.round()).unwrap_or(Duration::MAX));
            sweep_settings.pruner.clone_from(&s.pruner);
            sweep_settings.sampler.clone_from(&s.sampler);
            sweep_settings.device = device_arg(&plan.device, &device);
            // The run's decision layer looks at every sweep at once; none of its own.
            sweep_settings.top_k = 0;
            // Each sweep's best is registered once, in its last round.
            sweep_settings.register = (round == last_round).then(|| settings.register.clone());
            sweep_settings.validation = Validation::Folds(plan.folds);
            sweep_settings.seed = plan.seed;
            sweep_settings.tracking = plan.tracking.clone();
            sweep_settings.population = population;
            sweep_settings.final_model = settings.final_model;
            sweep_settings.features = selected.as_ref().map(|o| o.output.clone());
            let outcome = sweep(&sweep_settings, hooks).map_err(|e| PipelineError::Sweep {
                index: i + 1,
                space: s.space.clone(),
                source: Box::new(e),
            })?;
            if let Some(e) = &outcome.register_error {
                // The trials are stored; without a registered model there is no champion.
                return Err(PipelineError::NotRegistered {
                    index: i + 1,
                    space: s.space.clone(),
                    reason: e.clone(),
                });
            }
            steps.push(Step {
                name: "sweep",
                seconds: t.elapsed().as_secs_f64(),
                detail: format!(
                    "{}{}: {} complete, {} pruned, best {}",
                    outcome.study,
                    if last_round > 0 {
                        format!(" (round {})", round + 1)
                    } else {
                        String::new()
                    },
                    outcome.summary.n_complete,
                    outcome.summary.n_pruned,
                    outcome
                        .summary
                        .best
                        .as_ref()
                        .and_then(|b| b.value)
                        .map_or_else(|| "-".into(), |v| format!("{v:.5}"))
                ),
            });
            if round == 0 {
                allocation[i].first_best = outcome.summary.best.as_ref().and_then(|b| b.value);
            }
            done[i] = Some(match done[i].take() {
                None => SweepRun {
                    space: s.space.clone(),
                    n_trials,
                    population,
                    timeout,
                    outcome,
                },
                Some(earlier) => SweepRun {
                    timeout: earlier.timeout + timeout,
                    outcome: SweepOutcome {
                        summary: tabtune_tune::executor::Summary {
                            n_run: earlier.outcome.summary.n_run + outcome.summary.n_run,
                            seconds: earlier.outcome.summary.seconds + outcome.summary.seconds,
                            ..outcome.summary
                        },
                        ..outcome
                    },
                    ..earlier
                },
            });
        }
        if hooks.stopped() {
            break;
        }
    }
    let done: Vec<SweepRun> = done.into_iter().flatten().collect();

    // 4. The decision layer over the top trials of every sweep (same folds, so the
    // out-of-fold predictions line up): an ensemble with class weights, scored by
    // cross-fitting, exported and registered; it becomes the champion only if it beats every
    // single model.
    let t = Instant::now();
    let decision = if settings.top_k > 0 {
        decision_layer(plan, &done, hooks)?
    } else {
        None
    };
    steps.push(Step {
        name: "decision",
        seconds: t.elapsed().as_secs_f64(),
        detail: decision.as_ref().map_or_else(
            || "skipped (fewer than 2 trials with out-of-fold predictions)".into(),
            |d| {
                let single = d
                    .report
                    .score(crate::decision::Method::Single)
                    .map_or(f64::NAN, |s| s.accuracy);
                format!(
                    "{} of {} from {} candidates: {:.5} cross-fitted (best single {:.5} \
                     cross-fitted, {:.5} raw){}",
                    d.report.champion.name(),
                    d.report.shipped.members.len(),
                    d.candidates,
                    d.ensemble.accuracy,
                    single,
                    d.report.raw_accuracy,
                    if d.promoted { ", champion" } else { "" }
                )
            },
        ),
    });

    // 5. The champion: the registry's, which every sweep's best and the ensemble competed for.
    let t = Instant::now();
    let registry = open_registry(plan.tracking.uri.as_deref())?;
    let reference = ModelRef {
        name: settings.register.clone(),
        selector: Selector::Alias(CHAMPION.to_owned()),
    };
    let no_champion = |e: &dyn std::fmt::Display| PipelineError::NoChampion {
        name: settings.register.clone(),
        reason: e.to_string(),
    };
    let version = registry
        .version_of(&reference)
        .map_err(|e| no_champion(&e))?;
    let champion_dir = registry.bundle_dir(&settings.register, version)?;
    let listed = registry
        .model(&settings.register)?
        .versions
        .into_iter()
        .find(|v| v.version == version)
        .ok_or_else(|| no_champion(&format!("version {version} is not listed")))?;
    let champion = Champion {
        reference: reference.to_string(),
        dir: champion_dir,
        version,
        family: listed.family.clone(),
        cv_accuracy: listed.metrics.get("cv_accuracy_mean").copied(),
        cv_logloss: listed.metrics.get("cv_logloss_mean").copied(),
    };
    steps.push(Step {
        name: "champion",
        seconds: t.elapsed().as_secs_f64(),
        detail: format!(
            "{} version {version} ({}), CV accuracy {}",
            settings.register,
            champion.family,
            champion
                .cv_accuracy
                .map_or_else(|| "-".into(), |a| format!("{a:.5}"))
        ),
    });

    // 6. Submission for the test file.
    let model_arg = champion.dir.to_string_lossy().into_owned();
    let submission = match &config.data.test {
        Some(test) => {
            let t = Instant::now();
            let p = predict_file(
                config,
                &PredictSettings {
                    model: model_arg.clone(),
                    input: Input::file(config.data_path(test)),
                    output: Some(PathBuf::from(format!(
                        "reports/submission-{}.csv",
                        config.name
                    ))),
                    submission: true,
                },
                progress,
            )?;
            steps.push(Step {
                name: "submission",
                seconds: t.elapsed().as_secs_f64(),
                detail: format!("{} rows", p.rows),
            });
            Some(p)
        }
        None => None,
    };

    // 7. Monitoring: the current data against the training data, through the champion.
    let monitored = match &config.data.current {
        Some(_) => {
            let t = Instant::now();
            let m = monitor(config, &MonitorSettings::new(model_arg), progress)?;
            steps.push(Step {
                name: "monitor",
                seconds: t.elapsed().as_secs_f64(),
                detail: format!(
                    "dataset drift {}, {} of {} columns drifted",
                    if m.report.dataset_drift { "yes" } else { "no" },
                    m.report.drifted_columns().len(),
                    m.report.columns.len()
                ),
            });
            Some(m)
        }
        None => None,
    };

    let mut outcome = RunOutcome {
        steps,
        device,
        sweeps: done,
        allocation,
        decision,
        selected,
        champion,
        registry: registry.describe(),
        eda,
        submission,
        monitored,
        budget_minutes: budget,
        report: PathBuf::from(format!("reports/run-{}.html", config.name)),
        seconds: started.elapsed().as_secs_f64(),
    };
    write_bytes_atomic(&outcome.report, run_html(config, &outcome).as_bytes())?;
    outcome.seconds = started.elapsed().as_secs_f64();
    Ok(outcome)
}

/// The decision layer over the best `top_k` complete trials of each sweep that have
/// out-of-fold predictions (so over every family); exports its champion as a bundle and
/// registers it.
fn decision_layer(plan: &RunPlan, done: &[SweepRun], hooks: &Hooks) -> Result<Option<Decided>> {
    let config = plan.config.as_ref();
    let k = plan.settings.top_k;
    let input = Input::default();
    let table = load_training(config, &input, hooks.progress.as_ref())?.table;
    let y = table.target.clone().unwrap_or_default();
    // The candidates, best first within each study.
    let mut members: Vec<Member> = Vec::new();
    let mut labels: Vec<String> = Vec::new();
    let mut oofs: Vec<Array2<f64>> = Vec::new();
    for d in done {
        let o = &d.outcome;
        let best = o.summary.best.as_ref().map(|b| b.number);
        for (number, m) in top_oofs(&o.trials, o.metric.direction(), &o.oof, k, table.n_rows())? {
            // A study's registered best is reused instead of fitted again.
            let bundle = (best == Some(number))
                .then(|| o.registered.as_ref().map(|r| r.bundle.clone()))
                .flatten();
            let member = Member {
                study: o.study.clone(),
                storage: plan.storage.clone(),
                trial: number,
                bundle,
            };
            labels.push(member.label());
            members.push(member);
            oofs.push(m);
        }
    }
    if members.len() < 2 {
        tracing::info!("decision layer skipped: fewer than 2 trials with out-of-fold predictions");
        return Ok(None);
    }
    let kfold = kfold(config, plan.folds, plan.seed);
    let fold_of = fold_of(kfold, &y, config.schema.classes().len())?;
    let views: Vec<_> = oofs.iter().map(|m| m.view()).collect();
    let report = decide(&views, &y, &fold_of, &plan.settings.decision)?;
    drop(views);
    drop(oofs);

    // Fit every member on all rows and ship the blend.
    let dir = PathBuf::from(format!("checkpoints/{}-ensemble", config.name));
    let Some(ensemble) = ship_ensemble(
        config,
        &report,
        &members,
        &input,
        &plan.device,
        plan.settings.final_model,
        &dir,
        hooks.progress.as_ref(),
    )?
    else {
        return Ok(None);
    };
    // Every sweep's best is among the candidates and every method is scored cross-fitted on
    // this run's folds, so the decision layer's winner is the run's champion (the sweeps'
    // registered bests compete on their raw, selected-on-all-rows CV numbers, which are
    // optimistic).
    let registry = open_registry(plan.tracking.uri.as_deref())?;
    let version = registry.register(
        &plan.settings.register,
        &dir,
        &std::collections::BTreeMap::new(),
    )?;
    registry.set_alias(&plan.settings.register, CHAMPION, version.version)?;
    tracing::info!(
        "decision layer: registered {} version {} as {CHAMPION} ({}, {:.5} cross-fitted)",
        plan.settings.register,
        version.version,
        report.champion.name(),
        ensemble.accuracy
    );
    Ok(Some(Decided {
        candidates: members.len(),
        labels,
        report,
        ensemble,
        version: version.version,
        promoted: true,
    }))
}

/// The run's report: what each step did, how the sweep time was allocated, each sweep's best,
/// every decision-layer method's cross-fitted score and the champion.
fn run_html(config: &Config, o: &RunOutcome) -> String {
    use tabtune_features::report::html;
    let opt = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| html::num(v, 5));
    let steps: Vec<Vec<String>> = o
        .steps
        .iter()
        .map(|s| vec![s.name.to_owned(), html::num(s.seconds, 1), s.detail.clone()])
        .collect();
    let mut body = html::section(
        "Steps",
        &format!(
            "Budget {} minutes, {} s in all; device {}.",
            html::num(o.budget_minutes, 1),
            html::num(o.seconds, 0),
            o.device.name
        ),
        &html::table(&["step", "seconds", "what it did"], &steps),
    );
    let alloc: Vec<Vec<String>> = o
        .allocation
        .iter()
        .map(|a| {
            vec![
                a.space.display().to_string(),
                html::num(a.share, 3),
                html::num(a.first_seconds, 0),
                opt(a.first_best),
                html::num(a.weight, 3),
                html::num(a.second_seconds, 0),
            ]
        })
        .collect();
    body.push_str(&html::section(
        "Time allocation",
        "Each sweep's configured share of the sweep time, the seconds it got in the first round, \
         its best value then, its weight for the second round (share × 2^(−gap/0.002), the gap \
         being how far its best is behind the best of all) and the seconds it got in the second \
         round.",
        &html::table(
            &[
                "sweep",
                "share",
                "round 1 s",
                "round 1 best",
                "weight",
                "round 2 s",
            ],
            &alloc,
        ),
    ));
    let sweeps: Vec<Vec<String>> = o
        .sweeps
        .iter()
        .map(|r| {
            let s = &r.outcome.summary;
            vec![
                r.outcome.study.clone(),
                r.space.display().to_string(),
                s.n_complete.to_string(),
                s.n_pruned.to_string(),
                s.n_failed.to_string(),
                opt(s.best.as_ref().and_then(|b| b.value)),
                html::num(s.seconds, 0),
            ]
        })
        .collect();
    body.push_str(&html::section(
        "Sweeps",
        "Best values are each study's raw CV numbers (the best trial picked on all rows).",
        &html::table(
            &[
                "study", "space", "complete", "pruned", "failed", "best", "seconds",
            ],
            &sweeps,
        ),
    ));
    if let Some(d) = &o.decision {
        body.push_str(&crate::report::decision_html(&d.report, &d.labels));
    }
    body.push_str(&html::section(
        "Champion",
        "",
        &html::table(
            &[
                "reference",
                "version",
                "family",
                "CV accuracy",
                "CV log loss",
            ],
            &[vec![
                o.champion.reference.clone(),
                o.champion.version.to_string(),
                o.champion.family.clone(),
                opt(o.champion.cv_accuracy),
                opt(o.champion.cv_logloss),
            ]],
        ),
    ));
    html::page(
        &format!("tabtune run: {}", config.name),
        &format!("champion {} ({})", o.champion.reference, o.champion.family),
        &body,
    )
}

/// Whether the device is a GPU (CUDA, or a wgpu adapter that `select` found to be a real GPU).
fn is_gpu(device: &DeviceChoice) -> bool {
    !matches!(device.device, Device::Cpu)
}

/// The device the sweeps get: the one already picked, so every sweep uses the same device
/// and `auto` is probed once.
fn device_arg(requested: &str, picked: &DeviceChoice) -> String {
    if requested == "auto" {
        picked.name.clone()
    } else {
        requested.to_owned()
    }
}

/// Makes sure the config's data files are in the data folder: a missing file that a
/// `[[data.sources]]` entry provides is fetched (sha256 checked), unless `fetch` is off.
/// Returns the files fetched. A missing training file with no way to get it is an error
/// saying what to do; a missing test or current file is an error too, since the run would
/// skip a report.
fn ensure_data(config: &Config, fetch_missing: bool, hooks: &Hooks) -> Result<Vec<String>> {
    let mut wanted = vec![config.data.train.clone()];
    wanted.extend(config.data.test.iter().cloned());
    wanted.extend(config.data.current.iter().cloned());
    let dir = &config.data.dir;
    let mut fetched = Vec::new();
    for file in wanted {
        if dir.join(&file).is_file() {
            continue;
        }
        let source = config.data.sources.iter().find(|s| s.file == file);
        match (source, fetch_missing) {
            (Some(source), true) => {
                let bar = hooks
                    .progress
                    .bytes(&format!("{} -> {}", source.name, source.file));
                let outcome = fetch(source, dir, false, &mut |done, total| {
                    if let Some(t) = total {
                        bar.set_length(t);
                    }
                    bar.set_position(done);
                });
                drop(bar);
                let outcome = outcome.map_err(|e| PipelineError::Fetch {
                    path: dir.join(&file),
                    source_name: source.name.clone(),
                    reason: e.to_string(),
                    bad_input: e.is_bad_input(),
                })?;
                if outcome.status == FetchStatus::Downloaded {
                    fetched.push(file);
                }
            }
            (Some(_), false) => return Err(missing(config, dir, &file, "--no-fetch was given")),
            (None, _) => {
                return Err(missing(
                    config,
                    dir,
                    &file,
                    "no [[data.sources]] entry provides it",
                ));
            }
        }
    }
    Ok(fetched)
}

fn missing(config: &Config, dir: &Path, file: &str, why: &str) -> PipelineError {
    FeaturesError::BadFile {
        path: dir.join(file),
        message: format!(
            "not found ({why}); put it in {} or point --data-dir / TABTUNE_DATA_DIR at the folder \
             that has it (config {})",
            dir.display(),
            config.path.display()
        ),
    }
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_becomes_the_picked_device() {
        let cpu = DeviceChoice::cpu("test");
        assert_eq!(device_arg("auto", &cpu), "cpu");
        assert_eq!(device_arg("cuda:1", &cpu), "cuda:1");
        assert!(!is_gpu(&cpu));
    }
}
