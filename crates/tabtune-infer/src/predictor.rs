//! A bundle ready to predict on raw data.

use std::path::Path;

use ndarray::Array2;
use tabtune_features::Table;
use tabtune_features::io::{LoadOptions, Loaded, load_table};
use tabtune_models::bundle::Bundle;
use tabtune_models::gbdt::labels_of;

use crate::error::Result;

/// Loads and verifies a bundle (every checksum, the format version).
pub fn load_bundle(dir: &Path) -> Result<Predictor> {
    Ok(Predictor {
        bundle: Bundle::load(dir)?,
    })
}

/// Loads the model `arg` names: a bundle folder, or a `models:/name@alias` /
/// `models:/name/3` reference resolved in the registry in effect (MLflow's when
/// `MLFLOW_TRACKING_URI` is set, else the local one). Called again, it picks up a moved alias.
pub fn load_model(arg: &str) -> Result<Predictor> {
    load_bundle(&tabtune_track::registry::resolve_model(arg, None)?)
}

/// Predictions for a table.
#[derive(Clone, Debug, PartialEq)]
pub struct Prediction {
    /// Class probabilities, `[n_rows, n_classes]`.
    pub proba: Array2<f64>,
    /// The most probable class per row.
    pub labels: Vec<u32>,
    /// Row ids, when the input had them.
    pub ids: Option<Vec<String>>,
    /// Source row numbers.
    pub rows: Vec<usize>,
}

/// A loaded bundle.
#[derive(Clone, Debug)]
pub struct Predictor {
    bundle: Bundle,
}

impl Predictor {
    /// The bundle.
    pub fn bundle(&self) -> &Bundle {
        &self.bundle
    }

    /// Class names, in label order.
    pub fn classes(&self) -> &[String] {
        &self.bundle.meta.classes
    }

    /// Loads and validates a data file against the bundle's schema (the target may be absent).
    pub fn load(&self, path: &Path, options: &LoadOptions) -> Result<Loaded> {
        Ok(load_table(path, &self.bundle.meta.schema, options)?)
    }

    /// Predicts every row of a validated table.
    pub fn predict(&self, table: &Table) -> Result<Prediction> {
        let proba = self.bundle.predict_proba(table)?;
        let labels = labels_of(&proba);
        Ok(Prediction {
            proba,
            labels,
            ids: table.ids.clone(),
            rows: table.rows.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_bundle_is_bad_input_naming_the_file() {
        let err = load_bundle(Path::new("no/such/bundle")).expect_err("missing");
        assert!(err.is_bad_input());
        assert!(
            err.to_string().contains("no/such/bundle/bundle.json"),
            "{err}"
        );
    }

    #[test]
    fn predictor_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Predictor>();
    }
}
