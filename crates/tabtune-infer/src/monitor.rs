//! Data drift between a reference table (usually the training data) and a current one, per
//! column with Evidently's default tests, plus target drift (when both have labels) and
//! prediction drift (the bundle's predictions on both).

use std::path::PathBuf;

use serde::Serialize;
use tabtune_features::drift::{ColumnDrift, categorical_drift, dataset_drift, numeric_drift};
use tabtune_features::{ColumnValues, Table};

use crate::error::Result;
use crate::predictor::Predictor;

/// The outcome of a drift check.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DriftReport {
    /// Reference data.
    pub reference: PathBuf,
    /// Current data.
    pub current: PathBuf,
    /// Rows in each.
    pub rows: (usize, usize),
    /// Per feature column.
    pub columns: Vec<ColumnDrift>,
    /// Share of drifted feature columns.
    pub drift_share: f64,
    /// Whether the dataset drifted (share ≥ 0.5).
    pub dataset_drift: bool,
    /// Drift of the target, when both tables have it.
    pub target: Option<ColumnDrift>,
    /// Drift of the model's predicted classes.
    pub prediction: ColumnDrift,
}

impl DriftReport {
    /// Names of the drifted feature columns.
    pub fn drifted_columns(&self) -> Vec<&str> {
        self.columns
            .iter()
            .filter(|c| c.drifted)
            .map(|c| c.column.as_str())
            .collect()
    }
}

fn labels<'a>(levels: &'a [String], codes: &[u32]) -> Vec<&'a str> {
    codes.iter().map(|&c| levels[c as usize].as_str()).collect()
}

/// Compares `current` with `reference` (both validated against the bundle's schema).
pub fn data_drift(
    predictor: &Predictor,
    reference: &Table,
    current: &Table,
) -> Result<DriftReport> {
    let mut columns = Vec::with_capacity(reference.columns.len());
    for (r, c) in reference.columns.iter().zip(&current.columns) {
        columns.push(match (&r.values, &c.values) {
            (ColumnValues::Numeric(a), ColumnValues::Numeric(b)) => numeric_drift(&r.name, a, b),
            (
                ColumnValues::Categorical { levels, codes: a },
                ColumnValues::Categorical { codes: b, .. },
            ) => categorical_drift(&r.name, &labels(levels, a), &labels(levels, b)),
            _ => unreachable!("both tables follow the bundle's schema"),
        });
    }
    let (drift_share, dataset) = dataset_drift(&columns);
    let classes = predictor.classes();
    let target = match (&reference.target, &current.target) {
        (Some(a), Some(b)) => Some(categorical_drift(
            &predictor.bundle().meta.schema.target,
            &labels(classes, a),
            &labels(classes, b),
        )),
        _ => None,
    };
    let (pa, pb) = (predictor.predict(reference)?, predictor.predict(current)?);
    let prediction = categorical_drift(
        "prediction",
        &labels(classes, &pa.labels),
        &labels(classes, &pb.labels),
    );
    Ok(DriftReport {
        reference: reference.source.clone(),
        current: current.source.clone(),
        rows: (reference.n_rows(), current.n_rows()),
        columns,
        drift_share,
        dataset_drift: dataset,
        target,
        prediction,
    })
}

/// The report as a self-contained HTML page with a chart of the drift scores.
#[cfg(feature = "report")]
pub fn drift_html(report: &DriftReport, model: &str) -> Result<String> {
    use tabtune_features::report::charts::bar_chart;
    use tabtune_features::report::html::{num, page, section, table};
    let mut body = String::new();
    let summary = table(
        &[
            "reference rows",
            "current rows",
            "drifted columns",
            "drift share",
            "dataset drift",
        ],
        &[vec![
            report.rows.0.to_string(),
            report.rows.1.to_string(),
            format!(
                "{} of {}",
                report.drifted_columns().len(),
                report.columns.len()
            ),
            format!("{}%", num(100.0 * report.drift_share, 1)),
            if report.dataset_drift {
                "yes".into()
            } else {
                "no".into()
            },
        ]],
    );
    body.push_str(&section(
        "Dataset drift",
        "A dataset drifts when at least half of its columns do (Evidently's default).",
        &summary,
    ));
    let mut rows: Vec<&ColumnDrift> = report.columns.iter().collect();
    rows.extend(report.target.iter());
    rows.push(&report.prediction);
    let table_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|c| {
            vec![
                c.column.clone(),
                serde_json::to_value(c.test)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                num(c.score, 4),
                num(c.threshold, 2),
                if c.drifted {
                    "drift".into()
                } else {
                    "-".into()
                },
            ]
        })
        .collect();
    // Distances grow with drift, p-values shrink: chart "evidence" as the score for distances
    // and 1 − p for tests, each against its own threshold in the table.
    let labels: Vec<String> = report.columns.iter().map(|c| c.column.clone()).collect();
    let evidence: Vec<f64> = report
        .columns
        .iter()
        .map(|c| {
            if (c.threshold - 0.05).abs() < 1e-12 {
                1.0 - c.score
            } else {
                c.score
            }
        })
        .collect();
    let chart = bar_chart(
        "Drift evidence per column (1 − p for tests, distance otherwise)",
        &labels,
        &evidence,
        "evidence",
    )?;
    body.push_str(&section(
        "Columns",
        "Reference ≤ 1000 rows: KS (numeric), chi-squared (categorical), Z-test (binary), drift when p < 0.05; larger: normed Wasserstein and Jensen–Shannon, drift when ≥ 0.1.",
        &format!("{chart}{}", table(&["column", "test", "score", "threshold", "drift"], &table_rows)),
    ));
    Ok(page(
        &format!("tabtune drift: {model}"),
        &format!(
            "reference {} vs current {}",
            report.reference.display(),
            report.current.display()
        ),
        &body,
    ))
}
