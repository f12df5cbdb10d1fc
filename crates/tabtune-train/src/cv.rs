//! k-fold cross-validation with leak-free preprocessing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Instant;

use ndarray::Array2;
use serde::Serialize;
use tabtune_features::{FeatureMatrix, Fold, KFold, Preprocessor, PreprocessorSpec, Table};
use tabtune_models::AnyModel;
use tabtune_models::forest::ForestModel;
use tabtune_models::gbdt::batched::BatchOptions;
use tabtune_models::gbdt::{BinnedData, GbdtModel, GbdtParams, Labelled, RoundEval, labels_of};
use tabtune_models::metrics::{Control, log_loss};

use crate::error::{Result, TrainError};
use crate::family::ModelParams;
use crate::nn::{DeviceChoice, EpochMetrics, cross_validate_neural, fit_all_neural};
use crate::trees::{
    batch_options, cross_validate_gbdt_trials, fit_forest_on_device, fit_gbdt_on_device,
};

/// Metrics of one fold.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FoldResult {
    /// Repeat, from 0.
    pub repeat: usize,
    /// Fold within the repeat, from 0.
    pub fold: usize,
    /// Validation accuracy.
    pub accuracy: f64,
    /// Validation multi-class log loss.
    pub logloss: f64,
    /// Boosting rounds kept (after early stopping).
    pub rounds: usize,
    /// Training rows.
    pub train_rows: usize,
    /// Validation rows.
    pub valid_rows: usize,
    /// Wall time of the fold (preprocessing, training, prediction).
    pub seconds: f64,
}

/// The outcome of a cross-validation run.
#[derive(Clone, Debug)]
pub struct CvReport {
    /// Per-fold metrics, in order.
    pub folds: Vec<FoldResult>,
    /// Mean validation accuracy.
    pub accuracy_mean: f64,
    /// Population standard deviation of the fold accuracies.
    pub accuracy_std: f64,
    /// Mean validation log loss.
    pub logloss_mean: f64,
    /// Wall time of the whole run.
    pub seconds: f64,
    /// Out-of-fold class probabilities per row, `[n_rows, n_classes]` (averaged over repeats).
    pub oof: Array2<f64>,
    /// The validation fold of every row in the first repeat.
    pub oof_fold: Vec<usize>,
    /// Class names.
    pub classes: Vec<String>,
    /// Feature names with their split gain summed over the folds' models, largest first
    /// (empty for neural models).
    pub importance: Vec<(String, f64)>,
    /// The device the models trained on: `cpu` for the engine's fits; `wgpu` / `cuda:N` (or
    /// `cpu (fallback: REASON)`) for batched GBDT fits and for forests and decision trees
    /// grown on a GPU.
    pub device: String,
    /// Each fold's fitted preprocessor and model, in fold order: exactly the models whose
    /// validation predictions are `oof` (a fold-averaged final model ships them). Empty when
    /// the run does not keep them (populations of trials).
    pub models: Vec<FoldModel>,
}

/// One fold's fitted preprocessing and model.
#[derive(Clone, Debug)]
pub struct FoldModel {
    /// Repeat, from 0.
    pub repeat: usize,
    /// Fold within the repeat, from 0.
    pub fold: usize,
    /// The preprocessor fitted on the fold's training rows.
    pub preprocessor: Preprocessor,
    /// The model fitted on them.
    pub model: AnyModel,
}

impl CvReport {
    /// A report from per-fold results (means and standard deviation computed here).
    pub fn from_folds(
        folds: Vec<FoldResult>,
        seconds: f64,
        oof: Array2<f64>,
        oof_fold: Vec<usize>,
        classes: Vec<String>,
        mut importance: Vec<(String, f64)>,
        device: String,
    ) -> Self {
        let n = folds.len().max(1) as f64;
        let accuracy_mean = folds.iter().map(|r| r.accuracy).sum::<f64>() / n;
        let accuracy_std = (folds
            .iter()
            .map(|r| (r.accuracy - accuracy_mean).powi(2))
            .sum::<f64>()
            / n)
            .sqrt();
        let logloss_mean = folds.iter().map(|r| r.logloss).sum::<f64>() / n;
        importance.sort_by(|a, b| b.1.total_cmp(&a.1));
        Self {
            folds,
            accuracy_mean,
            accuracy_std,
            logloss_mean,
            seconds,
            oof,
            oof_fold,
            classes,
            importance,
            device,
            models: Vec::new(),
        }
    }
}

