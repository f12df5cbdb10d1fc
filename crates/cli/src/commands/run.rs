//! `tabtune run`: the whole pipeline from one config (see `tabtune_pipeline::run`); prints a
//! table of its steps and where everything went, or one JSON object.

use tabtune_pipeline::RunOutcome;

use crate::cli::RunArgs;
use crate::context::Context;
use crate::error::Result;
use crate::{output, settings};

/// Runs the command.
pub fn run(ctx: &Context, args: &RunArgs) -> Result<()> {
    let plan = settings::run(ctx, args)?;
    let o = tabtune_pipeline::run(&plan, &ctx.hooks()?)?;
    if ctx.json {
        output::json(&o.to_json(&plan.settings.register));
    } else {
        output::text(&outcome_text(&o, &ctx.config.name));
    }
    Ok(())
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
