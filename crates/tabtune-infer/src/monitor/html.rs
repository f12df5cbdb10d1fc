//! Self-contained HTML pages of the monitoring reports (SVG charts, no scripts).

use tabtune_features::drift::ColumnDrift;
use tabtune_features::report::charts::{bar_chart, box_plots};
use tabtune_features::report::html::{num, page, section, table};

use super::drift::{DriftReport, FeatureDrift, TargetDrift};
use super::performance::Performance;
use super::quality::{ColumnQuality, ColumnSummary, QualityReport};
use crate::error::Result;

fn yes_no(b: bool) -> String {
    if b { "yes".into() } else { "no".into() }
}

fn test_name(c: &ColumnDrift) -> String {
    serde_json::to_value(c.test)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn drift_rows(rows: &[&ColumnDrift]) -> Vec<Vec<String>> {
    rows.iter()
        .map(|c| {
            vec![
                c.column.clone(),
                test_name(c),
                num(c.score, 4),
                num(c.threshold, 2),
                if c.drifted {
                    "drift".into()
                } else {
                    "-".into()
                },
            ]
        })
        .collect()
}

/// The dataset summary and the per-column section of a feature drift.
fn feature_sections(
    drift: &FeatureDrift,
    rows: (usize, usize),
    extra: &[&ColumnDrift],
) -> Result<String> {
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
            rows.0.to_string(),
            rows.1.to_string(),
            format!(
                "{} of {}",
                drift.drifted_columns().len(),
                drift.columns.len()
            ),
            format!("{}%", num(100.0 * drift.drift_share, 1)),
            yes_no(drift.dataset_drift),
        ]],
    );
    body.push_str(&section(
        "Dataset drift",
        "A dataset drifts when at least half of its columns do (Evidently's default).",
        &summary,
    ));
    let mut all: Vec<&ColumnDrift> = drift.columns.iter().collect();
    all.extend_from_slice(extra);
    // Distances grow with drift, p-values shrink: chart "evidence" as the score for distances
    // and 1 − p for tests, each against its own threshold in the table.
    let labels: Vec<String> = drift.columns.iter().map(|c| c.column.clone()).collect();
    let evidence: Vec<f64> = drift
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
        &format!(
            "{chart}{}",
            table(&["column", "test", "score", "threshold", "drift"], &drift_rows(&all))
        ),
    ));
    Ok(body)
}

fn target_section(drift: &TargetDrift) -> String {
    let mut rows: Vec<&ColumnDrift> = drift.target.iter().collect();
    rows.push(&drift.prediction);
    section(
        "Target and prediction drift",
        if drift.target.is_some() {
            "The labels and the model's predicted classes, reference against current."
        } else {
            "The model's predicted classes, reference against current (the current data has no labels)."
        },
        &table(
            &["column", "test", "score", "threshold", "drift"],
            &drift_rows(&rows),
        ),
    )
}

fn performance_section(perf: &Performance) -> Result<String> {
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
    let labels: Vec<String> = perf.classes.iter().map(|c| c.class.clone()).collect();
    let f1: Vec<f64> = perf.classes.iter().map(|c| c.f1).collect();
    let chart = bar_chart("F1 per class", &labels, &f1, "F1")?;
    Ok(section(
        "Model performance on the current data",
        &format!(
            "{} labelled rows: accuracy {}, log loss {}, macro F1 {}",
            perf.rows,
            num(perf.accuracy, 4),
            num(perf.logloss, 4),
            num(perf.macro_f1, 4)
        ),
        &format!(
            "{chart}{}{}",
            table(&["class", "precision", "recall", "F1", "support"], &rows),
            table(&header, &confusion_rows)
        ),
    ))
}

fn summary_cells(s: Option<&ColumnSummary>) -> Vec<String> {
    match s {
        Some(ColumnSummary::Numeric { stats, p05, p95 }) => vec![
            stats.count.to_string(),
            num(stats.mean, 4),
            num(stats.std, 4),
            num(stats.min, 4),
            num(*p05, 4),
            num(stats.median, 4),
            num(*p95, 4),
            num(stats.max, 4),
            stats.distinct.to_string(),
        ],
        Some(ColumnSummary::Categorical {
            count,
            distinct,
            top,
        }) => {
            let mut cells = vec![count.to_string()];
            cells.push(
                top.iter()
                    .map(|l| format!("{} {}%", l.level, num(100.0 * l.share, 1)))
                    .collect::<Vec<_>>()
                    .join(", "),
            );
            cells.push(distinct.to_string());
            cells
        }
        None => vec!["0".into()],
    }
}

