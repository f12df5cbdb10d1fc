//! GBDT trials cross-validated as ONE batched fit on a GPU
//! ([`tabtune_models::gbdt::batched`]): every (trial, fold) pair is a member with its own
//! parameters, training rows and validation rows, all boosted together over one binned matrix.
//!
//! Each fold's preprocessor is fitted on the fold's training rows only (as in
//! [`cross_validate`](crate::cross_validate)); the folds' preprocessed matrices are stacked
//! into the batch's matrix and a member addresses its own fold's rows in it, so no fold sees
//! another's statistics. The bin boundaries are fitted on that stacked matrix (feature values
//! only, no labels: what a GPU library does with one `DMatrix`), so a fold's model can differ
//! from the CPU engine's, whose bins come from the fold alone. Gradients are always quantized
//! on this path (`quantize = nearest` unless a trial asks for `stochastic`).
//!
//! Trials that cannot share a batch (another growth policy or `max_bins`) train in their own
//! batch; folds whose one-hot columns differ (a level missing from a fold's training rows) in
//! their own. A trial whose parameters are invalid fails alone; a batch that fails fails only
//! its own trials.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use ndarray::{ArrayView2, Axis, concatenate};
use tabtune_features::{FeatureMatrix, KFold, PreprocessorSpec, Table};
use tabtune_models::forest::batched::{ForestMember, fit_forests_batched};
use tabtune_models::forest::{ForestModel, ForestParams};
use tabtune_models::gbdt::batched::{
    BatchData, BatchDevice, BatchMember, BatchOptions, MemberRound, fit_batched,
};
use tabtune_models::gbdt::{GbdtModel, GbdtParams, Growth, Labelled, RoundEval};
use tabtune_models::metrics::Control;
use tabtune_models::{AnyModel, ModelError};

use crate::cv::{CvReport, FoldMatrices, FoldTally, trial_folds};
use crate::error::{Result, TrainError};
use crate::nn::device::{Device, DeviceChoice};

/// The batched fit's options for a device choice: `None` on the CPU (there the engine fits one
/// model at a time, faster than the batch's CPU reference), the device otherwise. A device that
/// `auto` picked falls back to the CPU when it cannot start or hold the batch; one the user
/// named fails with the device's error.
pub fn batch_options(choice: &DeviceChoice) -> Option<BatchOptions> {
    let device = match choice.device {
        Device::Cpu => return None,
        Device::Wgpu => BatchDevice::Wgpu,
        Device::Cuda(i) => BatchDevice::Cuda(i),
    };
    Some(BatchOptions {
        device,
        memory_limit: None,
        cpu_fallback: choice.auto,
    })
}

/// Refuses a matrix with categorical level codes (`encode = "ordinal"`): the batched fit
/// splits numeric bins only.
fn numeric_only(m: &FeatureMatrix) -> Result<()> {
    if m.categorical.is_empty() {
        return Ok(());
    }
    Err(TrainError::BatchCategorical {
        columns: m.categorical.iter().map(|&c| m.names[c].clone()).collect(),
    })
}

