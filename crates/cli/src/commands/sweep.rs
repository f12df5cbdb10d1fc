//! `tabtune sweep`: a hyperparameter study over the training data, stored in Optuna's schema,
//! resumable, with pruning, parallel workers, a decision layer on out-of-fold predictions and
//! an HTML report.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context as _, Result};
use indicatif::{ProgressBar, ProgressStyle};
use ndarray::Array2;
use serde_json::{Value, json};
use tabtune_features::io::write_bytes_atomic;
use tabtune_features::{KFold, PreprocessorSpec, Table, TargetPresence, report::html};
use tabtune_models::gbdt::Control;
use tabtune_train::decision::{DecisionReport, decide};
use tabtune_train::nn::EpochMetrics;
use tabtune_train::nn::device::select;
use tabtune_train::nn::trials::cross_validate_trials;
use tabtune_train::nn::{DeviceChoice, DeviceRequest};
use tabtune_train::objective::{FAMILY_PARAM, OofStore, trial_params};
use tabtune_train::study_report::{StudyReportInput, study_html};
use tabtune_train::{CvCache, CvHooks, CvReport, Family, ModelParams, cross_validate_cached};
use tabtune_tune::executor::{
    OptimizeOptions, StopReason, Summary, TrialError, TrialEvent, WorkerContext, optimize,
    optimize_population,
};
use tabtune_tune::storage::{AttrKind, Storage, open, redact};
use tabtune_tune::study::{Engine, Study, TrialHandle};
use tabtune_tune::{
    Choice, Direction, Distribution, FrozenTrial, ParamValue, SearchSpace, TrialState,
    pruner_from_name, sampler_from_name,
};

use tabtune_track::registry::{
    Direction as RegistryDirection, ModelVersion, Promotion, register_and_maybe_promote,
};
use tabtune_track::{MultiTracker, RunHandle, RunSpec, RunStatus};

use crate::cli::SweepArgs;
use crate::commands::export::{ExportRequest, export_trial};
use crate::commands::select::ATTR_FEATURES;
use crate::context::Context;
use crate::output;

/// The study user attribute holding the seed the trials ran with (export refits with it).
pub const ATTR_SEED: &str = "seed";

/// Where studies go when `--storage` is not given.
pub const DEFAULT_STORAGE: &str = "sqlite:///reports/studies.db";

/// The objective's metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// Mean validation accuracy (maximise).
    Accuracy,
    /// Mean validation log loss (minimise).
    Logloss,
}

impl Metric {
    fn parse(name: &str) -> Result<Self> {
        match name {
            "accuracy" => Ok(Self::Accuracy),
            "logloss" | "log_loss" => Ok(Self::Logloss),
            other => invalid!("unknown metric `{other}`; expected accuracy or logloss"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Accuracy => "accuracy",
            Self::Logloss => "logloss",
        }
    }

    /// Whether the metric is maximised or minimised.
    pub fn direction(self) -> Direction {
        match self {
            Self::Accuracy => Direction::Maximize,
            Self::Logloss => Direction::Minimize,
        }
    }
}

/// Everything one trial needs, shared by the worker threads.
struct Setup<'a> {
    table: &'a Table,
    spec: &'a PreprocessorSpec,
    kfold: KFold,
    /// Stop after this many folds (1 for a holdout split).
    max_folds: usize,
    metric: Metric,
    fixed: BTreeMap<String, Value>,
    devices: Vec<DeviceChoice>,
    trials_per_device: usize,
    oof: OofStore,
    study: String,
    tracker: MultiTracker,
    /// Each fold's preprocessed matrices and GBDT bins, shared by the tree trials.
    cache: CvCache,
}

/// At most this much memory holds cached fold matrices and bins.
const CACHE_BYTES: usize = 1 << 30;

/// How a trial reports intermediate values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Steps {
    /// One value per fold (step = fold index): k-fold CV.
    Folds,
    /// One value per boosting round or epoch of the single holdout fold (step = round).
    Rounds,
}

/// What the hooks of one trial learned, and the trial's tracking run.
struct Flags {
    pruned: bool,
    interrupted: bool,
    storage_error: Option<String>,
    run: RunHandle,
    metric: Metric,
}

impl Flags {
    fn new(setup: &Setup<'_>, h: &TrialHandle) -> Self {
        Self {
            pruned: false,
            interrupted: false,
            storage_error: None,
            run: setup.tracker.start_run(&run_spec(setup, h)),
            metric: setup.metric,
        }
    }

    /// Whether the trial has ended (pruned, interrupted, or its storage failed).
    fn stopped(&self) -> bool {
        self.pruned || self.interrupted || self.storage_error.is_some()
    }

    /// Stops when the run was interrupted (Ctrl-C) or the trial has ended.
    fn keep_going(&mut self, h: &TrialHandle) -> Control {
        self.interrupted |= h.interrupted();
        if self.stopped() {
            Control::Stop
        } else {
            Control::Continue
        }
    }