/// A fold's matrices: the preprocessor fitted on its training rows, applied to both sides.
pub(crate) struct FoldMatrices {
    pub(crate) pre: Preprocessor,
    pub(crate) train: FeatureMatrix,
    pub(crate) valid: FeatureMatrix,
}

impl FoldMatrices {
    pub(crate) fn new(table: &Table, spec: &PreprocessorSpec, fold: &Fold) -> Result<Self> {
        let train = table.select_rows(&fold.train);
        let valid = table.select_rows(&fold.valid);
        let pre = spec.fit(&train)?;
        Ok(Self {
            train: pre.transform(&train)?,
            valid: pre.transform(&valid)?,
            pre,
        })
    }

    fn bytes(&self) -> usize {
        (self.train.values.len() + self.valid.values.len()) * 4
    }
}

/// A lazily built entry: the first trial that needs it builds it, the others wait for it.
type Slot<T> = Arc<OnceLock<std::result::Result<Arc<T>, Arc<TrainError>>>>;

/// Bins of one fold for one binning setting: (fold index, `max_bins`, categorical columns).
type BinsKey = (usize, usize, Vec<usize>);

/// What the trials of one sweep share across cross-validation runs: each fold's preprocessed
/// matrices and, per binning setting (`max_bins`), each fold's GBDT bins. Preprocessing and
/// binning depend only on the fold's rows, so every trial on a fold would redo the same work.
/// A cache belongs to ONE table, preprocessor spec and split (`kfold`); runs with another
/// split do not use it. Worker threads share it (the first to need an entry builds it, the
/// others wait); entries stop being added once `max_bytes` is reached (then the work is done
/// per run, as without a cache).
pub struct CvCache {
    kfold: KFold,
    max_bytes: usize,
    used: AtomicUsize,
    folds: Mutex<HashMap<usize, Slot<FoldMatrices>>>,
    bins: Mutex<HashMap<BinsKey, Slot<BinnedData>>>,
}

impl CvCache {
    /// An empty cache for runs split by `kfold`, holding at most about `max_bytes`.
    pub fn new(kfold: KFold, max_bytes: usize) -> Self {
        Self {
            kfold,
            max_bytes,
            used: AtomicUsize::new(0),
            folds: Mutex::new(HashMap::new()),
            bins: Mutex::new(HashMap::new()),
        }
    }

