//! A hyperparameter study over the training data: trials cross-validated on the chosen
//! devices (neural trials in populations, GBDT trials on a GPU in batched fits), pruned on intermediate values, stored in Optuna's
//! schema (resumable), tracked, then the decision layer on out-of-fold predictions, the HTML
//! report and, when asked, the best trial exported and registered.
//!
//! ```no_run
//! use std::sync::Arc;
//! use tabtune_features::Config;
//! use tabtune_pipeline::{Hooks, SweepSettings, sweep};
//!
//! let config = Arc::new(Config::load("configs/obesity.toml".as_ref())?);
//! let mut settings = SweepSettings::new(config, "configs/sweeps/quick-gbdt.toml");
//! settings.n_trials = 6;
//! let outcome = sweep(&settings, &Hooks::default())?;
//! println!("best: {:?}", outcome.summary.best.map(|b| b.value));
//! # Ok::<(), tabtune_pipeline::PipelineError>(())
//! ```

pub mod attrs;
mod objective;
pub mod oof;
pub mod params;
pub mod storage;
mod tables;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ndarray::Array2;
use serde_json::json;
use tabtune_features::config::Metric;
use tabtune_features::io::write_bytes_atomic;
use tabtune_features::{Config, KFold, PreprocessorSpec, Table};
use tabtune_track::registry::{ModelVersion, Promotion, open_registry, register_and_maybe_promote};
use tabtune_train::nn::device::select;
use tabtune_train::nn::{DeviceChoice, DeviceRequest};
use tabtune_train::trees::batch_options;
use tabtune_tune::executor::{
    OptimizeOptions, StopReason, Summary, TrialEvent, WorkerContext, optimize, optimize_population,
};
use tabtune_tune::storage::{AttrKind, redact};
use tabtune_tune::study::{Engine, Study, TrialHandle};
use tabtune_tune::{
    Direction, FrozenTrial, SearchSpace, TrialState, pruner_from_name, sampler_from_name,
};

use self::attrs::{ATTR_FEATURES, ATTR_SEED};
use self::objective::{Setup, has_gbdt, has_neural};
use self::oof::OofStore;
use self::storage::{DEFAULT_STORAGE, open_storage, sanitize, study_dir};
use self::tables::TrialTables;
use crate::data::{Input, kfold, load_training};
use crate::decision::{DecisionOptions, DecisionReport, decide, top_oofs};
use crate::error::{PipelineError, Result};
use crate::export::{ExportSettings, FinalModel, export_trial};
use crate::progress::{Hooks, Task};
use crate::report::{StudyReportInput, decision_html, study_html};
use crate::select::read_features;
use crate::tracking::{Tracking, flush};

/// At most this much memory holds cached fold matrices and bins.
const CACHE_BYTES: usize = 1 << 30;

/// How each trial is validated.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Validation {
    /// k-fold cross-validation; `None`: the config's `cv.folds`.
    Folds(Option<usize>),
    /// One stratified holdout of this share of the rows (0.05..=0.5), reported per boosting
    /// round or epoch (faster; the decision layer needs k-fold).
    Holdout(f64),
}

/// Everything a sweep needs.
#[derive(Clone, Debug)]
pub struct SweepSettings {
    /// The task config (schema, features, transforms, `[cv]`).
    pub config: Arc<Config>,
    /// The training rows.
    pub input: Input,
    /// The search space file (see `configs/sweeps/README.md`).
    pub space: PathBuf,
    /// Study name; `None`: `<task>-<space file stem>`. The same name and storage resume it.
    pub study: Option<String>,
    /// Study storage URL: `sqlite:///PATH` or `postgresql://USER@HOST:PORT/DB`.
    pub storage: String,
    /// How each trial is validated.
    pub validation: Validation,
    /// Finished (complete + pruned) trials the study should hold when the sweep ends.
    pub n_trials: u64,
    /// Start no new trial after this long.
    pub timeout: Option<Duration>,
    /// Trials running at once (≥ 1).
    pub workers: usize,
    /// Devices: `auto`, `cpu`, `wgpu`, `cuda:N` or `cuda:N,M,...` (workers are spread over
    /// them).
    pub device: String,
    /// Trials per device when several devices are given (≥ 1).
    pub trials_per_device: usize,
    /// Trials asked for at once; neural ones whose architectures fit one stack train as ONE
    /// model, and on a GPU GBDT ones of one growth policy as ONE batched fit (1: one trial at
    /// a time).
    pub population: usize,
    /// Sampler: random, grid, qmc, tpe, tpe-multivariate.
    pub sampler: String,
    /// Pruner: none, median, percentile:P, asha, hyperband, wilcoxon (with options).
    pub pruner: String,
    /// Seed of the sampler, the splits and the models; `None`: the config's `cv.seed`.
    pub seed: Option<u64>,
    /// Only these features reach the models (a file written by `select`, or a JSON list).
    pub features: Option<PathBuf>,
    /// Trials blended by the decision layer (0: skip it).
    pub top_k: usize,
    /// The HTML report; `None`: `reports/studies/<study>/report.html`.
    pub report: Option<PathBuf>,
    /// Where trials are tracked.
    pub tracking: Tracking,
    /// Register the best trial (fitted on every row) under this name; `None`: the config's
    /// name when an MLflow tracking URI is in effect, else no registration.
    pub register: Option<String>,
    /// What the registered best trial ships as: refitted on every row, or its fold models.
    pub final_model: FinalModel,
}

