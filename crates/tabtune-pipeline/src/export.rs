//! Exporting a model: a study's best (or chosen) trial, or a family with its parameters,
//! fitted on every training row and written as a bundle.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use tabtune_features::io::sha256_file;
use tabtune_features::{Config, PreprocessorSpec, Table};
use tabtune_models::AnyModel;
use tabtune_models::bundle::{Bundle, BundleMeta, TrainingData};
use tabtune_models::ensemble::{EnsembleMember, EnsembleModel};
use tabtune_train::nn::device::select;
use tabtune_train::nn::{DeviceChoice, DeviceRequest};
use tabtune_train::{CvReport, Family, FoldModel, ModelParams, fit_all_on};
use tabtune_tune::storage::{AttrKind, Storage, open};
use tabtune_tune::study::{ATTR_FIXED_PARAMS, Study, best_of};
use tabtune_tune::{FrozenTrial, TrialState};

use crate::data::{Input, load_training};
use crate::error::{PipelineError, Result};
use crate::progress::Progress;
use crate::sweep::attrs::{
    ATTR_ACCURACY_MEAN, ATTR_FEATURES, ATTR_FOLDS, ATTR_ROUNDS_MEAN, ATTR_SEED,
};
use crate::sweep::params::{extra_repeats, trial_params};
use crate::sweep::storage::DEFAULT_STORAGE;

/// The parameters the final model (fitted on every row, with no validation set) trains with:
/// with early stopping, a GBDT trains for the folds' mean best round count instead, and a
/// neural model for the folds' mean best epoch count.
pub fn final_params(params: &ModelParams, mean_rounds: Option<f64>) -> ModelParams {
    let mut out = params.clone();
    match &mut out {
        ModelParams::Gbdt(p) if p.early_stopping_rounds > 0 => {
            if let Some(mean) = mean_rounds {
                p.rounds = (mean.round() as usize).max(1);
            }
            p.early_stopping_rounds = 0;
        }
        ModelParams::Neural(p) => {
            if let Some(mean) = mean_rounds {
                p.epochs = (mean.round() as usize).max(1);
            }
        }
        _ => {}
    }
    out
}

/// The folds' mean rounds (boosting rounds or best epochs) of a CV report.
pub fn mean_rounds(report: &CvReport) -> Option<f64> {
    if report.folds.is_empty() {
        return None;
    }
    Some(report.folds.iter().map(|f| f.rounds).sum::<usize>() as f64 / report.folds.len() as f64)
}

/// What goes into a bundle besides the model.
pub struct BundleInput<'a> {
    /// Model family.
    pub family: Family,
    /// Parameters of the final model (see [`final_params`]).
    pub params: &'a ModelParams,
    /// Every training row.
    pub table: &'a Table,
    /// The preprocessing to fit.
    pub spec: &'a PreprocessorSpec,
    /// The training file (its sha256 goes into the bundle).
    pub input: &'a Path,
    /// Cross-validation metrics and the like.
    pub metrics: BTreeMap<String, f64>,
    /// Where a neural model trains.
    pub device: &'a DeviceChoice,
}

/// Fits the preprocessor and the model on every row and writes the bundle to `dir`
/// (atomically); returns `dir`.
pub fn write_bundle(
    input: &BundleInput<'_>,
    dir: &Path,
    progress: &dyn Progress,
) -> Result<PathBuf> {
    let spinner = progress.spinner(&format!(
        "{}: fitting on all {} rows",
        input.family.name(),
        input.table.n_rows()
    ));
    let fitted = fit_all_on(input.table, input.spec, input.params, input.device);
    drop(spinner);
    let (preprocessor, model) = fitted?;
    let training_data = TrainingData {
        file: input.input.display().to_string(),
        sha256: sha256_file(input.input)?,
        rows: input.table.n_rows(),
    };
    let name = dir
        .file_name()
        .map_or_else(|| "model".to_owned(), |n| n.to_string_lossy().into_owned());
    let mut meta = BundleMeta::new(
        &name,
        input.family.name(),
        &preprocessor,
        serde_json::to_value(input.params).expect("model parameters always serialize"),
        training_data,
    );
    meta.metrics.extend(input.metrics.clone());
    Bundle {
        meta,
        model,
        preprocessor,
    }
    .save(dir)?;
    tracing::info!("bundle written to {}", dir.display());
    Ok(dir.to_owned())
}

/// What a trial ships as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinalModel {
    /// Refitted on every row, for the folds' mean boosting rounds or best epochs.
    Refit,
    /// The trial's k fold models (each with the preprocessing fitted on its fold's training
    /// rows), averaged: exactly the models whose out-of-fold predictions were scored; with
    /// `seeds` > 1 the folds are trained again with model seeds `seed + 1, ...` and averaged
    /// too.
    Folds {
        /// Model seeds per fold (≥ 1).
        seeds: usize,
    },
}