/// Cross-validates every GBDT trial of `trials` on the first `max_folds` folds of `kfold` (all
/// of them when `max_folds` ≥ the number of folds; 1 for a holdout split) as batched fits on
/// `options.device`. `on_round(trial, fold, round, metrics)` sees every member's validation
/// metrics after each round (`fold` indexes the folds used, from 0); [`Control::Stop`] stops
/// that member (pruning), the others go on. Each trial's report is what
/// [`cross_validate`](crate::cross_validate) reports (per-fold metrics, OOF probabilities,
/// importances, fold models), with the batch's device as its device.
///
/// The outer error is a problem shared by every trial (no target, a bad split, preprocessing,
/// categorical columns); the inner ones belong to single trials (invalid parameters, a failed
/// batch).
pub fn cross_validate_gbdt_trials(
    table: &Table,
    spec: &PreprocessorSpec,
    trials: &[GbdtParams],
    kfold: KFold,
    max_folds: usize,
    options: &BatchOptions,
    on_round: &mut (dyn FnMut(usize, usize, usize, RoundEval) -> Control + Send),
) -> Result<Vec<Result<CvReport>>> {
    let start = Instant::now();
    let (n_classes, folds) = trial_folds(table, spec, kfold, max_folds)?;
    let mut failed: Vec<Option<TrainError>> = trials
        .iter()
        .map(|p| p.check(n_classes).err().map(TrainError::from))
        .collect();
    let matrices: Vec<FoldMatrices> = folds
        .iter()
        .map(|f| {
            let m = FoldMatrices::new(table, spec, f)?;
            numeric_only(&m.train)?;
            Ok(m)
        })
        .collect::<Result<_>>()?;
    // Folds whose preprocessors give the same columns share a matrix.
    let mut datasets: Vec<Vec<usize>> = Vec::new();
    for (f, m) in matrices.iter().enumerate() {
        match datasets
            .iter_mut()
            .find(|d| matrices[d[0]].train.names == m.train.names)
        {
            Some(d) => d.push(f),
            None => datasets.push(vec![f]),
        }
    }
    // Trials that can share a batch: one growth policy and one binning per batch.
    let mut kinds: BTreeMap<(u8, usize), Vec<usize>> = BTreeMap::new();
    for (t, p) in trials.iter().enumerate() {
        if failed[t].is_none() {
            let growth = match p.growth {
                Growth::DepthWise => 0,
                Growth::LeafWise => 1,
                Growth::Oblivious => 2,
            };
            kinds.entry((growth, p.max_bins)).or_default().push(t);
        }
    }
    let mut fitted: Vec<Vec<Option<(GbdtModel, String)>>> =
        vec![vec![None; folds.len()]; trials.len()];
    let mut seconds = vec![0.0; trials.len()];
    for fs in &datasets {
        let views: Vec<ArrayView2<'_, f32>> = fs
            .iter()
            .flat_map(|&f| {
                [
                    matrices[f].train.values.view(),
                    matrices[f].valid.values.view(),
                ]
            })
            .collect();
        let x = concatenate(Axis(0), &views).map_err(|e| TrainError::BatchData {
            message: e.to_string(),
        })?;
        let mut y: Vec<u32> = Vec::with_capacity(x.nrows());
        let mut rows: Vec<(Vec<u32>, Vec<u32>)> = Vec::with_capacity(fs.len());
        for &f in fs {
            let (mt, mv) = (&matrices[f].train, &matrices[f].valid);
            let from = y.len() as u32;
            y.extend(mt.target.as_deref().expect("the table has the target"));
            let mid = y.len() as u32;
            y.extend(mv.target.as_deref().expect("the table has the target"));
            rows.push(((from..mid).collect(), (mid..y.len() as u32).collect()));
        }
        let has_missing = x.iter().any(|v| v.is_nan());
        let names = &matrices[fs[0]].train.names;
        for (&(_, max_bins), ts) in &kinds {
            let ts: Vec<usize> = ts
                .iter()
                .copied()
                .filter(|&t| {
                    if has_missing && !trials[t].allow_missing && failed[t].is_none() {
                        failed[t] = Some(TrainError::Model(ModelError::Param {
                            name: "allow_missing".to_owned(),
                            value: "false".to_owned(),
                            expected: "true: the preprocessed features have missing values (NaN)"
                                .to_owned(),
                        }));
                    }
                    failed[t].is_none()
                })
                .collect();
            if ts.is_empty() {
                continue;
            }
            let t0 = Instant::now();
            let data = BatchData::new(x.view(), &y, n_classes, names, max_bins, has_missing)?;
            let mut index = Vec::with_capacity(ts.len() * fs.len());
            let mut members = Vec::with_capacity(ts.len() * fs.len());
            for &t in &ts {
                for (d, &f) in fs.iter().enumerate() {
                    index.push((t, f));
                    members.push(BatchMember {
                        params: trials[t].clone(),
                        train: rows[d].0.clone(),
                        valid: rows[d].1.clone(),
                    });
                }
            }
            let mut hook = |r: MemberRound| {
                let (t, f) = index[r.member];
                r.eval
                    .map_or(Control::Continue, |e| on_round(t, f, r.round, e))
            };
            match fit_batched(&data, &members, options, &mut hook) {
                Ok(fits) => {
                    for (&(t, f), fit) in index.iter().zip(fits) {
                        fitted[t][f] = Some((fit.model, fit.device));
                    }
                }
                Err(e) => {
                    let shared = Arc::new(TrainError::Model(e));
                    for &t in &ts {
                        failed[t] = Some(TrainError::Batch {
                            trials: ts.len(),
                            source: Arc::clone(&shared),
                        });
                    }
                }
            }
            let each = t0.elapsed().as_secs_f64() / ts.len() as f64;
            for &t in &ts {
                seconds[t] += each;
            }
        }
    }
    let classes = spec.schema().classes().to_vec();
    let reports = failed
        .into_iter()
        .zip(fitted)
        .zip(seconds)
        .map(|((failure, models), secs)| {
            if let Some(e) = failure {
                return Err(e);
            }
            let mut tally = FoldTally::new(table.n_main(), n_classes, kfold.repeats);
            let mut device = String::new();
            for ((fold, m), model) in folds.iter().zip(&matrices).zip(models) {
                let (model, on) = model.expect("every fold of a trial that did not fail trained");
                device = on;
                tally.add(
                    fold,
                    m.pre.clone(),
                    AnyModel::Gbdt(model),
                    &m.valid,
                    fold.train.len(),
                    secs / folds.len() as f64,
                )?;
            }
            Ok(tally.report(secs, classes.clone(), device))
        })
        .collect();
    tracing::debug!(
        "{} GBDT trials × {} folds as batched fits on {:?} in {:.2} s",
        trials.len(),
        folds.len(),
        options.device,
        start.elapsed().as_secs_f64()
    );
    Ok(reports)
}

