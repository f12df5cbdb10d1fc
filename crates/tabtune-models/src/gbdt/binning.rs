//! Quantizing features into histogram bins, once per training set.
//!
//! Bin 0 of every feature holds missing values (NaN); bins `1..=n` hold values, bin `b` covering
//! `(upper[b-2], upper[b-1]]`. Features are stored column-major as `u8`, so a feature's bins are
//! one contiguous slice.

use ndarray::ArrayView2;
use serde::{Deserialize, Serialize};

/// The bin boundaries of one feature.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BinMapper {
    /// Upper bound of each value bin (the last is `+inf`), increasing.
    pub upper: Vec<f32>,
    /// For a categorical feature, the level codes of bins `1..`, in increasing order; codes
    /// that are negative, NaN or not listed (unseen in training, or beyond the bin budget) fall
    /// in bin 0 with the missing values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub categories: Option<Vec<f32>>,
}

impl BinMapper {
    /// Bins for `values` with at most `max_bins` value bins: one bin per distinct value when
    /// there are few, else quantile boundaries (midpoints between neighbouring distinct values,
    /// so a threshold never falls on a value).
    pub fn fit(values: &[f32], max_bins: usize) -> Self {
        let mut sorted: Vec<f32> = values.iter().copied().filter(|v| !v.is_nan()).collect();
        sorted.sort_by(f32::total_cmp);
        let mut distinct: Vec<(f32, usize)> = Vec::new();
        for v in sorted {
            match distinct.last_mut() {
                Some((last, count)) if *last == v => *count += 1,
                _ => distinct.push((v, 1)),
            }
        }
        if distinct.is_empty() {
            return Self {
                upper: vec![f32::INFINITY],
                categories: None,
            };
        }
        let mut upper = Vec::new();
        if distinct.len() <= max_bins {
            for w in distinct.windows(2) {
                upper.push(midpoint(w[0].0, w[1].0));
            }
        } else {
            // Greedy equal-frequency cut: close a bin once it holds about total / max_bins rows.
            let total: usize = distinct.iter().map(|d| d.1).sum();
            let per_bin = total as f64 / max_bins as f64;
            let mut filled = 0usize;
            let mut target = per_bin;
            for w in distinct.windows(2) {
                filled += w[0].1;
                if filled as f64 >= target && upper.len() + 1 < max_bins {
                    upper.push(midpoint(w[0].0, w[1].0));
                    target = filled as f64 + per_bin;
                }
            }
        }
        upper.push(f32::INFINITY);
        Self {
            upper,
            categories: None,
        }
    }

    /// Bins for a categorical feature holding level codes (0, 1, 2, ...; negative = unknown):
    /// one bin per code, keeping the `max_bins` most frequent codes.
    pub fn fit_categorical(values: &[f32], max_bins: usize) -> Self {
        let mut counts: Vec<(f32, usize)> = Vec::new();
        let mut codes: Vec<f32> = values.iter().copied().filter(|v| *v >= 0.0).collect();
        codes.sort_by(f32::total_cmp);
        for v in codes {
            match counts.last_mut() {
                Some((last, n)) if *last == v => *n += 1,
                _ => counts.push((v, 1)),
            }
        }
        counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.total_cmp(&b.0)));
        counts.truncate(max_bins);
        let mut categories: Vec<f32> = counts.into_iter().map(|c| c.0).collect();
        categories.sort_by(f32::total_cmp);
        let n = categories.len().max(1);
        Self {
            upper: vec![f32::INFINITY; n],
            categories: Some(categories),
        }
    }

    /// Number of value bins (missing excluded).
    pub fn n_bins(&self) -> usize {
        self.upper.len()
    }

    /// The bin of a value: 0 for NaN, else `1 + ` the first bin whose upper bound is ≥ value.
    pub fn bin(&self, value: f32) -> u8 {
        if value.is_nan() {
            return 0;
        }
        if let Some(categories) = &self.categories {
            return categories
                .binary_search_by(|c| c.total_cmp(&value))
                .map_or(0, |i| (i + 1) as u8);
        }
        (1 + self.upper.partition_point(|&u| u < value)) as u8
    }

    /// The value threshold of a split after bin `b` (values ≤ it go left).
    pub fn threshold(&self, b: usize) -> f32 {
        self.upper[b - 1]
    }

    /// Whether the feature is categorical.
    pub fn is_categorical(&self) -> bool {
        self.categories.is_some()
    }

    /// The level code of a categorical bin (`b ≥ 1`).
    pub fn category(&self, b: usize) -> f32 {
        self.categories.as_ref().map_or(f32::NAN, |c| c[b - 1])
    }
}