impl FinalModel {
    /// `refit`, `folds` (one seed) or `folds:N`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "refit" => Some(Self::Refit),
            "folds" => Some(Self::Folds { seeds: 1 }),
            other => other
                .strip_prefix("folds:")
                .and_then(|n| n.parse().ok())
                .filter(|&n| (1..=16).contains(&n))
                .map(|seeds| Self::Folds { seeds }),
        }
    }
}

/// Which trial of which study to export, and where.
#[derive(Clone, Debug)]
pub struct ExportSettings {
    /// The rows to fit on (and their validation policy).
    pub input: Input,
    /// The study.
    pub study: String,
    /// Its storage URL.
    pub storage: String,
    /// A trial number, else the best trial.
    pub trial: Option<u64>,
    /// Bundle folder; `None`: `checkpoints/<study>-trial<N>`.
    pub output: Option<PathBuf>,
    /// Device for a neural model (`auto`, `cpu`, `wgpu`, `cuda:N`).
    pub device: String,
    /// Refit on every row, or ship the fold models.
    pub final_model: FinalModel,
}

impl ExportSettings {
    /// The best trial of `study` in the default storage, fitted on the config's training file.
    pub fn new(study: impl Into<String>) -> Self {
        Self {
            input: Input::default(),
            study: study.into(),
            storage: DEFAULT_STORAGE.to_owned(),
            trial: None,
            output: None,
            device: "auto".to_owned(),
            final_model: FinalModel::Refit,
        }
    }
}

/// A trial fitted on every row and written as a bundle.
#[derive(Clone, Debug)]
pub struct Exported {
    /// The bundle folder.
    pub bundle: PathBuf,
    /// The trial.
    pub trial: FrozenTrial,
    /// Its family.
    pub family: Family,
    /// The final model's parameters.
    pub params: ModelParams,
    /// Rows it was fitted on.
    pub rows: usize,
}

/// The trial to export: `number` (which must be COMPLETE) or the study's best.
fn pick(study: &Study, trials: &[FrozenTrial], number: Option<u64>) -> Result<FrozenTrial> {
    match number {
        Some(n) => {
            let t = trials.iter().find(|t| t.number == n).ok_or_else(|| {
                PipelineError::NoSuchTrial {
                    study: study.name().to_owned(),
                    trial: n,
                    count: trials.len(),
                }
            })?;
            if t.state != TrialState::Complete {
                return Err(PipelineError::TrialNotComplete {
                    study: study.name().to_owned(),
                    trial: n,
                    state: t.state.as_optuna().to_owned(),
                });
            }
            Ok(t.clone())
        }
        None => best_of(trials, study.direction()).cloned().ok_or_else(|| {
            PipelineError::NoCompleteTrial {
                study: study.name().to_owned(),
            }
        }),
    }
}

/// The study's fixed parameters (stored by the sweep as the user attribute `fixed_params`),
/// with the seed the trials ran with unless the space fixes or samples one.
fn fixed_params(storage: &dyn Storage, study: &Study) -> Result<BTreeMap<String, Value>> {
    let attrs = storage.study_attrs(study.id(), AttrKind::User)?;
    let mut fixed: BTreeMap<String, Value> = match attrs.get(ATTR_FIXED_PARAMS) {
        Some(Value::Object(m)) => m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        _ => BTreeMap::new(),
    };
    if let Some(seed) = attrs.get(ATTR_SEED) {
        fixed.entry("seed".into()).or_insert_with(|| seed.clone());
    }
    Ok(fixed)
}

