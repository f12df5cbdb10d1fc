//! `tabtune eda`: the HTML report with charts.

use std::path::PathBuf;

use anyhow::Result;
use serde_json::json;
use tabtune_features::TargetPresence;
use tabtune_features::engineer::engineer;
use tabtune_features::io::write_bytes_atomic;
use tabtune_features::report::{EdaInput, eda_html};

use crate::cli::{EdaArgs, InputArgs};
use crate::context::Context;
use crate::output;

/// What `eda` wrote.
pub struct Eda {
    /// The HTML report.
    pub path: PathBuf,
    /// Rows read, invalid rows and duplicate rows of the input.
    pub rows: usize,
    /// Rows that failed validation.
    pub invalid_rows: usize,
    /// Valid rows repeating an earlier one.
    pub duplicate_rows: usize,
    /// Rows kept.
    pub valid_rows: usize,
    /// Size of the report.
    pub bytes: usize,
}

/// Runs the command.
pub fn run(ctx: &Context, args: &EdaArgs) -> Result<()> {
    let e = write_report(ctx, &args.input, args.output.clone())?;
    if ctx.json {
        output::json(&json!({
            "report": e.path,
            "rows": e.rows,
            "invalid_rows": e.invalid_rows,
            "duplicate_rows": e.duplicate_rows,
            "bytes": e.bytes,
        }));
    } else {
        output::text(&format!(
            "EDA report: {} ({} rows)\n",
            e.path.display(),
            e.valid_rows
        ));
    }
    Ok(())
}

/// Loads the input and writes the EDA report (default `reports/eda-<task>.html`).
pub fn write_report(ctx: &Context, input: &InputArgs, output: Option<PathBuf>) -> Result<Eda> {
    let config = &ctx.config;
    let loaded = ctx.load(input, TargetPresence::Optional)?;
    let spinner = output::spinner(ctx.progress, "drawing the EDA report");
    let engineered = engineer(&loaded.table, &config.features, &config.inputs)?;
    let html = eda_html(&EdaInput {
        task: &config.name,
        schema: &config.schema,
        table: &loaded.table,
        report: &loaded.report,
        engineered: &engineered,
        columns: &config.eda_columns,
    })?;
    let path = output.unwrap_or_else(|| PathBuf::from(format!("reports/eda-{}.html", config.name)));
    write_bytes_atomic(&path, html.as_bytes())?;
    spinner.finish_and_clear();
    Ok(Eda {
        path,
        rows: loaded.report.rows_read,
        invalid_rows: loaded.report.invalid_rows,
        duplicate_rows: loaded.report.duplicate_rows,
        valid_rows: loaded.table.n_rows(),
        bytes: html.len(),
    })
}
