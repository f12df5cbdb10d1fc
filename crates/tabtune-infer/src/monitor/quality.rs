//! Data quality of a current table next to a reference: missing and invalid cells (from the
//! validation report of the current file, when there is one), duplicate rows, values outside the
//! reference's range and the schema's range, categorical levels unseen in the reference or
//! unknown to the schema, constant columns, and per-column statistics on both sides.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;
use tabtune_features::stats::{NumericStats, numeric_stats};
use tabtune_features::transform::quantile_sorted;
use tabtune_features::{ColumnValues, IssueKind, Schema, Table, ValidationReport};

/// How many levels a categorical summary lists, most frequent first.
pub const TOP_LEVELS: usize = 5;

/// A level with its count and share.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LevelCount {
    /// The level.
    pub level: String,
    /// Rows with it.
    pub count: usize,
    /// Its share of the rows.
    pub share: f64,
}

/// Statistics of one column on one side.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ColumnSummary {
    /// A numeric column.
    Numeric {
        /// Count, mean, std, min, quartiles, max, distinct values.
        #[serde(flatten)]
        stats: NumericStats,
        /// 5th percentile.
        p05: f64,
        /// 95th percentile.
        p95: f64,
    },
    /// A categorical column.
    Categorical {
        /// Rows.
        count: usize,
        /// Levels that occur.
        distinct: usize,
        /// The most frequent levels (at most [`TOP_LEVELS`]), most frequent first.
        top: Vec<LevelCount>,
    },
}

/// Quality of one feature column.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ColumnQuality {
    /// Column name.
    pub column: String,
    /// `numeric` or `categorical`.
    pub kind: &'static str,
    /// Empty cells in the current file (rows rejected by validation).
    pub missing: usize,
    /// `missing` over the current rows read.
    pub missing_share: f64,
    /// Cells that are not values of the column's type (not a number, NaN or infinite, not
    /// UTF-8) in the current file.
    pub invalid: usize,
    /// The schema's allowed range (numeric columns).
    pub schema_range: Option<(f64, f64)>,
    /// Current cells outside the schema's range (rejected by validation).
    pub out_of_schema_range: usize,
    /// The reference's min and max (numeric columns).
    pub reference_range: Option<(f64, f64)>,
    /// Valid current values outside the reference's range.
    pub out_of_reference_range: usize,
    /// `out_of_reference_range` over the valid current rows.
    pub out_of_reference_range_share: f64,
    /// Current levels that are schema levels but never occur in the reference.
    pub new_levels: Vec<LevelCount>,
    /// Current cells with a level the schema does not allow (rejected by validation).
    pub unknown_levels: Vec<LevelCount>,
    /// Whether the column holds one value in the reference.
    pub constant_in_reference: bool,
    /// Whether the column holds one value in the current data.
    pub constant_in_current: bool,
    /// Reference statistics (none for an empty side).
    pub reference: Option<ColumnSummary>,
    /// Current statistics (none for an empty side).
    pub current: Option<ColumnSummary>,
}

/// The data quality report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct QualityReport {
    /// Reference data.
    pub reference: PathBuf,
    /// Current data.
    pub current: PathBuf,
    /// Valid rows on each side.
    pub rows: (usize, usize),
    /// Current rows read, valid or not.
    pub current_rows_read: usize,
    /// Current rows rejected by validation.
    pub current_invalid_rows: usize,
    /// Rows repeating an earlier row (every column but the id) on each side.
    pub duplicate_rows: (usize, usize),
    /// Share of duplicate rows on each side.
    pub duplicate_share: (f64, f64),
    /// Per feature column, in schema order.
    pub columns: Vec<ColumnQuality>,
    /// Columns with missing cells in the current data.
    pub columns_with_missing: Vec<String>,
    /// Columns with current values outside the reference's or the schema's range.
    pub columns_out_of_range: Vec<String>,
    /// Columns with levels that are new or unknown.
    pub columns_with_new_levels: Vec<String>,
    /// Columns holding one value in the current data.
    pub constant_columns: Vec<String>,
    /// Whether the validation report kept only the first of its issues, so that the cell
    /// counts from it are lower bounds.
    pub issue_counts_truncated: bool,
}

fn share(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

fn summary(values: &ColumnValues) -> Option<ColumnSummary> {
    match values {
        ColumnValues::Numeric(v) if !v.is_empty() => {
            let mut sorted = v.clone();
            sorted.sort_by(f64::total_cmp);
            Some(ColumnSummary::Numeric {
                stats: numeric_stats(v),
                p05: quantile_sorted(&sorted, 0.05),
                p95: quantile_sorted(&sorted, 0.95),
            })
        }
        ColumnValues::Categorical { levels, codes } if !codes.is_empty() => {
            let counts = level_counts(levels, codes);
            let mut top: Vec<LevelCount> = levels
                .iter()
                .zip(&counts)
                .filter(|(_, n)| **n > 0)
                .map(|(l, &n)| LevelCount {
                    level: l.clone(),
                    count: n,
                    share: share(n, codes.len()),
                })
                .collect();
            let distinct = top.len();
            top.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.level.cmp(&b.level)));
            top.truncate(TOP_LEVELS);
            Some(ColumnSummary::Categorical {
                count: codes.len(),
                distinct,
                top,
            })
        }
        _ => None,
    }
}

fn level_counts(levels: &[String], codes: &[u32]) -> Vec<usize> {
    let mut counts = vec![0usize; levels.len()];
    for &c in codes {
        counts[c as usize] += 1;
    }
    counts
}

