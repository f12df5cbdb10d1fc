//! Gradient boosting: the training loop, prediction, importances and the saved format.

use std::path::Path;

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tabtune_features::rng::SplitMix64;

use super::binning::{BinMapper, Binned};
use super::ctr::{self, TargetStats};
use super::grow::{GrowSettings, Grower, Helpers, sample};
use super::hist::{GradPair, Layout, SplitRules};
use super::objective::{sigmoid, softmax};
use super::params::{GbdtParams, GbdtValid, Growth};
use super::quant::QuantState;
use super::scores;
use super::tree::Tree;
use crate::error::{ModelError, Result};
use crate::metrics::{Control, argmax};

/// Name of the saved format.
pub const GBDT_FORMAT: &str = "tabtune-gbdt";
/// Version of the saved format; bumped on every incompatible change.
pub const GBDT_FORMAT_VERSION: u32 = 1;

/// Rows per parallel block in batch prediction.
const BLOCK: usize = 256;

/// From this many rows on, a block passes its rows down each tree a node at a time
/// ([`Tree::predict_rows`]) instead of walking the tree once per row.
const PARTITION_ROWS: usize = 16;

/// Features and labels.
#[derive(Clone, Copy, Debug)]
pub struct Labelled<'a> {
    /// Features, `[n_rows, n_features]`.
    pub x: ArrayView2<'a, f32>,
    /// Class per row, `0..n_classes`.
    pub y: &'a [u32],
}

/// The validation metrics of one boosting round (given to the round callback).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RoundEval {
    /// Multi-class log loss of the model so far on the validation rows.
    pub logloss: f64,
    /// Accuracy of the model so far on the validation rows.
    pub accuracy: f64,
}

/// A trained gradient-boosting model. Serialized as JSON: `format`, `format_version`, the
/// parameters, feature names, classes, per-output initial scores and the trees (`trees[round]
/// [output]`, one output per class, or one for binary models).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GbdtModel {
    /// Always [`GBDT_FORMAT`].
    pub format: String,
    /// [`GBDT_FORMAT_VERSION`] when written.
    pub format_version: u32,
    /// The parameters it was trained with.
    pub params: GbdtParams,
    /// Feature names, in input order.
    pub feature_names: Vec<String>,
    /// Number of classes.
    pub n_classes: usize,
    /// Initial raw score per output.
    pub init: Vec<f64>,
    /// Trees, `[round][output]`, truncated to the best round when early stopping was on.
    pub trees: Vec<Vec<Tree>>,
    /// Validation log loss after each round, when a validation set was given.
    pub valid_loss: Vec<f64>,
    /// Total split gain per feature.
    pub importance_gain: Vec<f64>,
    /// Number of splits per feature.
    pub importance_split: Vec<u64>,
    /// Target statistics of the categorical features (oblivious trees): their columns follow
    /// the inputs, and the trees' feature indices count them.
    #[serde(default)]
    pub target_stats: Vec<TargetStats>,
}

impl GbdtModel {
    /// Number of raw outputs per row (1 for binary, `n_classes` otherwise).
    pub fn n_outputs(&self) -> usize {
        outputs(self.n_classes)
    }

    /// Trains on `train`; with `valid`, tracks the validation log loss every round and, when
    /// `early_stopping_rounds > 0`, stops after that many rounds without improvement and keeps
    /// the best round. `on_round(round, valid_metrics)` is called after every round (a tuner
    /// reports them as intermediate values and may stop the fit).
    pub fn fit(
        params: &GbdtValid,
        feature_names: &[String],
        n_classes: usize,
        train: Labelled<'_>,
        valid: Option<Labelled<'_>>,
        on_round: &mut (dyn FnMut(usize, Option<RoundEval>) -> Control + Send),
    ) -> Result<Self> {
        Self::fit_binned(
            params,
            feature_names,
            n_classes,
            train,
            valid,
            on_round,
            None,
        )
    }