    /// Reports `value` at `step` (to the study and the trackers) and decides whether the
    /// trial goes on.
    fn report(&mut self, h: &mut TrialHandle, step: u64, value: f64) -> Control {
        if self.pruned || self.interrupted || self.storage_error.is_some() {
            return Control::Stop;
        }
        self.run.log_metrics(step, &[(self.metric.name(), value)]);
        match h.report(step, value) {
            Ok(true) => {
                self.pruned = true;
                return Control::Stop;
            }
            Ok(false) => {}
            Err(e) => {
                self.storage_error = Some(e.to_string());
                return Control::Stop;
            }
        }
        if h.interrupted() {
            self.interrupted = true;
            return Control::Stop;
        }
        Control::Continue
    }
}

/// A trial's parameters as tracking params (sampled values and the family).
fn run_spec(setup: &Setup<'_>, h: &TrialHandle) -> RunSpec {
    let mut spec = RunSpec::new(&setup.study, format!("trial-{}", h.number()))
        .trial(&setup.study, h.number())
        .tag("tabtune.command", "sweep");
    for (k, v) in &setup.fixed {
        spec = spec.param(k.clone(), v.clone());
    }
    for (k, v) in h.params() {
        spec = spec.param(k.clone(), v.to_json());
    }
    spec
}

/// Runs one trial: cross-validation (or the holdout fold) of the trial's family and
/// parameters. Intermediate values go to the study as the run goes (per fold in k-fold mode,
/// per boosting round / epoch in holdout mode) so the pruner can stop it.
fn run_trial(
    setup: &Setup<'_>,
    h: &mut TrialHandle,
    ctx: WorkerContext,
) -> std::result::Result<f64, TrialError> {
    match prepare(setup, h)? {
        ModelParams::Neural(p) => run_neural(setup, &mut [h], vec![p], ctx)
            .pop()
            .expect("one result per trial"),
        params => run_tree(setup, h, &params),
    }
}

/// The trial's family and parameters, its family stored as a user attribute.
fn prepare(setup: &Setup<'_>, h: &mut TrialHandle) -> std::result::Result<ModelParams, TrialError> {
    let (family, params) = trial_params(h.params(), &setup.fixed)?;
    h.set_user_attr("family", Value::from(family.name()))?;
    Ok(params)
}

/// Where the worker's trials train.
fn device_of<'s>(setup: &'s Setup<'_>, ctx: WorkerContext) -> &'s DeviceChoice {
    &setup.devices[(ctx.worker / setup.trials_per_device) % setup.devices.len()]
}

impl Setup<'_> {
    fn steps(&self) -> Steps {
        if self.max_folds == 1 {
            Steps::Rounds
        } else {
            Steps::Folds
        }
    }

    fn value(&self, accuracy: f64, logloss: f64) -> f64 {
        match self.metric {
            Metric::Accuracy => accuracy,
            Metric::Logloss => logloss,
        }
    }
}

/// A batch of trials from [`optimize_population`]: the neural ones whose architectures fit
/// one stack train as one population (each trial × fold a member), the tree ones one by one.
fn run_batch(
    setup: &Setup<'_>,
    handles: &mut [TrialHandle],
    ctx: WorkerContext,
) -> Vec<std::result::Result<f64, TrialError>> {
    let mut results: Vec<Option<std::result::Result<f64, TrialError>>> =
        handles.iter().map(|_| None).collect();
    let mut params: Vec<Option<ModelParams>> = Vec::with_capacity(handles.len());
    for (i, h) in handles.iter_mut().enumerate() {
        match prepare(setup, h) {
            Ok(p) => params.push(Some(p)),
            Err(e) => {
                results[i] = Some(Err(e));
                params.push(None);
            }
        }
    }
    let mut neural_at = Vec::new();
    let mut neural = Vec::new();
    for (i, p) in params.iter().enumerate() {
        if let Some(ModelParams::Neural(p)) = p {
            neural_at.push(i);
            neural.push(p.clone());
        }
    }
    if !neural.is_empty() {
        let mut chosen: Vec<&mut TrialHandle> = handles
            .iter_mut()
            .enumerate()
            .filter(|(i, _)| neural_at.contains(i))
            .map(|(_, h)| h)
            .collect();
        for (i, r) in neural_at
            .iter()
            .zip(run_neural(setup, &mut chosen, neural, ctx))
        {
            results[*i] = Some(r);
        }
    }
    for (i, h) in handles.iter_mut().enumerate() {
        if results[i].is_none()
            && let Some(p) = &params[i]
        {
            results[i] = Some(run_tree(setup, h, p));
        }
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(TrialError::Failed("the trial did not run".into()))))
        .collect()
}

