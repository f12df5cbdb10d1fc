//! `tabtune predict`: batch predictions from a model bundle.

use serde_json::json;
use tabtune_pipeline::predict::predict_file;

use crate::cli::PredictArgs;
use crate::context::Context;
use crate::error::Result;
use crate::{output, settings};

/// Runs the command.
pub fn run(ctx: &Context, args: &PredictArgs) -> Result<()> {
    let p = predict_file(&ctx.config, &settings::predict(args), ctx.progress.as_ref())?;
    if ctx.json {
        let per_class: serde_json::Map<String, serde_json::Value> = p
            .per_class
            .iter()
            .map(|(c, n)| (c.clone(), json!(n)))
            .collect();
        output::json(&json!({
            "rows": p.rows,
            "output": p.output,
            "model": args.model,
            "family": p.family,
            "predicted_classes": per_class,
            "invalid_rows": p.invalid_rows,
            "rejects": p.rejects,
        }));
    } else {
        let rows: Vec<Vec<String>> = p
            .per_class
            .iter()
            .map(|(c, n)| vec![c.clone(), n.to_string()])
            .collect();
        let mut s = format!(
            "{} rows predicted with {} ({}) -> {}\n\n",
            p.rows,
            p.name,
            p.family,
            p.output.display()
        );
        s.push_str(&output::table(&["predicted class", "rows"], &rows));
        output::text(&s);
    }
    Ok(())
}
