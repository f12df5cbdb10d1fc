//! The trained forest (a decision tree is a forest of one), prediction and the saved format.

use std::path::Path;

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tabtune_features::rng::SplitMix64;

use super::grow::{Offsets, TreeSettings, grow, root_key};
use super::params::{ForestKind, ForestParams, ForestValid};
use crate::error::{ModelError, Result};
use crate::gbdt::{BinMapper, Binned, Labelled, labels_of};
use crate::metrics::argmax;
use tabtune_kernels::reference::forest::xlogx_table;

/// Name of the saved format.
pub const FOREST_FORMAT: &str = "tabtune-forest";
/// Version of the saved format.
pub const FOREST_FORMAT_VERSION: u32 = 1;

/// A node of a classification tree.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ClassNode {
    /// Rows with `x[feature] ≤ threshold` go left; missing values go left when `missing_left`.
    Split {
        /// Feature index.
        feature: u32,
        /// Raw-value threshold.
        threshold: f32,
        /// Last bin on the left (binned data).
        bin: u8,
        /// Direction of missing values.
        missing_left: bool,
        /// Left child.
        left: u32,
        /// Right child.
        right: u32,
        /// Weighted impurity decrease.
        decrease: f32,
    },
    /// Class probabilities of the training rows that reached the leaf.
    Leaf {
        /// One probability per class.
        proba: Vec<f32>,
    },
}

/// A classification tree; node 0 is the root.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClassTree {
    /// The nodes.
    pub nodes: Vec<ClassNode>,
}

impl ClassTree {
    fn leaf_of(&self, go_left: impl Fn(u32, f32, u8, bool) -> bool) -> &[f32] {
        let mut i = 0usize;
        loop {
            match &self.nodes[i] {
                ClassNode::Leaf { proba } => return proba,
                ClassNode::Split {
                    feature,
                    threshold,
                    bin,
                    missing_left,
                    left,
                    right,
                    ..
                } => {
                    i = if go_left(*feature, *threshold, *bin, *missing_left) {
                        *left
                    } else {
                        *right
                    } as usize;
                }
            }
        }
    }

    /// Leaf probabilities of a binned row: `go_left(feature, bin, missing_left)` says where
    /// the row goes at a split.
    pub(crate) fn leaf_by_bins(&self, go_left: impl Fn(usize, u32, bool) -> bool) -> &[f32] {
        self.leaf_of(|f, _, bin, ml| go_left(f as usize, u32::from(bin), ml))
    }

    /// Leaf probabilities for one raw feature row.
    pub fn predict_row(&self, row: &[f32]) -> &[f32] {
        self.leaf_of(|f, t, _, ml| {
            let v = row[f as usize];
            if v.is_nan() { ml } else { v <= t }
        })
    }

    /// Number of leaves.
    pub fn n_leaves(&self) -> usize {
        self.nodes
            .iter()
            .filter(|n| matches!(n, ClassNode::Leaf { .. }))
            .count()
    }
}

/// A trained decision tree or random forest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ForestModel {
    /// Always [`FOREST_FORMAT`].
    pub format: String,
    /// [`FOREST_FORMAT_VERSION`] when written.
    pub format_version: u32,
    /// Parameters.
    pub params: ForestParams,
    /// Feature names.
    pub feature_names: Vec<String>,
    /// Number of classes.
    pub n_classes: usize,
    /// The trees.
    pub trees: Vec<ClassTree>,
    /// Out-of-bag accuracy (bootstrapped forests), over the rows left out by at least one tree.
    pub oob_accuracy: Option<f64>,
    /// Total impurity decrease per feature.
    pub importance_gain: Vec<f64>,
    /// Splits per feature.
    pub importance_split: Vec<u64>,
}