    /// [`fit`](Self::fit) reusing `bins` made from the same `train` and `valid` matrices
    /// (when they fit the parameters' binning; see [`BinnedData`]). The model is the one
    /// `fit` gives.
    pub fn fit_binned(
        params: &GbdtValid,
        feature_names: &[String],
        n_classes: usize,
        train: Labelled<'_>,
        valid: Option<Labelled<'_>>,
        on_round: &mut (dyn FnMut(usize, Option<RoundEval>) -> Control + Send),
        bins: Option<&BinnedData>,
    ) -> Result<Self> {
        check_data(
            train,
            feature_names.len(),
            n_classes,
            "training",
            params.allow_missing,
        )?;
        if let Some(v) = valid {
            check_data(
                v,
                feature_names.len(),
                n_classes,
                "validation",
                params.allow_missing,
            )?;
        }
        if let Some(&f) = params
            .categorical
            .iter()
            .find(|&&f| f >= feature_names.len())
        {
            return Err(ModelError::param(
                "categorical",
                f,
                &format!("feature indices below {}", feature_names.len()),
            ));
        }
        let mut counts = vec![0usize; n_classes];
        for &y in train.y {
            counts[y as usize] += 1;
        }
        if let Some(c) = counts.iter().position(|&c| c == 0) {
            return Err(ModelError::Data(format!(
                "class {c} has no training rows; every class needs at least one (check the \
                 folds: a class may be missing from this fold)"
            )));
        }
        let mut fit = move || {
            Trainer::new(params.clone(), n_classes, train, valid, bins).run(feature_names, on_round)
        };
        if params.threads == 0 {
            // All cores: the caller's pool (the process-wide one by default), which fits running
            // at the same time (a sweep's workers) share instead of each starting a thread per
            // core and oversubscribing them.
            return fit();
        }
        crate::threads::pool(params.threads)?.install(fit)
    }