/// Neural trials cross-validated together ([`cross_validate_trials`]): per-epoch values of the
/// holdout fold (or per-fold values once the folds end) go to each trial's own handle, and a
/// pruned trial's members are masked out while the others go on.
fn run_neural(
    setup: &Setup<'_>,
    handles: &mut [&mut TrialHandle],
    params: Vec<tabtune_models::nn::NeuralParams>,
    ctx: WorkerContext,
) -> Vec<std::result::Result<f64, TrialError>> {
    let steps = setup.steps();
    let mut flags: Vec<Flags> = handles.iter().map(|h| Flags::new(setup, h)).collect();
    let mut on_epoch = |t: usize, fold: usize, m: &EpochMetrics| {
        let (h, flags) = (&mut *handles[t], &mut flags[t]);
        if steps == Steps::Rounds
            && fold == 0
            && let (Some(a), Some(l)) = (m.valid_accuracy, m.valid_logloss)
        {
            return flags.report(h, m.epoch as u64, setup.value(a, l));
        }
        flags.keep_going(h)
    };
    let outcome = cross_validate_trials(
        setup.table,
        setup.spec,
        &params,
        setup.kfold,
        setup.max_folds,
        device_of(setup, ctx),
        &mut on_epoch,
    );
    let mut reports: Vec<tabtune_train::Result<CvReport>> = match outcome {
        Ok(r) => r.into_iter().map(|r| r.map(|t| t.report)).collect(),
        Err(e) => {
            let why = e.to_string();
            handles
                .iter()
                .map(|_| Err(tabtune_train::TrainError::Invalid(why.clone())))
                .collect()
        }
    };
    handles
        .iter_mut()
        .zip(flags)
        .zip(reports.drain(..))
        .map(|((h, mut flags), report)| {
            if steps == Steps::Folds
                && let Ok(r) = &report
            {
                // The folds trained together: their values reach the pruner now, in order.
                for f in &r.folds {
                    let step = (f.repeat * setup.kfold.folds + f.fold) as u64;
                    if flags.report(h, step, setup.value(f.accuracy, f.logloss)) == Control::Stop {
                        break;
                    }
                }
            }
            finish(setup, h, flags, report)
        })
        .collect()
}

/// One tree-family trial (see [`run_trial`]).
fn run_tree(
    setup: &Setup<'_>,
    h: &mut TrialHandle,
    params: &ModelParams,
) -> std::result::Result<f64, TrialError> {
    let device = &DeviceChoice::cpu("tree families train on the CPU");
    let steps = setup.steps();
    let flags = Flags::new(setup, h);
    let state = Mutex::new((h, flags));
    let with = |f: &mut dyn FnMut(&mut TrialHandle, &mut Flags) -> Control| {
        let mut guard = state.lock().unwrap_or_else(PoisonError::into_inner);
        let (h, flags) = &mut *guard;
        f(h, flags)
    };
    let mut seen = 0usize;
    let report = cross_validate_cached(
        setup.table,
        setup.spec,
        params,
        setup.kfold,
        device,
        CvHooks {
            on_fold: &mut |f| {
                seen += 1;
                let control = if steps == Steps::Folds {
                    let step = (f.repeat * setup.kfold.folds + f.fold) as u64;
                    let value = setup.value(f.accuracy, f.logloss);
                    with(&mut |h, flags| flags.report(h, step, value))
                } else {
                    with(&mut |h, flags| flags.keep_going(h))
                };
                if seen >= setup.max_folds {
                    Control::Stop
                } else {
                    control
                }
            },
            // Neural trials run in `run_neural`.
            on_epoch: &mut |_, _| with(&mut |h, flags| flags.keep_going(h)),
            on_round: &mut |fold, round, eval| {
                if steps == Steps::Rounds && fold == 0 {
                    let value = setup.value(eval.accuracy, eval.logloss);
                    with(&mut |h, flags| flags.report(h, round as u64, value))
                } else {
                    Control::Continue
                }
            },
            follow_rounds: steps == Steps::Rounds,
        },
        Some(&setup.cache),
    );
    let (h, flags) = state.into_inner().unwrap_or_else(PoisonError::into_inner);
    finish(setup, h, flags, report)
}

/// Ends a trial's run: its state from the flags (storage failure, interruption, pruning) or
/// the report; a complete trial's metrics and OOF predictions are recorded.
fn finish(
    setup: &Setup<'_>,
    h: &mut TrialHandle,
    flags: Flags,
    report: tabtune_train::Result<CvReport>,
) -> std::result::Result<f64, TrialError> {
    let mut run = flags.run;
    if let Some(e) = flags.storage_error {
        run.end(RunStatus::Failed);
        return Err(TrialError::Failed(e));
    }
    if flags.interrupted || h.interrupted() {
        run.end(RunStatus::Killed);
        return Err(TrialError::Failed("interrupted (Ctrl-C)".into()));
    }
    if flags.pruned {
        run.set_tags(&[("tabtune.state", "PRUNED")]);
        run.end(RunStatus::Killed);
        return Err(TrialError::Pruned);
    }
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            run.set_tags(&[("tabtune.error", &e.to_string())]);
            run.end(RunStatus::Failed);
            return Err(e.into());
        }
    };
    if let Err(e) = record(setup, h, &report) {
        run.end(RunStatus::Failed);
        return Err(e);
    }
    run.log_metrics(
        0,
        &[
            ("cv_accuracy_mean", report.accuracy_mean),
            ("cv_accuracy_std", report.accuracy_std),
            ("cv_logloss_mean", report.logloss_mean),
            ("seconds", report.seconds),
        ],
    );
    run.set_tags(&[("tabtune.state", "COMPLETE")]);
    run.end(RunStatus::Finished);
    Ok(match setup.metric {
        Metric::Accuracy => report.accuracy_mean,
        Metric::Logloss => report.logloss_mean,
    })
}