fn constant(values: &ColumnValues) -> bool {
    match values {
        ColumnValues::Numeric(v) => !v.is_empty() && v.iter().all(|x| *x == v[0]),
        ColumnValues::Categorical { codes, .. } => {
            !codes.is_empty() && codes.iter().all(|c| *c == codes[0])
        }
    }
}

/// Cell problems of one column, counted from a validation report.
#[derive(Default)]
struct CellIssues {
    missing: usize,
    invalid: usize,
    out_of_range: usize,
    unknown: BTreeMap<String, usize>,
}

/// The quality of `current` next to `reference` (both validated against `schema`), with the
/// problems of the rejected current rows from `validation` when the current data came from a
/// file loaded with quarantine.
pub fn data_quality(
    schema: &Schema,
    reference: &Table,
    current: &Table,
    validation: Option<&ValidationReport>,
) -> QualityReport {
    let mut issues: BTreeMap<&str, CellIssues> = BTreeMap::new();
    if let Some(report) = validation {
        for issue in &report.issues {
            let Some(column) = issue.column.as_deref() else {
                continue;
            };
            let entry = issues.entry(column).or_default();
            match issue.kind {
                IssueKind::Empty => entry.missing += 1,
                IssueKind::Unparsable | IssueKind::NotFinite | IssueKind::NonUtf8 => {
                    entry.invalid += 1;
                }
                IssueKind::OutOfRange => entry.out_of_range += 1,
                IssueKind::UnknownLevel => {
                    *entry
                        .unknown
                        .entry(issue.value.clone().unwrap_or_default())
                        .or_default() += 1;
                }
                IssueKind::FieldCount | IssueKind::DuplicateId => {}
            }
        }
    }
    let rows_read = validation.map_or(current.n_rows(), |r| r.rows_read);
    let invalid_rows = validation.map_or(0, |r| r.invalid_rows);
    let empty = CellIssues::default();
    let mut columns = Vec::with_capacity(current.columns.len());
    for (r, c) in reference.columns.iter().zip(&current.columns) {
        let cell = issues.get(c.name.as_str()).unwrap_or(&empty);
        let spec = schema.column(&c.name);
        let mut q = ColumnQuality {
            column: c.name.clone(),
            kind: "numeric",
            missing: cell.missing,
            missing_share: share(cell.missing, rows_read),
            invalid: cell.invalid,
            schema_range: spec.and_then(tabtune_features::ColumnSpec::range),
            out_of_schema_range: cell.out_of_range,
            reference_range: None,
            out_of_reference_range: 0,
            out_of_reference_range_share: 0.0,
            new_levels: Vec::new(),
            unknown_levels: cell
                .unknown
                .iter()
                .map(|(level, &count)| LevelCount {
                    level: level.clone(),
                    count,
                    share: share(count, rows_read),
                })
                .collect(),
            constant_in_reference: constant(&r.values),
            constant_in_current: constant(&c.values),
            reference: summary(&r.values),
            current: summary(&c.values),
        };
        match (&r.values, &c.values) {
            (ColumnValues::Numeric(a), ColumnValues::Numeric(b)) if !a.is_empty() => {
                let lo = a.iter().copied().fold(f64::INFINITY, f64::min);
                let hi = a.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                q.reference_range = Some((lo, hi));
                q.out_of_reference_range = b.iter().filter(|v| **v < lo || **v > hi).count();
                q.out_of_reference_range_share = share(q.out_of_reference_range, b.len());
            }
            (
                ColumnValues::Categorical { levels, codes: a },
                ColumnValues::Categorical { codes: b, .. },
            ) => {
                q.kind = "categorical";
                let (ra, rb) = (level_counts(levels, a), level_counts(levels, b));
                q.new_levels = levels
                    .iter()
                    .zip(ra.iter().zip(&rb))
                    .filter(|(_, (ref_n, cur_n))| **ref_n == 0 && **cur_n > 0)
                    .map(|(l, (_, &n))| LevelCount {
                        level: l.clone(),
                        count: n,
                        share: share(n, b.len()),
                    })
                    .collect();
            }
            _ => {}
        }
        columns.push(q);
    }
    let names = |f: &dyn Fn(&ColumnQuality) -> bool| -> Vec<String> {
        columns
            .iter()
            .filter(|c| f(c))
            .map(|c| c.column.clone())
            .collect()
    };
    let columns_with_missing = names(&|c| c.missing > 0);
    let columns_out_of_range =
        names(&|c| c.out_of_reference_range > 0 || c.out_of_schema_range > 0);
    let columns_with_new_levels =
        names(&|c| !c.new_levels.is_empty() || !c.unknown_levels.is_empty());
    let constant_columns = names(&|c| c.constant_in_current);
    let duplicate_rows = (reference.duplicates().len(), current.duplicates().len());
    QualityReport {
        reference: reference.source.clone(),
        current: current.source.clone(),
        rows: (reference.n_rows(), current.n_rows()),
        current_rows_read: rows_read,
        current_invalid_rows: invalid_rows,
        duplicate_rows,
        duplicate_share: (
            share(duplicate_rows.0, reference.n_rows()),
            share(duplicate_rows.1, current.n_rows()),
        ),
        columns,
        columns_with_missing,
        columns_out_of_range,
        columns_with_new_levels,
        constant_columns,
        issue_counts_truncated: validation.is_some_and(|r| r.issues_total > r.issues.len()),
    }
}
