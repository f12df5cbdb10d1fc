//! `tabtune eda`: the HTML report with charts.

use std::path::PathBuf;

use anyhow::Result;
use serde_json::json;
use tabtune_features::TargetPresence;
use tabtune_features::engineer::engineer;
use tabtune_features::io::write_bytes_atomic;
use tabtune_features::report::{EdaInput, eda_html};

use crate::cli::EdaArgs;
use crate::context::Context;
use crate::output;

/// Runs the command.
pub fn run(ctx: &Context, args: &EdaArgs) -> Result<()> {
    let config = &ctx.config;
    let loaded = ctx.load(&args.input, TargetPresence::Optional)?;
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
    let path = args
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("reports/eda-{}.html", config.name)));
    write_bytes_atomic(&path, html.as_bytes())?;
    spinner.finish_and_clear();
    if ctx.json {
        output::json(&json!({
            "report": path,
            "rows": loaded.report.rows_read,
            "invalid_rows": loaded.report.invalid_rows,
            "duplicate_rows": loaded.report.duplicate_rows,
            "bytes": html.len(),
        }));
    } else {
        output::text(&format!(
            "EDA report: {} ({} rows)\n",
            path.display(),
            loaded.table.n_rows()
        ));
    }
    Ok(())
}
