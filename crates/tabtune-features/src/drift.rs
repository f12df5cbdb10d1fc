//! Drift tests between a reference and a current sample, with Evidently's defaults
//! (DESIGN.md §6): for a reference of at most 1000 rows, the two-sample Kolmogorov–Smirnov test
//! (numeric), chi-squared (categorical) and the two-proportion Z-test (binary), drift when
//! p < 0.05; for larger references, the Wasserstein distance normed by the reference's standard
//! deviation (numeric) and the Jensen–Shannon distance (categorical), drift when ≥ 0.1. A
//! dataset drifts when at least half of its columns do.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use statrs::distribution::{ChiSquared, ContinuousCDF, Normal};

/// References up to this many rows get the statistical tests, larger ones the distances.
pub const SMALL_REFERENCE: usize = 1000;
/// p-value below which a test says "drift".
pub const P_THRESHOLD: f64 = 0.05;
/// Distance at or above which a distance says "drift".
pub const DISTANCE_THRESHOLD: f64 = 0.1;
/// Share of drifted columns at or above which the dataset drifts.
pub const DATASET_SHARE: f64 = 0.5;

/// The test used for a column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DriftTest {
    /// Two-sample Kolmogorov–Smirnov, exact p-value.
    Ks,
    /// Pearson chi-squared of the current counts against the reference shares.
    ChiSquared,
    /// Two-proportion Z-test.
    ZTest,
    /// Wasserstein distance divided by the reference standard deviation.
    WassersteinNormed,
    /// Jensen–Shannon distance (natural log) of the level frequencies.
    JensenShannon,
}

/// The outcome for one column.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ColumnDrift {
    /// Column name.
    pub column: String,
    /// The test.
    pub test: DriftTest,
    /// p-value (tests) or distance (distances).
    pub score: f64,
    /// The threshold the score is compared with.
    pub threshold: f64,
    /// Whether the column drifted.
    pub drifted: bool,
}

/// The two-sample Kolmogorov–Smirnov statistic `D = max |F₁ − F₂|` and its exact two-sided
/// p-value `P(D ≥ d)` under the null (counting monotone lattice paths, as scipy's
/// `ks_2samp(method="exact")`). Both samples must be non-empty.
pub fn ks_2samp(a: &[f64], b: &[f64]) -> (f64, f64) {
    let (n, m) = (a.len(), b.len());
    let mut x = a.to_vec();
    let mut y = b.to_vec();
    x.sort_by(f64::total_cmp);
    y.sort_by(f64::total_cmp);
    // D in integer units of 1/(n·m): |i·m − j·n| at every step of the merged sample.
    let (mut i, mut j, mut h) = (0usize, 0usize, 0i64);
    while i < n || j < m {
        let v = match (x.get(i), y.get(j)) {
            (Some(&p), Some(&q)) => p.min(q),
            (Some(&p), None) => p,
            (None, Some(&q)) => q,
            (None, None) => unreachable!("loop condition"),
        };
        while i < n && x[i] <= v {
            i += 1;
        }
        while j < m && y[j] <= v {
            j += 1;
        }
        h = h.max(((i * m) as i64 - (j * n) as i64).abs());
    }
    let d = h as f64 / (n * m) as f64;
    // f[j] = share of monotone paths to (i, j) that stay strictly inside |i·m − j·n| < h.
    let inside = |i: usize, j: usize| ((i * m) as i64 - (j * n) as i64).abs() < h;
    let mut f = vec![0.0f64; m + 1];
    for i in 0..=n {
        for jj in 0..=m {
            f[jj] = if i == 0 && jj == 0 {
                1.0
            } else if !inside(i, jj) {
                0.0
            } else {
                let total = (i + jj) as f64;
                let from_left = if i > 0 { f[jj] * i as f64 / total } else { 0.0 };
                let from_below = if jj > 0 {
                    f[jj - 1] * jj as f64 / total
                } else {
                    0.0
                };
                from_left + from_below
            };
        }
    }
    (d, (1.0 - f[m]).clamp(0.0, 1.0))
}

