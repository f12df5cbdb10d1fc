//! A trained model of any family, for code that handles every family alike (cross-validation,
//! bundles, prediction).

use std::path::Path;

use ndarray::{Array2, ArrayView2};

use crate::error::{ModelError, Result};
use crate::forest::{FOREST_FORMAT, ForestModel};
use crate::gbdt::{GBDT_FORMAT, GbdtModel};

/// The `format` field every model file starts with.
#[derive(serde::Deserialize)]
struct FormatHead {
    format: Option<String>,
}

/// A trained model.
#[derive(Clone, Debug, PartialEq)]
pub enum AnyModel {
    /// Gradient-boosted trees.
    Gbdt(GbdtModel),
    /// A decision tree or random forest.
    Forest(ForestModel),
}

impl AnyModel {
    /// Class probabilities, `[n_rows, n_classes]`.
    pub fn predict_proba(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f64>> {
        match self {
            Self::Gbdt(m) => m.predict_proba(x),
            Self::Forest(m) => m.predict_proba(x),
        }
    }

    /// Total split gain (impurity decrease for forests) per input feature.
    pub fn importance_gain(&self) -> &[f64] {
        match self {
            Self::Gbdt(m) => &m.importance_gain,
            Self::Forest(m) => &m.importance_gain,
        }
    }

    /// Boosting rounds kept, or trees in the forest.
    pub fn rounds(&self) -> usize {
        match self {
            Self::Gbdt(m) => m.trees.len(),
            Self::Forest(m) => m.trees.len(),
        }
    }

    /// Feature names, in input order.
    pub fn feature_names(&self) -> &[String] {
        match self {
            Self::Gbdt(m) => &m.feature_names,
            Self::Forest(m) => &m.feature_names,
        }
    }

    /// Writes the model file.
    pub fn save(&self, path: &Path) -> Result<()> {
        match self {
            Self::Gbdt(m) => m.save(path),
            Self::Forest(m) => m.save(path),
        }
    }

    /// Reads a model file of either family (by its `format`).
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read(path).map_err(|e| ModelError::Io {
            path: path.to_owned(),
            source: e,
        })?;
        let head: FormatHead = serde_json::from_slice(&text).map_err(|e| ModelError::Load {
            path: path.to_owned(),
            message: format!("not valid JSON: {e}"),
        })?;
        match head.format.as_deref() {
            Some(GBDT_FORMAT) => GbdtModel::load(path).map(Self::Gbdt),
            Some(FOREST_FORMAT) => ForestModel::load(path).map(Self::Forest),
            other => Err(ModelError::Load {
                path: path.to_owned(),
                message: format!(
                    "unknown model format {other:?}; expected {GBDT_FORMAT} or {FOREST_FORMAT}"
                ),
            }),
        }
    }
}