    /// Bytes held (matrices and bins).
    pub fn bytes(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn slot<K: std::hash::Hash + Eq, T>(map: &Mutex<HashMap<K, Slot<T>>>, key: K) -> Slot<T> {
        Arc::clone(
            map.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(key)
                .or_default(),
        )
    }

    /// The entry of `slot`, built by `make` if needed; `None` when the cache is full (the
    /// caller builds its own).
    fn get<T>(
        &self,
        slot: &Slot<T>,
        make: impl FnOnce() -> Result<T>,
        bytes: impl Fn(&T) -> usize,
    ) -> Option<Result<Arc<T>>> {
        if slot.get().is_none() && self.bytes() >= self.max_bytes {
            return None;
        }
        let entry = slot.get_or_init(|| {
            make().map(Arc::new).map_err(Arc::new).inspect(|v| {
                self.used.fetch_add(bytes(v), Ordering::Relaxed);
            })
        });
        Some(entry.clone().map_err(TrainError::Shared))
    }

    fn fold(
        &self,
        index: usize,
        make: impl FnOnce() -> Result<FoldMatrices>,
    ) -> Option<Result<Arc<FoldMatrices>>> {
        let slot = Self::slot(&self.folds, index);
        self.get(&slot, make, FoldMatrices::bytes)
    }

    fn bins(
        &self,
        index: usize,
        max_bins: usize,
        categorical: &[usize],
        make: impl FnOnce() -> BinnedData,
    ) -> Option<Arc<BinnedData>> {
        let slot = Self::slot(&self.bins, (index, max_bins, categorical.to_vec()));
        self.get(&slot, || Ok(make()), BinnedData::bytes)
            .and_then(std::result::Result::ok)
    }
}

/// Fits a model of `params`' family on a feature matrix. A GBDT learns which columns are
/// categorical from the matrix; `early` is its early-stopping set when
/// `early_stopping_rounds > 0`; `bins` (from a [`CvCache`]) its training and early-stopping
/// rows already binned.
fn fit_model(
    params: &ModelParams,
    m: &FeatureMatrix,
    early: Option<Labelled<'_>>,
    n_classes: usize,
    on_round: Option<&mut (dyn FnMut(usize, Option<RoundEval>) -> Control + Send)>,
    bins: Option<&BinnedData>,
) -> tabtune_models::Result<AnyModel> {
    let y = m
        .target
        .as_deref()
        .expect("training matrices have the target");
    let train = Labelled {
        x: m.values.view(),
        y,
    };
    match params {
        ModelParams::Gbdt(p) => {
            let mut p = p.clone();
            p.categorical.clone_from(&m.categorical);
            // The validation rows are scored every round for early stopping, or when the
            // caller follows the rounds.
            let early = early.filter(|_| p.early_stopping_rounds > 0 || on_round.is_some());
            let mut ignore = |_, _| Control::Continue;
            GbdtModel::fit_binned(
                &p.check(n_classes)?,
                &m.names,
                n_classes,
                train,
                early,
                on_round.unwrap_or(&mut ignore),
                bins,
            )
            .map(AnyModel::Gbdt)
        }
        ModelParams::Forest(p) => {
            ForestModel::fit(&p.check()?, &m.names, n_classes, train).map(AnyModel::Forest)
        }
        ModelParams::Neural(_) => unreachable!("neural models train in crate::nn"),
    }
}

/// Fits the preprocessor and a model on every row of `table` (the final model after
/// cross-validation; GBDT early stopping does not apply without a validation set).
pub fn fit_all(
    table: &Table,
    spec: &PreprocessorSpec,
    params: &ModelParams,
) -> Result<(Preprocessor, AnyModel)> {
    fit_all_on(table, spec, params, &DeviceChoice::cpu("default"))
}

/// [`fit_all`] on a chosen device: neural models; on a GPU GBDTs (a batch of one member) and
/// the forest and the decision tree (all their trees grown together).
pub fn fit_all_on(
    table: &Table,
    spec: &PreprocessorSpec,
    params: &ModelParams,
    device: &DeviceChoice,
) -> Result<(Preprocessor, AnyModel)> {
    if let ModelParams::Neural(p) = params {
        let (pre, model) = fit_all_neural(table, spec, p, device, &mut |_, _| Control::Continue)?;
        return Ok((pre, AnyModel::Neural(model)));
    }
    let n_classes = spec.schema().classes().len();
    let pre = spec.fit(table)?;
    let m = pre.transform(table)?;
    match (params, batch_options(device)) {
        (ModelParams::Gbdt(p), Some(options)) => {
            let model = fit_gbdt_on_device(&m, p, n_classes, &options)?;
            return Ok((pre, AnyModel::Gbdt(model)));
        }
        (ModelParams::Forest(p), Some(options)) => {
            let valid = p.check()?;
            let (model, on) = fit_forest_on_device(&m, &valid, n_classes, &options)?;
            tracing::info!("final {:?} fitted on {on}", p.kind);
            return Ok((pre, AnyModel::Forest(model)));
        }
        _ => {}
    }
    let model = fit_model(params, &m, None, n_classes, None, None)?;
    Ok((pre, model))
}

/// Cross-validates `params` on `table` with `kfold` splits. For every fold the preprocessor
/// `spec` is fitted on the fold's training rows only and applied to both sides. With
/// `early_stopping_rounds > 0`, the fold's validation rows are the early-stopping set (as is
/// usual in k-fold model selection; the reported fold metrics are then slightly optimistic).
/// `on_fold` is called after each fold. Neural models train on the CPU here; see
/// [`cross_validate_on`] for a device and an epoch hook.
pub fn cross_validate(
    table: &Table,
    spec: &PreprocessorSpec,
    params: &ModelParams,
    kfold: KFold,
    on_fold: &mut dyn FnMut(&FoldResult),
) -> Result<CvReport> {
    cross_validate_on(
        table,
        spec,
        params,
        kfold,
        &DeviceChoice::cpu("default"),
        on_fold,
        &mut |_, _| Control::Continue,
    )
}

/// [`cross_validate`] on a chosen device, with an epoch hook for neural models
/// (`on_epoch(fold_index, metrics)`; the folds train together as one population). A GBDT on a
/// GPU boosts its folds as one batched fit ([`crate::trees`]); the forest and the decision
/// tree ignore the device and run on the CPU.
pub fn cross_validate_on(
    table: &Table,
    spec: &PreprocessorSpec,
    params: &ModelParams,
    kfold: KFold,
    device: &DeviceChoice,
    on_fold: &mut dyn FnMut(&FoldResult),
    on_epoch: &mut dyn FnMut(usize, &EpochMetrics) -> Control,
) -> Result<CvReport> {
    cross_validate_with(
        table,
        spec,
        params,
        kfold,
        device,
        CvHooks {
            on_fold: &mut |f| {
                on_fold(f);
                Control::Continue
            },
            on_epoch,
            on_round: &mut |_, _, _| Control::Continue,
            follow_rounds: false,
        },
    )
}

/// What a caller (the tuner) sees while cross-validation runs, and how it stops it early.
pub struct CvHooks<'a> {
    /// After each fold; [`Control::Stop`] ends the run after this fold (the report then holds
    /// the folds done so far). Neural folds, and a GBDT's folds on a GPU, train together, so
    /// all of them end at once.
    pub on_fold: &'a mut dyn FnMut(&FoldResult) -> Control,
    /// After each epoch of a neural model: `(fold_index, metrics)`; [`Control::Stop`] stops
    /// that fold's member.
    pub on_epoch: &'a mut dyn FnMut(usize, &EpochMetrics) -> Control,
    /// After each boosting round of a GBDT: `(fold_index, round, validation metrics)`;
    /// [`Control::Stop`] ends that fold's fit after this round (the fold is still scored).
    pub on_round: &'a mut (dyn FnMut(usize, usize, RoundEval) -> Control + Send),
    /// Whether `on_round` is wanted: scoring the validation rows every round costs time, so
    /// without early stopping it happens only when this is set.
    pub follow_rounds: bool,
}

