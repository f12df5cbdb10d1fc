//! `tabtune run`: the whole pipeline from one config (see `tabtune_pipeline::run`); prints a
//! table of its steps and where everything went, or one JSON object.

use serde_json::{Value, json};
use tabtune_pipeline::RunOutcome;
use tabtune_pipeline::run::SweepRun;

use crate::cli::RunArgs;
use crate::context::Context;
use crate::error::Result;
use crate::{output, settings};

/// Runs the command.
pub fn run(ctx: &Context, args: &RunArgs) -> Result<()> {
    let plan = settings::run(ctx, args)?;
    let o = tabtune_pipeline::run(&plan, &ctx.hooks()?)?;
    if ctx.json {
        output::json(&outcome_json(&o, &plan.settings.register));
    } else {
        output::text(&outcome_text(&o, &ctx.config.name));
    }
    Ok(())
}

fn outcome_json(o: &RunOutcome, register: &str) -> Value {
    let c = &o.champion;
    json!({
        "champion": c.dir,
        "champion_ref": c.reference,
        "version": c.version,
        "family": c.family,
        "cv_accuracy": c.cv_accuracy,
        "cv_logloss": c.cv_logloss,
        "registered_name": register,
        "device": o.device.name,
        "adapter": o.device.adapter,
        "registry": o.registry,
        "studies": o.sweeps.iter().map(sweep_json).collect::<Vec<_>>(),
        "decision": o.decision.as_ref().map(|d| {
            let mut v = output::decision_json(&d.report, &d.labels);
            v["accuracy"] = json!(d.ensemble.accuracy);
            v["bundle"] = json!(d.ensemble.dir);
            v["version"] = json!(d.version);
            v
        }),
        "allocation": o.allocation.iter().map(|a| json!({
            "space": a.space,
            "share": a.share,
            "first_seconds": a.first_seconds,
            "first_best": a.first_best,
            "weight": a.weight,
            "second_seconds": a.second_seconds,
        })).collect::<Vec<_>>(),
        "reports": {
            "run": o.report,
            "eda": o.eda.path,
            "studies": o.sweeps.iter().map(|d| &d.outcome.report).collect::<Vec<_>>(),
            "monitor": o.monitored.as_ref().map(|m| &m.path),
            "submission": o.submission.as_ref().map(|p| &p.output),
        },
        "submission_rows": o.submission.as_ref().map(|p| p.rows),
        "dataset_drift": o.monitored.as_ref().map(|m| m.report.dataset_drift),
        "drifted_columns": o.monitored.as_ref().map(|m| m.report.drifted_columns()),
        "budget_minutes": o.budget_minutes,
        "seconds": o.seconds,
        "steps": o.steps.iter().map(|s| json!({"step": s.name, "seconds": s.seconds, "detail": s.detail})).collect::<Vec<_>>(),
    })
}

fn outcome_text(o: &RunOutcome, task: &str) -> String {
    let rows: Vec<Vec<String>> = o
        .steps
        .iter()
        .map(|s| {
            vec![
                s.name.to_owned(),
                format!("{:.1}", s.seconds),
                s.detail.clone(),
            ]
        })
        .collect();
    let mut s = format!(
        "tabtune run: {task} on {} in {:.1} min (budget {} min)\n\n",
        o.device.name,
        o.seconds / 60.0,
        o.budget_minutes
    );
    s.push_str(&output::table(&["step", "seconds", "result"], &rows));
    let c = &o.champion;
    s.push_str(&format!(
        "\nchampion: {} = version {} ({}), CV accuracy {}\n  bundle: {}\n",
        c.reference,
        c.version,
        c.family,
        c.cv_accuracy
            .map_or_else(|| "-".into(), |a| format!("{a:.5}")),
        c.dir.display()
    ));
    if let Some(d) = &o.decision {
        s.push('\n');
        s.push_str(&output::decision_text(&d.report));
        s.push_str(&format!(
            "-> version {} ({} members)\n",
            d.version,
            d.ensemble.members.len()
        ));
    }
    s.push_str(&format!("\nrun report:        {}\n", o.report.display()));
    s.push_str(&format!("EDA report:        {}\n", o.eda.path.display()));
    for d in &o.sweeps {
        s.push_str(&format!(
            "study report:      {}\n",
            d.outcome.report.display()
        ));
    }
    if let Some(m) = &o.monitored {
        s.push_str(&format!("monitoring report: {}\n", m.path.display()));
    }
    if let Some(p) = &o.submission {
        s.push_str(&format!(
            "submission:        {} ({} rows)\n",
            p.output.display(),
            p.rows
        ));
    }
    s.push_str(&format!(
        "\nserve it:          tabtune serve --model {}\n",
        c.reference
    ));
    s
}

fn sweep_json(d: &SweepRun) -> Value {
    let o = &d.outcome;
    json!({
        "space": d.space,
        "study": o.study,
        "storage": o.storage,
        "metric": o.metric.name(),
        "n_trials": d.n_trials,
        "population": d.population,
        "timeout_seconds": d.timeout,
        "n_complete": o.summary.n_complete,
        "n_pruned": o.summary.n_pruned,
        "n_failed": o.summary.n_failed,
        "best_value": o.summary.best.as_ref().and_then(|b| b.value),
        "best_trial": o.summary.best.as_ref().map(|b| b.number),
        "decision": o.decision.as_ref().map(|d| {
            let labels: Vec<String> = d.trials.iter().map(|n| format!("#{n}")).collect();
            output::decision_json(&d.report, &labels)
        }),
        "registered": o.registered.as_ref().map(|r| json!({
            "name": r.name,
            "version": r.version.version,
            "bundle": r.bundle,
            "champion": r.promotion.promoted,
            "reason": r.promotion.reason,
        })),
        "report": o.report,
        "seconds": o.summary.seconds,
    })
}