    /// Raw scores, `[n_rows, n_outputs]`.
    pub fn predict_raw(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f64>> {
        if x.ncols() != self.feature_names.len() {
            return Err(ModelError::Data(format!(
                "the model expects {} features, the data has {}",
                self.feature_names.len(),
                x.ncols()
            )));
        }
        // Blocks of rows in parallel; within a block, tree by tree, so that one tree's nodes stay
        // in cache while every row of the block passes through it.
        let k = self.n_outputs();
        let width = x.ncols()
            + self
                .target_stats
                .iter()
                .map(|s| s.classes.len())
                .sum::<usize>();
        let blocks: Vec<Vec<f64>> = (0..x.nrows().div_ceil(BLOCK))
            .into_par_iter()
            .map(|block| {
                let rows = block * BLOCK..((block + 1) * BLOCK).min(x.nrows());
                let mut features = Vec::with_capacity(rows.len() * width);
                for i in rows.clone() {
                    let start = features.len();
                    features.extend(x.row(i).iter().copied());
                    for s in &self.target_stats {
                        let v = features[start + s.feature];
                        s.apply(v, &mut features);
                    }
                }
                let mut scores: Vec<f64> = Vec::with_capacity(rows.len() * k);
                for _ in rows.clone() {
                    scores.extend_from_slice(&self.init);
                }
                // A tree's outputs for the whole block, then added row by row: the same sums
                // in the same order as adding each row's walk.
                let n_rows = rows.len();
                let (mut order, mut scratch) = (Vec::with_capacity(n_rows), Vec::new());
                let mut values = vec![0.0f32; n_rows];
                for round in &self.trees {
                    for (out, tree) in round.iter().enumerate() {
                        if n_rows >= PARTITION_ROWS {
                            order.clear();
                            order.extend(0..n_rows as u32);
                            tree.predict_rows(
                                &features,
                                width,
                                &mut order,
                                &mut scratch,
                                &mut values,
                            );
                        } else {
                            for (v, row) in values.iter_mut().zip(features.chunks_exact(width)) {
                                *v = tree.predict_row(row);
                            }
                        }
                        for (r, v) in values.iter().enumerate() {
                            scores[r * k + out] += f64::from(*v);
                        }
                    }
                }
                scores
            })
            .collect();
        let flat: Vec<f64> = blocks.into_iter().flatten().collect();
        Ok(Array2::from_shape_vec((x.nrows(), k), flat).expect("one score per row and output"))
    }

    fn raw_row(&self, row: &[f32]) -> Vec<f64> {
        let extended;
        let row = if self.target_stats.is_empty() {
            row
        } else {
            let mut r = row.to_vec();
            for s in &self.target_stats {
                s.apply(row[s.feature], &mut r);
            }
            extended = r;
            &extended
        };
        let mut scores = self.init.clone();
        for round in &self.trees {
            for (s, tree) in scores.iter_mut().zip(round) {
                *s += f64::from(tree.predict_row(row));
            }
        }
        scores
    }

    /// Class probabilities of one row.
    pub fn predict_proba_row(&self, row: &[f32]) -> Result<Vec<f64>> {
        if row.len() != self.feature_names.len() {
            return Err(ModelError::Data(format!(
                "the model expects {} features, the row has {}",
                self.feature_names.len(),
                row.len()
            )));
        }
        Ok(to_proba(self.raw_row(row), self.n_classes))
    }

    /// Class probabilities, `[n_rows, n_classes]`.
    pub fn predict_proba(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f64>> {
        let raw = self.predict_raw(x)?;
        let mut out = Array2::<f64>::zeros((x.nrows(), self.n_classes));
        for (i, r) in raw.rows().into_iter().enumerate() {
            for (j, p) in to_proba(r.to_vec(), self.n_classes).into_iter().enumerate() {
                out[[i, j]] = p;
            }
        }
        Ok(out)
    }

    /// The most probable class of every row.
    pub fn predict(&self, x: ArrayView2<'_, f32>) -> Result<Vec<u32>> {
        Ok(labels_of(&self.predict_proba(x)?))
    }

    /// Writes the model as JSON, atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        crate::saved::save(self, path)
    }

    /// Reads a model written by [`GbdtModel::save`], checking format, version and structure
    /// (every index in range, every tree a tree: see FORMAT.md).
    pub fn load(path: &Path) -> Result<Self> {
        let model: Self = crate::saved::load(path, GBDT_FORMAT, GBDT_FORMAT_VERSION)?;
        crate::check::gbdt(&model).map_err(|message| ModelError::Load {
            path: path.to_owned(),
            message: format!("invalid model: {message}"),
        })?;
        Ok(model)
    }
}

/// The most probable class of every row of `[n_rows, n_classes]` probabilities.
pub fn labels_of(proba: &Array2<f64>) -> Vec<u32> {
    proba
        .rows()
        .into_iter()
        .map(|r| {
            argmax(
                r.as_slice()
                    .expect("rows of a standard array are contiguous"),
            )
        })
        .collect()
}

fn outputs(n_classes: usize) -> usize {
    if n_classes == 2 { 1 } else { n_classes }
}

fn to_proba(mut raw: Vec<f64>, n_classes: usize) -> Vec<f64> {
    if n_classes == 2 {
        let p = sigmoid(raw[0]);
        vec![1.0 - p, p]
    } else {
        softmax(&mut raw);
        raw
    }
}

/// Checks features and labels before fitting: rows, widths, label range, finite values.
pub(crate) fn check_data(
    d: Labelled<'_>,
    n_features: usize,
    n_classes: usize,
    what: &str,
    allow_missing: bool,
) -> Result<()> {
    if d.x.nrows() == 0 {
        return Err(ModelError::Data(format!("the {what} data has zero rows")));
    }
    if d.x.nrows() != d.y.len() {
        return Err(ModelError::Data(format!(
            "the {what} data has {} rows but {} labels",
            d.x.nrows(),
            d.y.len()
        )));
    }
    if d.x.ncols() != n_features {
        return Err(ModelError::Data(format!(
            "the {what} data has {} features, expected {n_features}",
            d.x.ncols()
        )));
    }
    if n_classes < 2 {
        return Err(ModelError::Data(format!(
            "{n_classes} class(es): classification needs at least 2"
        )));
    }
    if let Some((i, &y)) =
        d.y.iter()
            .enumerate()
            .find(|(_, y)| **y as usize >= n_classes)
    {
        return Err(ModelError::Data(format!(
            "{what} label {y} at row {i} is not a class (0..{n_classes})"
        )));
    }
    let bad = |v: &f32| v.is_infinite() || (v.is_nan() && !allow_missing);
    // A plain pass first (every fit of a sweep checks its matrices; over a slice it vectorises),
    // positions only on error.
    let any_bad = match d.x.as_slice() {
        Some(values) if allow_missing => values.iter().fold(false, |a, v| a | v.is_infinite()),
        Some(values) => values.iter().fold(false, |a, v| a | !v.is_finite()),
        None => d.x.iter().any(bad),
    };
    if any_bad {
        let ((i, j), v) =
            d.x.indexed_iter()
                .find(|(_, v)| bad(v))
                .expect("a bad value was seen above");
        return Err(ModelError::Data(format!(
            "{what} data: {v} at row {i}, feature {j}; expected finite numbers{}",
            if allow_missing {
                ""
            } else {
                " (NaN counts as missing only with allow_missing=true)"
            }
        )));
    }
    Ok(())
}

/// A training matrix and its validation matrix quantized once with bins fitted on the
/// training rows, for fitting many models on the same rows ([`GbdtModel::fit_binned`]: the
/// trials of a sweep on one fold). Models that bin differently (another `max_bins`, other
/// categorical columns) or oblivious trees with target statistics bin afresh.
#[derive(Clone, Debug)]
pub struct BinnedData {
    mappers: Vec<BinMapper>,
    train: Binned,
    valid: Option<Binned>,
    max_bins: usize,
    categorical: Vec<usize>,
    shape: ((usize, usize), Option<(usize, usize)>),
}

impl BinnedData {
    /// Fits one bin mapper per column of `train_x` (`categorical` columns as category codes,
    /// at most `max_bins` bins) and bins both matrices.
    pub fn new(
        train_x: ArrayView2<'_, f32>,
        valid_x: Option<ArrayView2<'_, f32>>,
        categorical: &[usize],
        max_bins: usize,
    ) -> Self {
        let mappers: Vec<BinMapper> = (0..train_x.ncols())
            .into_par_iter()
            .map(|f| {
                let column = train_x.column(f).to_vec();
                if categorical.contains(&f) {
                    BinMapper::fit_categorical(&column, max_bins)
                } else {
                    BinMapper::fit(&column, max_bins)
                }
            })
            .collect();
        let train = Binned::new(train_x, &mappers);
        let valid = valid_x.map(|x| Binned::new(x, &mappers));
        Self {
            mappers,
            train,
            valid,
            max_bins,
            categorical: categorical.to_vec(),
            shape: (train_x.dim(), valid_x.map(|v| v.dim())),
        }
    }