/// [`cross_validate_on`] with every hook (see [`CvHooks`]).
pub fn cross_validate_with(
    table: &Table,
    spec: &PreprocessorSpec,
    params: &ModelParams,
    kfold: KFold,
    device: &DeviceChoice,
    hooks: CvHooks<'_>,
) -> Result<CvReport> {
    cross_validate_cached(table, spec, params, kfold, device, hooks, None)
}

/// [`cross_validate_with`] taking each fold's preprocessed matrices and GBDT bins from `cache`
/// (built there on first use) for the tree families; the report is the one an uncached run
/// gives. Neural models do not use it, nor does a GBDT on a GPU (its folds train as one
/// batched fit, [`crate::trees`]).
pub fn cross_validate_cached(
    table: &Table,
    spec: &PreprocessorSpec,
    params: &ModelParams,
    kfold: KFold,
    device: &DeviceChoice,
    hooks: CvHooks<'_>,
    cache: Option<&CvCache>,
) -> Result<CvReport> {
    let cache = cache.filter(|c| c.kfold == kfold);
    let CvHooks {
        on_fold,
        on_epoch,
        on_round,
        follow_rounds,
    } = hooks;
    if let ModelParams::Neural(p) = params {
        let mut stopped = false;
        return cross_validate_neural(
            table,
            spec,
            p,
            kfold,
            device,
            &mut |f| {
                // The folds trained together: a stop cannot save work any more.
                if !stopped && on_fold(f) == Control::Stop {
                    stopped = true;
                }
            },
            on_epoch,
        );
    }
    let start = Instant::now();
    let labels = table.target.as_ref().ok_or_else(|| TrainError::NoTarget {
        path: table.source.clone(),
    })?;
    let n_classes = spec.schema().classes().len();
    // Check the parameters once, before any fold runs.
    match params {
        ModelParams::Gbdt(p) => {
            p.check(n_classes)?;
        }
        ModelParams::Forest(p) => {
            p.check()?;
        }
        ModelParams::Neural(_) => unreachable!("dispatched above"),
    }
    if let (ModelParams::Gbdt(p), Some(options)) = (params, batch_options(device)) {
        return cross_validate_gbdt_on_device(
            table,
            spec,
            p,
            kfold,
            &options,
            on_fold,
            on_round,
            follow_rounds,
        );
    }
    // On a GPU a forest's (or decision tree's) trees grow together, fold by fold, with the
    // fold's own bins: the same models as the CPU engine's.
    let forest_on = match (params, batch_options(device)) {
        (ModelParams::Forest(p), Some(options)) => Some(((*p.check()?).clone(), options)),
        _ => None,
    };
    let mut trained_on = "cpu".to_owned();
    let folds = kfold.split_with_extra(labels, n_classes, table.train_only)?;
    let mut tally = FoldTally::new(table.n_main(), n_classes, kfold.repeats);
    for (index, fold) in folds.iter().enumerate() {
        let t = Instant::now();
        let make = || FoldMatrices::new(table, spec, fold);
        let matrices = match cache.and_then(|c| c.fold(index, make)) {
            Some(m) => m?,
            None => Arc::new(make()?),
        };
        let (mt, mv) = (&matrices.train, &matrices.valid);
        let bins = match (cache, params) {
            (Some(c), ModelParams::Gbdt(p)) => c.bins(index, p.max_bins, &mt.categorical, || {
                BinnedData::new(
                    mt.values.view(),
                    Some(mv.values.view()),
                    &mt.categorical,
                    p.max_bins,
                )
            }),
            _ => None,
        };
        let yt = mt.target.as_deref().expect("the table has the target");
        let yv = mv.target.as_deref().expect("the table has the target");
        let early = Labelled {
            x: mv.values.view(),
            y: yv,
        };
        let mut follow = |round, eval: Option<RoundEval>| {
            eval.map_or(Control::Continue, |e| on_round(index, round, e))
        };
        let fitted = match &forest_on {
            Some((p, options)) => {
                fit_forest_on_device(mt, p, n_classes, options).map(|(model, on)| {
                    trained_on = on;
                    AnyModel::Forest(model)
                })
            }
            None => fit_model(
                params,
                mt,
                Some(early),
                n_classes,
                follow_rounds.then_some(&mut follow as _),
                bins.as_deref(),
            ),
        };
        let model = fitted.map_err(|e| TrainError::fold(fold.repeat, fold.fold, e))?;
        let result = tally.add(
            fold,
            matrices.pre.clone(),
            model,
            mv,
            yt.len(),
            t.elapsed().as_secs_f64(),
        )?;
        if on_fold(&result) == Control::Stop {
            break;
        }
    }
    Ok(tally.report(
        start.elapsed().as_secs_f64(),
        spec.schema().classes().to_vec(),
        trained_on,
    ))
}