fn midpoint(a: f32, b: f32) -> f32 {
    let m = a + (b - a) / 2.0;
    // For neighbouring floats the midpoint can round to `b`; keep it strictly below.
    if m >= b { a } else { m }
}

/// A feature matrix quantized into bins: column-major for partitioning and prediction, and
/// row-major as histogram slots for histogram building.
#[derive(Clone, Debug)]
pub struct Binned {
    /// Rows.
    pub n_rows: usize,
    /// Bins, `data[feature * n_rows + row]`.
    pub data: Vec<u8>,
    /// Per feature, the number of bins including the missing bin.
    pub n_bins: Vec<usize>,
    /// Row-major histogram slots (compressed rows): for row `r`,
    /// `slots[row_start[r]..row_start[r + 1]]` are the flat-histogram indices (feature offset +
    /// bin) of its features, leaving out every feature whose bin is that feature's
    /// `default_bin`. Building a histogram is one pass over the rows with independent
    /// additions; the left-out default bins are filled in from the node totals afterwards.
    /// One-hot and flag columns sit in their default bin most of the time, so this halves the
    /// work on typical tabular data (the idea behind LightGBM's sparse-feature handling).
    pub slots: Vec<u16>,
    /// Start of each row's slots; `n_rows + 1` entries.
    pub row_start: Vec<u32>,
    /// Per feature, the bin whose rows are left out of `slots` (`None`: none are).
    pub default_bin: Vec<Option<u8>>,
    /// The features split in two groups with about as many slots each, for building a
    /// histogram on two threads: the second group starts at this feature...
    pub mid_feature: usize,
    /// ...and row `r`'s slots of the second group at `row_mid[r]` (`n_rows` entries).
    pub row_mid: Vec<u32>,
}

impl Binned {
    /// Quantizes `x` [n_rows, n_features] with `mappers`.
    pub fn new(x: ArrayView2<'_, f32>, mappers: &[BinMapper]) -> Self {
        let n_rows = x.nrows();
        let mut data = vec![0u8; n_rows * mappers.len()];
        for (f, mapper) in mappers.iter().enumerate() {
            let column = &mut data[f * n_rows..(f + 1) * n_rows];
            for (dst, &v) in column.iter_mut().zip(x.column(f).iter()) {
                *dst = mapper.bin(v);
            }
        }
        let n_bins: Vec<usize> = mappers.iter().map(|m| m.n_bins() + 1).collect();
        let n_features = mappers.len();
        let mut offsets = Vec::with_capacity(n_features);
        let mut total = 0usize;
        for &nb in &n_bins {
            offsets.push(total);
            total += nb;
        }
        assert!(
            u16::try_from(total).is_ok(),
            "at most 255 bins for at most 257 features"
        );
        // A feature's most frequent bin is left out when it holds at least 30% of the rows.
        let default_bin: Vec<Option<u8>> = (0..n_features)
            .map(|f| {
                let mut counts = vec![0usize; n_bins[f]];
                for &b in &data[f * n_rows..(f + 1) * n_rows] {
                    counts[usize::from(b)] += 1;
                }
                let (bin, &count) = counts
                    .iter()
                    .enumerate()
                    .max_by_key(|(b, c)| (**c, usize::MAX - b))?;
                (count * 10 >= n_rows * 3).then_some(bin as u8)
            })
            .collect();
        // Slots per feature, to cut the features where half the slots lie on either side.
        let per_feature: Vec<usize> = (0..n_features)
            .map(|f| {
                let column = &data[f * n_rows..(f + 1) * n_rows];
                column
                    .iter()
                    .filter(|&&b| default_bin[f] != Some(b))
                    .count()
            })
            .collect();
        let all: usize = per_feature.iter().sum();
        let (mut mid_feature, mut imbalance, mut before) = (0, usize::MAX, 0usize);
        for (f, count) in per_feature.iter().chain([&0]).enumerate() {
            if (2 * before).abs_diff(all) < imbalance {
                (mid_feature, imbalance) = (f, (2 * before).abs_diff(all));
            }
            before += count;
        }
        let mut slots = Vec::with_capacity(all);
        let mut row_start = Vec::with_capacity(n_rows + 1);
        let mut row_mid = Vec::with_capacity(n_rows);
        for r in 0..n_rows {
            row_start.push(slots.len() as u32);
            for f in 0..n_features {
                if f == mid_feature {
                    row_mid.push(slots.len() as u32);
                }
                let b = data[f * n_rows + r];
                if default_bin[f] != Some(b) {
                    slots.push((offsets[f] + usize::from(b)) as u16);
                }
            }
            if mid_feature == n_features {
                row_mid.push(slots.len() as u32);
            }
        }
        row_start.push(slots.len() as u32);
        Self {
            n_rows,
            data,
            n_bins,
            slots,
            row_start,
            default_bin,
            mid_feature,
            row_mid,
        }
    }