/// Stores a finished trial's metrics as user attributes and its OOF predictions on disk.
fn record(
    setup: &Setup<'_>,
    h: &mut TrialHandle,
    report: &CvReport,
) -> std::result::Result<(), TrialError> {
    let rounds = report.folds.iter().map(|f| f.rounds).sum::<usize>() as f64
        / report.folds.len().max(1) as f64;
    for (k, v) in [
        ("accuracy_mean", report.accuracy_mean),
        ("accuracy_std", report.accuracy_std),
        ("logloss_mean", report.logloss_mean),
        ("rounds_mean", rounds),
        ("seconds", report.seconds),
    ] {
        h.set_user_attr(k, json!(v))?;
    }
    h.set_user_attr("folds", json!(report.folds.len()))?;
    h.set_user_attr("device", json!(report.device))?;
    // The decision layer needs every row's OOF prediction: only full k-fold runs qualify.
    if report.folds.len() == setup.kfold.folds * setup.kfold.repeats {
        setup.oof.put(h.number(), &report.oof)?;
    }
    Ok(())
}

/// Whether the space can propose a neural trial (a fixed or sampled `family` naming one).
fn has_neural(space: &SearchSpace) -> bool {
    let neural = |name: &str| Family::parse(name).is_ok_and(Family::is_neural);
    if let Some(Value::String(f)) = space.fixed().get(FAMILY_PARAM) {
        return neural(f);
    }
    space
        .param(FAMILY_PARAM)
        .is_some_and(|p| match &p.distribution {
            Distribution::Categorical { choices } => choices
                .iter()
                .any(|c| matches!(c, Choice::Str(s) if neural(s))),
            _ => false,
        })
}

/// Opens the storage, creating the folder of the default SQLite file.
pub fn open_storage(url: &str) -> Result<Arc<dyn Storage>> {
    if url == DEFAULT_STORAGE {
        std::fs::create_dir_all("reports").context("creating reports/")?;
    }
    let storage = open(url)?;
    Ok(Arc::new(storage))
}

