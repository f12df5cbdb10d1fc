//! Column statistics and class balance, for `data describe`, reports and monitoring.

use serde::{Deserialize, Serialize};

use crate::schema::Schema;
use crate::table::{ColumnValues, Table};
use crate::transform::quantile_sorted;

/// Statistics of one numeric column.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NumericStats {
    /// Rows.
    pub count: usize,
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation (n − 1), 0 for one row.
    pub std: f64,
    /// Minimum.
    pub min: f64,
    /// 25th percentile.
    pub p25: f64,
    /// Median.
    pub median: f64,
    /// 75th percentile.
    pub p75: f64,
    /// Maximum.
    pub max: f64,
    /// Distinct values.
    pub distinct: usize,
}

/// Statistics of one categorical column.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CategoricalStats {
    /// Rows.
    pub count: usize,
    /// Count per schema level, in schema order (levels that never occur have 0).
    pub levels: Vec<(String, usize)>,
}

/// Statistics of one column.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ColumnStats {
    /// A numeric column.
    Numeric {
        /// Column name.
        name: String,
        /// Unit from the schema.
        unit: Option<String>,
        /// The statistics.
        stats: NumericStats,
    },
    /// A categorical column.
    Categorical {
        /// Column name.
        name: String,
        /// The statistics.
        stats: CategoricalStats,
    },
}

impl ColumnStats {
    /// The column name.
    pub fn name(&self) -> &str {
        match self {
            Self::Numeric { name, .. } | Self::Categorical { name, .. } => name,
        }
    }
}

/// Numeric statistics of `values` (non-empty).
pub fn numeric_stats(values: &[f64]) -> NumericStats {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = values.len();
    let mean = values.iter().sum::<f64>() / n as f64;
    let ss = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>();
    let std = if n > 1 {
        (ss / (n - 1) as f64).sqrt()
    } else {
        0.0
    };
    let mut distinct = usize::from(n > 0);
    for w in sorted.windows(2) {
        if w[0] != w[1] {
            distinct += 1;
        }
    }
    NumericStats {
        count: n,
        mean,
        std,
        min: sorted[0],
        p25: quantile_sorted(&sorted, 0.25),
        median: quantile_sorted(&sorted, 0.5),
        p75: quantile_sorted(&sorted, 0.75),
        max: sorted[n - 1],
        distinct,
    }
}

/// Count per level.
pub fn level_counts(levels: &[String], codes: &[u32]) -> Vec<(String, usize)> {
    let mut counts = vec![0usize; levels.len()];
    for &c in codes {
        counts[c as usize] += 1;
    }
    levels.iter().cloned().zip(counts).collect()
}

/// Statistics of every feature column of a non-empty table, in schema order.
pub fn describe(table: &Table, schema: &Schema) -> Vec<ColumnStats> {
    table
        .columns
        .iter()
        .map(|c| match &c.values {
            ColumnValues::Numeric(v) => ColumnStats::Numeric {
                name: c.name.clone(),
                unit: schema
                    .column(&c.name)
                    .and_then(|s| s.unit().map(str::to_owned)),
                stats: numeric_stats(v),
            },
            ColumnValues::Categorical { levels, codes } => ColumnStats::Categorical {
                name: c.name.clone(),
                stats: CategoricalStats {
                    count: codes.len(),
                    levels: level_counts(levels, codes),
                },
            },
        })
        .collect()
}

/// Rows per class (schema order), when the table has the target.
pub fn class_balance(table: &Table, schema: &Schema) -> Option<Vec<(String, usize)>> {
    table
        .target
        .as_ref()
        .map(|t| level_counts(schema.classes(), t))
}

/// Pearson correlation matrix of equally long columns; a constant column correlates 0 with
/// everything but itself (1).
pub fn correlation(columns: &[&[f64]]) -> Vec<Vec<f64>> {
    let k = columns.len();
    let centred: Vec<(Vec<f64>, f64)> = columns
        .iter()
        .map(|c| {
            let mean = c.iter().sum::<f64>() / c.len().max(1) as f64;
            let d: Vec<f64> = c.iter().map(|v| v - mean).collect();
            let norm = d.iter().map(|x| x * x).sum::<f64>().sqrt();
            (d, norm)
        })
        .collect();
    let mut out = vec![vec![0.0; k]; k];
    for i in 0..k {
        out[i][i] = 1.0;
        for j in (i + 1)..k {
            let (a, na) = &centred[i];
            let (b, nb) = &centred[j];
            let r = if *na > 0.0 && *nb > 0.0 {
                a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>() / (na * nb)
            } else {
                0.0
            };
            out[i][j] = r;
            out[j][i] = r;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_stats_by_hand() {
        let s = numeric_stats(&[4.0, 1.0, 3.0, 2.0, 2.0]);
        assert_eq!(
            (s.count, s.min, s.max, s.median, s.distinct),
            (5, 1.0, 4.0, 2.0, 4)
        );
        assert!((s.mean - 2.4).abs() < 1e-12);
        assert!((s.std - 1.3_f64.sqrt()).abs() < 1e-12); // ss = 5.2, / 4
        assert!((s.p25 - 2.0).abs() < 1e-12 && (s.p75 - 3.0).abs() < 1e-12);
    }

    #[test]
    fn correlation_by_hand() {
        let a = [1.0, 2.0, 3.0];
        let b = [3.0, 2.0, 1.0];
        let c = [5.0, 5.0, 5.0];
        let r = correlation(&[&a, &b, &c]);
        assert!((r[0][1] + 1.0).abs() < 1e-12);
        assert!((r[0][0] - 1.0).abs() < 1e-12 && r[0][2].abs() < 1e-12);
    }

    #[test]
    fn level_counts_keep_absent_levels() {
        let levels = vec!["a".to_owned(), "b".to_owned(), "c".to_owned()];
        assert_eq!(
            level_counts(&levels, &[0, 2, 2]),
            vec![
                ("a".to_owned(), 1),
                ("b".to_owned(), 0),
                ("c".to_owned(), 2)
            ]
        );
    }
}