fn quality_sections(q: &QualityReport) -> Result<String> {
    let mut body = String::new();
    let summary = table(
        &[
            "",
            "rows",
            "rows rejected",
            "duplicate rows",
            "columns with missing",
            "out of range",
            "new levels",
            "constant",
        ],
        &[
            vec![
                "reference".into(),
                q.rows.0.to_string(),
                "-".into(),
                format!(
                    "{} ({}%)",
                    q.duplicate_rows.0,
                    num(100.0 * q.duplicate_share.0, 2)
                ),
                "-".into(),
                "-".into(),
                "-".into(),
                q.columns
                    .iter()
                    .filter(|c| c.constant_in_reference)
                    .count()
                    .to_string(),
            ],
            vec![
                "current".into(),
                q.current_rows_read.to_string(),
                q.current_invalid_rows.to_string(),
                format!(
                    "{} ({}%)",
                    q.duplicate_rows.1,
                    num(100.0 * q.duplicate_share.1, 2)
                ),
                q.columns_with_missing.len().to_string(),
                q.columns_out_of_range.len().to_string(),
                q.columns_with_new_levels.len().to_string(),
                q.constant_columns.len().to_string(),
            ],
        ],
    );
    body.push_str(&section(
        "Data quality",
        "Missing, invalid and out-of-schema cells come from the rows validation rejected; out of reference range counts valid current values outside the reference's min..max.",
        &summary,
    ));
    let issue_rows: Vec<Vec<String>> = q
        .columns
        .iter()
        .map(|c: &ColumnQuality| {
            let levels = |ls: &[super::quality::LevelCount]| {
                if ls.is_empty() {
                    "-".to_owned()
                } else {
                    ls.iter()
                        .map(|l| format!("{} ({})", l.level, l.count))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            };
            vec![
                c.column.clone(),
                c.missing.to_string(),
                c.invalid.to_string(),
                c.out_of_schema_range.to_string(),
                format!(
                    "{} ({}%)",
                    c.out_of_reference_range,
                    num(100.0 * c.out_of_reference_range_share, 2)
                ),
                levels(&c.new_levels),
                levels(&c.unknown_levels),
                match (c.constant_in_reference, c.constant_in_current) {
                    (false, false) => "-".into(),
                    (true, true) => "both".into(),
                    (true, false) => "reference".into(),
                    (false, true) => "current".into(),
                },
            ]
        })
        .collect();
    let labels: Vec<String> = q.columns.iter().map(|c| c.column.clone()).collect();
    let out_share: Vec<f64> = q
        .columns
        .iter()
        .map(|c| 100.0 * (c.out_of_reference_range_share + c.missing_share))
        .collect();
    let chart = bar_chart(
        "Current cells missing or outside the reference range, % per column",
        &labels,
        &out_share,
        "% of rows",
    )?;
    body.push_str(&section(
        "Problems per column",
        "",
        &format!(
            "{chart}{}",
            table(
                &[
                    "column",
                    "missing",
                    "invalid",
                    "out of schema range",
                    "out of reference range",
                    "new levels",
                    "unknown levels",
                    "constant",
                ],
                &issue_rows,
            )
        ),
    ));
    let mut numeric_rows = Vec::new();
    let mut categorical_rows = Vec::new();
    let mut charts = String::new();
    for c in &q.columns {
        for (side, s) in [
            ("reference", c.reference.as_ref()),
            ("current", c.current.as_ref()),
        ] {
            let mut cells = vec![c.column.clone(), side.to_owned()];
            cells.extend(summary_cells(s));
            if c.kind == "numeric" {
                numeric_rows.push(cells);
            } else {
                categorical_rows.push(cells);
            }
        }
    }
    // Box plots need the raw values; quartiles are enough to draw them from the summaries.
    for c in q.columns.iter().filter(|c| c.kind == "numeric") {
        let groups: Vec<Vec<f64>> = [c.reference.as_ref(), c.current.as_ref()]
            .iter()
            .map(|s| match s {
                Some(ColumnSummary::Numeric { stats, p05, p95 }) => {
                    vec![*p05, stats.p25, stats.median, stats.p75, *p95]
                }
                _ => Vec::new(),
            })
            .collect();
        if groups.iter().all(|g| !g.is_empty()) {
            charts.push_str(&box_plots(
                &format!(
                    "{}: quartiles, whiskers to the 5th / 95th percentile",
                    c.column
                ),
                &["reference".to_owned(), "current".to_owned()],
                &groups,
                &c.column,
            )?);
        }
    }
    body.push_str(&section(
        "Numeric columns, reference vs current",
        "",
        &format!(
            "{}<div class=\"charts\">{charts}</div>",
            table(
                &[
                    "column", "side", "count", "mean", "std", "min", "p5", "median", "p95", "max",
                    "distinct",
                ],
                &numeric_rows,
            )
        ),
    ));
    body.push_str(&section(
        "Categorical columns, reference vs current",
        "The most frequent levels with their shares.",
        &table(
            &["column", "side", "count", "top levels", "distinct"],
            &categorical_rows,
        ),
    ));
    Ok(body)
}

fn subtitle(reference: &std::path::Path, current: &std::path::Path) -> String {
    format!(
        "reference {} vs current {}",
        reference.display(),
        current.display()
    )
}

/// The drift report as a self-contained HTML page with a chart of the drift scores.
pub fn drift_html(report: &DriftReport, model: &str) -> Result<String> {
    Ok(page(
        &format!("tabtune drift: {model}"),
        &subtitle(&report.reference, &report.current),
        &drift_body(report)?,
    ))
}

fn drift_body(report: &DriftReport) -> Result<String> {
    let features = FeatureDrift {
        columns: report.columns.clone(),
        drift_share: report.drift_share,
        dataset_drift: report.dataset_drift,
    };
    let mut extra: Vec<&ColumnDrift> = report.target.iter().collect();
    extra.push(&report.prediction);
    let mut body = feature_sections(&features, report.rows, &extra)?;
    if let Some(perf) = &report.performance {
        body.push_str(&performance_section(perf)?);
    }
    Ok(body)
}

/// Drift and data quality on one page (what `tabtune monitor` writes).
pub fn monitor_html(report: &DriftReport, quality: &QualityReport, model: &str) -> Result<String> {
    Ok(page(
        &format!("tabtune drift: {model}, with data quality"),
        &subtitle(&report.reference, &report.current),
        &format!("{}{}", drift_body(report)?, quality_sections(quality)?),
    ))
}

/// A feature drift alone (the server's `/monitor/data-drift`).
pub fn feature_drift_html(
    drift: &FeatureDrift,
    rows: (usize, usize),
    reference: &std::path::Path,
    current: &std::path::Path,
    model: &str,
) -> Result<String> {
    Ok(page(
        &format!("tabtune data drift: {model}"),
        &subtitle(reference, current),
        &feature_sections(drift, rows, &[])?,
    ))
}

/// Target and prediction drift (the server's `/monitor/target-drift`).
pub fn target_drift_html(
    drift: &TargetDrift,
    reference: &std::path::Path,
    current: &std::path::Path,
    model: &str,
) -> Result<String> {
    Ok(page(
        &format!("tabtune target drift: {model}"),
        &subtitle(reference, current),
        &target_section(drift),
    ))
}

/// The data quality report as a page.
pub fn quality_html(quality: &QualityReport, model: &str) -> Result<String> {
    Ok(page(
        &format!("tabtune data quality: {model}"),
        &subtitle(&quality.reference, &quality.current),
        &quality_sections(quality)?,
    ))
}

/// Model performance as a page.
pub fn performance_html(
    perf: &Performance,
    current: &std::path::Path,
    model: &str,
) -> Result<String> {
    Ok(page(
        &format!("tabtune model performance: {model}"),
        &format!("labelled rows of {}", current.display()),
        &performance_section(perf)?,
    ))
}