/// The devices trials run on (`--device auto|cpu|wgpu|cuda[:N[,M]]`).
fn devices(spec: &str) -> Result<Vec<DeviceChoice>> {
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

/// Where a study's files go: `reports/studies/<study>/`.
pub fn study_dir(study: &str) -> PathBuf {
    Path::new("reports/studies").join(sanitize(study))
}

/// A study name as a file name.
fn sanitize(study: &str) -> String {
    study
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Runs the command: the study, then its leaderboard (or `--json`).
pub fn run(ctx: &Context, args: &SweepArgs) -> Result<()> {
    let outcome = execute(ctx, args)?;
    print_summary(ctx, &outcome, args.n_trials);
    Ok(())
}

/// What a sweep did: its study, trials, decision layer, report and registration.
pub struct SweepOutcome {
    /// The study's name.
    pub study: String,
    /// The storage URL with any password redacted.
    pub storage: String,
    /// The objective's metric.
    pub metric: Metric,
    /// This invocation's counts and the best trial.
    pub summary: Summary,
    /// Every trial of the study (earlier invocations included).
    pub trials: Vec<FrozenTrial>,
    /// The decision layer over the top trials, with the trial numbers its members index.
    pub decision: Option<(DecisionReport, Vec<u64>)>,
    /// The HTML study report.
    pub report: PathBuf,
    /// The registered best trial, when registration was asked for and worked.
    pub registered: Option<Registered>,
    /// Why registration failed (the trials are stored regardless).
    pub register_error: Option<String>,
}

/// Runs a sweep to the end (trials, decision layer, report, registration) without printing.
pub fn execute(ctx: &Context, args: &SweepArgs) -> Result<SweepOutcome> {
    let config = &ctx.config;
    let space = SearchSpace::from_toml_file(&args.sweep)?;
    let metric = Metric::parse(space.metric().unwrap_or("accuracy"))
        .with_context(|| format!("{}: `metric`", args.sweep.display()))?;
    let direction = space.direction().unwrap_or(metric.direction());
    if direction != metric.direction() {
        invalid!(
            "{}: direction {} does not fit metric {} (which is {}d)",
            args.sweep.display(),
            direction.as_optuna().to_lowercase(),
            metric.name(),
            metric.direction().as_optuna().to_lowercase()
        );
    }
    let stem = args
        .sweep
        .file_stem()
        .map_or_else(|| "sweep".into(), |s| s.to_string_lossy().into_owned());
    let study_name = args
        .study
        .clone()
        .unwrap_or_else(|| format!("{}-{stem}", config.name));
    let url = args.storage.clone();
    let seed = args.seed.unwrap_or(config.cv.seed);
    if args.workers == 0 {
        invalid!("--workers must be at least 1");
    }
    if args.trials_per_device == 0 {
        invalid!("--trials-per-device must be at least 1");
    }
    if args.population == 0 {
        invalid!("--population must be at least 1 (1: one trial at a time)");
    }
    if let Some(h) = args.holdout
        && !(0.05..=0.5).contains(&h)
    {
        invalid!("--holdout must be between 0.05 and 0.5, got {h}");
    }

    let loaded = ctx.load(&args.input, TargetPresence::Required)?;
    let mut table = loaded.table;
    if config.transforms.dedup {
        let (deduped, removed) = table.dedup();
        tracing::info!(
            "transforms.dedup: dropped {} duplicate training rows",
            removed.len()
        );
        table = deduped;
    }
    let mut spec = PreprocessorSpec::from_config(config);
    if let Some(path) = &args.features {
        let names = crate::commands::select::read_features(path)?;
        // Checked against the pipeline's outputs now, not in every trial.
        spec = spec.with_features(names);
        spec.fit(&table)?;
    }
    let sampler = sampler_from_name(&args.sampler, seed, &space)?;
    let pruner = pruner_from_name(&args.pruner)?;
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
        (Some(s), Some(f)) if *s != json!(f) => invalid!(
            "study `{study_name}` was run with another --features list; use a new study name"
        ),
        (Some(_), None) => invalid!(
            "study `{study_name}` was run with --features; pass the same list (or use a new study name)"
        ),
        (None, Some(f)) => {
            storage.set_study_attr(study.id(), AttrKind::User, ATTR_FEATURES, &json!(f))?;
        }
        _ => {}
    }

    let (kfold, max_folds) = match args.holdout {
        Some(h) => (
            KFold {
                folds: (1.0 / h).round() as usize,
                repeats: 1,
                seed,
                stratify: true,
            },
            1,
        ),
        None => {
            let folds = args.folds.unwrap_or(config.cv.folds);
            let k = KFold {
                folds,
                repeats: 1,
                seed,
                stratify: config.cv.stratify,
            };
            (k, folds)
        }
    };
    // Bad split settings are the user's input: say so before any trial runs.
    if let Some(labels) = table.target.as_deref() {
        kfold.split(labels, spec.schema().classes().len())?;
    }
    let dir = study_dir(&study_name);
    let setup = Setup {
        table: &table,
        spec: &spec,
        kfold,
        max_folds,
        metric,
        fixed,
        devices: devices(&args.device)?,
        trials_per_device: args.trials_per_device,
        oof: OofStore::new(dir.join("oof")),
        study: study_name.clone(),
        tracker: crate::tracking::tracker(args.no_track, args.tracking_uri.as_deref()),
        cache: CvCache::new(kfold, CACHE_BYTES),
    };
    for d in &setup.devices {
        tracing::info!("device {}: {}", d.name, d.reason);
    }

    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .context("installing the Ctrl-C handler")?;
    }
    let options = OptimizeOptions {
        n_trials: Some(args.n_trials),
        timeout: args.timeout.map(Duration::from_secs_f64),
        workers: args.workers,
        stop: Arc::clone(&stop),
        ..OptimizeOptions::default()
    };
    let before = study.counts()?;
    let finished_before =
        before.get("COMPLETE").copied().unwrap_or(0) + before.get("PRUNED").copied().unwrap_or(0);
    let bar = progress_bar(ctx.progress, args.n_trials, finished_before);
    let progress = |e: &TrialEvent| on_trial(&bar, e, metric);
    let population = if args.population > 1 && !has_neural(&space) {
        tracing::info!(
            "--population {}: the space has no neural family, so trials run one at a time",
            args.population
        );
        1
    } else {
        args.population
    };
    let summary = if population > 1 {
        let objective = |hs: &mut [TrialHandle], w: WorkerContext| run_batch(&setup, hs, w);
        optimize_population(&study, population, &objective, &options, Some(&progress))
    } else {
        let objective = |h: &mut TrialHandle, w: WorkerContext| run_trial(&setup, h, w);
        optimize(&study, &objective, &options, Some(&progress))
    };
    bar.finish_and_clear();
    let summary = summary?;
    if stop.load(Ordering::SeqCst) {
        tracing::warn!(
            "interrupted: running trials were marked FAIL; rerun the same command to resume"
        );
    }

    let trials = study.trials()?;
    let decision = if args.top_k > 0 && args.holdout.is_none() {
        decision_layer(&setup, &trials, direction, args.top_k, &table)?
    } else {
        None
    };
    let report_path = args
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
            .map(|(d, numbers)| vec![decision_html(d, numbers)])
            .unwrap_or_default(),
    })?;
    write_bytes_atomic(&report_path, html.as_bytes())?;
    for e in setup.tracker.flush(Duration::from_secs(30)) {
        tracing::debug!("tracking flush: {e}");
    }
    let register = args.register.clone().or_else(|| {
        crate::model_ref::tracking_uri(args.tracking_uri.as_deref()).map(|_| config.name.clone())
    });
    let mut register_error = None;
    let registered = match (&register, &summary.best) {
        // The trials are done and stored: a registry that fails (MLflow down) is reported, and
        // the bundle stays in checkpoints/ to register later.
        (Some(name), Some(_)) => match register_best(ctx, args, &study_name, name, metric) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!("the best trial was not registered: {e:#}");
                register_error = Some(format!("{e:#}"));
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
        summary,
        trials,
        decision,
        report: report_path,
        registered,
        register_error,
    })
}