/// Fits a GBDT on every row of the preprocessed matrix `m` as a batch of one member on
/// `options.device` (no validation rows, so no early stopping: the final model after
/// cross-validation).
pub(crate) fn fit_gbdt_on_device(
    m: &FeatureMatrix,
    params: &GbdtParams,
    n_classes: usize,
    options: &BatchOptions,
) -> Result<GbdtModel> {
    numeric_only(m)?;
    let y = m
        .target
        .as_deref()
        .expect("training matrices have the target");
    let has_missing = m.values.iter().any(|v| v.is_nan());
    let data = BatchData::new(
        m.values.view(),
        y,
        n_classes,
        &m.names,
        params.max_bins,
        has_missing,
    )?;
    let mut p = params.clone();
    p.early_stopping_rounds = 0;
    let member = BatchMember {
        params: p,
        train: (0..y.len() as u32).collect(),
        valid: Vec::new(),
    };
    let mut fits = fit_batched(&data, &[member], options, &mut |_| Control::Continue)?;
    let fit = fits.remove(0);
    tracing::info!("final GBDT fitted on {}", fit.device);
    Ok(fit.model)
}

/// Cross-validates every decision-tree / random-forest trial of `trials` on the first
/// `max_folds` folds of `kfold` with, fold by fold, the trees of all of them grown together on
/// `options.device` ([`fit_forests_batched`]: one batch per fold and `max_bins`). Each fold's
/// preprocessor and bins are fitted on its training rows, so every trial's report is the one
/// [`cross_validate`](crate::cross_validate) gives on the CPU engine, with the batch's device.
/// Errors as for [`cross_validate_gbdt_trials`]: the outer one shared by every trial, the
/// inner ones a trial's own (invalid parameters, a failed batch).
pub fn cross_validate_forest_trials(
    table: &Table,
    spec: &PreprocessorSpec,
    trials: &[ForestParams],
    kfold: KFold,
    max_folds: usize,
    options: &BatchOptions,
) -> Result<Vec<Result<CvReport>>> {
    let start = Instant::now();
    let (n_classes, folds) = trial_folds(table, spec, kfold, max_folds)?;
    let mut failed: Vec<Option<TrainError>> = trials
        .iter()
        .map(|p| p.check().err().map(TrainError::from))
        .collect();
    let mut by_bins: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (t, p) in trials.iter().enumerate() {
        if failed[t].is_none() {
            by_bins.entry(p.max_bins).or_default().push(t);
        }
    }
    let mut tallies: Vec<FoldTally> = trials
        .iter()
        .map(|_| FoldTally::new(table.n_main(), n_classes, kfold.repeats))
        .collect();
    let mut devices = vec![String::new(); trials.len()];
    let mut seconds = vec![0.0; trials.len()];
    for fold in &folds {
        let m = FoldMatrices::new(table, spec, fold)?;
        let y = m.train.target.as_deref().expect("the table has the target");
        for (&max_bins, ts) in &by_bins {
            let ts: Vec<usize> = ts
                .iter()
                .copied()
                .filter(|&t| failed[t].is_none())
                .collect();
            if ts.is_empty() {
                continue;
            }
            let t0 = Instant::now();
            let chosen: Vec<&ForestParams> = ts.iter().map(|&t| &trials[t]).collect();
            let fitted = fit_forests_on_device(&m.train, &chosen, max_bins, n_classes, options);
            let each = t0.elapsed().as_secs_f64() / ts.len() as f64;
            match fitted {
                Ok(fits) => {
                    for (&t, (model, device)) in ts.iter().zip(fits) {
                        seconds[t] += each;
                        devices[t] = device;
                        let model = AnyModel::Forest(model);
                        if let Err(e) =
                            tallies[t].add(fold, m.pre.clone(), model, &m.valid, y.len(), each)
                        {
                            failed[t] = Some(e);
                        }
                    }
                }
                Err(e) => {
                    let shared = Arc::new(TrainError::Model(e));
                    for &t in &ts {
                        failed[t] = Some(TrainError::Batch {
                            trials: ts.len(),
                            source: Arc::clone(&shared),
                        });
                    }
                }
            }
        }
    }
    let classes = spec.schema().classes().to_vec();
    tracing::debug!(
        "{} forest trials × {} folds grown on {:?} in {:.2} s",
        trials.len(),
        folds.len(),
        options.device,
        start.elapsed().as_secs_f64()
    );
    Ok(failed
        .into_iter()
        .zip(tallies)
        .zip(devices.into_iter().zip(seconds))
        .map(|((failure, tally), (device, secs))| match failure {
            Some(e) => Err(e),
            None => Ok(tally.report(secs, classes.clone(), device)),
        })
        .collect())
}