impl SweepSettings {
    /// A sweep of `space` with the command line's defaults (30 trials, one worker, TPE
    /// multivariate, median pruning, the default SQLite storage, tracking on).
    pub fn new(config: Arc<Config>, space: impl Into<PathBuf>) -> Self {
        Self {
            config,
            input: Input::default(),
            space: space.into(),
            study: None,
            storage: DEFAULT_STORAGE.to_owned(),
            validation: Validation::Folds(None),
            n_trials: 30,
            timeout: None,
            workers: 1,
            device: "auto".to_owned(),
            trials_per_device: 1,
            population: 1,
            sampler: "tpe-multivariate".to_owned(),
            pruner: "median".to_owned(),
            seed: None,
            features: None,
            top_k: 10,
            report: None,
            tracking: Tracking::default(),
            register: None,
            final_model: FinalModel::Refit,
        }
    }

    /// Checks the counts and shares that do not depend on files.
    pub fn check(&self) -> Result<()> {
        if !(1..=tabtune_tune::executor::MAX_WORKERS).contains(&self.workers) {
            return Err(PipelineError::setting(
                "workers",
                self.workers,
                format!("in 1..={}", tabtune_tune::executor::MAX_WORKERS),
            ));
        }
        if self.trials_per_device == 0 {
            return Err(PipelineError::setting("trials_per_device", 0, "at least 1"));
        }
        if self.population == 0 {
            return Err(PipelineError::setting(
                "population",
                0,
                "at least 1 (1: one trial at a time)",
            ));
        }
        if let Validation::Holdout(h) = self.validation
            && !(0.05..=0.5).contains(&h)
        {
            return Err(PipelineError::setting("holdout", h, "between 0.05 and 0.5"));
        }
        Ok(())
    }
}

/// The decision layer of one study.
#[derive(Clone, Debug)]
pub struct Decision {
    /// What it found (candidate indices refer to `trials`).
    pub report: DecisionReport,
    /// The trial number of each candidate.
    pub trials: Vec<u64>,
}

/// The best trial as registered after the sweep.
#[derive(Clone, Debug)]
pub struct Registered {
    /// The registered model's name.
    pub name: String,
    /// The bundle that was registered (in checkpoints/).
    pub bundle: PathBuf,
    /// The new version.
    pub version: ModelVersion,
    /// Whether `champion` moved to it, and why.
    pub promotion: Promotion,
}

/// What a sweep did: its study, trials, decision layer, report and registration.
#[derive(Clone, Debug)]
pub struct SweepOutcome {
    /// The study's name.
    pub study: String,
    /// The storage URL with any password redacted.
    pub storage: String,
    /// The objective's metric.
    pub metric: Metric,
    /// Finished trials asked for.
    pub n_trials: u64,
    /// This invocation's counts and the best trial.
    pub summary: Summary,
    /// Every trial of the study (earlier invocations included).
    pub trials: Vec<FrozenTrial>,
    /// The decision layer over the top trials.
    pub decision: Option<Decision>,
    /// The study's out-of-fold predictions.
    pub oof: OofStore,
    /// The HTML study report.
    pub report: PathBuf,
    /// The registered best trial, when registration was asked for and worked.
    pub registered: Option<Registered>,
    /// Why registration failed (the trials are stored regardless).
    pub register_error: Option<String>,
}

