//! `tabtune features`: engineer features, fit (or apply) the preprocessor, write the table.

use serde_json::json;
use tabtune_pipeline::features::{FeaturesSettings, build_features};

use crate::cli::FeaturesArgs;
use crate::context::Context;
use crate::error::Result;
use crate::output;

/// Runs the command.
pub fn run(ctx: &Context, args: &FeaturesArgs) -> Result<()> {
    let settings = FeaturesSettings {
        input: Context::input(&args.input),
        output: args.output.clone(),
        preprocessor: args.preprocessor.clone(),
        apply: args.apply.clone(),
    };
    let f = build_features(&ctx.config, &settings, ctx.progress.as_ref())?;
    if ctx.json {
        output::json(&json!({
            "rows": f.rows,
            "columns": f.names.len(),
            "names": f.names,
            "output": f.output,
            "preprocessor": f.preprocessor,
            "fitted": f.fitted,
            "invalid_rows": f.invalid_rows,
            "rejects": f.rejects,
            "dropped_duplicates": f.dropped_duplicates,
            "seconds": f.seconds,
        }));
    } else {
        let verb = if f.fitted {
            "fitted and wrote"
        } else {
            "applied"
        };
        output::text(&format!(
            "{} rows x {} features -> {}\npreprocessor: {verb} {}\n({:.2} s)\n",
            f.rows,
            f.names.len(),
            f.output.display(),
            f.preprocessor.display(),
            f.seconds
        ));
    }
    Ok(())
}
