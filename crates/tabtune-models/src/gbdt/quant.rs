//! Quantized training: the per-tree settings of a round and the quantized split search, shared
//! by the engine (`quantize` on) and the batched fit, on the arithmetic of `tabtune-kernels`.
//!
//! Histograms hold integers here (quantized gradients, hessians and row counts as `f64`, exact);
//! candidates are ranked by the kernels' `f32` structure scores, a found split is kept when its
//! `f64` gain from the exact sums is positive.

use rayon::prelude::*;
use tabtune_kernels::layout::{NodeRules, TreeRound};
use tabtune_kernels::reference::grad::{finish_metrics, row_gradients, row_metric};
use tabtune_kernels::reference::math::{
    self, SALT_GRAD, SALT_HESS, Tables, gain_f64, levels_log2_for, pow2_scale, rounding_noise,
};
use tabtune_kernels::reference::split::{
    FeatureBest, best_level_candidate, best_of_features, level_scores, scan_feature,
};

use super::booster::RoundEval;
use super::hist::{GradPair, Layout, Split, SplitRules, Stats};
use super::params::{GbdtParams, Quantize};
use crate::error::{ModelError, Result};

/// One tree's settings for a round from its parameters, the largest `|g|` and `h` of its rows
/// (as `f32` bits) and its training rows. An error for non-finite gradients.
pub(crate) fn tree_round(
    p: &GbdtParams,
    max_bits: [u32; 2],
    n_rows: usize,
    what: &dyn Fn() -> String,
) -> Result<TreeRound> {
    let [g, h] = max_bits.map(f32::from_bits);
    if !g.is_finite() || !h.is_finite() {
        return Err(ModelError::Data(format!(
            "{}: non-finite gradients (largest |g| = {g}, h = {h}); the raw scores diverged \
             (try a larger lambda or min_child_weight, or a smaller learning_rate)",
            what()
        )));
    }
    let levels = levels_log2_for(n_rows, p.quant_bits);
    let (scale_g, inv_g) = pow2_scale(g, levels);
    let (scale_h, inv_h) = pow2_scale(h, levels);
    let min_hess = (p.min_child_weight / f64::from(scale_h)).ceil().max(1.0);
    Ok(TreeRound {
        scale_g,
        inv_g,
        scale_h,
        inv_h,
        lambda_q: (p.lambda / f64::from(scale_h)) as f32,
        alpha_q: (p.alpha / f64::from(scale_g)) as f32,
        min_hess: min_hess.min(f64::from(i32::MAX)) as i32,
        min_rows: p.min_data_in_leaf.min(i32::MAX as usize) as i32,
        lambda: p.lambda as f32,
        learning_rate: p.learning_rate as f32,
        stochastic: p.quantize == Quantize::Stochastic,
    })
}

/// Integer sums as `[g, h, n]`.
#[inline]
pub(crate) fn to_q(s: Stats) -> [i32; 3] {
    [s.g as i32, s.h as i32, s.n as i32]
}

/// `[g, h, n]` as sums.
#[inline]
pub(crate) fn from_q(q: [i32; 3]) -> Stats {
    Stats {
        g: f64::from(q[0]),
        h: f64::from(q[1]),
        n: f64::from(q[2]),
    }
}

/// A node's output from its quantized sums.
pub(crate) fn leaf_value(tr: &TreeRound, s: Stats) -> f32 {
    let q = to_q(s);
    math::leaf_value(
        q[0],
        q[1],
        tr.scale_g,
        tr.scale_h,
        tr.lambda,
        tr.alpha_q,
        tr.learning_rate,
    )
}

/// The gain of a split in real units (`f64`, from exact sums).
pub(crate) fn gain(
    tr: &TreeRound,
    rules: &SplitRules,
    parent: [i32; 3],
    left: [i32; 3],
    right: [i32; 3],
) -> f64 {
    gain_f64(
        parent,
        left,
        right,
        tr.scale_g,
        tr.scale_h,
        rules.lambda,
        rules.alpha,
        rules.gamma,
    )
}

/// The best split of a node over `features` (increasing) on an integer histogram, if its gain
/// is positive.
pub(crate) fn best_split(
    hist: &[Stats],
    layout: &Layout,
    features: &[usize],
    total: Stats,
    tr: &TreeRound,
    rules: &SplitRules,
) -> Option<Split> {
    let node_rules: NodeRules = tr.rules();
    let total_q = to_q(total);
    let (feature, best): (usize, FeatureBest) = best_of_features(features.iter().copied(), |f| {
        let bins = &hist[layout.offsets[f]..layout.offsets[f] + layout.n_bins[f]];
        scan_feature(bins.len(), |b| to_q(bins[b]), total_q, &node_rules)
    })?;
    let right = [
        total_q[0] - best.left[0],
        total_q[1] - best.left[1],
        total_q[2] - best.left[2],
    ];
    let gain = gain(tr, rules, total_q, best.left, right);
    (gain > 0.0).then(|| Split {
        feature,
        bin: best.bin as usize,
        missing_left: best.missing_left,
        gain,
        left: from_q(best.left),
        right: from_q(right),
        categories: None,
    })
}