impl SweepOutcome {
    /// Complete trials, best first.
    pub fn ranked(&self) -> Vec<&FrozenTrial> {
        let mut ranked: Vec<&FrozenTrial> = self
            .trials
            .iter()
            .filter(|t| t.state == TrialState::Complete && t.value.is_some())
            .collect();
        let dir = self.metric.direction();
        ranked.sort_by(|a, b| {
            dir.as_loss(a.value.unwrap_or(0.0))
                .total_cmp(&dir.as_loss(b.value.unwrap_or(0.0)))
        });
        ranked
    }

    /// Why the sweep stopped, in words.
    pub fn stop_reason(&self) -> &'static str {
        match self.summary.reason {
            StopReason::Done => "done",
            StopReason::Timeout => "timeout",
            StopReason::Interrupted => "interrupted",
            StopReason::Exhausted => "search space exhausted",
        }
    }
}

/// The devices trials run on (`auto|cpu|wgpu|cuda[:N[,M]]`).
pub fn devices(spec: &str) -> Result<Vec<DeviceChoice>> {
    if let Some(rest) = spec.strip_prefix("cuda:")
        && rest.contains(',')
    {
        return rest
            .split(',')
            .map(|n| {
                Ok(select(DeviceRequest::parse(&format!(
                    "cuda:{}",
                    n.trim()
                ))?)?)
            })
            .collect();
    }
    Ok(vec![select(DeviceRequest::parse(spec)?)?])
}

