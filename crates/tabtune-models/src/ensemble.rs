//! A weighted ensemble of trained models with per-class decision weights: what the decision
//! layer (`tabtune run`) ships. Every member reads the same preprocessed features.
//!
//! Prediction: the members' probabilities are averaged with the ensemble weights, multiplied
//! by the class weights and renormalised, so the most probable class is the one the decision
//! layer decides (`argmax_c p_c · w_c`).
//!
//! File layout: `model.json` (format `tabtune-ensemble`) lists the members, each saved beside
//! it as `member-<i>.json` (plus that member's own files, e.g. its safetensors weights).

use std::path::{Path, PathBuf};

use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};

use crate::any::AnyModel;
use crate::error::{ModelError, Result};

/// `format` of an ensemble's model file.
pub const ENSEMBLE_FORMAT: &str = "tabtune-ensemble";
/// `format_version` written by this tabtune.
pub const ENSEMBLE_FORMAT_VERSION: u32 = 1;

/// One member: a model and its weight.
#[derive(Clone, Debug, PartialEq)]
pub struct EnsembleMember {
    /// The model (not itself an ensemble).
    pub model: AnyModel,
    /// Its weight (> 0; the weights sum to 1).
    pub weight: f64,
    /// Where it came from (e.g. `obesity-quick-gbdt#12`), for reports.
    pub label: String,
}

/// A weighted ensemble with class weights.
#[derive(Clone, Debug, PartialEq)]
pub struct EnsembleModel {
    /// The members.
    pub members: Vec<EnsembleMember>,
    /// One multiplicative weight per class (all 1: plain argmax of the average).
    pub class_weights: Vec<f64>,
    /// The members' split gains, weighted (neural members have none and add nothing).
    importance_gain: Vec<f64>,
}

#[derive(Serialize, Deserialize)]
struct MemberFile {
    file: String,
    weight: f64,
    label: String,
}

#[derive(Serialize, Deserialize)]
struct EnsembleFile {
    format: String,
    format_version: u32,
    members: Vec<MemberFile>,
    class_weights: Vec<f64>,
    feature_names: Vec<String>,
}

impl EnsembleModel {
    /// Checks the members (at least one, none an ensemble, the same features, positive finite
    /// weights summing to 1) and the class weights (positive, finite).
    pub fn new(members: Vec<EnsembleMember>, class_weights: Vec<f64>) -> Result<Self> {
        let Some(first) = members.first() else {
            return Err(ModelError::Data(
                "an ensemble needs at least one member".into(),
            ));
        };
        let names = first.model.feature_names().to_vec();
        for (i, m) in members.iter().enumerate() {
            if matches!(m.model, AnyModel::Ensemble(_)) {
                return Err(ModelError::Data(format!(
                    "ensemble member {i} ({}) is itself an ensemble",
                    m.label
                )));
            }
            if m.model.feature_names() != names.as_slice() {
                return Err(ModelError::Data(format!(
                    "ensemble member {i} ({}) reads other features than member 0 ({})",
                    m.label, first.label
                )));
            }
            if !(m.weight.is_finite() && m.weight > 0.0) {
                return Err(ModelError::Data(format!(
                    "ensemble member {i} ({}) has weight {}, expected a number > 0",
                    m.label, m.weight
                )));
            }
        }
        let total: f64 = members.iter().map(|m| m.weight).sum();
        if (total - 1.0).abs() > 1e-6 {
            return Err(ModelError::Data(format!(
                "the ensemble weights add up to {total}, expected 1"
            )));
        }
        if let Some((c, w)) = class_weights
            .iter()
            .enumerate()
            .find(|(_, w)| !(w.is_finite() && **w > 0.0))
        {
            return Err(ModelError::Data(format!(
                "class weight {c} is {w}, expected a number > 0"
            )));
        }
        let mut importance_gain = vec![0.0; names.len()];
        for m in &members {
            for (o, g) in importance_gain.iter_mut().zip(m.model.importance_gain()) {
                *o += m.weight * g;
            }
        }
        Ok(Self {
            members,
            class_weights,
            importance_gain,
        })
    }