fn progress_bar(enabled: bool, n: u64, done: u64) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(n).with_position(done.min(n));
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} trials  {msg}  [{elapsed}<{eta}]")
            .expect("the template is valid"),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

fn on_trial(bar: &ProgressBar, e: &TrialEvent, metric: Metric) {
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
) -> Result<Option<(DecisionReport, Vec<u64>)>> {
    let (numbers, oofs): (Vec<u64>, Vec<Array2<f64>>) =
        top_oofs(trials, direction, &setup.oof, k, table.n_rows())?
            .into_iter()
            .unzip();
    if oofs.len() < 2 {
        tracing::info!("decision layer skipped: fewer than 2 complete trials with OOF predictions");
        return Ok(None);
    }
    let y = table.target.as_deref().unwrap_or_default();
    let fold_of = fold_of(setup.kfold, y, setup.spec.schema().classes().len())?;
    let views: Vec<_> = oofs.iter().map(|m| m.view()).collect();
    let report = decide(&views, y, &fold_of, 20)?;
    Ok(Some((report, numbers)))
}

/// The best `k` complete trials (best first) whose out-of-fold predictions are stored and
/// cover all `rows` rows, with those predictions: the decision layer's candidates.
pub fn top_oofs(
    trials: &[FrozenTrial],
    direction: Direction,
    oof: &OofStore,
    k: usize,
    rows: usize,
) -> Result<Vec<(u64, Array2<f64>)>> {
    let mut done: Vec<&FrozenTrial> = trials
        .iter()
        .filter(|t| t.state == TrialState::Complete && t.value.is_some())
        .collect();
    done.sort_by(|a, b| {
        direction
            .as_loss(a.value.unwrap_or(0.0))
            .total_cmp(&direction.as_loss(b.value.unwrap_or(0.0)))
    });
    let mut out = Vec::new();
    for t in done {
        if out.len() == k {
            break;
        }
        if let Some(m) = oof.get(t.number)?
            && m.nrows() == rows
        {
            out.push((t.number, m));
        }
    }
    Ok(out)
}

/// Each row's validation fold under `kfold` (labels `y`, `n_classes` classes).
pub fn fold_of(kfold: KFold, y: &[u32], n_classes: usize) -> Result<Vec<usize>> {
    let mut fold_of = vec![0usize; y.len()];
    for f in kfold.split(y, n_classes)? {
        for &r in &f.valid {
            fold_of[r] = f.fold;
        }
    }
    Ok(fold_of)
}

fn decision_html(d: &DecisionReport, numbers: &[u64]) -> String {
    let members: Vec<Vec<String>> = d
        .ensemble
        .members
        .iter()
        .map(|(i, w)| vec![numbers[*i].to_string(), html::num(*w, 3)])
        .collect();
    let table = html::table(
        &["", "accuracy"],
        &[
            vec![
                format!("best single trial (#{}), raw OOF", numbers[d.best_single]),
                html::num(d.raw_accuracy, 5),
            ],
            vec![
                "ensemble, cross-fitted".into(),
                html::num(d.ensemble_accuracy, 5),
            ],
            vec![
                "ensemble + class weights, cross-fitted".into(),
                html::num(d.ensemble_weighted_accuracy, 5),
            ],
        ],
    );
    let weights = d
        .class_weights
        .weights
        .iter()
        .map(|w| html::num(*w, 2))
        .collect::<Vec<_>>()
        .join(", ");
    html::section(
        "Decision layer (out-of-fold only)",
        "An ensemble of the top trials (greedy selection on out-of-fold log loss) and per-class \
         probability weights, both tuned on out-of-fold predictions and scored by cross-fitting \
         over the same folds: never on rows they were tuned on. Reported beside, not instead of, \
         the raw CV number.",
        &format!(
            "{table}<p>Class weights: {weights}</p>{}",
            html::table(&["trial", "weight"], &members)
        ),
    )
}

/// The best trial as registered after the sweep.
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

/// Fits the best trial on every row into checkpoints/<study>-best and registers it, moving
/// `champion` only if it beats the current one.
fn register_best(
    ctx: &Context,
    args: &SweepArgs,
    study: &str,
    name: &str,
    metric: Metric,
) -> Result<Registered> {
    let exported = export_trial(
        ctx,
        &ExportRequest {
            input: &args.input,
            study,
            storage: &args.storage,
            trial: None,
            output: Some(PathBuf::from(format!(
                "checkpoints/{}-best",
                sanitize(study)
            ))),
            device: &args.device,
        },
    )?;
    let registry = crate::model_ref::open_registry(args.tracking_uri.as_deref())?;
    let (key, direction) = match metric {
        Metric::Accuracy => ("cv_accuracy_mean", RegistryDirection::Maximize),
        Metric::Logloss => ("cv_logloss_mean", RegistryDirection::Minimize),
    };
    let (version, promotion) =
        register_and_maybe_promote(registry.as_ref(), name, &exported.bundle, key, direction)?;
    Ok(Registered {
        name: name.to_owned(),
        bundle: exported.bundle,
        version,
        promotion,
    })
}

