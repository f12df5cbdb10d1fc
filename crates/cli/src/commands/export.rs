//! `tabtune export`: the best (or a chosen) trial of a study, fitted on every training row and
//! written as a bundle; and a bundle written as one ONNX file or a Triton repository entry.

use serde_json::json;
use tabtune_pipeline::export::export_trial;
use tabtune_pipeline::portable::export_portable;
use tabtune_tune::storage::redact;

use crate::cli::ExportArgs;
use crate::context::Context;
use crate::error::Result;
use crate::{output, settings};

/// Runs the command.
pub fn run(ctx: &Context, args: &ExportArgs) -> Result<()> {
    let trial = match &args.study {
        Some(study) => Some(export_trial(
            &ctx.config,
            &settings::export(args, study),
            ctx.progress.as_ref(),
        )?),
        None => None,
    };
    let portable = settings::portable(args, trial.as_ref().map(|e| e.bundle.as_path()))?
        .map(|p| export_portable(&p))
        .transpose()?;
    let mut v = json!({});
    let mut text = String::new();
    if let Some(e) = &trial {
        v = json!({"study": args.study, "storage": redact(&args.storage)});
        text = format!(
            "study {} trial {} ({}, value {}) fitted on {} rows\nbundle: {}\n",
            args.study.as_deref().unwrap_or_default(),
            e.trial.number,
            e.family.name(),
            e.trial
                .value
                .map_or_else(|| "-".into(), |v| format!("{v:.5}")),
            e.rows,
            e.bundle.display()
        );
        output::merge(&mut v, e.to_json());
    }
    if let Some(p) = &portable {
        let m = &p.metadata;
        text.push_str(&format!(
            "{} ({}, {} classes) -> {} ({} bytes, opset {} + ai.onnx.ml {})\n",
            p.bundle.display(),
            m.family,
            m.classes.len(),
            p.path.display(),
            p.bytes,
            m.opset,
            m.ml_opset
        ));
        output::merge(&mut v, p.to_json());
    }
    if ctx.json {
        output::json(&v);
    } else {
        output::text(&text);
    }
    Ok(())
}