impl ForestModel {
    /// Trains on `train`.
    pub fn fit(
        params: &ForestValid,
        feature_names: &[String],
        n_classes: usize,
        train: Labelled<'_>,
    ) -> Result<Self> {
        crate::gbdt::check_labelled(train, feature_names.len(), n_classes, "training", false)?;
        let pool = crate::threads::pool(params.threads)?;
        Ok(pool.install(|| fit_forest(params, feature_names, n_classes, train)))
    }

    /// Class probabilities of one row: the mean of the trees' leaf probabilities.
    pub fn predict_proba_row(&self, row: &[f32]) -> Result<Vec<f64>> {
        if row.len() != self.feature_names.len() {
            return Err(ModelError::Data(format!(
                "the model expects {} features, the row has {}",
                self.feature_names.len(),
                row.len()
            )));
        }
        let mut out = vec![0.0; self.n_classes];
        for tree in &self.trees {
            for (o, p) in out.iter_mut().zip(tree.predict_row(row)) {
                *o += f64::from(*p);
            }
        }
        let n = self.trees.len() as f64;
        for o in &mut out {
            *o /= n;
        }
        Ok(out)
    }

    /// Class probabilities, `[n_rows, n_classes]`.
    pub fn predict_proba(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f64>> {
        if x.ncols() != self.feature_names.len() {
            return Err(ModelError::Data(format!(
                "the model expects {} features, the data has {}",
                self.feature_names.len(),
                x.ncols()
            )));
        }
        let rows: Vec<Vec<f64>> = (0..x.nrows())
            .into_par_iter()
            .map(|i| {
                self.predict_proba_row(&x.row(i).to_vec())
                    .expect("width checked above")
            })
            .collect();
        let flat: Vec<f64> = rows.into_iter().flatten().collect();
        Ok(Array2::from_shape_vec((x.nrows(), self.n_classes), flat)
            .expect("one probability per row and class"))
    }

    /// The most probable class of every row.
    pub fn predict(&self, x: ArrayView2<'_, f32>) -> Result<Vec<u32>> {
        Ok(labels_of(&self.predict_proba(x)?))
    }

    /// Writes the model as JSON, atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        crate::saved::save(self, path)
    }

    /// Reads a model written by [`ForestModel::save`], checking format, version and structure
    /// (every index in range, every tree a tree: see FORMAT.md).
    pub fn load(path: &Path) -> Result<Self> {
        let model: Self = crate::saved::load(path, FOREST_FORMAT, FOREST_FORMAT_VERSION)?;
        crate::check::forest(&model).map_err(|message| ModelError::Load {
            path: path.to_owned(),
            message: format!("invalid model: {message}"),
        })?;
        Ok(model)
    }
}

/// The bootstrap multiplicity of every row for one tree (all 1 without bootstrap).
pub(crate) fn bootstrap(n: usize, on: bool, rng: &mut SplitMix64) -> Vec<i32> {
    if !on {
        return vec![1; n];
    }
    let mut w = vec![0; n];
    for _ in 0..n {
        w[rng.below(n)] += 1;
    }
    w
}