/// Fits the chosen trial of a study on every row and writes it as a bundle.
pub fn export_trial(
    config: &Config,
    settings: &ExportSettings,
    progress: &dyn Progress,
) -> Result<Exported> {
    let storage: std::sync::Arc<dyn Storage> = std::sync::Arc::new(open(&settings.storage)?);
    let study = Study::load(std::sync::Arc::clone(&storage), &settings.study)?;
    let trials = study.trials()?;
    let trial = pick(&study, &trials, settings.trial)?;
    let fixed = fixed_params(storage.as_ref(), &study)?;
    let (family, cv_params) = trial_params(&trial.params, &fixed)?;
    let repeats = extra_repeats(&trial.params, &fixed)?;
    let mean_rounds = trial
        .user_attrs
        .get(ATTR_ROUNDS_MEAN)
        .and_then(Value::as_f64);
    let params = final_params(&cv_params, mean_rounds);
    // Every family trains on the device (a GBDT on a GPU as a batch of one, a forest's trees
    // grown together).
    let device = select(DeviceRequest::parse(&settings.device)?)?;

    let training = load_training(config, &settings.input, progress)?;
    // The final model trains on every row and the trial's copies of the extra training data.
    let table = training.table_with(repeats)?;
    let mut spec = PreprocessorSpec::from_config(config);
    let attrs = storage.study_attrs(study.id(), AttrKind::User)?;
    if let Some(Value::Array(names)) = attrs.get(ATTR_FEATURES) {
        spec = spec.with_features(
            names
                .iter()
                .filter_map(|n| n.as_str().map(str::to_owned))
                .collect(),
        );
    }
    let output_dir = settings.output.clone().unwrap_or_else(|| {
        PathBuf::from(format!(
            "checkpoints/{}-trial{}",
            settings.study, trial.number
        ))
    });
    let mut metrics = BTreeMap::new();
    for key in ["accuracy_mean", "accuracy_std", "logloss_mean", "folds"] {
        if let Some(v) = trial.user_attrs.get(key).and_then(Value::as_f64) {
            metrics.insert(format!("cv_{key}"), v);
        }
    }
    metrics.insert("study_trial".into(), trial.number as f64);
    metrics.insert("extra_train_rows".into(), table.train_only as f64);
    if let FinalModel::Folds { seeds } = settings.final_model {
        let folds = trial
            .user_attrs
            .get(ATTR_FOLDS)
            .and_then(Value::as_u64)
            .unwrap_or(0) as usize;
        let seed = attrs
            .get(ATTR_SEED)
            .and_then(Value::as_u64)
            .unwrap_or(config.cv.seed);
        if folds < 2 {
            return Err(PipelineError::setting(
                "final_model",
                "folds",
                format!(
                    "refit for trial {} of study `{}`: it ran no k-fold cross-validation",
                    trial.number, settings.study
                ),
            ));
        }
        let kfold = tabtune_features::KFold {
            folds,
            repeats: 1,
            seed,
            stratify: config.cv.stratify,
        };
        let label = format!("{}#{}", settings.study, trial.number);
        let fits = trial_fold_models(
            &FoldRun {
                table: &table,
                spec: &spec,
                kfold,
                device: &device,
                label: &label,
            },
            &trial.params,
            &fixed,
            seeds,
            trial
                .user_attrs
                .get(ATTR_ACCURACY_MEAN)
                .and_then(Value::as_f64),
            progress,
        )?;
        metrics.insert("final_fold_models".into(), fits.len() as f64);
        let bundle = write_fold_bundle(
            &FoldBundle {
                family,
                params: &cv_params,
                fits,
                table: &table,
                spec: &spec,
                input: &training.path,
                metrics,
                seeds,
            },
            &output_dir,
        )?;
        return Ok(Exported {
            bundle,
            trial,
            family,
            params: cv_params,
            rows: table.n_rows(),
        });
    }
    let bundle = write_bundle(
        &BundleInput {
            family,
            params: &params,
            table: &table,
            spec: &spec,
            input: &training.path,
            metrics,
            device: &device,
        },
        &output_dir,
        progress,
    )?;
    Ok(Exported {
        bundle,
        trial,
        family,
        params,
        rows: table.n_rows(),
    })
}

/// Where a trial's folds are trained again.
pub struct FoldRun<'a> {
    /// The rows (the training file's, plus the trial's extra training rows).
    pub table: &'a Table,
    /// The preprocessing (fitted per fold).
    pub spec: &'a PreprocessorSpec,
    /// The trial's split.
    pub kfold: tabtune_features::KFold,
    /// Where a neural model trains.
    pub device: &'a DeviceChoice,
    /// `study#trial`, for member labels.
    pub label: &'a str,
}

/// A fold model of a trial, labelled.
pub struct LabelledFold {
    /// `study#trial fold F seed S`.
    pub label: String,
    /// The fold's preprocessing and model.
    pub fit: FoldModel,
}

/// The trial's fold models: its cross-validation run again (the same split, seed and rows:
/// the same models whose out-of-fold predictions were scored), then with model seeds
/// `seed + 1, ...` for `seeds` > 1. When the first run's mean accuracy differs from the
/// stored one (`expected`), a warning says so.
pub fn trial_fold_models(
    run: &FoldRun<'_>,
    trial_params_sampled: &BTreeMap<String, tabtune_tune::ParamValue>,
    fixed: &BTreeMap<String, Value>,
    seeds: usize,
    expected: Option<f64>,
    progress: &dyn Progress,
) -> Result<Vec<LabelledFold>> {
    let base_seed = fixed.get("seed").and_then(Value::as_u64).unwrap_or(0);
    let mut out = Vec::new();
    for s in 0..seeds.max(1) {
        let mut fixed = fixed.clone();
        if s > 0 {
            fixed.insert("seed".into(), Value::from(base_seed + s as u64));
        }
        let (family, params) = trial_params(trial_params_sampled, &fixed)?;
        let spinner = progress.spinner(&format!(
            "{}: {} fold models{}",
            run.label,
            run.kfold.folds,
            if seeds > 1 {
                format!(" (seed {}/{seeds})", s + 1)
            } else {
                String::new()
            }
        ));
        let report = tabtune_train::cross_validate_on(
            run.table,
            run.spec,
            &params,
            run.kfold,
            run.device,
            &mut |_| {},
            &mut |_, _| tabtune_models::metrics::Control::Continue,
        );
        drop(spinner);
        let report = report?;
        if s == 0
            && let Some(want) = expected
            && (report.accuracy_mean - want).abs() > 1e-9
        {
            tracing::warn!(
                "{}: the fold models score {:.6} again, the trial scored {want:.6} ({})",
                run.label,
                report.accuracy_mean,
                family.name()
            );
        }
        for fit in report.models {
            out.push(LabelledFold {
                label: format!("{} fold {} seed {}", run.label, fit.fold, s),
                fit,
            });
        }
    }
    Ok(out)
}