/// A level's best shared split as `(feature, bin, missing values left, level gain)`: ranked by
/// the `f32` level score summed over `nodes` (`(sums, histogram)` in level order), kept when
/// the `f64` gain `Σ ½ [S(L) + S(R) − S(P)] − γ` over the nodes with rows on both sides is
/// positive.
pub(crate) fn best_shared_split(
    nodes: &[(Stats, &[Stats])],
    layout: &Layout,
    features: &[usize],
    categorical: &[bool],
    tr: &TreeRound,
    rules: &SplitRules,
) -> Option<(usize, usize, bool, f64)> {
    let node_rules = tr.rules();
    let totals: Vec<[i32; 3]> = nodes.iter().map(|n| to_q(n.0)).collect();
    // (feature, bin, missing direction, any missing, score)
    let mut best: Option<(usize, u32, bool, bool, f32)> = None;
    for &f in features {
        let nb = layout.n_bins[f];
        if categorical[f] || nb < 3 {
            continue;
        }
        let off = layout.offsets[f];
        let (scores, any_missing) =
            level_scores(nb, &totals, |j, b| to_q(nodes[j].1[off + b]), &node_rules);
        if let Some((b, dir, s)) = best_level_candidate(&scores, any_missing)
            && best.is_none_or(|x| s > x.4)
        {
            best = Some((f, b, dir, any_missing, s));
        }
    }
    let (feature, bin, dir, any_missing, _) = best?;
    let lefts: Vec<[i32; 3]> = nodes
        .iter()
        .map(|(_, hist)| {
            let bins = &hist[layout.offsets[feature]..];
            let mut left = if dir && any_missing {
                to_q(bins[0])
            } else {
                [0; 3]
            };
            for b in &bins[1..=bin as usize] {
                let q = to_q(*b);
                left = [left[0] + q[0], left[1] + q[1], left[2] + q[2]];
            }
            left
        })
        .collect();
    let (missing_left, gain) = shared_gain(&totals, &lefts, dir, any_missing, tr, rules);
    (gain > 0.0).then_some((feature, bin as usize, missing_left, gain))
}

/// The direction of missing values and the `f64` gain of a level's shared split, from each
/// node's sums and left sums: missing values go left as searched when the level has any, else
/// towards the side with more rows over the level.
pub(crate) fn shared_gain(
    totals: &[[i32; 3]],
    lefts: &[[i32; 3]],
    dir: bool,
    any_missing: bool,
    tr: &TreeRound,
    rules: &SplitRules,
) -> (bool, f64) {
    let mut sum = 0.0f64;
    let (mut left_rows, mut all_rows) = (0i64, 0i64);
    for (t, l) in totals.iter().zip(lefts) {
        let r = [t[0] - l[0], t[1] - l[1], t[2] - l[2]];
        left_rows += i64::from(l[2]);
        all_rows += i64::from(t[2]);
        if l[2] > 0 && r[2] > 0 {
            sum += gain(
                tr,
                &SplitRules {
                    gamma: 0.0,
                    ..*rules
                },
                *t,
                *l,
                r,
            );
        }
    }
    let missing_left = if any_missing {
        dir
    } else {
        left_rows * 2 >= all_rows
    };
    (missing_left, sum - rules.gamma)
}

/// Rows per parallel block of the quantized row passes.
const ROW_BLOCK: usize = 512;

/// The per-row state of a quantized fit: `f32` raw scores (training and validation rows,
/// row-major), the rows' class weights, and the current round's per-output tree settings.
pub(crate) struct QuantState {
    tables: Tables,
    scores: Vec<f32>,
    valid_scores: Vec<f32>,
    weights: Vec<f32>,
    g: Vec<f32>,
    h: Vec<f32>,
    /// Per output: the tree settings of the current round.
    pub rounds: Vec<TreeRound>,
    seed: u32,
    k: usize,
}

