//! k-fold cross-validation of a neural model as ONE population whose members are the folds:
//! each fold's preprocessor is fitted on its training rows only and transforms every row into
//! that member's data block; the member trains on the fold's training rows and is validated
//! (early stopping, best epoch) on its validation rows. k-fold CV thus costs about one fit.

use std::time::Instant;

use ndarray::Array2;
use tabtune_features::{Fold, KFold, Preprocessor, PreprocessorSpec, Table};
use tabtune_models::metrics::Control;
use tabtune_models::nn::{NeuralModel, NeuralParams};

use super::device::DeviceChoice;
use super::population::{EpochMetrics, Member, PopulationData, block, train_population};
use crate::cv::{CvReport, FoldModel, FoldResult};
use crate::error::{Result, TrainError};
use tabtune_models::AnyModel;

/// Cross-validates a neural model (see the module docs). `on_epoch(fold_index, metrics)` sees
/// every fold's epochs; `on_fold` is called for each fold once training ends.
pub fn cross_validate_neural(
    table: &Table,
    spec: &PreprocessorSpec,
    params: &NeuralParams,
    kfold: KFold,
    device: &DeviceChoice,
    on_fold: &mut dyn FnMut(&FoldResult),
    on_epoch: &mut dyn FnMut(usize, &EpochMetrics) -> Control,
) -> Result<CvReport> {
    let start = Instant::now();
    let labels = table.target.as_ref().ok_or_else(|| TrainError::NoTarget {
        path: table.source.clone(),
    })?;
    params.check()?;
    let n_classes = spec.schema().classes().len();
    let folds = kfold.split_with_extra(labels, n_classes, table.train_only)?;
    // One data block per fold: that fold's preprocessor applied to every row.
    let mut blocks = Vec::with_capacity(folds.len());
    let mut pres = Vec::with_capacity(folds.len());
    let mut names: Option<Vec<String>> = None;
    let mut same_features = true;
    for fold in &folds {
        if fold.train.is_empty() || fold.valid.is_empty() {
            return Err(TrainError::EmptyFold {
                repeat: fold.repeat,
                fold: fold.fold,
                part: if fold.train.is_empty() {
                    "training"
                } else {
                    "validation"
                },
            });
        }
        let pre = spec.fit(&table.select_rows(&fold.train))?;
        let m = pre.transform(table)?;
        pres.push(pre);
        let y = m.target.as_deref().expect("the table has the target");
        let b = block(&m.names, m.values.view(), y)
            .map_err(|e| TrainError::fold(fold.repeat, fold.fold, e))?;
        match &names {
            None => names = Some(m.names.clone()),
            Some(n) => same_features &= *n == m.names,
        }
        blocks.push((m.names, b));
    }
    let member = |fold: &Fold, block: usize| Member {
        params: params.clone(),
        block,
        train_rows: fold.train.clone(),
        valid_rows: fold.valid.clone(),
    };
    let results = if same_features {
        let feature_names = blocks[0].0.clone();
        let data = PopulationData {
            feature_names,
            n_classes,
            n_rows: table.n_rows(),
            blocks: blocks.into_iter().map(|(_, b)| b).collect(),
        };
        let members: Vec<Member> = folds
            .iter()
            .enumerate()
            .map(|(i, f)| member(f, i))
            .collect();
        train_population(&data, &members, device, on_epoch)?
    } else {
        // A level missing from some fold's training rows gives that fold other one-hot
        // columns: those folds cannot share a stack, so each fold trains alone.
        tracing::info!("folds have different feature columns; training them one at a time");
        let mut all = Vec::new();
        for (i, (fold, (names, b))) in folds.iter().zip(blocks).enumerate() {
            let data = PopulationData {
                feature_names: names,
                n_classes,
                n_rows: table.n_rows(),
                blocks: vec![b],
            };
            let mut hook = |_: usize, m: &EpochMetrics| on_epoch(i, m);
            all.extend(train_population(
                &data,
                &[member(fold, 0)],
                device,
                &mut hook,
            )?);
        }
        all
    };
    let seconds_each = start.elapsed().as_secs_f64() / folds.len() as f64;
    let mut oof = Array2::<f64>::zeros((table.n_main(), n_classes));
    let mut oof_fold = vec![0usize; table.n_main()];
    let mut fold_results = Vec::with_capacity(folds.len());
    for (fold, r) in folds.iter().zip(&results) {
        for (k, &row) in fold.valid.iter().enumerate() {
            for c in 0..n_classes {
                oof[[row, c]] += r.valid_proba[k * n_classes + c] / kfold.repeats as f64;
            }
            if fold.repeat == 0 {
                oof_fold[row] = fold.fold;
            }
        }
        let result = FoldResult {
            repeat: fold.repeat,
            fold: fold.fold,
            accuracy: r.valid_accuracy.unwrap_or(f64::NAN),
            logloss: r.valid_logloss.unwrap_or(f64::NAN),
            rounds: r.best_epoch,
            train_rows: fold.train.len(),
            valid_rows: fold.valid.len(),
            seconds: seconds_each,
        };
        on_fold(&result);
        fold_results.push(result);
    }
    let mut report = CvReport::from_folds(
        fold_results,
        start.elapsed().as_secs_f64(),
        oof,
        oof_fold,
        spec.schema().classes().to_vec(),
        Vec::new(),
        device.name.clone(),
    );
    report.models = folds
        .iter()
        .zip(pres)
        .zip(results)
        .map(|((fold, preprocessor), r)| FoldModel {
            repeat: fold.repeat,
            fold: fold.fold,
            preprocessor,
            model: AnyModel::Neural(r.model),
        })
        .collect();
    Ok(report)
}

/// Fits the preprocessor and a neural model on every row of `table` for `params.epochs` epochs
/// (no validation rows: the last epoch's weights are kept).
pub fn fit_all_neural(
    table: &Table,
    spec: &PreprocessorSpec,
    params: &NeuralParams,
    device: &DeviceChoice,
    on_epoch: &mut dyn FnMut(usize, &EpochMetrics) -> Control,
) -> Result<(Preprocessor, NeuralModel)> {
    params.check()?;
    let n_classes = spec.schema().classes().len();
    let pre = spec.fit(table)?;
    let m = pre.transform(table)?;
    let y = m.target.as_deref().ok_or_else(|| TrainError::NoTarget {
        path: table.source.clone(),
    })?;
    let data = PopulationData::single(&m.names, n_classes, m.values.view(), y)?;
    let member = Member {
        params: params.clone(),
        block: 0,
        train_rows: (0..table.n_rows()).collect(),
        valid_rows: Vec::new(),
    };
    let mut results = train_population(&data, &[member], device, on_epoch)?;
    Ok((pre, results.remove(0).model))
}
