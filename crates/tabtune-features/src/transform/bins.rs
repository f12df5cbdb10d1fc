//! Quantile binning (for example age quartiles).

use serde::{Deserialize, Serialize};

/// Unfitted quantile binning into `bins` groups of about equal size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuantileBins {
    /// Number of bins (≥ 2).
    pub bins: usize,
}

/// Fitted quantile binning: the inner edges. A value `x` falls in bin `k` = the number of inner
/// edges strictly below `x`, so bins are right-closed like pandas' `qcut`: `(e_{k-1}, e_k]`.
/// Values beyond the training range fall in the first or last bin.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QuantileBinsFitted {
    /// Inner edges, increasing, without repeats (ties in the data can merge bins).
    pub edges: Vec<f64>,
}

impl QuantileBins {
    /// Fits the edges at the quantiles `k / bins` of `values`, with linear interpolation between
    /// order statistics (numpy's default). `values` must be non-empty.
    pub fn fit(self, values: &[f64]) -> QuantileBinsFitted {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let mut edges: Vec<f64> = Vec::with_capacity(self.bins.saturating_sub(1));
        for k in 1..self.bins {
            let q = quantile_sorted(&sorted, k as f64 / self.bins as f64);
            if edges.last().is_none_or(|&last| q > last) {
                edges.push(q);
            }
        }
        // Edges equal to the minimum would leave the first bin empty: drop them.
        if let Some(&min) = sorted.first() {
            edges.retain(|&e| e > min);
        }
        QuantileBinsFitted { edges }
    }
}

/// Linear-interpolation quantile of sorted values.
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

impl QuantileBinsFitted {
    /// The bin index of every value, as `f64`.
    pub fn apply(&self, values: &[f64]) -> Vec<f64> {
        values
            .iter()
            .map(|&x| self.edges.partition_point(|&e| e < x) as f64)
            .collect()
    }

    /// Number of bins after merging ties.
    pub fn n_bins(&self) -> usize {
        self.edges.len() + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quartiles_by_hand() {
        // 1..=8: quartiles at positions 1.75, 3.5, 5.25 -> 2.75, 4.5, 6.25.
        let values: Vec<f64> = (1..=8).map(f64::from).collect();
        let fitted = QuantileBins { bins: 4 }.fit(&values);
        assert_eq!(fitted.edges, vec![2.75, 4.5, 6.25]);
        assert_eq!(
            fitted.apply(&values),
            vec![0.0, 0.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0]
        );
        // Right-closed, and values outside the training range clamp to the end bins.
        assert_eq!(fitted.apply(&[4.5, -100.0, 100.0]), vec![1.0, 0.0, 3.0]);
    }

    #[test]
    fn ties_merge_bins() {
        // Quartile positions 1.75, 3.5, 5.25 -> 1 (the minimum: dropped), 2.5, 4.25.
        let fitted = QuantileBins { bins: 4 }.fit(&[1.0, 1.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!(fitted.edges, vec![2.5, 4.25]);
        assert_eq!(fitted.n_bins(), 3);
        let constant = QuantileBins { bins: 4 }.fit(&[7.0; 5]);
        assert_eq!(constant.n_bins(), 1);
    }
}