/// [`cross_validate_cached`] of a GBDT on a GPU: the folds as one batched fit
/// ([`crate::trees::cross_validate_gbdt_trials`] with one trial). The folds train together, so
/// `on_fold` sees them once the batch ends (a stop then saves nothing); `on_round` sees every
/// fold's rounds as they come when `follow_rounds`.
#[allow(clippy::too_many_arguments)]
fn cross_validate_gbdt_on_device(
    table: &Table,
    spec: &PreprocessorSpec,
    params: &GbdtParams,
    kfold: KFold,
    options: &BatchOptions,
    on_fold: &mut dyn FnMut(&FoldResult) -> Control,
    on_round: &mut (dyn FnMut(usize, usize, RoundEval) -> Control + Send),
    follow_rounds: bool,
) -> Result<CvReport> {
    let mut follow = |_: usize, fold: usize, round: usize, eval: RoundEval| {
        if follow_rounds {
            on_round(fold, round, eval)
        } else {
            Control::Continue
        }
    };
    let mut reports = cross_validate_gbdt_trials(
        table,
        spec,
        std::slice::from_ref(params),
        kfold,
        usize::MAX,
        options,
        &mut follow,
    )?;
    let report = reports.remove(0)?;
    for f in &report.folds {
        // Every fold has trained: a stop here has nothing left to save.
        on_fold(f);
    }
    Ok(report)
}

