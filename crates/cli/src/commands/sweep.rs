//! `tabtune sweep`: a hyperparameter study over the training data; the leaderboard (or
//! `--json`) at the end.

use tabtune_pipeline::sweep::Decision;
use tabtune_pipeline::{SweepOutcome, sweep};

use crate::cli::SweepArgs;
use crate::context::Context;
use crate::error::{CliError, Result};
use crate::{output, settings};

/// Runs the command: the study, then its leaderboard (or `--json`).
pub fn run(ctx: &Context, args: &SweepArgs) -> Result<()> {
    let outcome = sweep(&settings::sweep(ctx, args)?, &ctx.hooks()?)?;
    print_summary(ctx, &outcome);
    if outcome.summary.reason == tabtune_tune::executor::StopReason::Interrupted {
        // The summary (with `"stopped": "interrupted"`) is out; the exit code says it stopped
        // early, so scripts do not take a partial study for a finished one.
        return Err(CliError::Interrupted {
            what: format!(
                "sweep of study {} (rerun the same command to resume)",
                outcome.study
            ),
        });
    }
    Ok(())
}

/// Prints the leaderboard (or the `--json` object).
pub fn print_summary(ctx: &Context, p: &SweepOutcome) {
    if ctx.json {
        output::json(&p.to_json());
        return;
    }
    let reason = p.stop_reason();
    let ranked = p.ranked();
    let rows: Vec<Vec<String>> = ranked
        .iter()
        .take(10)
        .enumerate()
        .map(|(i, t)| {
            let params: Vec<String> = t
                .params
                .iter()
                .map(|(k, v)| format!("{k}={}", v.short()))
                .collect();
            vec![
                (i + 1).to_string(),
                t.number.to_string(),
                format!("{:.5}", t.value.unwrap_or(f64::NAN)),
                t.duration_s()
                    .map_or_else(|| "-".into(), |s| format!("{s:.1}")),
                params.join(" "),
            ]
        })
        .collect();
    let mut s = format!(
        "study {} in {}: {} complete, {} pruned, {} failed ({reason}, {:.1} s)\n\n",
        p.study,
        p.storage,
        p.summary.n_complete,
        p.summary.n_pruned,
        p.summary.n_failed,
        p.summary.seconds
    );
    s.push_str(&output::table(
        &["rank", "trial", p.metric.name(), "seconds", "params"],
        &rows,
    ));
    if let Some(Decision { report: d, .. }) = &p.decision {
        s.push('\n');
        s.push_str(&output::decision_text(d));
    }
    if let Some(r) = &p.registered {
        s.push_str(&format!(
            "\nregistered {} version {} (bundle {}): {}\n",
            r.name,
            r.version.version,
            r.bundle.display(),
            r.promotion.reason
        ));
    }
    s.push_str(&format!("\nreport: {}\n", p.report.display()));
    output::text(&s);
}