/// Pearson's chi-squared of `observed` counts against `expected_shares` (summing to 1) scaled
/// to the observed total; returns the statistic and its p-value (k − 1 degrees of freedom).
/// Levels with an expected share of 0 are left out.
pub fn chi_squared(observed: &[f64], expected_shares: &[f64]) -> (f64, f64) {
    let total: f64 = observed.iter().sum();
    let mut stat = 0.0;
    let mut k = 0usize;
    for (&o, &s) in observed.iter().zip(expected_shares) {
        if s > 0.0 {
            let e = s * total;
            stat += (o - e) * (o - e) / e;
            k += 1;
        }
    }
    if k < 2 {
        return (0.0, 1.0);
    }
    let dist = ChiSquared::new((k - 1) as f64).expect("k ≥ 2 gives positive degrees of freedom");
    (stat, dist.sf(stat))
}

/// Two-proportion Z-test: `x1` successes of `n1` against `x2` of `n2`; returns `z` and the
/// two-sided p-value.
pub fn z_test(x1: f64, n1: f64, x2: f64, n2: f64) -> (f64, f64) {
    let (p1, p2) = (x1 / n1, x2 / n2);
    let p = (x1 + x2) / (n1 + n2);
    let se = (p * (1.0 - p) * (1.0 / n1 + 1.0 / n2)).sqrt();
    if se == 0.0 {
        return (0.0, 1.0);
    }
    let z = (p1 - p2) / se;
    let normal = Normal::standard();
    (z, 2.0 * (1.0 - normal.cdf(z.abs())))
}

/// The 1-Wasserstein distance between two empirical distributions, `∫ |F₁ − F₂| dx`.
pub fn wasserstein(a: &[f64], b: &[f64]) -> f64 {
    let mut x = a.to_vec();
    let mut y = b.to_vec();
    x.sort_by(f64::total_cmp);
    y.sort_by(f64::total_cmp);
    let mut all: Vec<f64> = x.iter().chain(&y).copied().collect();
    all.sort_by(f64::total_cmp);
    let (mut i, mut j, mut total) = (0usize, 0usize, 0.0f64);
    for w in all.windows(2) {
        while i < x.len() && x[i] <= w[0] {
            i += 1;
        }
        while j < y.len() && y[j] <= w[0] {
            j += 1;
        }
        let diff = (i as f64 / x.len() as f64 - j as f64 / y.len() as f64).abs();
        total += diff * (w[1] - w[0]);
    }
    total
}

/// The Jensen–Shannon distance (square root of the divergence, natural log) of two
/// distributions over the same levels (each normalised to sum 1 here).
pub fn jensen_shannon(p: &[f64], q: &[f64]) -> f64 {
    let (sp, sq): (f64, f64) = (p.iter().sum(), q.iter().sum());
    let mut div = 0.0;
    for (&a, &b) in p.iter().zip(q) {
        let (a, b) = (a / sp, b / sq);
        let m = f64::midpoint(a, b);
        if a > 0.0 {
            div += 0.5 * a * (a / m).ln();
        }
        if b > 0.0 {
            div += 0.5 * b * (b / m).ln();
        }
    }
    div.max(0.0).sqrt()
}

/// Drift of a numeric column with Evidently's default test for the reference size (a column
/// with two distinct values is binary: Z-test on small references).
pub fn numeric_drift(column: &str, reference: &[f64], current: &[f64]) -> ColumnDrift {
    let mut distinct: Vec<f64> = reference.to_vec();
    distinct.sort_by(f64::total_cmp);
    distinct.dedup();
    if reference.len() <= SMALL_REFERENCE && distinct.len() == 2 {
        let hi = distinct[1];
        let count = |s: &[f64]| s.iter().filter(|&&v| v == hi).count() as f64;
        let (_, p) = z_test(
            count(reference),
            reference.len() as f64,
            count(current),
            current.len() as f64,
        );
        return test_result(column, DriftTest::ZTest, p);
    }
    if reference.len() <= SMALL_REFERENCE {
        let (_, p) = ks_2samp(reference, current);
        return test_result(column, DriftTest::Ks, p);
    }
    let n = reference.len() as f64;
    let mean = reference.iter().sum::<f64>() / n;
    let std = (reference
        .iter()
        .map(|v| (v - mean) * (v - mean))
        .sum::<f64>()
        / n)
        .sqrt();
    let distance = wasserstein(reference, current) / if std > 0.0 { std } else { 1.0 };
    distance_result(column, DriftTest::WassersteinNormed, distance)
}

