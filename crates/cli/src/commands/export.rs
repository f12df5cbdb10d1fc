//! `tabtune export`: the best (or a chosen) trial of a study, fitted on every training row and
//! written as a bundle.

use serde_json::json;
use tabtune_pipeline::export::export_trial;
use tabtune_tune::storage::redact;

use crate::cli::ExportArgs;
use crate::context::Context;
use crate::error::Result;
use crate::{output, settings};

/// Runs the command.
pub fn run(ctx: &Context, args: &ExportArgs) -> Result<()> {
    let e = export_trial(&ctx.config, &settings::export(args), ctx.progress.as_ref())?;
    if ctx.json {
        output::json(&json!({
            "bundle": e.bundle,
            "study": args.study,
            "storage": redact(&args.storage),
            "trial": e.trial.number,
            "value": e.trial.value,
            "model": e.family.name(),
            "params": e.params,
        }));
    } else {
        output::text(&format!(
            "study {} trial {} ({}, value {}) fitted on {} rows\nbundle: {}\n",
            args.study,
            e.trial.number,
            e.family.name(),
            e.trial
                .value
                .map_or_else(|| "-".into(), |v| format!("{v:.5}")),
            e.rows,
            e.bundle.display()
        ));
    }
    Ok(())
}