/// Runs a sweep to the end: the trials, the decision layer, the report and the registration.
/// Rerunning it with the same study and storage resumes the study up to `n_trials` finished
/// trials. `hooks.stop` ends it early: running trials are stored as FAIL and the outcome says
/// `interrupted`.
pub fn sweep(settings: &SweepSettings, hooks: &Hooks) -> Result<SweepOutcome> {
    settings.check()?;
    let config = settings.config.as_ref();
    let space = SearchSpace::from_toml_file(&settings.space)?;
    let metric_name = space.metric().unwrap_or("accuracy");
    let metric = Metric::parse(metric_name).ok_or_else(|| PipelineError::TrialParam {
        param: format!("{}: metric", settings.space.display()),
        value: format!("`{metric_name}`"),
        expected: "accuracy or logloss".into(),
    })?;
    let direction = space.direction().unwrap_or(metric.direction());
    if direction != metric.direction() {
        return Err(PipelineError::DirectionMismatch {
            space: settings.space.clone(),
            direction: direction.as_optuna().to_lowercase(),
            metric: metric.name().to_owned(),
            expected: metric.direction().as_optuna().to_lowercase(),
        });
    }
    let stem = settings
        .space
        .file_stem()
        .map_or_else(|| "sweep".into(), |s| s.to_string_lossy().into_owned());
    let study_name = settings
        .study
        .clone()
        .unwrap_or_else(|| format!("{}-{stem}", config.name));
    let url = settings.storage.clone();
    let seed = settings.seed.unwrap_or(config.cv.seed);

    let training = load_training(config, &settings.input, hooks.progress.as_ref())?;
    let table = &training.table;
    let mut spec = PreprocessorSpec::from_config(config);
    if let Some(path) = &settings.features {
        let names = read_features(path)?;
        // Checked against the pipeline's outputs now, not in every trial.
        spec = spec.with_features(names);
        spec.fit(table)?;
    }
    let sampler = sampler_from_name(&settings.sampler, seed, &space)?;
    let pruner = pruner_from_name(&settings.pruner)?;
    let storage = open_storage(&url)?;
    let shown_url = redact(&url);
    let mut fixed = space.fixed().clone();
    fixed.entry("seed".into()).or_insert_with(|| json!(seed));
    let study = Study::open(
        Arc::clone(&storage),
        &study_name,
        direction,
        Engine::new(space.clone(), sampler, pruner),
    )?;
    storage.set_study_attr(study.id(), AttrKind::User, ATTR_SEED, &json!(seed))?;
    // The feature subset belongs to the study: export refits with the same one.
    let subset = spec.kept_features().map(<[String]>::to_vec);
    let stored = storage
        .study_attrs(study.id(), AttrKind::User)?
        .get(ATTR_FEATURES)
        .cloned();
    match (&stored, &subset) {
        (Some(s), Some(f)) if *s != json!(f) => {
            return Err(PipelineError::StudyFeatures {
                study: study_name,
                stored: "another --features list".into(),
                hint: "use a new study name".into(),
            });
        }
        (Some(_), None) => {
            return Err(PipelineError::StudyFeatures {
                study: study_name,
                stored: "--features".into(),
                hint: "pass the same list (or use a new study name)".into(),
            });
        }
        (None, Some(f)) => {
            storage.set_study_attr(study.id(), AttrKind::User, ATTR_FEATURES, &json!(f))?;
        }
        _ => {}
    }

    let (kfold, max_folds) = match settings.validation {
        Validation::Holdout(h) => (
            KFold {
                folds: (1.0 / h).round() as usize,
                repeats: 1,
                seed,
                stratify: true,
            },
            1,
        ),
        Validation::Folds(folds) => {
            let k = kfold(config, folds, Some(seed));
            (k, k.folds)
        }
    };
    // Bad split settings are the user's input: say so before any trial runs.
    if let Some(labels) = table.target.as_deref() {
        kfold.split(labels, spec.schema().classes().len())?;
    }
    let dir = study_dir(&study_name);
    let setup = Setup {
        tables: TrialTables::new(&training, kfold, CACHE_BYTES),
        spec: &spec,
        kfold,
        max_folds,
        metric,
        fixed,
        devices: devices(&settings.device)?,
        trials_per_device: settings.trials_per_device,
        oof: OofStore::new(dir.join("oof")),
        study: study_name.clone(),
        tracker: settings.tracking.tracker(),
    };
    for d in &setup.devices {
        tracing::info!("device {}: {}", d.name, d.reason);
    }

    let options = OptimizeOptions {
        n_trials: Some(settings.n_trials),
        timeout: settings.timeout,
        workers: settings.workers,
        stop: Arc::clone(&hooks.stop),
        ..OptimizeOptions::default()
    };
    let before = study.counts()?;
    let finished_before =
        before.get("COMPLETE").copied().unwrap_or(0) + before.get("PRUNED").copied().unwrap_or(0);
    let bar = hooks.progress.counter(
        settings.n_trials,
        finished_before.min(settings.n_trials),
        "trials",
    );
    let on_event = |e: &TrialEvent| on_trial(bar.as_ref(), e, metric);
    let on_gpu = setup.devices.iter().any(|d| batch_options(d).is_some());
    let population =
        if settings.population > 1 && !has_neural(&space) && !(on_gpu && has_gbdt(&space)) {
            tracing::info!(
                "population {}: the space has no neural family{}, so trials run one at a time",
                settings.population,
                if on_gpu {
                    " and no gradient-boosting style"
                } else {
                    " (and GBDT trials batch only on a GPU)"
                }
            );
            1
        } else {
            settings.population
        };
    let summary = if population > 1 {
        let objective = |hs: &mut [TrialHandle], w: WorkerContext| setup.run_batch(hs, w);
        optimize_population(&study, population, &objective, &options, Some(&on_event))
    } else {
        let objective = |h: &mut TrialHandle, w: WorkerContext| setup.run_trial(h, w);
        optimize(&study, &objective, &options, Some(&on_event))
    };
    drop(bar);
    let summary = summary?;
    if hooks.stopped() {
        tracing::warn!(
            "interrupted: running trials were marked FAIL; rerun the same command to resume"
        );
    }

    let trials = study.trials()?;
    let decision = if settings.top_k > 0 && matches!(settings.validation, Validation::Folds(_)) {
        decision_layer(&setup, &trials, direction, settings.top_k, table)?
    } else {
        None
    };
    let report_path = settings
        .report
        .clone()
        .unwrap_or_else(|| dir.join("report.html"));
    let html = study_html(&StudyReportInput {
        study: &study_name,
        storage: &shown_url,
        direction,
        metric: metric.name(),
        trials: &trials,
        extra_sections: decision
            .as_ref()
            .map(|d| {
                let labels: Vec<String> = d.trials.iter().map(|n| format!("#{n}")).collect();
                vec![decision_html(&d.report, &labels)]
            })
            .unwrap_or_default(),
    })?;
    write_bytes_atomic(&report_path, html.as_bytes())?;
    flush(&setup.tracker);
    let register = settings
        .register
        .clone()
        .or_else(|| settings.tracking.mlflow_uri().map(|_| config.name.clone()));
    let mut register_error = None;
    let registered = match (&register, &summary.best) {
        // The trials are done and stored: a registry that fails (MLflow down) is reported, and
        // the bundle stays in checkpoints/ to register later.
        (Some(name), Some(_)) => match register_best(settings, &study_name, name, metric, hooks) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!("the best trial was not registered: {e}");
                register_error = Some(e.to_string());
                None
            }
        },
        (Some(_), None) => {
            tracing::warn!("nothing registered: the study has no complete trial");
            None
        }
        _ => None,
    };
    Ok(SweepOutcome {
        study: study_name,
        storage: shown_url,
        metric,
        n_trials: settings.n_trials,
        summary,
        trials,
        decision,
        oof: setup.oof.clone(),
        report: report_path,
        registered,
        register_error,
    })
}