fn print_summary(ctx: &Context, p: &SweepOutcome, n_trials: u64) {
    let best = p.summary.best.as_ref();
    let best_params: serde_json::Map<String, Value> = best
        .map(|b| {
            b.params
                .iter()
                .map(|(k, v)| (k.clone(), v.to_json()))
                .collect()
        })
        .unwrap_or_default();
    let reason = match p.summary.reason {
        StopReason::Done => "done",
        StopReason::Timeout => "timeout",
        StopReason::Interrupted => "interrupted",
        StopReason::Exhausted => "search space exhausted",
    };
    if ctx.json {
        let decision = p.decision.as_ref().map(|(d, numbers)| {
            json!({
                "raw_accuracy": d.raw_accuracy,
                "best_single_trial": numbers[d.best_single],
                "ensemble_accuracy": d.ensemble_accuracy,
                "ensemble_weighted_accuracy": d.ensemble_weighted_accuracy,
                "ensemble_logloss": d.ensemble_logloss,
                "members": d.ensemble.members.iter().map(|(i, w)| json!({"trial": numbers[*i], "weight": w})).collect::<Vec<_>>(),
                "class_weights": d.class_weights.weights,
                "folds": d.folds,
            })
        });
        output::json(&json!({
            "study": p.study,
            "storage": p.storage,
            "metric": p.metric.name(),
            "n_trials": n_trials,
            "n_complete": p.summary.n_complete,
            "n_pruned": p.summary.n_pruned,
            "n_failed": p.summary.n_failed,
            "n_run": p.summary.n_run,
            "stopped": reason,
            "best_value": best.and_then(|b| b.value),
            "best_trial": best.map(|b| b.number),
            "best_params": best_params,
            "decision": decision,
            "bundle": p.registered.as_ref().map(|r| &r.bundle),
            "registered": p.registered.as_ref().map(|r| json!({
                "name": r.name,
                "version": r.version.version,
                "champion": r.promotion.promoted,
                "previous_champion": r.promotion.previous,
                "reason": r.promotion.reason,
            })),
            "register_error": p.register_error,
            "report": p.report,
            "seconds": p.summary.seconds,
        }));
        return;
    }
    let mut ranked: Vec<&FrozenTrial> = p
        .trials
        .iter()
        .filter(|t| t.state == TrialState::Complete && t.value.is_some())
        .collect();
    let dir = p.metric.direction();
    ranked.sort_by(|a, b| {
        dir.as_loss(a.value.unwrap_or(0.0))
            .total_cmp(&dir.as_loss(b.value.unwrap_or(0.0)))
    });
    let rows: Vec<Vec<String>> = ranked
        .iter()
        .take(10)
        .enumerate()
        .map(|(i, t)| {
            let params: Vec<String> = t
                .params
                .iter()
                .map(|(k, v)| format!("{k}={}", short(v)))
                .collect();
            vec![
                (i + 1).to_string(),
                t.number.to_string(),
                format!("{:.5}", t.value.unwrap_or(f64::NAN)),
                t.duration_s()
                    .map_or_else(|| "-".into(), |s| format!("{s:.1}")),
                params.join(" "),
            ]
        })
        .collect();
    let mut s = format!(
        "study {} in {}: {} complete, {} pruned, {} failed ({reason}, {:.1} s)\n\n",
        p.study,
        p.storage,
        p.summary.n_complete,
        p.summary.n_pruned,
        p.summary.n_failed,
        p.summary.seconds
    );
    s.push_str(&output::table(
        &["rank", "trial", p.metric.name(), "seconds", "params"],
        &rows,
    ));
    if let Some((d, numbers)) = &p.decision {
        s.push_str(&format!(
            "\ndecision layer (OOF only, cross-fitted): best single #{} {:.5} | ensemble of {} {:.5} | + class weights {:.5}\n",
            numbers[d.best_single],
            d.raw_accuracy,
            d.ensemble.members.len(),
            d.ensemble_accuracy,
            d.ensemble_weighted_accuracy
        ));
    }
    if let Some(r) = &p.registered {
        s.push_str(&format!(
            "\nregistered {} version {} (bundle {}): {}\n",
            r.name,
            r.version.version,
            r.bundle.display(),
            r.promotion.reason
        ));
    }
    s.push_str(&format!("\nreport: {}\n", p.report.display()));
    output::text(&s);
}