/// Drift of a categorical column given as level labels.
pub fn categorical_drift(column: &str, reference: &[&str], current: &[&str]) -> ColumnDrift {
    let mut levels: Vec<&str> = reference.iter().chain(current).copied().collect();
    levels.sort_unstable();
    levels.dedup();
    let index: HashMap<&str, usize> = levels.iter().enumerate().map(|(i, l)| (*l, i)).collect();
    let counts = |s: &[&str]| {
        let mut c = vec![0.0f64; levels.len()];
        for v in s {
            c[index[v]] += 1.0;
        }
        c
    };
    let (r, c) = (counts(reference), counts(current));
    if reference.len() <= SMALL_REFERENCE {
        let ref_levels = r.iter().filter(|&&v| v > 0.0).count();
        if ref_levels == 2 && levels.len() == 2 {
            let (_, p) = z_test(r[1], reference.len() as f64, c[1], current.len() as f64);
            return test_result(column, DriftTest::ZTest, p);
        }
        let total: f64 = r.iter().sum();
        let shares: Vec<f64> = r.iter().map(|v| v / total).collect();
        // A level absent from the reference but present now is drift on its own.
        if c.iter().zip(&shares).any(|(o, s)| *o > 0.0 && *s == 0.0) {
            return test_result(column, DriftTest::ChiSquared, 0.0);
        }
        let (_, p) = chi_squared(&c, &shares);
        return test_result(column, DriftTest::ChiSquared, p);
    }
    distance_result(column, DriftTest::JensenShannon, jensen_shannon(&r, &c))
}

fn test_result(column: &str, test: DriftTest, p: f64) -> ColumnDrift {
    ColumnDrift {
        column: column.to_owned(),
        test,
        score: p,
        threshold: P_THRESHOLD,
        drifted: p < P_THRESHOLD,
    }
}

fn distance_result(column: &str, test: DriftTest, d: f64) -> ColumnDrift {
    ColumnDrift {
        column: column.to_owned(),
        test,
        score: d,
        threshold: DISTANCE_THRESHOLD,
        drifted: d >= DISTANCE_THRESHOLD,
    }
}