fn on_trial(bar: &dyn Task, e: &TrialEvent, metric: Metric) {
    if e.trial.state.is_finished() && e.trial.state != TrialState::Fail {
        bar.inc(1);
    }
    let best = e
        .best
        .as_ref()
        .and_then(|b| {
            b.value
                .map(|v| format!("best {} {v:.5} (#{})", metric.name(), b.number))
        })
        .unwrap_or_default();
    bar.set_message(format!(
        "{best}  complete {} pruned {} failed {}",
        e.n_complete, e.n_pruned, e.n_failed
    ));
    let value = e
        .trial
        .value
        .map_or_else(|| "-".into(), |v| format!("{v:.5}"));
    tracing::info!(
        trial = e.trial.number,
        state = e.trial.state.as_optuna(),
        value = %value,
        worker = e.worker,
        "trial finished"
    );
    if e.trial.state == TrialState::Fail
        && let Some(reason) = e.trial.system_attrs.get("fail_reason")
    {
        tracing::warn!("trial {} failed: {reason}", e.trial.number);
    }
}

/// The decision layer over the top `k` complete trials that have OOF predictions.
fn decision_layer(
    setup: &Setup<'_>,
    trials: &[FrozenTrial],
    direction: Direction,
    k: usize,
    table: &Table,
) -> Result<Option<Decision>> {
    let (numbers, oofs): (Vec<u64>, Vec<Array2<f64>>) =
        top_oofs(trials, direction, &setup.oof, k, table.n_rows())?
            .into_iter()
            .unzip();
    if oofs.len() < 2 {
        tracing::info!("decision layer skipped: fewer than 2 complete trials with OOF predictions");
        return Ok(None);
    }
    let y = table.target.as_deref().unwrap_or_default();
    let fold_of = crate::data::fold_of(setup.kfold, y, setup.spec.schema().classes().len())?;
    let views: Vec<_> = oofs.iter().map(|m| m.view()).collect();
    let report = decide(&views, y, &fold_of, &DecisionOptions::default())?;
    Ok(Some(Decision {
        report,
        trials: numbers,
    }))
}

/// Fits the best trial on every row into checkpoints/<study>-best and registers it, moving
/// `champion` only if it beats the current one.
fn register_best(
    settings: &SweepSettings,
    study: &str,
    name: &str,
    metric: Metric,
    hooks: &Hooks,
) -> Result<Registered> {
    let exported = export_trial(
        &settings.config,
        &ExportSettings {
            input: settings.input.clone(),
            study: study.to_owned(),
            storage: settings.storage.clone(),
            trial: None,
            output: Some(PathBuf::from(format!(
                "checkpoints/{}-best",
                sanitize(study)
            ))),
            device: settings.device.clone(),
            final_model: settings.final_model,
        },
        hooks.progress.as_ref(),
    )?;
    let registry = open_registry(settings.tracking.uri.as_deref())?;
    let key = match metric {
        Metric::Accuracy => "cv_accuracy_mean",
        Metric::Logloss => "cv_logloss_mean",
    };
    let direction = metric.direction();
    let (version, promotion) =
        register_and_maybe_promote(registry.as_ref(), name, &exported.bundle, key, direction)?;
    Ok(Registered {
        name: name.to_owned(),
        bundle: exported.bundle,
        version,
        promotion,
    })
}
