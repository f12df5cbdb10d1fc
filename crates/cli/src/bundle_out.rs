//! Writing a bundle from a family, its parameters and the training table (shared by `train
//! --save` and `export`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;
use tabtune_features::io::sha256_file;
use tabtune_features::{PreprocessorSpec, Table};
use tabtune_models::bundle::{Bundle, BundleMeta, TrainingData};
use tabtune_train::nn::DeviceChoice;
use tabtune_train::{CvReport, Family, ModelParams, fit_all_on};

use crate::output;

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
    /// Whether to show a spinner.
    pub progress: bool,
}

/// Fits the preprocessor and the model on every row and writes the bundle to `dir`
/// (atomically); returns `dir`.
pub fn write_bundle(input: &BundleInput<'_>, dir: &Path) -> Result<PathBuf> {
    let spinner = output::spinner(
        input.progress,
        format!(
            "{}: fitting on all {} rows",
            input.family.name(),
            input.table.n_rows()
        ),
    );
    let fitted = fit_all_on(input.table, input.spec, input.params, input.device);
    spinner.finish_and_clear();
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
        serde_json::to_value(input.params)?,
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
