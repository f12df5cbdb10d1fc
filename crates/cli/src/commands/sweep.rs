//! `tabtune sweep`: a hyperparameter study over the training data; the leaderboard (or
//! `--json`) at the end.

use serde_json::{Value, json};
use tabtune_pipeline::sweep::Decision;
use tabtune_pipeline::{SweepOutcome, sweep};
use tabtune_tune::ParamValue;

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
    let best = p.summary.best.as_ref();
    let best_params: serde_json::Map<String, Value> = best
        .map(|b| {
            b.params
                .iter()
                .map(|(k, v)| (k.clone(), v.to_json()))
                .collect()
        })
        .unwrap_or_default();
    let reason = p.stop_reason();
    if ctx.json {
        let decision = p.decision.as_ref().map(
            |Decision {
                 report: d,
                 trials: numbers,
             }| {
                let labels: Vec<String> = numbers.iter().map(|n| format!("#{n}")).collect();
                output::decision_json(d, &labels)
            },
        );
        output::json(&json!({
            "study": p.study,
            "storage": p.storage,
            "metric": p.metric.name(),
            "n_trials": p.n_trials,
            "n_complete": p.summary.n_complete,
            "n_pruned": p.summary.n_pruned,
            "n_failed": p.summary.n_failed,
            "n_run": p.summary.n_run,
            "stopped": reason,
            "best_value": best.and_then(|b| b.value),
            "best_trial": best.map(|b| b.number),
            "best_params": best_params,
            "decision": decision,
            "bundle": p.registered.as_ref().map(|r| &r.bundle),
            "registered": p.registered.as_ref().map(|r| json!({
                "name": r.name,
                "version": r.version.version,
                "champion": r.promotion.promoted,
                "previous_champion": r.promotion.previous,
                "reason": r.promotion.reason,
            })),
            "register_error": p.register_error,
            "report": p.report,
            "seconds": p.summary.seconds,
        }));
        return;
    }
    let ranked = p.ranked();
    let rows: Vec<Vec<String>> = ranked
        .iter()
        .take(10)
        .enumerate()
        .map(|(i, t)| {
            let params: Vec<String> = t
                .params
                .iter()
                .map(|(k, v)| format!("{k}={}", short(v)))
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

/// A parameter value for the leaderboard: floats to 4 significant digits.
fn short(v: &ParamValue) -> String {
    match v {
        ParamValue::Float(x) if *x != 0.0 && (x.abs() < 1e-3 || x.abs() >= 1e5) => {
            format!("{x:.3e}")
        }
        ParamValue::Float(x) => {
            let digits = (3 - x.abs().log10().floor() as i32).clamp(0, 8) as usize;
            format!("{x:.digits$}")
        }
        other => other.to_string(),
    }
}