/// Whether a dataset drifts: the share of drifted columns and the verdict.
pub fn dataset_drift(columns: &[ColumnDrift]) -> (f64, bool) {
    let share = columns.iter().filter(|c| c.drifted).count() as f64 / columns.len().max(1) as f64;
    (share, share >= DATASET_SHARE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) {
        assert!((a - b).abs() < tol, "{a} vs {b}");
    }

    // Reference values computed once with scipy 1.17.1 (`stats.ks_2samp(..., method="exact")`,
    // `stats.chisquare`, `stats.wasserstein_distance`, `spatial.distance.jensenshannon`).
    #[test]
    fn ks_matches_scipy_exact() {
        let a = [0.1, 0.5, 0.9, 1.3, 2.0, 2.2, 3.1, 4.0];
        let b = [0.3, 1.1, 1.9, 2.5, 2.6, 3.0, 3.8, 4.4, 5.0, 5.5];
        let (d, p) = ks_2samp(&a, &b);
        close(d, 0.45, 1e-12);
        close(p, 0.247_543_306_366_835_8, 1e-10);
        let a: Vec<f64> = (0..40).map(|i| f64::from((i * 37) % 101) / 10.0).collect();
        let b: Vec<f64> = (0..55)
            .map(|j| f64::from((j * 53) % 97) / 8.0 + 0.3)
            .collect();
        let (d, p) = ks_2samp(&a, &b);
        close(d, 0.186_363_636_363_636_37, 1e-12);
        close(p, 0.347_622_478_695_540_9, 1e-9);
        close(
            wasserstein(&a, &b) / {
                let m = a.iter().sum::<f64>() / 40.0;
                (a.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / 40.0).sqrt()
            },
            0.385_533_247_818_968_97,
            1e-12,
        );
        let (d, p) = ks_2samp(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0]);
        assert_eq!((d, p), (0.0, 1.0));
    }

    #[test]
    fn chi_squared_z_test_wasserstein_and_js_match_known_values() {
        let (stat, p) = chi_squared(&[30.0, 50.0, 20.0], &[0.25, 0.5, 0.25]);
        close(stat, 2.0, 1e-12);
        close(p, (-1.0f64).exp(), 1e-12); // χ²(2) survival at 2 is e⁻¹
        let (stat, p) = chi_squared(&[12.0, 30.0, 8.0], &[1.0 / 3.0; 3]);
        close(stat, 16.48, 1e-9);
        close(p, 0.000_263_884_249_454_718_4, 1e-12);
        let (z, p) = z_test(120.0, 400.0, 60.0, 300.0);
        close(z, 2.995_723_447_576_389_6, 1e-12);
        close(p, 0.002_737_946_214_873_776_5, 1e-9);
        close(
            wasserstein(
                &[0.1, 0.5, 0.9, 1.3, 2.0, 2.2, 3.1, 4.0],
                &[0.3, 1.1, 1.9, 2.5, 2.6, 3.0, 3.8, 4.4, 5.0, 5.5],
            ),
            1.2475,
            1e-12,
        );
        close(
            jensen_shannon(&[0.2, 0.5, 0.3], &[0.1, 0.6, 0.3]),
            0.103_782_561_086_039_52,
            1e-12,
        );
        close(
            jensen_shannon(&[0.5, 0.3, 0.2], &[0.2, 0.3, 0.5]),
            0.257_709_748_326_061_03,
            1e-12,
        );
        assert!(
            jensen_shannon(&[1.0, 2.0], &[2.0, 4.0]) < 1e-12,
            "counts are normalised"
        );
    }

    #[test]
    fn default_tests_follow_the_reference_size() {
        let small: Vec<f64> = (0..200).map(f64::from).collect();
        let shifted: Vec<f64> = (0..200).map(|v| f64::from(v) + 60.0).collect();
        let r = numeric_drift("x", &small, &shifted);
        assert_eq!(r.test, DriftTest::Ks);
        assert!(r.drifted && r.score < 0.05);
        let large: Vec<f64> = (0..2000).map(|v| f64::from(v % 100)).collect();
        let r = numeric_drift("x", &large, &large);
        assert_eq!((r.test, r.drifted), (DriftTest::WassersteinNormed, false));
        let flags: Vec<f64> = (0..100).map(|v| f64::from(v % 2)).collect();
        assert_eq!(numeric_drift("f", &flags, &flags).test, DriftTest::ZTest);
        let a = ["no"; 50]
            .iter()
            .chain(["yes"; 50].iter())
            .copied()
            .collect::<Vec<_>>();
        assert_eq!(categorical_drift("c", &a, &a).test, DriftTest::ZTest);
        let three: Vec<&str> = (0..90).map(|i| ["a", "b", "c"][i % 3]).collect();
        let r = categorical_drift("c", &three, &three);
        assert_eq!((r.test, r.drifted), (DriftTest::ChiSquared, false));
        let new_level: Vec<&str> = (0..90).map(|i| ["a", "b", "d"][i % 3]).collect();
        assert!(categorical_drift("c", &three, &new_level).drifted);
        let big: Vec<&str> = (0..3000).map(|i| ["a", "b", "c"][i % 3]).collect();
        assert_eq!(
            categorical_drift("c", &big, &three).test,
            DriftTest::JensenShannon
        );
        let (share, drift) =
            dataset_drift(&[r.clone(), categorical_drift("c", &three, &new_level)]);
        assert_eq!((share, drift), (0.5, true));
    }
}