    /// Bins `train_x` and `valid_x` with given bin boundaries (numeric features; for example
    /// the bins of a [`BatchData`](super::batched::BatchData), fitted on more rows).
    pub fn with_mappers(
        mappers: Vec<BinMapper>,
        train_x: ArrayView2<'_, f32>,
        valid_x: Option<ArrayView2<'_, f32>>,
        max_bins: usize,
    ) -> Self {
        let train = Binned::new(train_x, &mappers);
        let valid = valid_x.map(|x| Binned::new(x, &mappers));
        Self {
            mappers,
            train,
            valid,
            max_bins,
            categorical: Vec::new(),
            shape: (train_x.dim(), valid_x.map(|v| v.dim())),
        }
    }

    /// The mappers and the training bins.
    pub(crate) fn into_parts(self) -> (Vec<BinMapper>, Binned) {
        (self.mappers, self.train)
    }

    /// Whether these bins serve a model of `p` on matrices of these shapes.
    fn fits(
        &self,
        p: &GbdtValid,
        train_x: ArrayView2<'_, f32>,
        valid_x: Option<ArrayView2<'_, f32>>,
    ) -> bool {
        self.max_bins == p.max_bins
            && self.categorical == p.categorical
            && self.shape.0 == train_x.dim()
            && valid_x.is_none_or(|v| self.shape.1 == Some(v.dim()))
    }

