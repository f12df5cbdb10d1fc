//! The EDA report: data quality, class balance, per-class distributions, correlations.

use super::charts::{bar_chart, box_plots, heatmap};
use super::html::{num, page, section, table};
use crate::engineer::Engineered;
use crate::error::Result;
use crate::schema::Schema;
use crate::stats::{ColumnStats, class_balance, correlation, describe};
use crate::table::Table;
use crate::validate::ValidationReport;

/// What the EDA report is made from.
#[derive(Clone, Copy, Debug)]
pub struct EdaInput<'a> {
    /// Task name, for the title.
    pub task: &'a str,
    /// The schema.
    pub schema: &'a Schema,
    /// The validated rows.
    pub table: &'a Table,
    /// The load report (counts, duplicates, problems).
    pub report: &'a ValidationReport,
    /// Engineered features of the same rows.
    pub engineered: &'a [Engineered],
    /// Numeric columns (schema or engineered) whose per-class distributions are drawn.
    pub columns: &'a [String],
}

impl EdaInput<'_> {
    /// Values of a numeric schema column or an engineered feature.
    fn numeric(&self, name: &str) -> Option<&[f64]> {
        self.table.numeric(name).or_else(|| {
            self.engineered
                .iter()
                .find(|e| e.feature.name() == name)
                .map(|e| e.values.as_slice())
        })
    }

    fn unit(&self, name: &str) -> String {
        self.schema
            .column(name)
            .and_then(|c| c.unit())
            .unwrap_or("")
            .to_owned()
    }
}

/// Renders the report as one self-contained HTML page.
pub fn eda_html(input: &EdaInput<'_>) -> Result<String> {
    let EdaInput {
        schema,
        table: data,
        report,
        ..
    } = *input;
    let mut body = String::new();
    let file = data.source.display().to_string();

    let overview = table(
        &[
            "rows read",
            "valid",
            "invalid",
            "duplicate rows",
            "blank lines skipped",
            "feature columns",
            "engineered",
        ],
        &[vec![
            report.rows_read.to_string(),
            report.valid_rows.to_string(),
            report.invalid_rows.to_string(),
            report.duplicate_rows.to_string(),
            report.blank_lines.len().to_string(),
            data.columns.len().to_string(),
            input.engineered.len().to_string(),
        ]],
    );
    body.push_str(&section("Data quality", "Every row is counted: invalid rows were rejected with a reason, duplicates are kept and listed.", &overview));

    let classes = schema.classes();
    if let Some(balance) = class_balance(data, schema) {
        let total: usize = balance.iter().map(|(_, c)| c).sum();
        let labels: Vec<String> = balance.iter().map(|(l, _)| l.clone()).collect();
        let counts: Vec<f64> = balance.iter().map(|(_, c)| *c as f64).collect();
        let chart = bar_chart(
            &format!("Rows per class ({})", schema.target),
            &labels,
            &counts,
            "rows",
        )?;
        let rows: Vec<Vec<String>> = balance
            .iter()
            .map(|(l, c)| {
                vec![
                    l.clone(),
                    c.to_string(),
                    format!("{}%", num(100.0 * *c as f64 / total.max(1) as f64, 1)),
                ]
            })
            .collect();
        body.push_str(&section(
            "Class balance",
            "",
            &format!("{chart}{}", table(&["class", "rows", "share"], &rows)),
        ));

        let target = data.target.as_deref().unwrap_or_default();
        let mut charts = String::new();
        for name in input.columns {
            let Some(values) = input.numeric(name) else {
                continue;
            };
            let mut groups = vec![Vec::new(); classes.len()];
            for (v, &t) in values.iter().zip(target) {
                groups[t as usize].push(*v);
            }
            let unit = input.unit(name);
            charts.push_str(&box_plots(
                &format!("{name} by class"),
                classes,
                &groups,
                &unit,
            )?);
        }
        body.push_str(&section(
            "Distributions by class",
            "Boxes span the quartiles, whiskers 1.5 × IQR.",
            &format!("<div class=\"charts\">{charts}</div>"),
        ));
    }

    let mut names: Vec<String> = data
        .columns
        .iter()
        .filter(|c| data.numeric(&c.name).is_some())
        .map(|c| c.name.clone())
        .collect();
    names.extend(
        input
            .engineered
            .iter()
            .filter(|e| !e.feature.is_flag())
            .map(|e| e.feature.name().to_owned()),
    );
    if names.len() >= 2 {
        let columns: Vec<&[f64]> = names.iter().filter_map(|n| input.numeric(n)).collect();
        let chart = heatmap("Pearson correlation", &names, &correlation(&columns))?;
        body.push_str(&section(
            "Correlations",
            "Numeric columns and continuous engineered features.",
            &chart,
        ));
    }

    let stats = describe(data, schema);
    let mut numeric_rows = Vec::new();
    let mut categorical_rows = Vec::new();
    for s in &stats {
        match s {
            ColumnStats::Numeric {
                name,
                unit,
                stats: n,
            } => numeric_rows.push(vec![
                name.clone(),
                unit.clone().unwrap_or_default(),
                num(n.mean, 3),
                num(n.std, 3),
                num(n.min, 3),
                num(n.p25, 3),
                num(n.median, 3),
                num(n.p75, 3),
                num(n.max, 3),
                n.distinct.to_string(),
            ]),
            ColumnStats::Categorical { name, stats: c } => categorical_rows.push(vec![
                name.clone(),
                c.levels
                    .iter()
                    .map(|(l, n)| format!("{l}: {n}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            ]),
        }
    }
    body.push_str(&section(
        "Numeric columns",
        "",
        &table(
            &[
                "column", "unit", "mean", "std", "min", "25%", "median", "75%", "max", "distinct",
            ],
            &numeric_rows,
        ),
    ));
    body.push_str(&section(
        "Categorical columns",
        "Levels in schema order with their row counts; a level with 0 rows never occurs here.",
        &table(&["column", "levels"], &categorical_rows),
    ));

    if !report.duplicates.is_empty() {
        let rows: Vec<Vec<String>> = report
            .duplicates
            .iter()
            .take(50)
            .map(|d| vec![d.row.to_string(), d.first.to_string()])
            .collect();
        body.push_str(&section(
            "Duplicate rows",
            &format!(
                "{} rows repeat an earlier row in every column but the id (first 50 shown).",
                report.duplicate_rows
            ),
            &table(&["row", "repeats row"], &rows),
        ));
    }
    Ok(page(
        &format!("tabtune EDA: {}", input.task),
        &format!("{file}, {} rows", data.n_rows()),
        &body,
    ))
}