    /// Number of features.
    pub fn n_features(&self) -> usize {
        self.n_bins.len()
    }

    /// The bins of one feature.
    pub fn column(&self, feature: usize) -> &[u8] {
        &self.data[feature * self.n_rows..(feature + 1) * self.n_rows]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn few_distinct_values_get_one_bin_each() {
        let m = BinMapper::fit(&[3.0, 1.0, 2.0, 1.0, f32::NAN], 255);
        assert_eq!(m.upper, vec![1.5, 2.5, f32::INFINITY]);
        assert_eq!(
            [
                m.bin(f32::NAN),
                m.bin(1.0),
                m.bin(2.0),
                m.bin(3.0),
                m.bin(99.0)
            ],
            [0, 1, 2, 3, 3]
        );
        assert_eq!(m.bin(-5.0), 1);
        assert!((m.threshold(1) - 1.5).abs() < f32::EPSILON);
    }

    #[test]
    fn many_values_are_cut_into_about_equal_bins() {
        let values: Vec<f32> = (0..1000).map(|i| i as f32).collect();
        let m = BinMapper::fit(&values, 10);
        assert_eq!(m.n_bins(), 10);
        let mut counts = [0usize; 11];
        for &v in &values {
            counts[m.bin(v) as usize] += 1;
        }
        assert_eq!(counts[0], 0);
        assert!(
            counts[1..].iter().all(|&c| (95..=105).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn categorical_codes_get_their_own_bins_and_unknowns_join_missing() {
        let m = BinMapper::fit_categorical(&[2.0, 0.0, 2.0, 5.0, -1.0], 255);
        assert_eq!(m.categories, Some(vec![0.0, 2.0, 5.0]));
        let bins: Vec<u8> = [0.0, 2.0, 5.0, -1.0, 3.0, f32::NAN]
            .iter()
            .map(|&v| m.bin(v))
            .collect();
        assert_eq!(bins, vec![1, 2, 3, 0, 0, 0]);
        assert_eq!(m.n_bins(), 3);
        assert!((m.category(2) - 2.0).abs() < f32::EPSILON);
        let few = BinMapper::fit_categorical(&[1.0, 1.0, 1.0, 2.0, 2.0, 3.0], 2);
        assert_eq!(
            few.categories,
            Some(vec![1.0, 2.0]),
            "the most frequent codes are kept"
        );
    }

    #[test]
    fn all_missing_is_one_empty_value_bin() {
        let m = BinMapper::fit(&[f32::NAN, f32::NAN], 16);
        assert_eq!(m.n_bins(), 1);
        assert_eq!(m.bin(1.0), 1);
    }
}
