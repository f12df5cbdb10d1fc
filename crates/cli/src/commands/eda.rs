//! `tabtune eda`: the HTML report with charts.

use serde_json::json;
use tabtune_pipeline::eda::write_eda;

use crate::cli::EdaArgs;
use crate::context::Context;
use crate::error::Result;
use crate::output;

/// Runs the command.
pub fn run(ctx: &Context, args: &EdaArgs) -> Result<()> {
    let e = write_eda(
        &ctx.config,
        &Context::input(&args.input),
        args.output.clone(),
        ctx.progress.as_ref(),
    )?;
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
