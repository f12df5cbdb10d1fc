//! A trained model of any family, for code that handles every family alike (cross-validation,
//! bundles, prediction).

use std::path::Path;

use ndarray::{Array2, ArrayView2};

use crate::ensemble::{ENSEMBLE_FORMAT, EnsembleModel};
use crate::error::{ModelError, Result};
use crate::forest::{FOREST_FORMAT, ForestModel};
use crate::gbdt::{GBDT_FORMAT, GbdtModel};
use crate::nn::{NEURAL_FORMAT, NeuralModel};

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
    /// An MLP or TabM (weights in a safetensors file beside the model file).
    Neural(NeuralModel),
    /// A weighted ensemble of the above with class weights (the decision layer's output;
    /// members in files beside the model file).
    Ensemble(EnsembleModel),
}

impl AnyModel {
    /// Class probabilities, `[n_rows, n_classes]`.
    pub fn predict_proba(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f64>> {
        match self {
            Self::Gbdt(m) => m.predict_proba(x),
            Self::Forest(m) => m.predict_proba(x),
            Self::Neural(m) => m.predict_proba(x),
            Self::Ensemble(m) => m.predict_proba(x),
        }
    }

    /// Total split gain (impurity decrease for forests) per input feature; empty for neural
    /// models, which have no split gains.
    pub fn importance_gain(&self) -> &[f64] {
        match self {
            Self::Gbdt(m) => &m.importance_gain,
            Self::Forest(m) => &m.importance_gain,
            Self::Neural(_) => &[],
            Self::Ensemble(m) => m.importance_gain(),
        }
    }

    /// Boosting rounds kept, trees in the forest, or epochs of a neural model's kept weights.
    pub fn rounds(&self) -> usize {
        match self {
            Self::Gbdt(m) => m.trees.len(),
            Self::Forest(m) => m.trees.len(),
            Self::Neural(m) => m.best_epoch,
            Self::Ensemble(m) => m
                .members
                .iter()
                .map(|m| m.model.rounds())
                .max()
                .unwrap_or(0),
        }
    }

    /// Number of classes the model predicts.
    pub fn n_classes(&self) -> usize {
        match self {
            Self::Gbdt(m) => m.n_classes,
            Self::Forest(m) => m.n_classes,
            Self::Neural(m) => m.n_classes,
            Self::Ensemble(m) => m.class_weights.len(),
        }
    }

    /// Feature names, in input order.
    pub fn feature_names(&self) -> &[String] {
        match self {
            Self::Gbdt(m) => &m.feature_names,
            Self::Forest(m) => &m.feature_names,
            Self::Neural(m) => &m.feature_names,
            Self::Ensemble(m) => m.feature_names(),
        }
    }

    /// Writes the model file (and, for a neural model, its weights file beside it: see
    /// [`AnyModel::extra_files`]).
    pub fn save(&self, path: &Path) -> Result<()> {
        match self {
            Self::Gbdt(m) => m.save(path),
            Self::Forest(m) => m.save(path),
            Self::Neural(m) => m.save(path),
            Self::Ensemble(m) => m.save(path),
        }
    }

    /// Files besides the model file `path` that [`AnyModel::save`] writes and
    /// [`AnyModel::load`] reads (a neural model's safetensors weights).
    pub fn extra_files(&self, path: &Path) -> Vec<std::path::PathBuf> {
        match self {
            Self::Gbdt(_) | Self::Forest(_) => Vec::new(),
            Self::Neural(_) => vec![NeuralModel::weights_path(path)],
            Self::Ensemble(m) => m.extra_files(path),
        }
    }

    /// Reads an ensemble member: a model file of any family but the ensemble.
    pub(crate) fn load_member(path: &Path) -> Result<Self> {
        Self::load_impl(path, false)
    }

    /// Reads a model file of any family (by its `format`), checking its structure.
    pub fn load(path: &Path) -> Result<Self> {
        Self::load_impl(path, true)
    }

    fn load_impl(path: &Path, ensembles: bool) -> Result<Self> {
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
            Some(NEURAL_FORMAT) => NeuralModel::load(path).map(Self::Neural),
            Some(ENSEMBLE_FORMAT) if ensembles => EnsembleModel::load(path).map(Self::Ensemble),
            Some(ENSEMBLE_FORMAT) => Err(ModelError::Load {
                path: path.to_owned(),
                message: "an ensemble member is itself an ensemble; expected a single model".into(),
            }),
            other => Err(ModelError::Load {
                path: path.to_owned(),
                message: format!(
                    "unknown model format {other:?}; expected {GBDT_FORMAT}, {FOREST_FORMAT}, \
                     {NEURAL_FORMAT} or {ENSEMBLE_FORMAT}"
                ),
            }),
        }
    }
}
