//! `tabtune monitor`: drift of a current file against a reference, through a bundle.

use serde_json::json;
use tabtune_pipeline::monitor::{Monitored, monitor};

use crate::cli::MonitorArgs;
use crate::context::Context;
use crate::error::Result;
use crate::{output, settings};

/// Runs the command.
pub fn run(ctx: &Context, args: &MonitorArgs) -> Result<()> {
    let Monitored {
        report,
        quality,
        path,
    } = monitor(&ctx.config, &settings::monitor(args), ctx.progress.as_ref())?;
    if ctx.json {
        output::json(&json!({
            "dataset_drift": report.dataset_drift,
            "drift_share": report.drift_share,
            "drifted_columns": report.drifted_columns(),
            "report": path,
            "columns": report.columns,
            "target": report.target,
            "prediction": report.prediction,
            "performance": report.performance,
            "quality": quality,
        }));
    } else {
        let rows: Vec<Vec<String>> = report
            .columns
            .iter()
            .chain(report.target.iter())
            .chain(std::iter::once(&report.prediction))
            .map(|c| {
                vec![
                    c.column.clone(),
                    serde_json::to_value(c.test)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                    format!("{:.4}", c.score),
                    if c.drifted {
                        "drift".into()
                    } else {
                        "-".into()
                    },
                ]
            })
            .collect();
        let mut s = output::table(&["column", "test", "score", "drift"], &rows);
        if let Some(p) = &report.performance {
            s.push_str(&format!(
                "\nmodel on the current data: accuracy {:.4}, log loss {:.4}, macro F1 {:.4}\n",
                p.accuracy, p.logloss, p.macro_f1
            ));
        }
        s.push_str(&format!(
            "\ndata quality: {} current rows read, {} rejected, {} duplicate; missing in [{}]; out of range in [{}]; new levels in [{}]; constant: [{}]\n",
            quality.current_rows_read,
            quality.current_invalid_rows,
            quality.duplicate_rows.1,
            quality.columns_with_missing.join(", "),
            quality.columns_out_of_range.join(", "),
            quality.columns_with_new_levels.join(", "),
            quality.constant_columns.join(", "),
        ));
        s.push_str(&format!(
            "\ndataset drift: {} ({} of {} columns, {:.0}%)\nreport: {}\n",
            if report.dataset_drift { "yes" } else { "no" },
            report.drifted_columns().len(),
            report.columns.len(),
            100.0 * report.drift_share,
            path.display()
        ));
        output::text(&s);
    }
    Ok(())
}