/// What a fold-average bundle holds.
pub struct FoldBundle<'a> {
    /// The trial's family.
    pub family: Family,
    /// Its cross-validation parameters.
    pub params: &'a ModelParams,
    /// Its fold models.
    pub fits: Vec<LabelledFold>,
    /// The rows (the bundle's own preprocessor, for the schema and inputs, is fitted on them).
    pub table: &'a Table,
    /// The preprocessing.
    pub spec: &'a PreprocessorSpec,
    /// The training file (its sha256 goes into the bundle).
    pub input: &'a Path,
    /// Cross-validation metrics and the like.
    pub metrics: BTreeMap<String, f64>,
    /// Model seeds per fold.
    pub seeds: usize,
}

/// Writes the fold models as one bundle: an ensemble of equal weights whose members read the
/// raw rows through their own preprocessing.
pub fn write_fold_bundle(input: &FoldBundle<'_>, dir: &Path) -> Result<PathBuf> {
    let preprocessor = input.spec.fit(input.table)?;
    let n = input.fits.len();
    let mut members = Vec::with_capacity(n);
    let mut pres = Vec::with_capacity(n);
    for f in &input.fits {
        members.push(EnsembleMember {
            model: f.fit.model.clone(),
            weight: 1.0 / n as f64,
            label: f.label.clone(),
        });
        pres.push(Some(f.fit.preprocessor.clone()));
    }
    let classes = input.spec.schema().classes().len();
    let model = EnsembleModel::new(members, vec![1.0; classes])?.with_folds(pres, vec![0; n])?;
    let training_data = TrainingData {
        file: input.input.display().to_string(),
        sha256: sha256_file(input.input)?,
        rows: input.table.n_rows(),
    };
    let name = dir
        .file_name()
        .map_or_else(|| "model".to_owned(), |n| n.to_string_lossy().into_owned());
    let mut meta = BundleMeta::new(
        &name,
        "ensemble",
        &preprocessor,
        serde_json::json!({
            "final": "folds",
            "family": input.family.name(),
            "folds": n / input.seeds.max(1),
            "seeds": input.seeds,
            "params": input.params,
        }),
        training_data,
    );
    meta.metrics.extend(input.metrics.clone());
    Bundle {
        meta,
        model: AnyModel::Ensemble(model),
        preprocessor,
    }
    .save(dir)?;
    tracing::info!("bundle of {n} fold models written to {}", dir.display());
    Ok(dir.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tabtune_models::gbdt::{GbdtParams, Growth};

    #[test]
    fn final_models_train_for_the_folds_mean_rounds() {
        let p = ModelParams::Gbdt(GbdtParams {
            rounds: 500,
            early_stopping_rounds: 20,
            ..GbdtParams::new(Growth::LeafWise)
        });
        let ModelParams::Gbdt(g) = final_params(&p, Some(123.4)) else {
            panic!("gbdt")
        };
        assert_eq!((g.rounds, g.early_stopping_rounds), (123, 0));
        // Without early stopping the rounds stay.
        let p = ModelParams::Gbdt(GbdtParams {
            rounds: 50,
            early_stopping_rounds: 0,
            ..GbdtParams::new(Growth::LeafWise)
        });
        let ModelParams::Gbdt(g) = final_params(&p, Some(7.0)) else {
            panic!("gbdt")
        };
        assert_eq!(g.rounds, 50);
    }

    #[test]
    fn a_missing_study_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = Config::load(&tabtune_test::default_config()).expect("config");
        let mut s = ExportSettings::new("nope");
        s.storage = format!("sqlite:///{}", dir.path().join("s.db").display());
        let e = export_trial(&config, &s, &crate::progress::Silent).expect_err("no study");
        assert!(e.to_string().contains("nope"), "{e}");
        assert!(e.is_bad_input());
    }
}
