//! Several neural trials of a sweep cross-validated together: every (trial, fold) pair is one
//! member of a stacked population ([`train_population`]), so P trials × k folds cost about one
//! fit on a GPU. Trials whose architectures cannot share a stack
//! ([`NeuralParams::stack_compatible`]) train in separate populations; each fold's preprocessor
//! is fitted once on the fold's training rows and shared by every trial.
//!
//! A trial's result equals what [`cross_validate_neural`](super::cross_validate_neural) gives it
//! alone (within float tolerance): members share nothing but the stack. A trial whose
//! parameters are invalid fails alone; a population that fails fails only its own trials.

use std::sync::Arc;
use std::time::Instant;

use ndarray::Array2;
use tabtune_features::{Fold, KFold, PreprocessorSpec, Table};
use tabtune_models::metrics::Control;
use tabtune_models::nn::NeuralParams;

use super::device::DeviceChoice;
use super::population::{
    DataBlock, EpochMetrics, Member, MemberResult, PopulationData, StopReason, block,
    train_population,
};
use crate::cv::{CvReport, FoldResult, trial_folds};
use crate::error::{Result, TrainError};

/// How one (trial, fold) member ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberEnd {
    /// Epochs it ran.
    pub epochs_run: usize,
    /// Why it stopped ([`StopReason::Pruned`] when the hook said stop).
    pub stop: StopReason,
}

/// One trial's cross-validation.
#[derive(Clone, Debug)]
pub struct TrialCv {
    /// Its report, as [`cross_validate_neural`](super::cross_validate_neural) would give it.
    pub report: CvReport,
    /// How each fold's member ended, in fold order.
    pub members: Vec<MemberEnd>,
}

/// Cross-validates every trial of `trials` on the first `max_folds` folds of `kfold` (all of
/// them when `max_folds` ≥ the number of folds; 1 for a holdout split), training compatible
/// trials together. `on_epoch(trial, fold, metrics)` is called after each epoch of each member
/// still training (`fold` indexes the folds used, from 0); [`Control::Stop`] masks that member
/// out (pruning), the others go on.
///
/// The outer error is a problem shared by every trial (no target, a bad split, preprocessing);
/// the inner ones belong to single trials (invalid parameters, a failed population).
pub fn cross_validate_trials(
    table: &Table,
    spec: &PreprocessorSpec,
    trials: &[NeuralParams],
    kfold: KFold,
    max_folds: usize,
    device: &DeviceChoice,
    on_epoch: &mut dyn FnMut(usize, usize, &EpochMetrics) -> Control,
) -> Result<Vec<Result<TrialCv>>> {
    let start = Instant::now();
    let (n_classes, folds) = trial_folds(table, spec, kfold, max_folds)?;
    let mut out: Vec<Option<Result<TrialCv>>> = trials
        .iter()
        .map(|p| p.check().err().map(|e| Err(e.into())))
        .collect();
    let valid: Vec<usize> = (0..trials.len()).filter(|&t| out[t].is_none()).collect();
    if valid.is_empty() {
        return Ok(out.into_iter().flatten().collect());
    }
    let blocks = fold_blocks(table, spec, &folds)?;
    // Folds whose preprocessors give the same columns share one population; a level missing
    // from some fold's training rows gives that fold other one-hot columns, and it trains apart.
    let mut datasets: Vec<(Vec<String>, Vec<usize>)> = Vec::new();
    for (f, (names, _)) in blocks.iter().enumerate() {
        match datasets.iter_mut().find(|(n, _)| n == names) {
            Some((_, fs)) => fs.push(f),
            None => datasets.push((names.clone(), vec![f])),
        }
    }
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for &t in &valid {
        match groups
            .iter_mut()
            .find(|g| trials[g[0]].stack_compatible(&trials[t]))
        {
            Some(g) => g.push(t),
            None => groups.push(vec![t]),
        }
    }
    let mut results: Vec<Vec<Option<MemberResult>>> = vec![vec![None; folds.len()]; trials.len()];
    let mut seconds = vec![0.0; trials.len()];
    for group in &groups {
        let t0 = Instant::now();
        let mut failed: Option<Arc<TrainError>> = None;
        for (names, fs) in &datasets {
            let data = PopulationData {
                feature_names: names.clone(),
                n_classes,
                n_rows: table.n_rows(),
                blocks: fs.iter().map(|&f| blocks[f].1.clone()).collect(),
            };
            let mut index = Vec::with_capacity(group.len() * fs.len());
            let mut members = Vec::with_capacity(group.len() * fs.len());
            for &t in group {
                for (b, &f) in fs.iter().enumerate() {
                    index.push((t, f));
                    members.push(Member {
                        params: trials[t].clone(),
                        block: b,
                        train_rows: folds[f].train.clone(),
                        valid_rows: folds[f].valid.clone(),
                    });
                }
            }
            let mut hook = |m: usize, e: &EpochMetrics| {
                let (t, f) = index[m];
                on_epoch(t, f, e)
            };
            match train_population(&data, &members, device, &mut hook) {
                Ok(ends) => {
                    for ((t, f), r) in index.iter().zip(ends) {
                        results[*t][*f] = Some(r);
                    }
                }
                Err(e) => {
                    failed = Some(Arc::new(e));
                    break;
                }
            }
        }
        let each = t0.elapsed().as_secs_f64() / group.len() as f64;
        for &t in group {
            seconds[t] = each;
            if let Some(e) = &failed {
                out[t] = Some(Err(TrainError::Population {
                    trials: group.len(),
                    source: Arc::clone(e),
                }));
            }
        }
    }
    for t in valid {
        if out[t].is_some() {
            continue;
        }
        let ends: Vec<MemberResult> = results[t]
            .iter_mut()
            .map(|r| {
                r.take()
                    .expect("every fold of a trained trial has a result")
            })
            .collect();
        out[t] = Some(Ok(assemble(
            spec, &folds, kfold, &ends, n_classes, table, seconds[t], device,
        )));
    }
    tracing::info!(
        "{} neural trials × {} folds trained as {} population(s) in {:.2} s",
        trials.len(),
        folds.len(),
        groups.len(),
        start.elapsed().as_secs_f64()
    );
    Ok(out.into_iter().flatten().collect())
}

