//! The trial objective of a sweep: one trial (or a population of neural trials, or on a GPU a
//! batch of GBDT trials) cross-validated, intermediate values reported to the pruner as they
//! come (per fold in k-fold mode, per boosting round or epoch in holdout mode), the finished
//! trial's metrics stored as attributes and its out-of-fold predictions kept for the decision
//! layer.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use serde_json::{Value, json};
use tabtune_features::config::Metric;
use tabtune_features::{KFold, PreprocessorSpec};
use tabtune_models::forest::ForestParams;
use tabtune_models::gbdt::batched::BatchOptions;
use tabtune_models::gbdt::{GbdtParams, RoundEval};
use tabtune_models::metrics::Control;
use tabtune_models::nn::NeuralParams;
use tabtune_track::{MultiTracker, RunHandle, RunSpec, RunStatus};
use tabtune_train::nn::trials::cross_validate_trials;
use tabtune_train::nn::{DeviceChoice, EpochMetrics};
use tabtune_train::trees::{
    batch_options, cross_validate_forest_trials, cross_validate_gbdt_trials,
};
use tabtune_train::{CvHooks, CvReport, Family, ModelParams, cross_validate_cached};
use tabtune_tune::executor::{TrialError, WorkerContext};
use tabtune_tune::study::TrialHandle;
use tabtune_tune::{Choice, Distribution, SearchSpace};

use super::attrs::{
    ATTR_ACCURACY_MEAN, ATTR_ACCURACY_STD, ATTR_DEVICE, ATTR_FAMILY, ATTR_FOLDS, ATTR_LOGLOSS_MEAN,
    ATTR_ROUNDS_MEAN, ATTR_SECONDS,
};
use super::oof::OofStore;
use super::params::{FAMILY_PARAM, extra_repeats, trial_params};
use super::tables::TrialTables;

/// Each trial's report from a batch's outcome: its own result, or the batch's shared error
/// for all `n` trials.
fn per_trial<E: std::fmt::Display>(
    outcome: std::result::Result<Vec<std::result::Result<CvReport, E>>, String>,
    n: usize,
) -> Vec<std::result::Result<CvReport, String>> {
    match outcome {
        Ok(r) => r
            .into_iter()
            .map(|r| r.map_err(|e| e.to_string()))
            .collect(),
        Err(why) => vec![Err(why); n],
    }
}

/// Trials of one kind that train together in a batch from `optimize_population`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Together {
    /// Neural trials as one population.
    Neural,
    /// GBDT trials as batched fits on a GPU.
    Gbdt,
    /// Forest and decision-tree trials grown together on a GPU.
    Forest,
}

type TrialResult = std::result::Result<f64, TrialError>;