/// The seed of tree `t` of a forest seeded `seed`.
pub(crate) fn tree_seed(seed: u64, t: usize) -> u64 {
    seed ^ (t as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Trees of `n_features` features try this many features per split.
pub(crate) fn features_per_split(p: &ForestParams, n_features: usize) -> usize {
    if p.max_features == 0.0 {
        ((n_features as f64).sqrt().floor() as usize).max(1)
    } else {
        ((n_features as f64 * p.max_features).round() as usize).clamp(1, n_features)
    }
}

/// The settings every tree of `p` grows with.
pub(crate) fn tree_settings(p: &ForestParams, n_features: usize) -> TreeSettings {
    TreeSettings {
        criterion: p.criterion,
        max_depth: p.max_depth,
        min_samples_split: p.min_samples_split as f64,
        min_samples_leaf: p.min_samples_leaf as f64,
        features_per_split: features_per_split(p, n_features),
    }
}

fn fit_forest(
    p: &ForestValid,
    feature_names: &[String],
    n_classes: usize,
    train: Labelled<'_>,
) -> ForestModel {
    let (n, n_features) = (train.x.nrows(), train.x.ncols());
    let mappers: Vec<BinMapper> = (0..n_features)
        .into_par_iter()
        .map(|f| BinMapper::fit(&train.x.column(f).to_vec(), p.max_bins))
        .collect();
    let binned = Binned::new(train.x, &mappers);
    let offsets = Offsets::new(&binned);
    let settings = tree_settings(p, n_features);
    let table = xlogx_table(n);
    let bagged = p.kind == ForestKind::RandomForest && p.bootstrap;
    let trees: Vec<ClassTree> = (0..p.n_trees)
        .into_par_iter()
        .map(|t| {
            let mut rng = SplitMix64::new(tree_seed(p.seed, t));
            let weight = bootstrap(n, bagged, &mut rng);
            let mut rows: Vec<u32> = (0..n as u32).filter(|&r| weight[r as usize] > 0).collect();
            grow(
                &settings,
                &binned,
                &mappers,
                &offsets,
                train.y,
                &weight,
                n_classes,
                &mut rows,
                root_key(tree_seed(p.seed, t)),
                &table,
            )
        })
        .collect();
    let oob_accuracy = bagged.then(|| {
        oob_accuracy(p.seed, &trees, train.y, n_classes, |tree, r| {
            let row: Vec<f32> = train.x.row(r).to_vec();
            tree.predict_row(&row).to_vec()
        })
    });
    assemble(p, feature_names, n_classes, trees, oob_accuracy)
}

/// Out-of-bag accuracy of bootstrapped `trees` trained on rows with `labels`: each tree's
/// bootstrap replayed to find the rows it never saw, `proba(tree, row)` its leaf's
/// probabilities for a row; the share of rows left out by at least one tree whose averaged
/// out-of-bag probabilities pick their class.
pub(crate) fn oob_accuracy(
    seed: u64,
    trees: &[ClassTree],
    labels: &[u32],
    n_classes: usize,
    proba: impl Fn(&ClassTree, usize) -> Vec<f32>,
) -> f64 {
    let n = labels.len();
    let mut sum = vec![0.0f64; n * n_classes];
    let mut seen = vec![false; n];
    for (t, tree) in trees.iter().enumerate() {
        let mut rng = SplitMix64::new(tree_seed(seed, t));
        let weight = bootstrap(n, true, &mut rng);
        for r in (0..n).filter(|&r| weight[r] == 0) {
            for (s, p) in sum[r * n_classes..(r + 1) * n_classes]
                .iter_mut()
                .zip(proba(tree, r))
            {
                *s += f64::from(p);
            }
            seen[r] = true;
        }
    }
    let rows: Vec<usize> = (0..n).filter(|&r| seen[r]).collect();
    let correct = rows
        .iter()
        .filter(|&&r| argmax(&sum[r * n_classes..(r + 1) * n_classes]) == labels[r])
        .count();
    correct as f64 / rows.len().max(1) as f64
}

/// The model of grown `trees`: importances summed over their splits.
pub(crate) fn assemble(
    p: &ForestParams,
    feature_names: &[String],
    n_classes: usize,
    trees: Vec<ClassTree>,
    oob_accuracy: Option<f64>,
) -> ForestModel {
    let n_features = feature_names.len();
    let mut importance_gain = vec![0.0; n_features];
    let mut importance_split = vec![0u64; n_features];
    for tree in &trees {
        for node in &tree.nodes {
            if let ClassNode::Split {
                feature, decrease, ..
            } = node
            {
                importance_gain[*feature as usize] += f64::from(*decrease);
                importance_split[*feature as usize] += 1;
            }
        }
    }
    ForestModel {
        format: FOREST_FORMAT.to_owned(),
        format_version: FOREST_FORMAT_VERSION,
        params: p.clone(),
        feature_names: feature_names.to_vec(),
        n_classes,
        trees,
        oob_accuracy,
        importance_gain,
        importance_split,
    }
}