/// A parameter value for the leaderboard: floats to 4 significant digits.
fn short(v: &ParamValue) -> String {
    match v {
        ParamValue::Float(x) if *x != 0.0 && (x.abs() < 1e-3 || x.abs() >= 1e5) => {
            format!("{x:.3e}")
        }
        ParamValue::Float(x) => {
            let digits = (3 - x.abs().log10().floor() as i32).clamp(0, 8) as usize;
            format!("{x:.digits$}")
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use tabtune_features::Config;
    use tabtune_features::io::{LoadOptions, load_table};
    use tabtune_tune::storage::open;
    use tabtune_tune::study::Outcome;
    use tabtune_tune::{FrozenTrial, Pruner, StudyView, Verdict};

    use super::*;

    /// Prunes odd-numbered trials at their first step.
    struct PruneOdd;

    impl Pruner for PruneOdd {
        fn prune(&self, trial: &FrozenTrial, _: &StudyView<'_>) -> Verdict {
            Verdict::from_bool(trial.number % 2 == 1)
        }

        fn name(&self) -> &'static str {
            "prune-odd"
        }
    }

    const SPACE: &str = r#"
[fixed]
family = "mlp"
epochs = 3
batch_size = 64
depth = 1
width = 8

[params.dropout]
type = "categorical"
choices = [0.0, 1.5, 0.2, 0.1]
"#;

    /// A holdout population sweep of four trials (one with an invalid dropout) in a temporary
    /// SQLite study; `pruner` judges every epoch.
    fn population_sweep(pruner: Box<dyn Pruner>) -> Vec<FrozenTrial> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("train.csv");
        std::fs::write(&path, tabtune_test::synthetic_obesity_csv(210, 5)).expect("write");
        let config = Config::load(&tabtune_test::default_config()).expect("config");
        let table = load_table(&path, &config.schema, &LoadOptions::default())
            .expect("valid")
            .table;
        let spec = PreprocessorSpec::from_config(&config);
        let space = SearchSpace::from_toml_str(SPACE, "test").expect("space");
        let storage = Arc::new(
            open(&format!("sqlite:///{}", dir.path().join("s.db").display())).expect("storage"),
        );
        let study = Study::open(
            storage,
            "pop",
            Direction::Maximize,
            Engine::new(
                space.clone(),
                sampler_from_name("grid", 1, &space).expect("grid"),
                pruner,
            ),
        )
        .expect("study");
        let kfold = KFold {
            folds: 5,
            repeats: 1,
            seed: 1,
            stratify: true,
        };
        let setup = Setup {
            table: &table,
            spec: &spec,
            kfold,
            max_folds: 1,
            metric: Metric::Accuracy,
            fixed: space.fixed().clone(),
            devices: vec![DeviceChoice::cpu("test")],
            trials_per_device: 1,
            oof: OofStore::new(dir.path().join("oof")),
            study: "pop".into(),
            tracker: crate::tracking::tracker(true, None),
            cache: CvCache::new(kfold, CACHE_BYTES),
        };
        // One batch of four, as `optimize_population` hands it to the objective.
        let mut handles = study.ask_batch(4, None).expect("ask");
        let results = run_batch(&setup, &mut handles, WorkerContext { worker: 0 });
        assert_eq!(results.len(), 4);
        for (h, r) in handles.into_iter().zip(results) {
            h.tell(match r {
                Ok(v) => Outcome::Complete(v),
                Err(TrialError::Pruned) => Outcome::Pruned,
                Err(TrialError::Failed(why)) => Outcome::Fail(why),
            })
            .expect("tell");
        }
        let mut trials = study.trials().expect("trials");
        trials.sort_by_key(|t| t.number);
        trials
    }

    fn dropout(t: &FrozenTrial) -> f64 {
        match t.params["dropout"] {
            ParamValue::Choice(Choice::Float(d)) => d,
            ref other => panic!("dropout {other:?}"),
        }
    }

    #[test]
    fn a_member_pruned_inside_a_population_stops_and_a_failing_one_loses_nothing() {
        let trials = population_sweep(Box::new(PruneOdd));
        assert_eq!(trials.len(), 4);
        for t in &trials {
            let steps: Vec<u64> = t.intermediate.keys().copied().collect();
            if dropout(t) >= 1.0 {
                assert_eq!(t.state, TrialState::Fail, "{t:?}");
                let why = t.system_attrs["fail_reason"].as_str().expect("reason");
                assert!(why.contains("dropout"), "{why}");
            } else if t.number % 2 == 1 {
                assert_eq!(t.state, TrialState::Pruned, "{t:?}");
                assert_eq!(steps, vec![1], "pruned after its first epoch");
            } else {
                assert_eq!(t.state, TrialState::Complete, "{t:?}");
                assert_eq!(steps, vec![1, 2, 3]);
                assert!(t.value.is_some_and(|v| v > 0.0));
            }
        }
        let count = |s: TrialState| trials.iter().filter(|t| t.state == s).count();
        assert_eq!(
            (count(TrialState::Fail), count(TrialState::Pruned)),
            (
                1,
                2 - usize::from(
                    trials
                        .iter()
                        .any(|t| t.number % 2 == 1 && dropout(t) >= 1.0)
                )
            ),
        );
        // Without the pruner the same trials complete with the same values.
        let free = population_sweep(Box::new(tabtune_tune::pruner::NopPruner));
        for (a, b) in trials.iter().zip(&free) {
            assert_eq!(a.params, b.params);
            if a.state == TrialState::Complete {
                assert_eq!(b.state, TrialState::Complete);
                let (x, y) = (a.value.expect("v"), b.value.expect("v"));
                assert!((x - y).abs() < 1e-9, "trial {}: {x} vs {y}", a.number);
            }
        }
    }
}