    /// The binning settings `(max_bins, categorical columns)` these bins were made with.
    pub fn settings(&self) -> (usize, &[usize]) {
        (self.max_bins, &self.categorical)
    }

    /// Approximate heap size in bytes (for bounding a cache).
    pub fn bytes(&self) -> usize {
        let binned = |b: &Binned| {
            b.data.len() + b.slots.len() * 2 + (b.row_start.len() + b.row_mid.len()) * 4
        };
        binned(&self.train) + self.valid.as_ref().map_or(0, binned)
    }
}

/// State of one training run.
struct Trainer<'t, 'v, 'b> {
    params: GbdtValid,
    n_classes: usize,
    train: Labelled<'t>,
    valid: Option<Labelled<'v>>,
    bins: Option<&'b BinnedData>,
}

impl<'t, 'v, 'b> Trainer<'t, 'v, 'b> {
    fn new(
        params: GbdtValid,
        n_classes: usize,
        train: Labelled<'t>,
        valid: Option<Labelled<'v>>,
        bins: Option<&'b BinnedData>,
    ) -> Self {
        Self {
            params,
            n_classes,
            train,
            valid,
            bins,
        }
    }

    fn run(
        self,
        feature_names: &[String],
        on_round: &mut (dyn FnMut(usize, Option<RoundEval>) -> Control + Send),
    ) -> Result<GbdtModel> {
        let p = &self.params;
        let n_inputs = self.train.x.ncols();
        let k = outputs(self.n_classes);
        // Oblivious trees see categorical features as ordered target statistics: extra columns
        // after the inputs.
        let (target_stats, extended) = if p.growth == Growth::Oblivious && !p.categorical.is_empty()
        {
            let (stats, x) = ctr::fit_ordered(
                self.train.x,
                self.train.y,
                self.n_classes,
                &p.categorical,
                p.seed,
            );
            (stats, Some(x))
        } else {
            (Vec::new(), None)
        };
        let valid_extended = self
            .valid
            .filter(|_| !target_stats.is_empty())
            .map(|v| ctr::extend(v.x, &target_stats));
        let train_x = extended.as_ref().map_or(self.train.x, |a| a.view());
        let valid_x = self
            .valid
            .map(|v| valid_extended.as_ref().map_or(v.x, |a| a.view()));
        let (n, n_features) = (train_x.nrows(), train_x.ncols());
        // Bins made earlier for the same rows and binning settings are reused (a sweep's
        // trials on one fold); target-statistic columns depend on the seed, so never then.
        let fresh;
        let bins = match self.bins {
            Some(b) if target_stats.is_empty() && b.fits(p, train_x, valid_x) => b,
            _ => {
                fresh = BinnedData::new(train_x, valid_x, &p.categorical, p.max_bins);
                &fresh
            }
        };
        let (mappers, binned) = (&bins.mappers, &bins.train);
        let valid_binned = bins.valid.as_ref().filter(|_| valid_x.is_some());
        let layout = Layout::new(binned);
        let weights: Vec<f64> = self
            .train
            .y
            .iter()
            .map(|&y| p.class_weights.get(y as usize).copied().unwrap_or(1.0))
            .collect();
        let init = initial_scores(self.train.y, &weights, self.n_classes);
        let n_valid = valid_x.map_or(0, |x| x.nrows());
        // Quantized gradients: f32 scores and the kernels' arithmetic (see `quant`).
        let mut quant = p
            .quantize
            .is_on()
            .then(|| QuantState::new(&init, n, n_valid, &weights, p.seed));
        let init = quant.as_ref().map_or(init, QuantState::init);
        let mut scores = vec![0.0f64; n * k];
        for row in scores.chunks_mut(k) {
            row.copy_from_slice(&init);
        }
        let mut valid_scores = vec![0.0f64; n_valid * k];
        for row in valid_scores.chunks_mut(k) {
            row.copy_from_slice(&init);
        }
        let settings = GrowSettings {
            growth: p.growth,
            num_leaves: p.num_leaves,
            max_depth: p.max_depth,
            learning_rate: p.learning_rate,
            colsample_bynode: p.colsample_bynode,
            rules: SplitRules {
                lambda: p.lambda,
                alpha: p.alpha,
                gamma: p.gamma,
                min_child_weight: p.min_child_weight,
                min_data_in_leaf: p.min_data_in_leaf as f64,
            },
            quant: None,
        };
        let all_features: Vec<usize> = (0..n_features).collect();
        // Per output: its grower, gradients, and the round's tree value for every training and
        // validation row (each output's tree is grown and applied on its own thread).
        let mut growers: Vec<Grower<'_>> = (0..k)
            .map(|_| Grower::new(binned, mappers, &layout))
            .collect();
        let mut grads: Vec<Vec<GradPair>> = vec![vec![GradPair::default(); n]; k];
        let mut train_deltas: Vec<Vec<f32>> = vec![vec![0.0; n]; k];
        let mut valid_deltas: Vec<Vec<f32>> = vec![vec![0.0; n_valid]; k];
        // Per output: the rows to pass down its tree and scratch space for the partitions.
        let mut walks: Vec<(Vec<u32>, Vec<u32>)> = vec![(Vec::new(), Vec::new()); k];
        let mut valid_losses = Vec::with_capacity(n_valid);
        let mut trees: Vec<Vec<Tree>> = Vec::with_capacity(p.rounds);
        let mut valid_loss = Vec::new();
        let mut importance_gain = vec![0.0f64; n_features];
        let mut importance_split = vec![0u64; n_features];
        let mut best = (f64::INFINITY, 0usize);
        if quant.is_none() {
            scores::add_and_gradients(
                &mut scores,
                None,
                self.train.y,
                &weights,
                self.n_classes,
                &mut grads,
            );
        }
        let mut tree_settings = vec![settings; k];
        for round in 0..p.rounds {
            if let Some(q) = quant.as_mut() {
                let previous = (round > 0).then_some(train_deltas.as_slice());
                q.gradients(p, round, previous, self.train.y, &mut grads)?;
                for (s, tr) in tree_settings.iter_mut().zip(&q.rounds) {
                    s.quant = Some(*tr);
                }
            }
            let mut rng =
                SplitMix64::new(p.seed ^ (round as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let sampled: Vec<u32> = if p.subsample < 1.0 {
                let cut = (p.subsample * f64::from(u32::MAX)) as u64;
                (0..n as u32)
                    .filter(|_| rng.next_u64() >> 32 <= cut)
                    .collect()
            } else {
                (0..n as u32).collect()
            };
            let seeds: Vec<u64> = (0..k).map(|_| rng.next_u64()).collect();
            // Rows left out by `subsample`: the trees must be walked for them.
            let out_of_bag: Vec<u32> = if sampled.len() == n {
                Vec::new()
            } else {
                let mut in_bag = vec![false; n];
                for &r in &sampled {
                    in_bag[r as usize] = true;
                }
                (0..n as u32).filter(|&r| !in_bag[r as usize]).collect()
            };
            let helpers = Helpers::new(k);
            let grown: Vec<_> = growers
                .par_iter_mut()
                .zip(tree_settings.par_iter())
                .zip(grads.par_iter())
                .zip(seeds.par_iter())
                .zip(train_deltas.par_iter_mut())
                .zip(valid_deltas.par_iter_mut())
                .zip(walks.par_iter_mut())
                .map(
                    |(
                        (((((grower, settings), grad), &seed), train_delta), valid_delta),
                        (walk, scratch),
                    )| {
                        let mut tree_rng = SplitMix64::new(seed);
                        let features = sample(&all_features, p.colsample_bytree, &mut tree_rng);
                        let mut rows = sampled.clone();
                        let seed = tree_rng.next_u64();
                        let grown =
                            grower.grow(settings, &mut rows, grad, &features, seed, &helpers);
                        helpers.done();
                        // The grower partitioned the sampled rows by leaf: their values come
                        // from the leaf ranges, the same values a walk of the tree gives.
                        for &(start, end, value) in &grown.leaves {
                            for &r in &rows[start..end] {
                                train_delta[r as usize] = value;
                            }
                        }
                        walk.clone_from(&out_of_bag);
                        grown
                            .tree
                            .predict_binned_rows(binned, walk, scratch, train_delta);
                        if let Some(vb) = valid_binned {
                            walk.clear();
                            walk.extend(0..n_valid as u32);
                            grown
                                .tree
                                .predict_binned_rows(vb, walk, scratch, valid_delta);
                        }
                        grown
                    },
                )
                .collect();
            let mut round_trees = Vec::with_capacity(k);
            for grown in grown {
                for &(f, gain) in &grown.splits {
                    importance_gain[f] += gain;
                    importance_split[f] += 1;
                }
                round_trees.push(grown.tree);
            }
            trees.push(round_trees);
            let eval = self.valid.map(|v| match quant.as_mut() {
                Some(q) => q.evaluate(&valid_deltas, v.y),
                None => scores::add_and_evaluate(
                    &mut valid_scores,
                    &valid_deltas,
                    v.y,
                    self.n_classes,
                    &mut valid_losses,
                ),
            });
            let loss = eval.map(|e| e.logloss);
            if let Some(l) = loss {
                valid_loss.push(l);
                if l < best.0 {
                    best = (l, round);
                }
            }
            if on_round(round, eval) == Control::Stop {
                break;
            }
            if p.early_stopping_rounds > 0
                && loss.is_some()
                && round - best.1 >= p.early_stopping_rounds
            {
                break;
            }
            if quant.is_some() {
                continue;
            }
            scores::add_and_gradients(
                &mut scores,
                Some(&train_deltas),
                self.train.y,
                &weights,
                self.n_classes,
                &mut grads,
            );
        }
        // Importances of target-statistic columns belong to their categorical input.
        let mut extra = n_inputs;
        for s in &target_stats {
            for _ in 0..s.classes.len() {
                importance_gain[s.feature] += importance_gain[extra];
                importance_split[s.feature] += importance_split[extra];
                extra += 1;
            }
        }
        importance_gain.truncate(n_inputs);
        importance_split.truncate(n_inputs);
        if p.early_stopping_rounds > 0 && !valid_loss.is_empty() {
            trees.truncate(best.1 + 1);
        }
        Ok(GbdtModel {
            format: GBDT_FORMAT.to_owned(),
            format_version: GBDT_FORMAT_VERSION,
            params: (**p).clone(),
            feature_names: feature_names.to_vec(),
            n_classes: self.n_classes,
            init,
            trees,
            valid_loss,
            importance_gain,
            importance_split,
            target_stats,
        })
    }
}

/// Log prior per class (weighted), or the log-odds of class 1 for binary models.
pub(crate) fn initial_scores(y: &[u32], weights: &[f64], n_classes: usize) -> Vec<f64> {
    let mut mass = vec![0.0f64; n_classes];
    for (&c, &w) in y.iter().zip(weights) {
        mass[c as usize] += w;
    }
    let total: f64 = mass.iter().sum();
    let prior: Vec<f64> = mass
        .iter()
        .map(|m| (m / total).clamp(1e-15, 1.0 - 1e-15))
        .collect();
    if n_classes == 2 {
        vec![(prior[1] / prior[0]).ln()]
    } else {
        prior.iter().map(|p| p.ln()).collect()
    }
}

impl GbdtParams {
    /// Trains with these parameters after checking them.
    pub fn fit(
        &self,
        feature_names: &[String],
        n_classes: usize,
        train: Labelled<'_>,
        valid: Option<Labelled<'_>>,
    ) -> Result<GbdtModel> {
        let valid_params = self.check(n_classes)?;
        GbdtModel::fit(
            &valid_params,
            feature_names,
            n_classes,
            train,
            valid,
            &mut |_, _| Control::Continue,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three numeric columns and a column of level codes; `n_classes` classes from a rule with
    /// exceptions, so trees of many leaves keep finding splits.
    fn data(n: usize, n_classes: usize) -> (Array2<f32>, Vec<u32>) {
        let mut x = Array2::<f32>::zeros((n, 4));
        let mut y = Vec::with_capacity(n);
        for i in 0..n {
            let (a, b, c) = ((i * 37 % 101) as f32, (i * 11 % 29) as f32, (i % 7) as f32);
            x[[i, 0]] = a;
            x[[i, 1]] = b / 3.0;
            x[[i, 2]] = c;
            x[[i, 3]] = (i * 5 % 6) as f32;
            let class = (a as usize / 25 + b as usize / 10 + usize::from(i % 13 == 0)) % n_classes;
            y.push(class as u32);
        }
        (x, y)
    }

    fn params(threads: usize, n_classes: usize) -> GbdtValid {
        let mut p = GbdtParams::new(Growth::LeafWise);
        for (name, value) in [
            ("rounds", "25"),
            ("num_leaves", "24"),
            ("min_data_in_leaf", "3"),
            ("subsample", "0.7"),
            ("colsample_bytree", "0.8"),
            ("early_stopping_rounds", "5"),
        ] {
            p.set(name, value).expect("a known parameter");
        }
        p.threads = threads;
        p.categorical = vec![3];
        p.check(n_classes).expect("valid")
    }

    fn fit(threads: usize, n_classes: usize) -> (GbdtModel, Vec<RoundEval>) {
        let (x, y) = data(3000, n_classes);
        let (xv, yv) = data(700, n_classes);
        let names: Vec<String> = (0..4).map(|f| format!("f{f}")).collect();
        let mut evals = Vec::new();
        let p = params(threads, n_classes);
        let model = GbdtModel::fit(
            &p,
            &names,
            n_classes,
            Labelled { x: x.view(), y: &y },
            Some(Labelled {
                x: xv.view(),
                y: &yv,
            }),
            &mut |_, e| {
                evals.extend(e);
                Control::Continue
            },
        )
        .expect("fits");
        // The thread count itself is a parameter the model records.
        let model = GbdtModel {
            params: GbdtParams {
                threads: 0,
                ..model.params
            },
            ..model
        };
        (model, evals)
    }

    #[test]
    fn models_do_not_depend_on_the_number_of_threads() {
        for n_classes in [3, 2] {
            let (one, one_evals) = fit(1, n_classes);
            let (two, two_evals) = fit(2, n_classes);
            let (all, all_evals) = fit(0, n_classes);
            assert!(one.trees.len() > 5);
            // (Not assert_eq: a failure would print every tree.)
            assert!(one == two, "1 vs 2 threads, {n_classes} classes");
            assert!(
                one == all,
                "1 thread vs the global pool, {n_classes} classes"
            );
            assert_eq!(one_evals, two_evals);
            assert_eq!(one_evals, all_evals);
        }
    }

    #[test]
    fn batch_prediction_equals_row_by_row() {
        let (model, _) = fit(0, 3);
        // Enough rows for several blocks, the last one short and below PARTITION_ROWS.
        let (x, _) = data(2 * BLOCK + PARTITION_ROWS / 2, 3);
        let batch = model.predict_proba(x.view()).expect("predicts");
        for (i, row) in x.rows().into_iter().enumerate() {
            let single = model
                .predict_proba_row(row.as_slice().expect("contiguous"))
                .expect("predicts");
            assert_eq!(batch.row(i).to_vec(), single, "row {i}");
        }
    }
}
