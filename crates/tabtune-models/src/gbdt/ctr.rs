//! Ordered target statistics for categorical features in oblivious trees (CatBoost's approach):
//! each level is replaced by the smoothed share of each class among the rows with that level.
//! During training a row only sees the rows before it in a random permutation, so its own label
//! never leaks into its feature; at prediction time all training rows count.

use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};
use tabtune_features::rng::SplitMix64;

/// Weight of the prior in the smoothed share `(count + a · prior) / (total + a)`.
const PRIOR_WEIGHT: f64 = 1.0;

/// Class counts per level of one categorical input feature.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TargetStats {
    /// The input column.
    pub feature: usize,
    /// The classes whose shares are features (class 1 for binary models, every class else).
    pub classes: Vec<u32>,
    /// Share of each of `classes` in the training rows.
    pub prior: Vec<f64>,
    /// Level codes seen in training, increasing.
    pub levels: Vec<f32>,
    /// Per level: count of each of `classes`, then the level's total rows.
    pub counts: Vec<Vec<f64>>,
}

impl TargetStats {
    fn level(&self, v: f32) -> Option<usize> {
        if v.is_nan() || v < 0.0 {
            return None;
        }
        self.levels.binary_search_by(|l| l.total_cmp(&v)).ok()
    }

    /// The features of a value from all training rows (unseen and unknown levels: the prior).
    pub fn apply(&self, v: f32, out: &mut Vec<f32>) {
        match self.level(v) {
            Some(l) => {
                let c = &self.counts[l];
                let total = c[self.classes.len()];
                for (k, p) in self.prior.iter().enumerate() {
                    out.push(((c[k] + PRIOR_WEIGHT * p) / (total + PRIOR_WEIGHT)) as f32);
                }
            }
            None => out.extend(self.prior.iter().map(|&p| p as f32)),
        }
    }
}

/// Fits the statistics of `features` on `(x, y)` and returns them with the training matrix
/// extended by the ordered statistics (one column per class per feature, after the inputs).
pub fn fit_ordered(
    x: ArrayView2<'_, f32>,
    y: &[u32],
    n_classes: usize,
    features: &[usize],
    seed: u64,
) -> (Vec<TargetStats>, Array2<f32>) {
    let classes: Vec<u32> = if n_classes == 2 {
        vec![1]
    } else {
        (0..n_classes as u32).collect()
    };
    let n = y.len();
    let prior: Vec<f64> = classes
        .iter()
        .map(|&c| y.iter().filter(|&&v| v == c).count() as f64 / n.max(1) as f64)
        .collect();
    let mut order: Vec<usize> = (0..n).collect();
    SplitMix64::new(seed ^ 0x5EED_C7A5).shuffle(&mut order);
    let width = x.ncols() + features.len() * classes.len();
    let mut out = Array2::<f32>::zeros((n, width));
    out.slice_mut(ndarray::s![.., ..x.ncols()]).assign(&x);
    let mut stats = Vec::with_capacity(features.len());
    for (j, &f) in features.iter().enumerate() {
        let column = x.column(f);
        let mut levels: Vec<f32> = column.iter().copied().filter(|v| *v >= 0.0).collect();
        levels.sort_by(f32::total_cmp);
        levels.dedup();
        let mut s = TargetStats {
            feature: f,
            classes: classes.clone(),
            prior: prior.clone(),
            levels,
            counts: Vec::new(),
        };
        s.counts = vec![vec![0.0; classes.len() + 1]; s.levels.len()];
        let first = x.ncols() + j * classes.len();
        let mut buffer = Vec::with_capacity(classes.len());
        for &i in &order {
            buffer.clear();
            // The statistics so far hold exactly the rows before `i` in the permutation.
            s.apply(column[i], &mut buffer);
            for (k, v) in buffer.iter().enumerate() {
                out[[i, first + k]] = *v;
            }
            if let Some(l) = s.level(column[i]) {
                for (k, &c) in classes.iter().enumerate() {
                    if y[i] == c {
                        s.counts[l][k] += 1.0;
                    }
                }
                s.counts[l][classes.len()] += 1.0;
            }
        }
        stats.push(s);
    }
    (stats, out)
}

/// `x` extended by the statistics of every feature in `stats` (full training counts).
pub fn extend(x: ArrayView2<'_, f32>, stats: &[TargetStats]) -> Array2<f32> {
    let extra: usize = stats.iter().map(|s| s.classes.len()).sum();
    let mut out = Array2::<f32>::zeros((x.nrows(), x.ncols() + extra));
    out.slice_mut(ndarray::s![.., ..x.ncols()]).assign(&x);
    let mut buffer = Vec::new();
    for i in 0..x.nrows() {
        buffer.clear();
        for s in stats {
            s.apply(x[[i, s.feature]], &mut buffer);
        }
        for (k, v) in buffer.iter().enumerate() {
            out[[i, x.ncols() + k]] = *v;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordered_statistics_never_see_the_rows_own_label() {
        // Level 0 always has class 1, level 1 always class 0 (binary).
        let x = ndarray::array![[0.0f32], [0.0], [0.0], [1.0], [1.0], [1.0]];
        let y = vec![1, 1, 1, 0, 0, 0];
        let (stats, ext) = fit_ordered(x.view(), &y, 2, &[0], 7);
        assert_eq!(ext.ncols(), 2);
        // The row seen first for each level gets the prior (0.5); later ones move towards the
        // level's class, never reaching it: (count + 0.5) / (total + 1).
        let mut level0: Vec<f32> = (0..3).map(|i| ext[[i, 1]]).collect();
        level0.sort_by(f32::total_cmp);
        assert_eq!(level0, vec![0.5, 0.75, 2.5 / 3.0]);
        // Prediction uses all rows: (3 + 0.5) / (3 + 1).
        let full = extend(
            ndarray::array![[0.0f32], [1.0], [-1.0], [9.0]].view(),
            &stats,
        );
        assert_eq!(full.column(1).to_vec(), vec![0.875, 0.125, 0.5, 0.5]);
    }
}
