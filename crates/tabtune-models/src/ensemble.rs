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

use tabtune_features::{Preprocessor, Table};

use crate::any::AnyModel;
use crate::error::{ModelError, Result};

/// `format` of an ensemble's model file.
pub const ENSEMBLE_FORMAT: &str = "tabtune-ensemble";
/// `format_version` written by this tabtune: 2 added members' own preprocessors, groups and
/// the stacker (version 1 files, without them, still load).
pub const ENSEMBLE_FORMAT_VERSION: u32 = 2;

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
    /// Per member, its own fitted preprocessor (a fold model keeps the preprocessing fitted on
    /// its fold's training rows); `None`: the bundle's. See [`EnsembleModel::with_folds`].
    preprocessors: Vec<Option<Preprocessor>>,
    /// Per member, its group (a trial whose fold models are averaged): groups are numbered
    /// from 0 in member order. Without folds every member is its own group.
    groups: Vec<usize>,
    /// How the groups' probabilities combine: averaged with the member weights (`None`), or
    /// through a multinomial logistic regression on their log-probabilities.
    stack: Option<Stack>,
}

/// A stacker: multinomial logistic regression on the groups' clipped log-probabilities,
/// `logits = [log p_0 | log p_1 | ...] · weights + bias`, then softmax.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stack {
    /// Row-major `[groups × classes, classes]`.
    pub weights: Vec<f64>,
    /// One per class.
    pub bias: Vec<f64>,
}

/// Probabilities are clipped here before their log is taken (the stacker's inputs).
pub const STACK_CLIP: f64 = 1e-7;

#[derive(Serialize, Deserialize)]
struct MemberFile {
    file: String,
    weight: f64,
    label: String,
    /// `member-<i>.preprocessor.json` when the member has its own preprocessing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    preprocessor: Option<String>,
    /// Its group (default: its index).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    group: Option<usize>,
}

#[derive(Serialize, Deserialize)]
struct EnsembleFile {
    format: String,
    format_version: u32,
    members: Vec<MemberFile>,
    class_weights: Vec<f64>,
    feature_names: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stack: Option<Stack>,
}

impl EnsembleModel {
    /// Checks the members (at least one, none an ensemble, the same features, positive finite
    /// weights summing to 1) and the class weights (positive, finite).
    pub fn new(members: Vec<EnsembleMember>, class_weights: Vec<f64>) -> Result<Self> {
        let n = members.len();
        Self::from_parts(members, class_weights, vec![None; n], (0..n).collect())
    }