/// The labels' classes and the first `max_folds` folds of `kfold` over `table` (the extra
/// training rows in every training fold only): the shared start of the trial batches'
/// cross-validation (neural populations, batched GBDT fits).
pub(crate) fn trial_folds(
    table: &Table,
    spec: &PreprocessorSpec,
    kfold: KFold,
    max_folds: usize,
) -> Result<(usize, Vec<Fold>)> {
    let labels = table.target.as_ref().ok_or_else(|| TrainError::NoTarget {
        path: table.source.clone(),
    })?;
    let n_classes = spec.schema().classes().len();
    let mut folds = kfold.split_with_extra(labels, n_classes, table.train_only)?;
    folds.truncate(max_folds.max(1));
    Ok((n_classes, folds))
}

/// What cross-validation gathers fold by fold: out-of-fold probabilities (averaged over
/// repeats), per-fold results, summed gain importances and the fold models.
pub(crate) struct FoldTally {
    oof: Array2<f64>,
    oof_fold: Vec<usize>,
    repeats: usize,
    results: Vec<FoldResult>,
    importance: Vec<(String, f64)>,
    models: Vec<FoldModel>,
}

impl FoldTally {
    /// An empty tally for `n_main` rows (the extra training rows have no OOF prediction).
    pub(crate) fn new(n_main: usize, n_classes: usize, repeats: usize) -> Self {
        Self {
            oof: Array2::zeros((n_main, n_classes)),
            oof_fold: vec![0; n_main],
            repeats: repeats.max(1),
            results: Vec::new(),
            importance: Vec::new(),
            models: Vec::new(),
        }
    }

    /// Scores `model` (fitted on `train_rows` rows of `fold`) on the fold's validation matrix
    /// `mv` and keeps it; returns the fold's result.
    pub(crate) fn add(
        &mut self,
        fold: &Fold,
        preprocessor: Preprocessor,
        model: AnyModel,
        mv: &FeatureMatrix,
        train_rows: usize,
        seconds: f64,
    ) -> Result<FoldResult> {
        let yv = mv.target.as_deref().expect("the table has the target");
        let n_classes = self.oof.ncols();
        if self.importance.is_empty() {
            self.importance = mv.names.iter().map(|n| (n.clone(), 0.0)).collect();
        }
        for (slot, gain) in self.importance.iter_mut().zip(model.importance_gain()) {
            slot.1 += gain;
        }
        let proba = model.predict_proba(mv.values.view())?;
        let flat: Vec<f64> = proba.iter().copied().collect();
        let correct = labels_of(&proba)
            .iter()
            .zip(yv)
            .filter(|(p, y)| p == y)
            .count();
        for (k, &row) in fold.valid.iter().enumerate() {
            for c in 0..n_classes {
                self.oof[[row, c]] += proba[[k, c]] / self.repeats as f64;
            }
            if fold.repeat == 0 {
                self.oof_fold[row] = fold.fold;
            }
        }
        let result = FoldResult {
            repeat: fold.repeat,
            fold: fold.fold,
            accuracy: correct as f64 / yv.len() as f64,
            logloss: log_loss(&flat, yv, n_classes),
            rounds: model.rounds(),
            train_rows,
            valid_rows: yv.len(),
            seconds,
        };
        self.results.push(result.clone());
        self.models.push(FoldModel {
            repeat: fold.repeat,
            fold: fold.fold,
            preprocessor,
            model,
        });
        Ok(result)
    }