    /// Feature names, in input order (every member's).
    pub fn feature_names(&self) -> &[String] {
        self.members[0].model.feature_names()
    }

    /// Class probabilities: the weighted average, times the class weights, renormalised.
    pub fn predict_proba(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f64>> {
        let mut out: Option<Array2<f64>> = None;
        for m in &self.members {
            let p = m.model.predict_proba(x)?;
            match &mut out {
                None => out = Some(p * m.weight),
                Some(acc) => {
                    if acc.dim() != p.dim() {
                        return Err(ModelError::Data(format!(
                            "ensemble member {} predicts {:?}, expected {:?}",
                            m.label,
                            p.dim(),
                            acc.dim()
                        )));
                    }
                    acc.scaled_add(m.weight, &p);
                }
            }
        }
        let mut out = out.expect("an ensemble has members");
        if out.ncols() != self.class_weights.len() {
            return Err(ModelError::Data(format!(
                "the ensemble has {} class weights but its members predict {} classes",
                self.class_weights.len(),
                out.ncols()
            )));
        }
        for mut row in out.rows_mut() {
            for (p, w) in row.iter_mut().zip(&self.class_weights) {
                *p *= w;
            }
            let s = row.sum();
            if s > 0.0 {
                row /= s;
            }
        }
        Ok(out)
    }

    /// The members' split gains, weighted (neural members have none and add nothing).
    pub fn importance_gain(&self) -> &[f64] {
        &self.importance_gain
    }

    fn member_path(path: &Path, i: usize) -> PathBuf {
        path.with_file_name(format!("member-{i}.json"))
    }

    /// Writes `path` and every member beside it.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut files = Vec::with_capacity(self.members.len());
        for (i, m) in self.members.iter().enumerate() {
            let member_path = Self::member_path(path, i);
            m.model.save(&member_path)?;
            files.push(MemberFile {
                file: member_path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                weight: m.weight,
                label: m.label.clone(),
            });
        }
        crate::saved::save(
            &EnsembleFile {
                format: ENSEMBLE_FORMAT.to_owned(),
                format_version: ENSEMBLE_FORMAT_VERSION,
                members: files,
                class_weights: self.class_weights.clone(),
                feature_names: self.feature_names().to_vec(),
            },
            path,
        )
    }

    /// Every file besides `path` that [`EnsembleModel::save`] writes.
    pub fn extra_files(&self, path: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for (i, m) in self.members.iter().enumerate() {
            let member_path = Self::member_path(path, i);
            out.extend(m.model.extra_files(&member_path));
            out.push(member_path);
        }
        out
    }

    /// Reads `path` and its members.
    pub fn load(path: &Path) -> Result<Self> {
        let file: EnsembleFile =
            crate::saved::load(path, ENSEMBLE_FORMAT, ENSEMBLE_FORMAT_VERSION)?;
        let mut members = Vec::with_capacity(file.members.len());
        for (i, m) in file.members.into_iter().enumerate() {
            // Members live beside the model file; a path elsewhere is refused.
            if m.file.contains(['/', '\\']) || m.file.starts_with('.') {
                return Err(ModelError::Load {
                    path: path.to_owned(),
                    message: format!(
                        "member {i} file `{}` is not a plain file name beside the model file",
                        m.file
                    ),
                });
            }
            let model = AnyModel::load(&path.with_file_name(&m.file))?;
            members.push(EnsembleMember {
                model,
                weight: m.weight,
                label: m.label,
            });
        }
        let model = Self::new(members, file.class_weights).map_err(|e| ModelError::Load {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        if model.feature_names() != file.feature_names.as_slice() {
            return Err(ModelError::Load {
                path: path.to_owned(),
                message: "the members read other features than the file lists".into(),
            });
        }
        Ok(model)
    }
}
