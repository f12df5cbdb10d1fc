//! Data drift between a reference table (usually the training data) and a current one, per
//! column with Evidently's default tests, plus target drift (when both have labels) and
//! prediction drift (the model's predicted classes on both).

use std::path::PathBuf;

use serde::Serialize;
use tabtune_features::drift::{ColumnDrift, categorical_drift, dataset_drift, numeric_drift};
use tabtune_features::{ColumnValues, Table};

use super::performance::{Performance, performance};
use crate::error::{InferError, Result};
use crate::predictor::Predictor;

/// Drift of the feature columns.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FeatureDrift {
    /// Per feature column, in schema order.
    pub columns: Vec<ColumnDrift>,
    /// Share of drifted feature columns.
    pub drift_share: f64,
    /// Whether the dataset drifted (share ≥ 0.5).
    pub dataset_drift: bool,
}

impl FeatureDrift {
    /// Names of the drifted feature columns.
    pub fn drifted_columns(&self) -> Vec<&str> {
        self.columns
            .iter()
            .filter(|c| c.drifted)
            .map(|c| c.column.as_str())
            .collect()
    }
}

/// Drift of the target and of the model's predictions.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TargetDrift {
    /// Drift of the target, when both sides have labels.
    pub target: Option<ColumnDrift>,
    /// Drift of the predicted classes.
    pub prediction: ColumnDrift,
}

/// The outcome of a drift check.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DriftReport {
    /// Reference data.
    pub reference: PathBuf,
    /// Current data.
    pub current: PathBuf,
    /// Rows in each.
    pub rows: (usize, usize),
    /// Per feature column.
    pub columns: Vec<ColumnDrift>,
    /// Share of drifted feature columns.
    pub drift_share: f64,
    /// Whether the dataset drifted (share ≥ 0.5).
    pub dataset_drift: bool,
    /// Drift of the target, when both tables have it.
    pub target: Option<ColumnDrift>,
    /// Drift of the model's predicted classes.
    pub prediction: ColumnDrift,
    /// How well the model does on the current data, when it has labels.
    pub performance: Option<Performance>,
}

impl DriftReport {
    /// Names of the drifted feature columns.
    pub fn drifted_columns(&self) -> Vec<&str> {
        self.columns
            .iter()
            .filter(|c| c.drifted)
            .map(|c| c.column.as_str())
            .collect()
    }
}

pub(crate) fn labels<'a>(levels: &'a [String], codes: &[u32]) -> Vec<&'a str> {
    codes.iter().map(|&c| levels[c as usize].as_str()).collect()
}

fn non_empty(table: &Table, what: &str) -> Result<()> {
    if table.n_rows() == 0 {
        return Err(InferError::NotEnoughData {
            what: format!("{what} ({})", table.source.display()),
            rows: 0,
            needed: 1,
        });
    }
    Ok(())
}

/// Drift of every feature column of `current` against `reference` (same schema, both
/// non-empty).
pub fn feature_drift(reference: &Table, current: &Table) -> Result<FeatureDrift> {
    non_empty(reference, "the reference data")?;
    non_empty(current, "the current data")?;
    let mut columns = Vec::with_capacity(reference.columns.len());
    for (r, c) in reference.columns.iter().zip(&current.columns) {
        columns.push(match (&r.values, &c.values) {
            (ColumnValues::Numeric(a), ColumnValues::Numeric(b)) => numeric_drift(&r.name, a, b),
            (
                ColumnValues::Categorical { levels, codes: a },
                ColumnValues::Categorical { codes: b, .. },
            ) => categorical_drift(&r.name, &labels(levels, a), &labels(levels, b)),
            _ => {
                return Err(InferError::SchemaMismatch {
                    message: format!("column {} has different types on the two sides", r.name),
                });
            }
        });
    }
    let (drift_share, dataset_drift) = dataset_drift(&columns);
    Ok(FeatureDrift {
        columns,
        drift_share,
        dataset_drift,
    })
}

/// Drift of the labels (`None` unless both sides have some) and of the predicted classes (both
/// non-empty), as class indices into `classes`.
pub fn target_drift(
    target_name: &str,
    classes: &[String],
    reference_target: Option<&[u32]>,
    current_target: Option<&[u32]>,
    reference_predicted: &[u32],
    current_predicted: &[u32],
) -> Result<TargetDrift> {
    if reference_predicted.is_empty() || current_predicted.is_empty() {
        return Err(InferError::NotEnoughData {
            what: "predictions".into(),
            rows: reference_predicted.len().min(current_predicted.len()),
            needed: 1,
        });
    }
    let target = match (reference_target, current_target) {
        (Some(a), Some(b)) if !a.is_empty() && !b.is_empty() => Some(categorical_drift(
            target_name,
            &labels(classes, a),
            &labels(classes, b),
        )),
        _ => None,
    };
    let prediction = categorical_drift(
        "prediction",
        &labels(classes, reference_predicted),
        &labels(classes, current_predicted),
    );
    Ok(TargetDrift { target, prediction })
}

/// Compares `current` with `reference` (both validated against the bundle's schema): feature,
/// target and prediction drift, and the model's performance when `current` has labels.
pub fn data_drift(
    predictor: &Predictor,
    reference: &Table,
    current: &Table,
) -> Result<DriftReport> {
    let features = feature_drift(reference, current)?;
    let classes = predictor.classes();
    let (pa, pb) = (predictor.predict(reference)?, predictor.predict(current)?);
    let targets = target_drift(
        &predictor.bundle().meta.schema.target,
        classes,
        reference.target.as_deref(),
        current.target.as_deref(),
        &pa.labels,
        &pb.labels,
    )?;
    let performance = current
        .target
        .as_ref()
        .map(|t| performance(classes, t, &pb.labels, &pb.proba));
    Ok(DriftReport {
        reference: reference.source.clone(),
        current: current.source.clone(),
        rows: (reference.n_rows(), current.n_rows()),
        columns: features.columns,
        drift_share: features.drift_share,
        dataset_drift: features.dataset_drift,
        target: targets.target,
        prediction: targets.prediction,
        performance,
    })
}
