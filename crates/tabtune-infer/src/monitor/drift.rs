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
    /// How well the model does on the current data, when it has labels.
    pub performance: Option<Performance>,
}

/// Classification quality on labelled data.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Performance {
    /// Share of correct predictions.
    pub accuracy: f64,
    /// Mean multi-class log loss (probabilities clipped at 1e-15).
    pub logloss: f64,
    /// Per class: precision, recall, F1 and support (true rows).
    pub classes: Vec<ClassScores>,
    /// Unweighted mean F1 over the classes with support.
    pub macro_f1: f64,
    /// `confusion[true][predicted]` row counts.
    pub confusion: Vec<Vec<u64>>,
}

/// Scores of one class.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClassScores {
    /// Class name.
    pub class: String,
    /// Of the rows predicted as the class, the share that are.
    pub precision: f64,
    /// Of the rows of the class, the share predicted as it.
    pub recall: f64,
    /// Harmonic mean of precision and recall (0 when both are 0).
    pub f1: f64,
    /// Rows of the class.
    pub support: u64,
}

/// Accuracy, log loss, per-class precision / recall / F1 and the confusion matrix.
pub fn performance(
    classes: &[String],
    truth: &[u32],
    predicted: &[u32],
    proba: &ndarray::Array2<f64>,
) -> Performance {
    let k = classes.len();
    let mut confusion = vec![vec![0u64; k]; k];
    for (&t, &p) in truth.iter().zip(predicted) {
        confusion[t as usize][p as usize] += 1;
    }
    let n = truth.len().max(1) as f64;
    let accuracy = (0..k).map(|c| confusion[c][c]).sum::<u64>() as f64 / n;
    let logloss = truth
        .iter()
        .enumerate()
        .map(|(i, &t)| -proba[[i, t as usize]].clamp(1e-15, 1.0).ln())
        .sum::<f64>()
        / n;
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let scores: Vec<ClassScores> = (0..k)
        .map(|c| {
            let tp = confusion[c][c];
            let predicted_as: u64 = (0..k).map(|t| confusion[t][c]).sum();
            let support: u64 = confusion[c].iter().sum();
            let (precision, recall) = (ratio(tp, predicted_as), ratio(tp, support));
            let f1 = if precision + recall > 0.0 {
                2.0 * precision * recall / (precision + recall)
            } else {
                0.0
            };
            ClassScores {
                class: classes[c].clone(),
                precision,
                recall,
                f1,
                support,
            }
        })
        .collect();
    let present: Vec<&ClassScores> = scores.iter().filter(|s| s.support > 0).collect();
    let macro_f1 = present.iter().map(|s| s.f1).sum::<f64>() / present.len().max(1) as f64;
    Performance {
        accuracy,
        logloss,
        classes: scores,
        macro_f1,
        confusion,
    }
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
    let performance = current
        .target
        .as_ref()
        .map(|t| performance(classes, t, &pb.labels, &pb.proba));
    Ok(DriftReport {
        reference: reference.source.clone(),
        current: current.source.clone(),
        rows: (reference.n_rows(), current.n_rows()),
        columns,
        drift_share,
        dataset_drift: dataset,
        target,
        prediction,
        performance,
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
    if let Some(perf) = &report.performance {
        let rows: Vec<Vec<String>> = perf
            .classes
            .iter()
            .map(|c| {
                vec![
                    c.class.clone(),
                    num(c.precision, 4),
                    num(c.recall, 4),
                    num(c.f1, 4),
                    c.support.to_string(),
                ]
            })
            .collect();
        let mut confusion_rows: Vec<Vec<String>> = Vec::new();
        for (t, row) in perf.confusion.iter().enumerate() {
            let mut cells = vec![perf.classes[t].class.clone()];
            cells.extend(row.iter().map(u64::to_string));
            confusion_rows.push(cells);
        }
        let mut header: Vec<&str> = vec!["true \\ predicted"];
        header.extend(perf.classes.iter().map(|c| c.class.as_str()));
        body.push_str(&section(
            "Model performance on the current data",
            &format!(
                "accuracy {}, log loss {}, macro F1 {}",
                num(perf.accuracy, 4),
                num(perf.logloss, 4),
                num(perf.macro_f1, 4)
            ),
            &format!(
                "{}{}",
                table(&["class", "precision", "recall", "F1", "support"], &rows),
                table(&header, &confusion_rows)
            ),
        ));
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn performance_by_hand() {
        let classes = vec!["a".to_owned(), "b".to_owned()];
        // truth a a b b, predicted a b b b: accuracy 0.75; a: P 1, R 0.5; b: P 2/3, R 1.
        let proba = ndarray::array![[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.3, 0.7]];
        let p = performance(&classes, &[0, 0, 1, 1], &[0, 1, 1, 1], &proba);
        assert!((p.accuracy - 0.75).abs() < 1e-12);
        assert_eq!(p.confusion, vec![vec![1, 1], vec![0, 2]]);
        assert!(
            (p.classes[0].precision - 1.0).abs() < 1e-12
                && (p.classes[0].recall - 0.5).abs() < 1e-12
        );
        assert!(
            (p.classes[1].precision - 2.0 / 3.0).abs() < 1e-12
                && (p.classes[1].recall - 1.0).abs() < 1e-12
        );
        assert!(
            (p.classes[0].f1 - 2.0 / 3.0).abs() < 1e-12 && (p.classes[1].f1 - 0.8).abs() < 1e-12
        );
        let ll = -(0.9f64.ln() + 0.4f64.ln() + 0.8f64.ln() + 0.7f64.ln()) / 4.0;
        assert!((p.logloss - ll).abs() < 1e-12);
        assert!((p.macro_f1 - f64::midpoint(2.0 / 3.0, 0.8)).abs() < 1e-12);
    }
}