/// Each fold's preprocessor fitted on its training rows and applied to every row.
fn fold_blocks(
    table: &Table,
    spec: &PreprocessorSpec,
    folds: &[Fold],
) -> Result<Vec<(Vec<String>, DataBlock)>> {
    folds
        .iter()
        .map(|fold| {
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
            let y = m.target.as_deref().expect("the table has the target");
            let b = block(&m.names, m.values.view(), y)
                .map_err(|e| TrainError::fold(fold.repeat, fold.fold, e))?;
            Ok((m.names, b))
        })
        .collect()
}

/// One trial's report from its members' results (the same arithmetic as
/// [`cross_validate_neural`](super::cross_validate_neural)).
#[allow(clippy::too_many_arguments)]
fn assemble(
    spec: &PreprocessorSpec,
    folds: &[Fold],
    kfold: KFold,
    ends: &[MemberResult],
    n_classes: usize,
    table: &Table,
    seconds: f64,
    device: &DeviceChoice,
) -> TrialCv {
    let mut oof = Array2::<f64>::zeros((table.n_main(), n_classes));
    let mut oof_fold = vec![0usize; table.n_main()];
    let mut fold_results = Vec::with_capacity(folds.len());
    for (fold, r) in folds.iter().zip(ends) {
        for (k, &row) in fold.valid.iter().enumerate() {
            for c in 0..n_classes {
                oof[[row, c]] += r.valid_proba[k * n_classes + c] / kfold.repeats as f64;
            }
            if fold.repeat == 0 {
                oof_fold[row] = fold.fold;
            }
        }
        fold_results.push(FoldResult {
            repeat: fold.repeat,
            fold: fold.fold,
            accuracy: r.valid_accuracy.unwrap_or(f64::NAN),
            logloss: r.valid_logloss.unwrap_or(f64::NAN),
            rounds: r.best_epoch,
            train_rows: fold.train.len(),
            valid_rows: fold.valid.len(),
            seconds: seconds / folds.len() as f64,
        });
    }
    TrialCv {
        report: CvReport::from_folds(
            fold_results,
            seconds,
            oof,
            oof_fold,
            spec.schema().classes().to_vec(),
            Vec::new(),
            device.name.clone(),
        ),
        members: ends
            .iter()
            .map(|r| MemberEnd {
                epochs_run: r.epochs_run,
                stop: r.stop,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use tabtune_features::io::{LoadOptions, load_table};
    use tabtune_features::{Config, KFold, PreprocessorSpec, Table};
    use tabtune_models::metrics::Control;
    use tabtune_models::nn::{NetKind, NeuralParams};

    use super::{StopReason, TrialCv, cross_validate_trials};
    use crate::nn::{DeviceChoice, cross_validate_neural};

    /// The synthetic obesity table (the class follows BMI) and its preprocessor spec.
    fn obesity(rows: usize) -> (Table, PreprocessorSpec) {
        let dir = std::env::temp_dir().join(format!(
            "tabtune-trials-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("train.csv");
        std::fs::write(&path, tabtune_test::synthetic_obesity_csv(rows, 9)).expect("write");
        let config = Config::load(&tabtune_test::engineered_config(&dir)).expect("config");
        let table = load_table(&path, &config.schema, &LoadOptions::default())
            .expect("valid")
            .table;
        std::fs::remove_dir_all(&dir).expect("cleanup");
        (table, PreprocessorSpec::from_config(&config))
    }

    fn trial(kind: NetKind, width: usize, lr: f64, dropout: f64, seed: u64) -> NeuralParams {
        let mut p = NeuralParams::new(kind);
        p.depth = 2;
        p.width = width;
        p.k = if kind == NetKind::Tabm { 4 } else { 1 };
        p.epochs = 4;
        p.batch_size = 32;
        p.learning_rate = lr;
        p.dropout = dropout;
        p.seed = seed;
        p
    }

    const KFOLD: KFold = KFold {
        folds: 3,
        repeats: 1,
        seed: 5,
        stratify: true,
    };

    fn cpu() -> DeviceChoice {
        DeviceChoice::cpu("test")
    }

    fn close(a: &TrialCv, b: &crate::CvReport) {
        let r = &a.report;
        assert_eq!(r.folds.len(), b.folds.len());
        assert!(
            (r.accuracy_mean - b.accuracy_mean).abs() < 1e-4,
            "{} vs {}",
            r.accuracy_mean,
            b.accuracy_mean
        );
        assert!(
            (r.logloss_mean - b.logloss_mean).abs() < 1e-4,
            "{} vs {}",
            r.logloss_mean,
            b.logloss_mean
        );
        let worst = (&r.oof - &b.oof).iter().fold(0.0f64, |m, d| m.max(d.abs()));
        assert!(worst < 1e-4, "OOF differs by {worst}");
        assert_eq!(r.oof_fold, b.oof_fold);
    }

    #[test]
    fn trials_trained_together_equal_each_trial_alone() {
        let (table, spec) = obesity(210);
        let trials = vec![
            trial(NetKind::Mlp, 16, 3e-3, 0.0, 1),
            trial(NetKind::Mlp, 24, 1e-3, 0.2, 2),
            // Another architecture: its own population.
            trial(NetKind::Tabm, 16, 2e-3, 0.1, 3),
            trial(NetKind::Mlp, 8, 5e-3, 0.1, 4),
        ];
        let mut seen = std::collections::BTreeSet::new();
        let together =
            cross_validate_trials(&table, &spec, &trials, KFOLD, 99, &cpu(), &mut |t, f, e| {
                seen.insert((t, f, e.epoch));
                Control::Continue
            })
            .expect("cv");
        assert_eq!(
            seen.len(),
            4 * 3 * 4,
            "every (trial, fold) member, every epoch"
        );
        for (t, params) in trials.iter().enumerate() {
            let got = together[t].as_ref().expect("trained");
            assert!(got.members.iter().all(|m| m.epochs_run == 4));
            let alone = cross_validate_neural(
                &table,
                &spec,
                params,
                KFOLD,
                &cpu(),
                &mut |_| {},
                &mut |_, _| Control::Continue,
            )
            .expect("alone");
            close(got, &alone);
        }
    }

    #[test]
    fn a_pruned_member_stops_while_the_others_go_on() {
        let (table, spec) = obesity(210);
        let trials = vec![
            trial(NetKind::Mlp, 16, 3e-3, 0.0, 1),
            trial(NetKind::Mlp, 24, 1e-3, 0.2, 2),
            trial(NetKind::Mlp, 8, 5e-3, 0.1, 4),
        ];
        // One fold: a holdout split. Trial 1 is pruned after its second epoch.
        let mut after = Vec::new();
        let got =
            cross_validate_trials(&table, &spec, &trials, KFOLD, 1, &cpu(), &mut |t, f, e| {
                assert_eq!(f, 0, "one fold");
                if t == 1 && e.epoch > 2 {
                    after.push(e.epoch);
                }
                if t == 1 && e.epoch == 2 {
                    Control::Stop
                } else {
                    Control::Continue
                }
            })
            .expect("cv");
        assert!(after.is_empty(), "a pruned member trains on: {after:?}");
        let pruned = got[1]
            .as_ref()
            .expect("pruned trials keep their best weights");
        assert_eq!(pruned.members[0].stop, StopReason::Pruned);
        assert_eq!(pruned.members[0].epochs_run, 2);
        assert_eq!(pruned.report.folds.len(), 1);
        for t in [0, 2] {
            let with = got[t].as_ref().expect("trained");
            assert_eq!(with.members[0].epochs_run, 4);
            let alone = cross_validate_trials(
                &table,
                &spec,
                &trials[t..=t],
                KFOLD,
                1,
                &cpu(),
                &mut |_, _, _| Control::Continue,
            )
            .expect("alone")
            .remove(0)
            .expect("trained");
            close(with, &alone.report);
        }
    }

    #[test]
    fn an_invalid_trial_fails_alone_and_the_others_keep_their_results() {
        let (table, spec) = obesity(210);
        let mut bad = trial(NetKind::Mlp, 16, 3e-3, 0.0, 1);
        bad.dropout = 1.5;
        let trials = vec![
            trial(NetKind::Mlp, 16, 3e-3, 0.0, 1),
            bad,
            trial(NetKind::Mlp, 8, 5e-3, 0.1, 4),
        ];
        let got =
            cross_validate_trials(&table, &spec, &trials, KFOLD, 1, &cpu(), &mut |t, _, _| {
                assert_ne!(t, 1, "an invalid trial never trains");
                Control::Continue
            })
            .expect("cv");
        let e = got[1].as_ref().expect_err("invalid").to_string();
        assert!(e.contains("dropout"), "{e}");
        assert!(got[0].is_ok() && got[2].is_ok());
        let all_bad = cross_validate_trials(
            &table,
            &spec,
            &trials[1..2],
            KFOLD,
            1,
            &cpu(),
            &mut |_, _, _| Control::Continue,
        )
        .expect("no shared problem");
        assert!(all_bad[0].is_err());
    }
}
