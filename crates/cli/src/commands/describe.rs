//! `tabtune data describe`: schema check, per-column statistics, class balance.

use serde_json::json;
use tabtune_features::TargetPresence;
use tabtune_features::stats::{ColumnStats, class_balance, describe};
use tabtune_pipeline::data::load;

use crate::cli::DescribeArgs;
use crate::context::Context;
use crate::error::Result;
use crate::output;

/// Runs the command.
pub fn run(ctx: &Context, args: &DescribeArgs) -> Result<()> {
    let loaded = load(
        &ctx.config,
        &Context::input(&args.input),
        TargetPresence::Optional,
        ctx.progress.as_ref(),
    )?;
    let (table, report) = (&loaded.table, &loaded.report);
    let schema = &ctx.config.schema;
    let columns = table.columns.len()
        + usize::from(table.ids.is_some())
        + usize::from(table.target.is_some());
    let balance = class_balance(table, schema);
    let stats = describe(table, schema);
    if ctx.json {
        let classes: serde_json::Map<String, serde_json::Value> = balance
            .iter()
            .flatten()
            .map(|(c, n)| (c.clone(), json!(n)))
            .collect();
        output::json(&json!({
            "file": report.file,
            "rows": report.rows_read,
            "valid_rows": report.valid_rows,
            "columns": columns,
            "classes": classes,
            "invalid_rows": report.invalid_rows,
            "duplicate_rows": report.duplicate_rows,
            "duplicates": report.duplicates,
            "blank_lines": report.blank_lines,
            "rejects": report.rejects,
            "issues": report.issues,
            "stats": stats,
        }));
        return Ok(());
    }
    let mut s = format!(
        "{}: {} rows, {} columns; {} valid, {} invalid, {} duplicate rows",
        report.file.display(),
        report.rows_read,
        columns,
        report.valid_rows,
        report.invalid_rows,
        report.duplicate_rows
    );
    if !report.blank_lines.is_empty() {
        s.push_str(&format!(
            ", {} blank line(s) skipped",
            report.blank_lines.len()
        ));
    }
    s.push('\n');
    if let Some(r) = &report.rejects {
        s.push_str(&format!("rejected rows written to {}\n", r.display()));
    }
    if let Some(balance) = &balance {
        let total: usize = balance.iter().map(|(_, n)| n).sum();
        let rows: Vec<Vec<String>> = balance
            .iter()
            .map(|(c, n)| {
                vec![
                    c.clone(),
                    n.to_string(),
                    format!("{:.1}%", 100.0 * *n as f64 / total.max(1) as f64),
                ]
            })
            .collect();
        s.push_str(&format!("\nClass balance ({})\n", schema.target));
        s.push_str(&output::table(&["class", "rows", "share"], &rows));
    }
    let mut numeric = Vec::new();
    let mut categorical = Vec::new();
    for c in &stats {
        match c {
            ColumnStats::Numeric {
                name,
                unit,
                stats: n,
            } => numeric.push(vec![
                name.clone(),
                unit.clone().unwrap_or_default(),
                format!("{:.3}", n.mean),
                format!("{:.3}", n.std),
                format!("{:.3}", n.min),
                format!("{:.3}", n.p25),
                format!("{:.3}", n.median),
                format!("{:.3}", n.p75),
                format!("{:.3}", n.max),
                n.distinct.to_string(),
            ]),
            ColumnStats::Categorical { name, stats: c } => categorical.push(vec![
                name.clone(),
                c.levels
                    .iter()
                    .map(|(l, n)| format!("{l}={n}"))
                    .collect::<Vec<_>>()
                    .join(" "),
            ]),
        }
    }
    s.push_str("\nNumeric columns\n");
    s.push_str(&output::table(
        &[
            "column", "unit", "mean", "std", "min", "25%", "median", "75%", "max", "distinct",
        ],
        &numeric,
    ));
    s.push_str("\nCategorical columns (rows per level)\n");
    s.push_str(&output::table(&["column", "levels"], &categorical));
    if !report.duplicates.is_empty() {
        let shown: Vec<String> = report
            .duplicates
            .iter()
            .take(10)
            .map(|d| format!("{} = {}", d.row, d.first))
            .collect();
        s.push_str(&format!(
            "\nDuplicate rows (row = first occurrence): {}{}\n",
            shown.join(", "),
            if report.duplicate_rows > 10 {
                ", ..."
            } else {
                ""
            }
        ));
    }
    output::text(&s);
    Ok(())
}