    /// The report of the folds added, in the order they were added.
    pub(crate) fn report(self, seconds: f64, classes: Vec<String>, device: String) -> CvReport {
        let mut report = CvReport::from_folds(
            self.results,
            seconds,
            self.oof,
            self.oof_fold,
            classes,
            self.importance,
            device,
        );
        report.models = self.models;
        report
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use tabtune_features::Config;
    use tabtune_features::io::{LoadOptions, load_table};
    use tabtune_models::gbdt::{GbdtParams, Growth};

    /// 350 synthetic rows in the default config's schema (also the fixture of `trees`' tests).
    pub(crate) fn table() -> (tempfile_free::Dir, Table, Config) {
        let dir = tempfile_free::Dir::new();
        let path = dir.path.join("train.csv");
        std::fs::write(&path, tabtune_test::synthetic_obesity_csv(350, 9)).expect("write");
        let config = Config::load(&tabtune_test::engineered_config(&dir.path)).expect("config");
        let table = load_table(&path, &config.schema, &LoadOptions::default())
            .expect("valid")
            .table;
        (dir, table, config)
    }

    /// A temporary folder without a dev-dependency on `tempfile` in this crate.
    pub(crate) mod tempfile_free {
        pub struct Dir {
            pub path: std::path::PathBuf,
        }
        impl Dir {
            pub fn new() -> Self {
                let path = std::env::temp_dir().join(format!(
                    "tabtune-train-{}-{:?}",
                    std::process::id(),
                    std::thread::current().id()
                ));
                std::fs::create_dir_all(&path).expect("temp dir");
                Self { path }
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.path);
            }
        }
    }

    #[test]
    fn cross_validation_reports_every_fold_and_fills_the_oof_matrix() {
        let (_dir, table, config) = table();
        let spec = PreprocessorSpec::from_config(&config);
        let mut gbdt = GbdtParams::new(Growth::LeafWise);
        gbdt.rounds = 30;
        gbdt.learning_rate = 0.2;
        let params = ModelParams::Gbdt(gbdt);
        let kfold = KFold {
            folds: 5,
            repeats: 1,
            seed: 1,
            stratify: true,
        };
        let mut seen = 0;
        let report = cross_validate(&table, &spec, &params, kfold, &mut |_| seen += 1).expect("cv");
        assert_eq!((report.folds.len(), seen), (5, 5));
        assert_eq!(
            report.folds.iter().map(|f| f.valid_rows).sum::<usize>(),
            350
        );
        // The synthetic class follows BMI, which is an engineered feature: easy to learn.
        assert!(
            report.accuracy_mean > 0.8,
            "accuracy {}",
            report.accuracy_mean
        );
        assert!(
            report
                .oof
                .rows()
                .into_iter()
                .all(|r| (r.sum() - 1.0).abs() < 1e-9)
        );
        assert_eq!(report.classes.len(), 7);
        // The synthetic class is a function of BMI: the engineered BMI leads the importances.
        assert_eq!(
            report.importance[0].0,
            "BMI",
            "{:?}",
            &report.importance[..3]
        );
    }

