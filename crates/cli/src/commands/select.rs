//! `tabtune select`: sequential forward or backward feature selection, run as a study.

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
        output::json(&o.to_json());
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
    if let Some(r) = &o.registered {
        s.push_str(&format!(
            "registered {} as {} version {}: {}\n",
            r.bundle.display(),
            r.name,
            r.version.version,
            r.promotion.reason
        ));
    }
    output::text(&s);
    Ok(())
}
