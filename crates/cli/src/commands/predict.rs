//! `tabtune predict`: batch predictions from a model bundle.

use tabtune_pipeline::predict::predict_file;

use crate::cli::PredictArgs;
use crate::context::Context;
use crate::error::Result;
use crate::{output, settings};

/// Runs the command.
pub fn run(ctx: &Context, args: &PredictArgs) -> Result<()> {
    let p = predict_file(&ctx.config, &settings::predict(args), ctx.progress.as_ref())?;
    if ctx.json {
        output::json(&p.to_json(&args.model.to_string_lossy()));
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