/// Fits a decision tree or a random forest on every row of the preprocessed matrix `m` with
/// all its trees grown together, level by level, on `options.device`
/// ([`fit_forests_batched`]). The bins are fitted on `m` as the CPU engine fits them, so the
/// model is the engine's, tree for tree. Returns the model and where it trained.
pub(crate) fn fit_forest_on_device(
    m: &FeatureMatrix,
    params: &ForestParams,
    n_classes: usize,
    options: &BatchOptions,
) -> tabtune_models::Result<(ForestModel, String)> {
    let mut fits = fit_forests_on_device(m, &[params], params.max_bins, n_classes, options)?;
    let (model, device) = fits.remove(0);
    tracing::debug!(
        "{} trees of {} rows grown on {device}",
        model.trees.len(),
        m.values.nrows()
    );
    Ok((model, device))
}

/// Fits every forest of `trials` (all binned with `max_bins`) on every row of `m`, their
/// trees grown together on `options.device`, bins fitted on `m` as the engine fits them.
/// Under `auto` (`options.cpu_fallback`), a device that cannot start or hold the batch leaves
/// the fits to the CPU engine (the same trees, on every core), each saying so in its device
/// string; a named device fails with its error.
fn fit_forests_on_device(
    m: &FeatureMatrix,
    trials: &[&ForestParams],
    max_bins: usize,
    n_classes: usize,
    options: &BatchOptions,
) -> tabtune_models::Result<Vec<(ForestModel, String)>> {
    let y = m
        .target
        .as_deref()
        .expect("training matrices have the target");
    let data = BatchData::new(m.values.view(), y, n_classes, &m.names, max_bins, false)?;
    let members: Vec<ForestMember> = trials
        .iter()
        .map(|&p| ForestMember {
            params: p.clone(),
            train: (0..y.len() as u32).collect(),
        })
        .collect();
    match fit_forests_batched(&data, &members, &strict(options)) {
        Ok(fits) => Ok(fits.into_iter().map(|f| (f.model, f.device)).collect()),
        Err(ModelError::Kernel(e)) if options.cpu_fallback => {
            let why = fallback_reason(options, &e);
            tracing::warn!("{why}");
            trials
                .iter()
                .map(|p| {
                    let train = Labelled {
                        x: m.values.view(),
                        y,
                    };
                    let model = ForestModel::fit(&p.check()?, &m.names, n_classes, train)?;
                    Ok((model, why.clone()))
                })
                .collect()
        }
        Err(e) => Err(e),
    }
}