/// Everything one trial needs, shared by the worker threads.
pub(crate) struct Setup<'a> {
    /// The trials' tables (training rows plus the extra training files each trial asks for).
    pub tables: TrialTables<'a>,
    pub spec: &'a PreprocessorSpec,
    pub kfold: KFold,
    /// Stop after this many folds (1 for a holdout split).
    pub max_folds: usize,
    pub metric: Metric,
    pub fixed: BTreeMap<String, Value>,
    pub devices: Vec<DeviceChoice>,
    pub trials_per_device: usize,
    pub oof: OofStore,
    pub study: String,
    pub tracker: MultiTracker,
}

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
        if self.stopped() {
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

    /// Where the worker's trials train.
    fn device_of(&self, ctx: WorkerContext) -> &DeviceChoice {
        &self.devices[(ctx.worker / self.trials_per_device) % self.devices.len()]
    }

    /// Runs one trial: cross-validation (or the holdout fold) of the trial's family and
    /// parameters.
    pub(crate) fn run_trial(&self, h: &mut TrialHandle, ctx: WorkerContext) -> TrialResult {
        match self.prepare(h)? {
            ModelParams::Neural(p) => self
                .run_neural(&mut [h], vec![p], ctx)
                .pop()
                .expect("one result per trial"),
            params => self.run_tree(h, &params, ctx),
        }
    }

    /// The trial's family and parameters, its family stored as a user attribute.
    fn prepare(&self, h: &mut TrialHandle) -> std::result::Result<ModelParams, TrialError> {
        let (family, params) = trial_params(h.params(), &self.fixed)?;
        h.set_user_attr(ATTR_FAMILY, Value::from(family.name()))?;
        Ok(params)
    }

    /// A batch of trials from `optimize_population`: the neural ones whose architectures fit
    /// one stack train as one population (each trial × fold a member); on a GPU the GBDT ones
    /// boost as batched fits (each trial × fold a member) and the forest ones grow all their
    /// trees together fold by fold; the others one by one.
    pub(crate) fn run_batch(
        &self,
        handles: &mut [TrialHandle],
        ctx: WorkerContext,
    ) -> Vec<TrialResult> {
        let mut results: Vec<Option<TrialResult>> = handles.iter().map(|_| None).collect();
        let mut params: Vec<Option<ModelParams>> = Vec::with_capacity(handles.len());
        for (i, h) in handles.iter_mut().enumerate() {
            match self.prepare(h) {
                Ok(p) => params.push(Some(p)),
                Err(e) => {
                    results[i] = Some(Err(e));
                    params.push(None);
                }
            }
        }
        // Neural trials train as populations, and on a GPU GBDT trials as batched fits and
        // forest trials with all their trees grown together, one group per family kind and
        // extra_repeats value (one table each).
        let gpu_trees = batch_options(self.device_of(ctx));
        let mut groups: Vec<(Together, Option<usize>, Vec<usize>)> = Vec::new();
        for (i, p) in params.iter().enumerate() {
            let kind = match p {
                Some(ModelParams::Neural(_)) => Together::Neural,
                Some(ModelParams::Gbdt(_)) if gpu_trees.is_some() => Together::Gbdt,
                Some(ModelParams::Forest(_)) if gpu_trees.is_some() => Together::Forest,
                _ => continue,
            };
            match extra_repeats(handles[i].params(), &self.fixed) {
                Ok(r) => match groups.iter_mut().find(|(n, g, _)| *n == kind && *g == r) {
                    Some((_, _, members)) => members.push(i),
                    None => groups.push((kind, r, vec![i])),
                },
                Err(e) => results[i] = Some(Err(e.into())),
            }
        }
        for (kind, _, at) in groups {
            let mut chosen: Vec<&mut TrialHandle> = handles
                .iter_mut()
                .enumerate()
                .filter(|(i, _)| at.contains(i))
                .map(|(_, h)| h)
                .collect();
            let done = match (kind, &gpu_trees) {
                (Together::Gbdt, Some(options)) => {
                    let trees: Vec<GbdtParams> = at
                        .iter()
                        .filter_map(|&i| match &params[i] {
                            Some(ModelParams::Gbdt(p)) => Some(p.clone()),
                            _ => None,
                        })
                        .collect();
                    self.run_gbdt(&mut chosen, trees, options)
                }
                (Together::Forest, Some(options)) => {
                    let forests: Vec<ForestParams> = at
                        .iter()
                        .filter_map(|&i| match &params[i] {
                            Some(ModelParams::Forest(p)) => Some(p.clone()),
                            _ => None,
                        })
                        .collect();
                    self.run_forests(&mut chosen, forests, options)
                }
                _ => {
                    let nets: Vec<NeuralParams> = at
                        .iter()
                        .filter_map(|&i| match &params[i] {
                            Some(ModelParams::Neural(p)) => Some(p.clone()),
                            _ => None,
                        })
                        .collect();
                    self.run_neural(&mut chosen, nets, ctx)
                }
            };
            for (i, r) in at.iter().zip(done) {
                results[*i] = Some(r);
            }
        }
        for (i, h) in handles.iter_mut().enumerate() {
            if results[i].is_none()
                && let Some(p) = &params[i]
            {
                results[i] = Some(self.run_tree(h, p, ctx));
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(TrialError::Failed("the trial did not run".into()))))
            .collect()
    }

    /// Neural trials cross-validated together ([`cross_validate_trials`]): per-epoch values of
    /// the holdout fold (or per-fold values once the folds end) go to each trial's own handle,
    /// and a pruned trial's members are masked out while the others go on.
    fn run_neural(
        &self,
        handles: &mut [&mut TrialHandle],
        params: Vec<NeuralParams>,
        ctx: WorkerContext,
    ) -> Vec<TrialResult> {
        let steps = self.steps();
        // One population shares one table: run_batch groups trials by their repeats.
        let repeats = handles
            .first()
            .map_or(Ok(None), |h| extra_repeats(h.params(), &self.fixed));
        let mut flags: Vec<Flags> = handles.iter().map(|h| Flags::new(self, h)).collect();
        let mut on_epoch = |t: usize, fold: usize, m: &EpochMetrics| {
            let (h, flags) = (&mut *handles[t], &mut flags[t]);
            if steps == Steps::Rounds
                && fold == 0
                && let (Some(a), Some(l)) = (m.valid_accuracy, m.valid_logloss)
            {
                return flags.report(h, m.epoch as u64, self.value(a, l));
            }
            flags.keep_going(h)
        };
        let outcome = repeats
            .and_then(|r| self.tables.get(r))
            .map_err(|e| e.to_string())
            .and_then(|t| {
                cross_validate_trials(
                    &t.table,
                    self.spec,
                    &params,
                    self.kfold,
                    self.max_folds,
                    self.device_of(ctx),
                    &mut on_epoch,
                )
                .map_err(|e| e.to_string())
            });
        let reports: Vec<std::result::Result<CvReport, String>> = match outcome {
            Ok(r) => r
                .into_iter()
                .map(|r| r.map(|t| t.report).map_err(|e| e.to_string()))
                .collect(),
            Err(why) => handles.iter().map(|_| Err(why.clone())).collect(),
        };
        self.finish_together(handles, flags, reports)
    }

    /// GBDT trials boosted together on a GPU ([`cross_validate_gbdt_trials`]): per-round values
    /// of the holdout fold go to each trial's own handle as they come (or per-fold values once
    /// the batch ends), and a pruned trial's members stop while the others go on.
    fn run_gbdt(
        &self,
        handles: &mut [&mut TrialHandle],
        params: Vec<GbdtParams>,
        options: &BatchOptions,
    ) -> Vec<TrialResult> {
        let steps = self.steps();
        // One batch shares one table: run_batch groups trials by their repeats.
        let repeats = handles
            .first()
            .map_or(Ok(None), |h| extra_repeats(h.params(), &self.fixed));
        let flags: Vec<Flags> = handles.iter().map(|h| Flags::new(self, h)).collect();
        // The batch calls back from its own thread: handles and flags behind a lock.
        let state = Mutex::new((handles, flags));
        let mut on_round = |t: usize, fold: usize, round: usize, e: RoundEval| {
            let mut guard = state.lock().unwrap_or_else(PoisonError::into_inner);
            let (handles, flags) = &mut *guard;
            let (h, flags) = (&mut *handles[t], &mut flags[t]);
            if steps == Steps::Rounds && fold == 0 {
                flags.report(h, round as u64, self.value(e.accuracy, e.logloss))
            } else {
                flags.keep_going(h)
            }
        };
        let outcome = repeats
            .and_then(|r| self.tables.get(r))
            .map_err(|e| e.to_string())
            .and_then(|t| {
                cross_validate_gbdt_trials(
                    &t.table,
                    self.spec,
                    &params,
                    self.kfold,
                    self.max_folds,
                    options,
                    &mut on_round,
                )
                .map_err(|e| e.to_string())
            });
        let (handles, flags) = state.into_inner().unwrap_or_else(PoisonError::into_inner);
        let reports = per_trial(outcome, handles.len());
        self.finish_together(handles, flags, reports)
    }

    /// Forest and decision-tree trials grown together on a GPU
    /// ([`cross_validate_forest_trials`]): fold by fold, the trees of every trial in one batch;
    /// per-fold values reach each trial's pruner once the folds end.
    fn run_forests(
        &self,
        handles: &mut [&mut TrialHandle],
        params: Vec<ForestParams>,
        options: &BatchOptions,
    ) -> Vec<TrialResult> {
        // One batch shares one table: run_batch groups trials by their repeats.
        let repeats = handles
            .first()
            .map_or(Ok(None), |h| extra_repeats(h.params(), &self.fixed));
        let flags: Vec<Flags> = handles.iter().map(|h| Flags::new(self, h)).collect();
        let outcome = repeats
            .and_then(|r| self.tables.get(r))
            .map_err(|e| e.to_string())
            .and_then(|t| {
                cross_validate_forest_trials(
                    &t.table,
                    self.spec,
                    &params,
                    self.kfold,
                    self.max_folds,
                    options,
                )
                .map_err(|e| e.to_string())
            });
        let reports = per_trial(outcome, handles.len());
        self.finish_together(handles, flags, reports)
    }

    /// Ends trials that trained together: in k-fold mode their fold values reach the pruner
    /// now, in order; then each trial ends as [`Self::finish`] says.
    fn finish_together(
        &self,
        handles: &mut [&mut TrialHandle],
        flags: Vec<Flags>,
        reports: Vec<std::result::Result<CvReport, String>>,
    ) -> Vec<TrialResult> {
        handles
            .iter_mut()
            .zip(flags)
            .zip(reports)
            .map(|((h, mut flags), report)| {
                if self.steps() == Steps::Folds
                    && let Ok(r) = &report
                {
                    for f in &r.folds {
                        let step = (f.repeat * self.kfold.folds + f.fold) as u64;
                        if flags.report(h, step, self.value(f.accuracy, f.logloss)) == Control::Stop
                        {
                            break;
                        }
                    }
                }
                self.finish(h, flags, report)
            })
            .collect()
    }

    /// One tree-family trial.
    fn run_tree(
        &self,
        h: &mut TrialHandle,
        params: &ModelParams,
        ctx: WorkerContext,
    ) -> TrialResult {
        // On a GPU a GBDT boosts its folds as one batched fit, and a forest's (or decision
        // tree's) trees grow together level by level.
        let device = self.device_of(ctx);
        let steps = self.steps();
        let flags = Flags::new(self, h);
        let state = Mutex::new((h, flags));
        let with = |f: &mut dyn FnMut(&mut TrialHandle, &mut Flags) -> Control| {
            let mut guard = state.lock().unwrap_or_else(PoisonError::into_inner);
            let (h, flags) = &mut *guard;
            f(h, flags)
        };
        let mut seen = 0usize;
        let table = {
            let guard = state.lock().unwrap_or_else(PoisonError::into_inner);
            extra_repeats(guard.0.params(), &self.fixed).and_then(|r| self.tables.get(r))
        };
        let table = match table {
            Ok(t) => t,
            Err(e) => {
                let (h, flags) = state.into_inner().unwrap_or_else(PoisonError::into_inner);
                return self.finish(h, flags, Err(e.to_string()));
            }
        };
        let report = cross_validate_cached(
            &table.table,
            self.spec,
            params,
            self.kfold,
            device,
            CvHooks {
                on_fold: &mut |f| {
                    seen += 1;
                    let control = if steps == Steps::Folds {
                        let step = (f.repeat * self.kfold.folds + f.fold) as u64;
                        let value = self.value(f.accuracy, f.logloss);
                        with(&mut |h, flags| flags.report(h, step, value))
                    } else {
                        with(&mut |h, flags| flags.keep_going(h))
                    };
                    if seen >= self.max_folds {
                        Control::Stop
                    } else {
                        control
                    }
                },
                // Neural trials run in `run_neural`.
                on_epoch: &mut |_, _| with(&mut |h, flags| flags.keep_going(h)),
                on_round: &mut |fold, round, eval| {
                    if steps == Steps::Rounds && fold == 0 {
                        let value = self.value(eval.accuracy, eval.logloss);
                        with(&mut |h, flags| flags.report(h, round as u64, value))
                    } else {
                        Control::Continue
                    }
                },
                follow_rounds: steps == Steps::Rounds,
            },
            Some(&table.cache),
        );
        let (h, flags) = state.into_inner().unwrap_or_else(PoisonError::into_inner);
        self.finish(h, flags, report.map_err(|e| e.to_string()))
    }

    /// Ends a trial's run: its state from the flags (storage failure, interruption, pruning)
    /// or the report; a complete trial's metrics and OOF predictions are recorded.
    fn finish(
        &self,
        h: &mut TrialHandle,
        flags: Flags,
        report: std::result::Result<CvReport, String>,
    ) -> TrialResult {
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
                run.set_tags(&[("tabtune.error", &e)]);
                run.end(RunStatus::Failed);
                return Err(TrialError::Failed(e));
            }
        };
        if let Err(e) = self.record(h, &report) {
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
        Ok(self.value(report.accuracy_mean, report.logloss_mean))
    }

    /// Stores a finished trial's metrics as user attributes and its OOF predictions on disk.
    fn record(
        &self,
        h: &mut TrialHandle,
        report: &CvReport,
    ) -> std::result::Result<(), TrialError> {
        let rounds = report.folds.iter().map(|f| f.rounds).sum::<usize>() as f64
            / report.folds.len().max(1) as f64;
        for (k, v) in [
            (ATTR_ACCURACY_MEAN, report.accuracy_mean),
            (ATTR_ACCURACY_STD, report.accuracy_std),
            (ATTR_LOGLOSS_MEAN, report.logloss_mean),
            (ATTR_ROUNDS_MEAN, rounds),
            (ATTR_SECONDS, report.seconds),
        ] {
            h.set_user_attr(k, json!(v))?;
        }
        h.set_user_attr(ATTR_FOLDS, json!(report.folds.len()))?;
        h.set_user_attr(ATTR_DEVICE, json!(report.device))?;
        // The decision layer needs every row's OOF prediction: only full k-fold runs qualify.
        if report.folds.len() == self.kfold.folds * self.kfold.repeats {
            self.oof.put(h.number(), &report.oof)?;
        }
        Ok(())
    }
}

