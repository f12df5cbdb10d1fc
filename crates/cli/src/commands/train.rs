//! `tabtune train`: k-fold cross-validation of one model family.

use tabtune_pipeline::train::train;

use crate::cli::TrainArgs;
use crate::context::Context;
use crate::error::Result;
use crate::{output, settings};

/// Runs the command.
pub fn run(ctx: &Context, args: &TrainArgs) -> Result<()> {
    let o = train(&ctx.config, &settings::train(args), ctx.progress.as_ref())?;
    let report = &o.report;
    if ctx.json {
        output::json(&o.to_json());
    } else {
        let rows: Vec<Vec<String>> = report
            .folds
            .iter()
            .map(|f| {
                vec![
                    f.repeat.to_string(),
                    f.fold.to_string(),
                    format!("{:.4}", f.accuracy),
                    format!("{:.4}", f.logloss),
                    f.rounds.to_string(),
                    format!("{:.1}", f.seconds),
                ]
            })
            .collect();
        let extra = if o.extra_rows > 0 {
            format!(" + {} extra training rows", o.extra_rows)
        } else {
            String::new()
        };
        let mut s = format!(
            "{} on {} rows{extra} ({}), {}-fold CV x {}\n",
            o.family.name(),
            o.rows,
            report.device,
            o.kfold.folds,
            o.kfold.repeats
        );
        s.push_str(&output::table(
            &["repeat", "fold", "accuracy", "logloss", "rounds", "seconds"],
            &rows,
        ));
        let total: f64 = report.importance.iter().map(|(_, g)| g).sum();
        let top: Vec<Vec<String>> = report
            .importance
            .iter()
            .take(10)
            .map(|(n, g)| {
                vec![
                    n.clone(),
                    format!("{:.1}%", 100.0 * g / total.max(f64::MIN_POSITIVE)),
                ]
            })
            .collect();
        if !top.is_empty() {
            s.push_str("\nTop features (share of split gain over all folds)\n");
            s.push_str(&output::table(&["feature", "gain"], &top));
        }
        s.push_str(&format!(
            "\naccuracy {:.4} ± {:.4}   logloss {:.4}   {:.1} s\nout-of-fold predictions: {}\n",
            report.accuracy_mean,
            report.accuracy_std,
            report.logloss_mean,
            report.seconds,
            o.oof.display()
        ));
        if let Some(dir) = &o.checkpoints {
            s.push_str(&format!(
                "best-epoch checkpoints (one per fold): {}\n",
                dir.display()
            ));
        }
        if let Some(b) = &o.bundle {
            s.push_str(&format!("bundle (fitted on all rows): {}\n", b.display()));
        }
        output::text(&s);
    }
    Ok(())
}