    /// `cross_validate_cached` without hooks.
    fn cached(
        table: &Table,
        spec: &PreprocessorSpec,
        params: &ModelParams,
        kfold: KFold,
        cache: Option<&CvCache>,
    ) -> CvReport {
        cross_validate_cached(
            table,
            spec,
            params,
            kfold,
            &DeviceChoice::cpu("test"),
            CvHooks {
                on_fold: &mut |_| Control::Continue,
                on_epoch: &mut |_, _| Control::Continue,
                on_round: &mut |_, _, _| Control::Continue,
                follow_rounds: true,
            },
            cache,
        )
        .expect("cv")
    }

    /// The fold metrics without their wall times.
    fn metrics(r: &CvReport) -> Vec<(f64, f64, usize)> {
        r.folds
            .iter()
            .map(|f| (f.accuracy, f.logloss, f.rounds))
            .collect()
    }

    #[test]
    fn runs_sharing_a_cache_give_the_reports_of_uncached_runs() {
        let (_dir, table, config) = table();
        let spec = PreprocessorSpec::from_config(&config);
        let kfold = KFold {
            folds: 3,
            repeats: 1,
            seed: 4,
            stratify: true,
        };
        let cache = CvCache::new(kfold, 1 << 30);
        let mut a = GbdtParams::new(Growth::LeafWise);
        a.rounds = 25;
        a.subsample = 0.7;
        a.early_stopping_rounds = 5;
        let mut b = a.clone();
        b.learning_rate = 0.3;
        b.max_bins = 31;
        b.growth = Growth::DepthWise;
        b.max_depth = 4;
        let forest = crate::Family::RandomForest
            .params(&[("n_trees".into(), "10".into())])
            .expect("forest");
        let runs = [
            ModelParams::Gbdt(a.clone()),
            ModelParams::Gbdt(b),
            forest,
            ModelParams::Gbdt(a),
        ];
        let mut sizes = Vec::new();
        for params in &runs {
            let plain = cached(&table, &spec, params, kfold, None);
            let shared = cached(&table, &spec, params, kfold, Some(&cache));
            assert_eq!(metrics(&plain), metrics(&shared), "{params:?}");
            assert_eq!(plain.oof, shared.oof, "{params:?}");
            sizes.push(cache.bytes());
        }
        // Fold matrices once, bins per max_bins; the last run reused everything.
        assert!(sizes[0] > 0 && sizes[1] > sizes[0], "{sizes:?}");
        assert_eq!(sizes[2], sizes[1], "a forest adds no bins: {sizes:?}");
        assert_eq!(sizes[3], sizes[2], "{sizes:?}");
        // Another split does not touch the cache.
        let other = KFold { seed: 5, ..kfold };
        let _ = cached(&table, &spec, &runs[0], other, Some(&cache));
        assert_eq!(cache.bytes(), sizes[3]);
        // A full cache adds nothing and the runs still work.
        let tiny = CvCache::new(kfold, 1);
        let first = cached(&table, &spec, &runs[0], kfold, Some(&tiny));
        let after = tiny.bytes();
        let again = cached(&table, &spec, &runs[0], kfold, Some(&tiny));
        assert_eq!(tiny.bytes(), after, "nothing added past the limit");
        assert_eq!(metrics(&first), metrics(&again));
    }

    #[test]
    fn a_fold_without_some_class_is_a_clear_error() {
        let (_dir, table, config) = table();
        let spec = PreprocessorSpec::from_config(&config);
        let params = ModelParams::Gbdt(GbdtParams::new(Growth::LeafWise));
        // 350 rows, 50 per class: 60 folds leave a class with fewer rows than folds.
        let kfold = KFold {
            folds: 60,
            repeats: 1,
            seed: 1,
            stratify: true,
        };
        let m = cross_validate(&table, &spec, &params, kfold, &mut |_| {})
            .expect_err("too many folds")
            .to_string();
        assert!(m.contains("has only 50 rows"), "{m}");
    }
}