/// Whether the space can propose a neural trial (a fixed or sampled `family` naming one).
pub(crate) fn has_neural(space: &SearchSpace) -> bool {
    can_propose(space, Family::is_neural)
}

/// Whether the space can propose a trial of a gradient-boosting style.
pub(crate) fn has_gbdt(space: &SearchSpace) -> bool {
    can_propose(space, Family::is_gbdt)
}

/// Whether the space's family (fixed or sampled) can be one that `is` accepts.
fn can_propose(space: &SearchSpace, is: fn(Family) -> bool) -> bool {
    let named = |name: &str| Family::parse(name).is_ok_and(is);
    if let Some(Value::String(f)) = space.fixed().get(FAMILY_PARAM) {
        return named(f);
    }
    space
        .param(FAMILY_PARAM)
        .is_some_and(|p| match &p.distribution {
            Distribution::Categorical { choices } => choices
                .iter()
                .any(|c| matches!(c, Choice::Str(s) if named(s))),
            _ => false,
        })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tabtune_features::Config;
    use tabtune_features::io::{LoadOptions, load_table};
    use tabtune_tune::storage::open;
    use tabtune_tune::study::{Engine, Outcome, Study};
    use tabtune_tune::{
        Direction, FrozenTrial, ParamValue, Pruner, StudyView, TrialState, Verdict,
        sampler_from_name,
    };

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
        let config = Config::load(&tabtune_test::engineered_config(dir.path())).expect("config");
        let training = crate::data::Training {
            table: load_table(&path, &config.schema, &LoadOptions::default())
                .expect("valid")
                .table,
            path: path.clone(),
            report: tabtune_features::ValidationReport::default(),
            deduplicated: 0,
            extra: Vec::new(),
        };
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
            tables: TrialTables::new(&training, kfold, 1 << 30),
            spec: &spec,
            kfold,
            max_folds: 1,
            metric: Metric::Accuracy,
            fixed: space.fixed().clone(),
            devices: vec![DeviceChoice::cpu("test")],
            trials_per_device: 1,
            oof: OofStore::new(dir.path().join("oof")),
            study: "pop".into(),
            tracker: MultiTracker::none(),
        };
        // One batch of four, as `optimize_population` hands it to the objective.
        let mut handles = study.ask_batch(4, None).expect("ask");
        let results = setup.run_batch(&mut handles, WorkerContext { worker: 0 });
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