/// `options` without the batch's own CPU fallback: forests fall back to the engine instead
/// (the same trees, on every core), see [`fallback_reason`].
fn strict(options: &BatchOptions) -> BatchOptions {
    BatchOptions {
        cpu_fallback: false,
        ..*options
    }
}

/// The device string of a fit that fell back to the CPU engine.
fn fallback_reason(options: &BatchOptions, e: &dyn std::fmt::Display) -> String {
    format!("cpu (fallback: {}: {e})", options.device)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use tabtune_features::config::Encoding;
    use tabtune_models::gbdt::batched::BatchDevice;

    use super::*;
    use crate::cv::tests::table;

    fn kfold(folds: usize) -> KFold {
        KFold {
            folds,
            repeats: 1,
            seed: 5,
            stratify: true,
        }
    }

    fn cpu() -> BatchOptions {
        BatchOptions {
            device: BatchDevice::Cpu,
            memory_limit: None,
            cpu_fallback: false,
        }
    }

    fn trial(growth: Growth, learning_rate: f64, lambda: f64) -> GbdtParams {
        let mut p = GbdtParams::new(growth);
        p.rounds = 12;
        p.learning_rate = learning_rate;
        p.lambda = lambda;
        p.max_depth = 3;
        p.num_leaves = 7;
        p.min_data_in_leaf = 5;
        p.seed = 11;
        p
    }

    fn go_on(_: usize, _: usize, _: usize, _: RoundEval) -> Control {
        Control::Continue
    }

    /// One trial's 3-fold CV as a batch of its own on the CPU reference.
    fn alone_on_cpu(table: &Table, spec: &PreprocessorSpec, p: &GbdtParams) -> CvReport {
        cross_validate_gbdt_trials(
            table,
            spec,
            std::slice::from_ref(p),
            kfold(3),
            usize::MAX,
            &cpu(),
            &mut go_on,
        )
        .expect("setup")
        .remove(0)
        .expect("trains")
    }

    fn models(r: &CvReport) -> Vec<AnyModel> {
        r.models.iter().map(|m| m.model.clone()).collect()
    }

    #[test]
    fn a_trial_in_a_batch_equals_the_trial_alone_and_a_bad_one_fails_alone() {
        let (_dir, table, config) = table();
        let spec = PreprocessorSpec::from_config(&config);
        let mut bad = trial(Growth::DepthWise, 0.1, 1.0);
        bad.learning_rate = -1.0;
        let trials = [
            trial(Growth::DepthWise, 0.1, 1.0),
            trial(Growth::DepthWise, 0.3, 0.0),
            bad,
            // Another growth policy: a batch of its own.
            trial(Growth::LeafWise, 0.2, 1.0),
        ];
        let together = cross_validate_gbdt_trials(
            &table,
            &spec,
            &trials,
            kfold(3),
            usize::MAX,
            &cpu(),
            &mut go_on,
        )
        .expect("shared setup is fine");
        assert_eq!(together.len(), 4);
        let message = together[2].as_ref().expect_err("invalid").to_string();
        assert!(message.contains("learning_rate"), "{message}");
        for t in [0, 1, 3] {
            let r = together[t].as_ref().expect("trains");
            let alone = alone_on_cpu(&table, &spec, &trials[t]);
            assert_eq!(
                models(r),
                models(&alone),
                "trial {t}: same models in a batch"
            );
            assert_eq!(r.oof, alone.oof, "trial {t}");
            assert_eq!(r.folds.len(), 3);
            assert_eq!(r.device, "cpu");
            // Every main row has its out-of-fold probabilities, summing to one.
            for row in r.oof.rows() {
                assert!((row.sum() - 1.0).abs() < 1e-6, "{row:?}");
            }
            assert!(
                r.accuracy_mean > 0.5,
                "trial {t} learns: {}",
                r.accuracy_mean
            );
            // Each fold's model scores its own fold's validation rows as the report says.
            for (f, m) in r.folds.iter().zip(&r.models) {
                assert_eq!((f.fold, f.repeat), (m.fold, m.repeat));
                assert_eq!(f.rounds, 12);
            }
        }
        assert_ne!(
            models(together[0].as_ref().expect("ok")),
            models(together[1].as_ref().expect("ok"))
        );
    }

    #[test]
    fn a_stop_ends_one_member_and_max_folds_limits_the_folds() {
        let (_dir, table, config) = table();
        let spec = PreprocessorSpec::from_config(&config);
        let trials = [
            trial(Growth::DepthWise, 0.1, 1.0),
            trial(Growth::DepthWise, 0.2, 1.0),
        ];
        let seen = Mutex::new(Vec::new());
        let mut stop_1 = |t: usize, f: usize, round: usize, _: RoundEval| {
            seen.lock().expect("lock").push((t, f, round));
            if t == 1 && round == 3 {
                Control::Stop
            } else {
                Control::Continue
            }
        };
        let reports =
            cross_validate_gbdt_trials(&table, &spec, &trials, kfold(4), 2, &cpu(), &mut stop_1)
                .expect("setup");
        let (r0, r1) = (
            reports[0].as_ref().expect("ok"),
            reports[1].as_ref().expect("ok"),
        );
        assert_eq!(r0.folds.len(), 2, "max_folds = 2 of 4");
        assert!(r0.folds.iter().all(|f| f.rounds == 12));
        assert!(r1.folds.iter().all(|f| f.rounds == 4), "{:?}", r1.folds);
        let seen = seen.into_inner().expect("lock");
        assert!(!seen.iter().any(|&(t, _, r)| t == 1 && r > 3));
        assert_eq!(
            seen.iter().filter(|&&(t, f, _)| t == 0 && f == 1).count(),
            12
        );
    }

    #[test]
    fn categorical_columns_are_refused_by_name() {
        let (_dir, table, mut config) = table();
        config.transforms.encode = Encoding::Ordinal;
        let spec = PreprocessorSpec::from_config(&config);
        let e = cross_validate_gbdt_trials(
            &table,
            &spec,
            &[trial(Growth::DepthWise, 0.1, 1.0)],
            kfold(3),
            usize::MAX,
            &cpu(),
            &mut go_on,
        )
        .expect_err("ordinal codes");
        let message = e.to_string();
        assert!(e.is_bad_input());
        assert!(
            message.contains("Gender") && message.contains("one-hot"),
            "{message}"
        );
    }

    /// Forest trials grown together (the batch's CPU reference) report exactly what the CPU
    /// engine's cross-validation of each alone reports; an invalid trial fails alone.
    #[test]
    fn forest_trials_together_equal_the_engine_and_a_bad_one_fails_alone() {
        use tabtune_models::forest::{Criterion, ForestKind, ForestParams};

        use crate::family::ModelParams;
        let (_dir, table, config) = table();
        let spec = PreprocessorSpec::from_config(&config);
        let mut rf = ForestParams::new(ForestKind::RandomForest);
        rf.n_trees = 6;
        let mut rf_entropy = rf.clone();
        rf_entropy.criterion = Criterion::Entropy;
        rf_entropy.seed = 3;
        let mut dt = ForestParams::new(ForestKind::DecisionTree);
        dt.max_depth = 5;
        dt.max_bins = 32;
        let mut bad = rf.clone();
        bad.min_samples_split = 1;
        let trials = vec![rf, bad, rf_entropy, dt];
        let reports =
            cross_validate_forest_trials(&table, &spec, &trials, kfold(3), usize::MAX, &cpu())
                .expect("runs");
        assert_eq!(reports.len(), 4);
        let m = reports[1].as_ref().expect_err("invalid").to_string();
        assert!(m.contains("min_samples_split"), "{m}");
        for t in [0, 2, 3] {
            let got = reports[t].as_ref().expect("trains");
            assert_eq!(got.device, "cpu");
            let alone = crate::cross_validate(
                &table,
                &spec,
                &ModelParams::Forest(trials[t].clone()),
                kfold(3),
                &mut |_| {},
            )
            .expect("engine");
            assert_eq!(got.folds.len(), 3);
            for (a, b) in got.folds.iter().zip(&alone.folds) {
                assert_eq!(
                    (a.accuracy, a.logloss),
                    (b.accuracy, b.logloss),
                    "trial {t}"
                );
            }
            assert_eq!(got.oof, alone.oof, "trial {t}");
        }
    }

    #[test]
    fn the_cpu_keeps_the_engine_and_gpus_batch() {
        let cpu_choice = DeviceChoice::cpu("test");
        assert!(batch_options(&cpu_choice).is_none());
        let auto_wgpu = DeviceChoice {
            device: Device::Wgpu,
            name: "wgpu".into(),
            auto: true,
            ..DeviceChoice::cpu("auto")
        };
        let o = batch_options(&auto_wgpu).expect("a GPU batches");
        assert_eq!(o.device, BatchDevice::Wgpu);
        assert!(o.cpu_fallback, "auto falls back to the CPU");
        let named = DeviceChoice {
            device: Device::Cuda(1),
            name: "cuda:1".into(),
            ..DeviceChoice::cpu("requested")
        };
        let o = batch_options(&named).expect("a GPU batches");
        assert_eq!(o.device, BatchDevice::Cuda(1));
        assert!(!o.cpu_fallback, "a named device fails instead");
    }

    /// `cargo test -p tabtune-train --features wgpu --lib wgpu_` (CI, on lavapipe): the folds
    /// of `cross_validate_on` with a wgpu device are one batched fit, equal to the batch's CPU
    /// reference, and the final fit on the device is an ordinary model.
    #[cfg(feature = "wgpu")]
    #[test]
    fn wgpu_gbdt_cross_validation_is_one_batch_equal_to_the_cpu_reference() {
        use crate::family::ModelParams;
        use crate::nn::device::{DeviceRequest, select};
        let (_dir, table, config) = table();
        let spec = PreprocessorSpec::from_config(&config);
        let choice = select(DeviceRequest::Wgpu)
            .expect("a wgpu adapter (CI installs mesa-vulkan-drivers for lavapipe)");
        let p = trial(Growth::DepthWise, 0.1, 1.0);
        let gpu = crate::cross_validate_on(
            &table,
            &spec,
            &ModelParams::Gbdt(p.clone()),
            kfold(3),
            &choice,
            &mut |_| {},
            &mut |_, _| Control::Continue,
        )
        .expect("wgpu trains");
        assert_eq!(gpu.device, "wgpu");
        let reference = alone_on_cpu(&table, &spec, &p);
        assert_eq!(gpu.folds.len(), 3);
        for (a, b) in gpu.folds.iter().zip(&reference.folds) {
            assert_eq!(
                (a.accuracy, a.logloss, a.rounds),
                (b.accuracy, b.logloss, b.rounds)
            );
        }
        assert_eq!(gpu.oof, reference.oof);
        let (_, model) = crate::fit_all_on(&table, &spec, &ModelParams::Gbdt(p), &choice)
            .expect("final fit on wgpu");
        assert!(matches!(model, AnyModel::Gbdt(_)));
    }

    /// `cargo test -p tabtune-train --features wgpu --lib wgpu_` (CI, on lavapipe): a random
    /// forest and a decision tree cross-validated on wgpu (every fold's trees grown together)
    /// are the CPU engine's, fold for fold, and their final fits too.
    #[cfg(feature = "wgpu")]
    #[test]
    fn wgpu_forest_cross_validation_equals_the_cpu_engine() {
        use tabtune_models::forest::{Criterion, ForestKind, ForestParams};

        use crate::family::ModelParams;
        use crate::nn::device::{DeviceRequest, select};
        let (_dir, table, config) = table();
        let spec = PreprocessorSpec::from_config(&config);
        let choice = select(DeviceRequest::Wgpu)
            .expect("a wgpu adapter (CI installs mesa-vulkan-drivers for lavapipe)");
        let mut rf = ForestParams::new(ForestKind::RandomForest);
        rf.n_trees = 8;
        rf.criterion = Criterion::Entropy;
        let mut dt = ForestParams::new(ForestKind::DecisionTree);
        dt.max_depth = 6;
        for p in [rf, dt] {
            let params = ModelParams::Forest(p);
            let run = |device: &DeviceChoice| {
                crate::cross_validate_on(
                    &table,
                    &spec,
                    &params,
                    kfold(3),
                    device,
                    &mut |_| {},
                    &mut |_, _| Control::Continue,
                )
                .expect("trains")
            };
            let gpu = run(&choice);
            let cpu = run(&DeviceChoice::cpu("test"));
            assert_eq!((gpu.device.as_str(), cpu.device.as_str()), ("wgpu", "cpu"));
            for (a, b) in gpu.folds.iter().zip(&cpu.folds) {
                assert_eq!((a.accuracy, a.logloss), (b.accuracy, b.logloss));
            }
            assert_eq!(gpu.oof, cpu.oof);
            let (_, on_gpu) = crate::fit_all_on(&table, &spec, &params, &choice).expect("wgpu");
            let (_, on_cpu) = crate::fit_all(&table, &spec, &params).expect("cpu");
            let (AnyModel::Forest(g), AnyModel::Forest(c)) = (on_gpu, on_cpu) else {
                panic!("forests")
            };
            assert_eq!(g.oob_accuracy, c.oob_accuracy);
            assert_eq!(g.importance_split, c.importance_split);
            // `auto` with a device that cannot hold the batch: the engine trains the folds.
            let ModelParams::Forest(fp) = &params else {
                unreachable!()
            };
            let small = BatchOptions {
                device: BatchDevice::Wgpu,
                memory_limit: Some(1000),
                cpu_fallback: true,
            };
            let fell = cross_validate_forest_trials(
                &table,
                &spec,
                std::slice::from_ref(fp),
                kfold(3),
                usize::MAX,
                &small,
            )
            .expect("runs")
            .remove(0)
            .expect("falls back");
            assert!(
                fell.device
                    .starts_with("cpu (fallback: wgpu: out of device memory"),
                "{}",
                fell.device
            );
            assert_eq!(fell.oof, cpu.oof);
            let strict = BatchOptions {
                cpu_fallback: false,
                ..small
            };
            let e = cross_validate_forest_trials(
                &table,
                &spec,
                std::slice::from_ref(fp),
                kfold(3),
                usize::MAX,
                &strict,
            )
            .expect("runs")
            .remove(0)
            .expect_err("a named device fails");
            assert!(e.to_string().contains("out of device memory"), "{e}");
        }
    }
}
