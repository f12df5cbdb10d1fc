//! `tabtune select`: sequential forward or backward feature selection, run as a study.

use serde_json::json;
use tabtune_pipeline::select::select;

use crate::cli::SelectArgs;
use crate::context::Context;
use crate::error::Result;
use crate::{output, settings};

/// Runs the command.
pub fn run(ctx: &Context, args: &SelectArgs) -> Result<()> {
    let o = select(&ctx.config, &settings::select(args)?, ctx.progress.as_ref())?;
    let strategy = o.strategy.name();
    let (min_k, max_k) = o.range;
    if ctx.json {
        let path: Vec<serde_json::Value> = o
            .by_size
            .iter()
            .map(|(k, (s, set))| json!({"n_features": k, "accuracy": s, "features": set}))
            .collect();
        output::json(&json!({
            "study": o.study,
            "storage": o.storage,
            "strategy": strategy,
            "model": o.model,
            "features": o.features,
            "n_features": o.features.len(),
            "n_total": o.n_total,
            "accuracy": o.accuracy,
            "baseline_accuracy": o.baseline_accuracy,
            "evaluations": o.evaluations,
            "resumed": o.resumed,
            "path": path,
            "output": o.output,
            "seconds": o.seconds,
        }));
        return Ok(());
    }
    let rows: Vec<Vec<String>> = o
        .by_size
        .iter()
        .map(|(k, (s, _))| {
            let mark = if *k == o.features.len() {
                "<- chosen"
            } else {
                ""
            };
            vec![k.to_string(), format!("{s:.5}"), mark.to_owned()]
        })
        .collect();
    let mut s = format!(
        "{strategy} selection with {} on {} rows: {} features, keeping {min_k}..{max_k}\n\n",
        o.model, o.rows, o.n_total
    );
    s.push_str(&output::table(&["features", "accuracy", ""], &rows));
    s.push_str(&format!(
        "\nchosen {} features (accuracy {:.5}; all {}: {:.5}): {}\nwritten to {} (use with `tabtune sweep --features`)\n",
        o.features.len(),
        o.accuracy,
        o.n_total,
        o.baseline_accuracy,
        o.features.join(", "),
        o.output.display()
    ));
    output::text(&s);
    Ok(())
}