    /// [`EnsembleModel::new`] whose members may be fold models with their own preprocessing
    /// (see [`EnsembleModel::with_folds`]): a member with its own preprocessor reads its
    /// features; the members without one read the bundle's, and so must read the same ones.
    pub fn from_parts(
        members: Vec<EnsembleMember>,
        class_weights: Vec<f64>,
        preprocessors: Vec<Option<Preprocessor>>,
        groups: Vec<usize>,
    ) -> Result<Self> {
        let Some(first) = members.first() else {
            return Err(ModelError::Data(
                "an ensemble needs at least one member".into(),
            ));
        };
        let names = first.model.feature_names().to_vec();
        let shared = members
            .iter()
            .zip(&preprocessors)
            .find(|(_, p)| p.is_none())
            .map(|(m, _)| (m.label.clone(), m.model.feature_names().to_vec()));
        for (i, m) in members.iter().enumerate() {
            if matches!(m.model, AnyModel::Ensemble(_)) {
                return Err(ModelError::Data(format!(
                    "ensemble member {i} ({}) is itself an ensemble",
                    m.label
                )));
            }
            if let (None | Some(None), Some((label, shared))) = (preprocessors.get(i), &shared)
                && m.model.feature_names() != shared.as_slice()
            {
                return Err(ModelError::Data(format!(
                    "ensemble member {i} ({}) reads other features than {label}, and neither \
                     has its own preprocessing",
                    m.label
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
        // Importances are over member 0's features: members that read others add nothing.
        let mut importance_gain = vec![0.0; names.len()];
        for m in members
            .iter()
            .filter(|m| m.model.feature_names() == names.as_slice())
        {
            for (o, g) in importance_gain.iter_mut().zip(m.model.importance_gain()) {
                *o += m.weight * g;
            }
        }
        let n = members.len();
        let model = Self {
            members,
            class_weights,
            importance_gain,
            preprocessors: vec![None; n],
            groups: (0..n).collect(),
            stack: None,
        };
        model.with_folds(preprocessors, groups)
    }

    /// The same ensemble whose members are fold models: member `i` reads the raw rows through
    /// its own preprocessor `preprocessors[i]` (`None`: the bundle's) and belongs to group
    /// `groups[i]` (the trial it is a fold of; groups numbered from 0 in member order, a
    /// group's members together).
    pub fn with_folds(
        mut self,
        preprocessors: Vec<Option<Preprocessor>>,
        groups: Vec<usize>,
    ) -> Result<Self> {
        let n = self.members.len();
        if preprocessors.len() != n || groups.len() != n {
            return Err(ModelError::Data(format!(
                "{} preprocessors and {} groups for {n} ensemble members",
                preprocessors.len(),
                groups.len()
            )));
        }
        let mut previous: Option<usize> = None;
        for (i, &g) in groups.iter().enumerate() {
            let ok = match previous {
                None => g == 0,
                Some(p) => g == p || g == p + 1,
            };
            if !ok {
                return Err(ModelError::Data(format!(
                    "ensemble member {i} is in group {g}; groups must be numbered from 0 in \
                     member order, a group's members together"
                )));
            }
            previous = Some(g);
        }
        for (i, (m, p)) in self.members.iter().zip(&preprocessors).enumerate() {
            if let Some(p) = p
                && p.feature_names() != m.model.feature_names()
            {
                return Err(ModelError::Data(format!(
                    "ensemble member {i} ({}) reads other features than its preprocessor makes",
                    m.label
                )));
            }
        }
        self.preprocessors = preprocessors;
        self.groups = groups;
        self.check_stack()?;
        Ok(self)
    }

    /// The same ensemble combining its groups with a stacker instead of averaging them.
    pub fn with_stack(mut self, stack: Stack) -> Result<Self> {
        self.stack = Some(stack);
        self.check_stack()?;
        Ok(self)
    }

    /// Groups (trials) in the ensemble.
    pub fn n_groups(&self) -> usize {
        self.groups.last().map_or(0, |g| g + 1)
    }

    /// Member `i`'s own preprocessor, if it has one.
    pub fn member_preprocessor(&self, i: usize) -> Option<&Preprocessor> {
        self.preprocessors.get(i).and_then(Option::as_ref)
    }

    /// Member `i`'s group.
    pub fn member_group(&self, i: usize) -> usize {
        self.groups[i]
    }

    /// The stacker, if the groups are stacked.
    pub fn stack(&self) -> Option<&Stack> {
        self.stack.as_ref()
    }

    /// Whether some member has its own preprocessor (prediction then needs the raw rows).
    pub fn has_own_preprocessing(&self) -> bool {
        self.preprocessors.iter().any(Option::is_some)
    }

    fn check_stack(&self) -> Result<()> {
        let Some(stack) = &self.stack else {
            return Ok(());
        };
        let k = self.class_weights.len();
        let g = self.n_groups();
        if stack.weights.len() != g * k * k || stack.bias.len() != k {
            return Err(ModelError::Data(format!(
                "the stacker has {} weights and {} biases; {g} groups of {k} classes need {} and {k}",
                stack.weights.len(),
                stack.bias.len(),
                g * k * k
            )));
        }
        if stack
            .weights
            .iter()
            .chain(&stack.bias)
            .any(|v| !v.is_finite())
        {
            return Err(ModelError::Data(
                "the stacker has a weight or bias that is not a finite number".into(),
            ));
        }
        Ok(())
    }

    /// Feature names, in input order (every member's).
    pub fn feature_names(&self) -> &[String] {
        self.members[0].model.feature_names()
    }

    /// Class probabilities from preprocessed features shared by every member: the weighted
    /// average (or the stacker's output), times the class weights, renormalised. Members with
    /// their own preprocessing need the raw rows: [`EnsembleModel::predict_table`].
    pub fn predict_proba(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f64>> {
        if self.has_own_preprocessing() {
            return Err(ModelError::Data(
                "this ensemble's members (fold models) have their own preprocessing: predict \
                 from the raw rows"
                    .into(),
            ));
        }
        let probs = self
            .members
            .iter()
            .map(|m| m.model.predict_proba(x))
            .collect::<Result<Vec<_>>>()?;
        self.combine(probs)
    }

    /// Class probabilities of raw rows: each member reads them through its own preprocessor,
    /// or `shared` (the bundle's), then as [`EnsembleModel::predict_proba`].
    pub fn predict_table(&self, table: &Table, shared: &Preprocessor) -> Result<Array2<f64>> {
        let transform = |p: &Preprocessor| {
            p.transform(table)
                .map_err(|e| ModelError::Data(e.to_string()))
        };
        let mut shared_matrix = None;
        let mut probs = Vec::with_capacity(self.members.len());
        for (m, own) in self.members.iter().zip(&self.preprocessors) {
            let p = match own {
                Some(pre) => m.model.predict_proba(transform(pre)?.values.view())?,
                None => {
                    if shared_matrix.is_none() {
                        shared_matrix = Some(transform(shared)?);
                    }
                    let x = shared_matrix.as_ref().expect("just set");
                    m.model.predict_proba(x.values.view())?
                }
            };
            probs.push(p);
        }
        self.combine(probs)
    }

    /// The members' probabilities combined: averaged with the member weights, or each group
    /// (its members averaged with their weights) stacked; then times the class weights,
    /// renormalised.
    fn combine(&self, probs: Vec<Array2<f64>>) -> Result<Array2<f64>> {
        let dim = probs[0].dim();
        for (m, p) in self.members.iter().zip(&probs) {
            if p.dim() != dim {
                return Err(ModelError::Data(format!(
                    "ensemble member {} predicts {:?}, expected {dim:?}",
                    m.label,
                    p.dim()
                )));
            }
        }
        if dim.1 != self.class_weights.len() {
            return Err(ModelError::Data(format!(
                "the ensemble has {} class weights but its members predict {} classes",
                self.class_weights.len(),
                dim.1
            )));
        }
        let mut out = match &self.stack {
            None => {
                let mut acc = Array2::<f64>::zeros(dim);
                for (m, p) in self.members.iter().zip(&probs) {
                    acc.scaled_add(m.weight, p);
                }
                acc
            }
            Some(stack) => self.stacked(stack, &probs, dim),
        };
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

    /// The stacker's unnormalised probabilities (softmax numerators) of every row.
    fn stacked(&self, stack: &Stack, probs: &[Array2<f64>], dim: (usize, usize)) -> Array2<f64> {
        let k = dim.1;
        let g = self.n_groups();
        // Each group's probabilities: its members averaged with their weights.
        let mut groups = vec![Array2::<f64>::zeros(dim); g];
        let mut totals = vec![0.0; g];
        for ((m, p), &gi) in self.members.iter().zip(probs).zip(&self.groups) {
            groups[gi].scaled_add(m.weight, p);
            totals[gi] += m.weight;
        }
        let mut out = Array2::<f64>::zeros(dim);
        for (row, mut out_row) in out.rows_mut().into_iter().enumerate() {
            for (o, b) in out_row.iter_mut().zip(&stack.bias) {
                *o = *b;
            }
            for (gi, group) in groups.iter().enumerate() {
                for j in 0..k {
                    let lp = (group[[row, j]] / totals[gi]).max(STACK_CLIP).ln();
                    let w = &stack.weights[(gi * k + j) * k..(gi * k + j + 1) * k];
                    for (o, wc) in out_row.iter_mut().zip(w) {
                        *o += lp * wc;
                    }
                }
            }
            let max = out_row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            out_row.mapv_inplace(|v| (v - max).exp());
        }
        out
    }

    /// The members' split gains, weighted (neural members have none and add nothing).
    pub fn importance_gain(&self) -> &[f64] {
        &self.importance_gain
    }

    fn member_path(path: &Path, i: usize) -> PathBuf {
        path.with_file_name(format!("member-{i}.json"))
    }

    fn preprocessor_path(path: &Path, i: usize) -> PathBuf {
        path.with_file_name(format!("member-{i}.preprocessor.json"))
    }

    /// Writes `path` and every member beside it.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut files = Vec::with_capacity(self.members.len());
        for (i, m) in self.members.iter().enumerate() {
            let member_path = Self::member_path(path, i);
            m.model.save(&member_path)?;
            let preprocessor = match &self.preprocessors[i] {
                Some(p) => {
                    p.save(&Self::preprocessor_path(path, i))
                        .map_err(|e| ModelError::Data(e.to_string()))?;
                    Some(format!("member-{i}.preprocessor.json"))
                }
                None => None,
            };
            files.push(MemberFile {
                file: member_path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                weight: m.weight,
                label: m.label.clone(),
                preprocessor,
                group: (self.groups[i] != i).then_some(self.groups[i]),
            });
        }
        crate::saved::save(
            &EnsembleFile {
                format: ENSEMBLE_FORMAT.to_owned(),
                format_version: ENSEMBLE_FORMAT_VERSION,
                members: files,
                class_weights: self.class_weights.clone(),
                feature_names: self.feature_names().to_vec(),
                stack: self.stack.clone(),
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
            if self.preprocessors[i].is_some() {
                out.push(Self::preprocessor_path(path, i));
            }
        }
        out
    }

    /// Reads `path` and its members.
    pub fn load(path: &Path) -> Result<Self> {
        let file: EnsembleFile =
            crate::saved::load_versions(path, ENSEMBLE_FORMAT, &[1, ENSEMBLE_FORMAT_VERSION])?;
        let mut members = Vec::with_capacity(file.members.len());
        let mut preprocessors = Vec::with_capacity(file.members.len());
        let mut groups = Vec::with_capacity(file.members.len());
        for (i, m) in file.members.into_iter().enumerate() {
            // Members live beside the model file under the names `save` gives them (a bundle
            // lists and checksums exactly those files); any other name is refused, and so is a
            // member that is itself an ensemble (it could name this file: endless recursion).
            let expected = Self::member_path(path, i);
            if expected.file_name() != Some(std::ffi::OsStr::new(&m.file)) {
                return Err(ModelError::Load {
                    path: path.to_owned(),
                    message: format!(
                        "member {i} file `{}`; expected `member-{i}.json` beside the model file",
                        tabtune_features::text::clip(&m.file)
                    ),
                });
            }
            let model = AnyModel::load_member(&expected)?;
            let expected_pre = Self::preprocessor_path(path, i);
            preprocessors.push(match &m.preprocessor {
                None => None,
                Some(name) if expected_pre.file_name() == Some(std::ffi::OsStr::new(name)) => Some(
                    Preprocessor::load(&expected_pre).map_err(|e| ModelError::Load {
                        path: expected_pre.clone(),
                        message: e.to_string(),
                    })?,
                ),
                Some(name) => {
                    return Err(ModelError::Load {
                        path: path.to_owned(),
                        message: format!(
                            "member {i} preprocessor `{}`; expected `member-{i}.preprocessor.json`",
                            tabtune_features::text::clip(name)
                        ),
                    });
                }
            });
            groups.push(m.group.unwrap_or(i));
            members.push(EnsembleMember {
                model,
                weight: m.weight,
                label: m.label,
            });
        }
        if let Some(first) = members.first() {
            let n = first.model.n_classes();
            if let Some(m) = members.iter().find(|m| m.model.n_classes() != n) {
                return Err(ModelError::Load {
                    path: path.to_owned(),
                    message: format!(
                        "member {} predicts {} classes, member 0 ({}) {n}",
                        m.label,
                        m.model.n_classes(),
                        first.label
                    ),
                });
            }
            if file.class_weights.len() != n {
                return Err(ModelError::Load {
                    path: path.to_owned(),
                    message: format!(
                        "{} class weight(s) for members that predict {n} classes",
                        file.class_weights.len()
                    ),
                });
            }
        }
        let load_err = |e: ModelError| ModelError::Load {
            path: path.to_owned(),
            message: e.to_string(),
        };
        let mut model = Self::from_parts(members, file.class_weights, preprocessors, groups)
            .map_err(load_err)?;
        if let Some(stack) = file.stack {
            model = model.with_stack(stack).map_err(load_err)?;
        }
        if model.feature_names() != file.feature_names.as_slice() {
            return Err(ModelError::Load {
                path: path.to_owned(),
                message: "the members read other features than the file lists".into(),
            });
        }
        Ok(model)
    }
}