impl QuantState {
    /// Scores start at `init` (rounded to `f32`) for `n` training and `n_valid` validation
    /// rows; `weights` per training row.
    pub fn new(init: &[f64], n: usize, n_valid: usize, weights: &[f64], seed: u64) -> Self {
        let k = init.len();
        let init32: Vec<f32> = init.iter().map(|&v| v as f32).collect();
        Self {
            tables: Tables::new(),
            scores: init32.iter().copied().cycle().take(n * k).collect(),
            valid_scores: init32.iter().copied().cycle().take(n_valid * k).collect(),
            weights: weights.iter().map(|&w| w as f32).collect(),
            g: vec![0.0; n * k],
            h: vec![0.0; n * k],
            rounds: Vec::new(),
            seed: math::seed32(seed),
            k,
        }
    }

    /// The initial scores the training starts from (the model's `init`).
    pub fn init(&self) -> Vec<f64> {
        self.scores[..self.k]
            .iter()
            .map(|&v| f64::from(v))
            .collect()
    }

    /// Adds the previous round's tree values (when given) to the training scores, then computes
    /// every row's gradients, each output's tree settings for `round` and the quantized
    /// gradients into `grads[output][row]`.
    pub fn gradients(
        &mut self,
        p: &GbdtParams,
        round: usize,
        deltas: Option<&[Vec<f32>]>,
        y: &[u32],
        grads: &mut [Vec<GradPair>],
    ) -> Result<()> {
        let k = self.k;
        let tables = &self.tables;
        let weights = &self.weights;
        let maxima: Vec<Vec<[u32; 2]>> = self
            .scores
            .par_chunks_mut(ROW_BLOCK * k)
            .zip(self.g.par_chunks_mut(ROW_BLOCK * k))
            .zip(self.h.par_chunks_mut(ROW_BLOCK * k))
            .enumerate()
            .map(|(block, ((scores, g), h))| {
                let first = block * ROW_BLOCK;
                let mut max = vec![[0u32; 2]; k];
                for (i, row) in scores.chunks_exact_mut(k).enumerate() {
                    let r = first + i;
                    if let Some(deltas) = deltas {
                        for (s, d) in row.iter_mut().zip(deltas) {
                            *s += d[r];
                        }
                    }
                    let (gr, hr) = (&mut g[i * k..(i + 1) * k], &mut h[i * k..(i + 1) * k]);
                    row_gradients(tables, row, y[r], weights[r], gr, hr);
                    for j in 0..k {
                        max[j][0] = max[j][0].max(gr[j].abs().to_bits());
                        max[j][1] = max[j][1].max(hr[j].abs().to_bits());
                    }
                }
                max
            })
            .collect();
        let n = y.len();
        self.rounds = (0..k)
            .map(|j| {
                let mut max = [0u32; 2];
                for m in &maxima {
                    max = [max[0].max(m[j][0]), max[1].max(m[j][1])];
                }
                tree_round(p, max, n, &|| format!("round {round}, output {j}"))
            })
            .collect::<Result<_>>()?;
        let (g, h, rounds, seed) = (&self.g, &self.h, &self.rounds, self.seed);
        grads.par_iter_mut().enumerate().for_each(|(j, out)| {
            let tr = &rounds[j];
            for (r, pair) in out.iter_mut().enumerate() {
                let (ng, nh) = if tr.stochastic {
                    (
                        rounding_noise(seed, round as u32, j as u32, r as u32, SALT_GRAD),
                        rounding_noise(seed, round as u32, j as u32, r as u32, SALT_HESS),
                    )
                } else {
                    (0.5, 0.5)
                };
                *pair = GradPair {
                    g: math::quantize(g[r * k + j], tr.inv_g, ng) as f32,
                    h: math::quantize(h[r * k + j], tr.inv_h, nh) as f32,
                };
            }
        });
        Ok(())
    }

    /// Adds the round's validation tree values to the validation scores and returns their log
    /// loss (fixed point, see `tabtune_kernels`) and accuracy.
    pub fn evaluate(&mut self, deltas: &[Vec<f32>], y: &[u32]) -> RoundEval {
        let k = self.k;
        let tables = &self.tables;
        let (loss, hits) = self
            .valid_scores
            .par_chunks_mut(ROW_BLOCK * k)
            .enumerate()
            .map(|(block, scores)| {
                let first = block * ROW_BLOCK;
                let (mut loss, mut hits) = (0u64, 0u32);
                for (i, row) in scores.chunks_exact_mut(k).enumerate() {
                    for (s, d) in row.iter_mut().zip(deltas) {
                        *s += d[first + i];
                    }
                    let (l, hit) = row_metric(tables, row, y[first + i]);
                    loss += u64::from(l);
                    hits += u32::from(hit);
                }
                (loss, hits)
            })
            .reduce(|| (0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
        let (logloss, accuracy) =
            finish_metrics(&[loss as u32, (loss >> 32) as u32, hits], y.len());
        RoundEval { logloss, accuracy }
    }
}
