//! `tabtune predict`: batch predictions from a model bundle.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::{Result, bail};
use serde_json::json;
use tabtune_features::io::write_atomic;
use tabtune_features::{FeaturesError, TargetPresence};
use tabtune_infer::load_bundle;

use crate::cli::PredictArgs;
use crate::context::Context;
use crate::model_ref::resolve_model;
use crate::output;

/// What `predict` wrote.
pub struct Predicted {
    /// Rows predicted.
    pub rows: usize,
    /// The CSV written.
    pub output: PathBuf,
    /// The bundle's model name and family.
    pub name: String,
    /// The bundle's family.
    pub family: String,
    /// Predicted rows per class, in class order.
    pub per_class: Vec<(String, usize)>,
    /// Rows of the input that failed validation (quarantined).
    pub invalid_rows: usize,
    /// Where the rejected rows went.
    pub rejects: Option<PathBuf>,
}

/// Runs the command.
pub fn run(ctx: &Context, args: &PredictArgs) -> Result<()> {
    let p = predict_file(ctx, args)?;
    if ctx.json {
        let per_class: serde_json::Map<String, serde_json::Value> = p
            .per_class
            .iter()
            .map(|(c, n)| (c.clone(), json!(n)))
            .collect();
        output::json(&json!({
            "rows": p.rows,
            "output": p.output,
            "model": args.model,
            "family": p.family,
            "predicted_classes": per_class,
            "invalid_rows": p.invalid_rows,
            "rejects": p.rejects,
        }));
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

/// Predicts the input with the model and writes the CSV (or the submission) atomically.
pub fn predict_file(ctx: &Context, args: &PredictArgs) -> Result<Predicted> {
    let predictor = load_bundle(&resolve_model(&args.model.to_string_lossy(), None)?)?;
    let bundle = predictor.bundle();
    let input = match (&args.input.input, &ctx.config.data.test) {
        (Some(path), _) => path.clone(),
        (None, Some(test)) => ctx.config.data_path(test),
        (None, None) => bail!(FeaturesError::ConfigValue {
            path: ctx.config.path.clone(),
            key: "data.test".into(),
            message: "is not set; pass --input FILE".into(),
        }),
    };
    let schema = &bundle.meta.schema;
    let loaded = ctx.load_file(&input, &args.input, schema, TargetPresence::Optional)?;
    let prediction = predictor.predict(&loaded.table)?;
    let classes = predictor.classes();
    let id_name = schema.id.clone().unwrap_or_else(|| "id".to_owned());
    if args.submission && prediction.ids.is_none() {
        bail!(FeaturesError::BadFile {
            path: input.clone(),
            message: format!("--submission needs the id column `{id_name}`, which this file lacks"),
        });
    }
    let output_path = args.output.clone().unwrap_or_else(|| {
        let stem = input
            .file_stem()
            .map_or_else(|| "data".into(), |s| s.to_string_lossy().into_owned());
        PathBuf::from(format!(
            "reports/predictions/{stem}-{}.csv",
            bundle.meta.name
        ))
    });
    write_atomic(&output_path, |w| {
        let to_err = |e: std::io::Error| FeaturesError::Io {
            path: output_path.clone(),
            source: e,
        };
        if args.submission {
            writeln!(w, "{id_name},{}", schema.target).map_err(to_err)?;
        } else {
            let id = if prediction.ids.is_some() {
                format!("{id_name},")
            } else {
                String::new()
            };
            writeln!(w, "{id}row,predicted,{}", classes.join(",")).map_err(to_err)?;
        }
        for (i, &label) in prediction.labels.iter().enumerate() {
            let class = &classes[label as usize];
            let id = prediction.ids.as_ref().map(|ids| ids[i].as_str());
            if args.submission {
                writeln!(w, "{},{class}", id.unwrap_or_default()).map_err(to_err)?;
            } else {
                let probs: Vec<String> = prediction
                    .proba
                    .row(i)
                    .iter()
                    .map(|p| format!("{p:.6}"))
                    .collect();
                let id = id.map_or_else(String::new, |id| format!("{id},"));
                writeln!(w, "{id}{},{class},{}", prediction.rows[i], probs.join(","))
                    .map_err(to_err)?;
            }
        }
        Ok(())
    })?;
    let mut counts = vec![0usize; classes.len()];
    for &l in &prediction.labels {
        counts[l as usize] += 1;
    }
    Ok(Predicted {
        rows: prediction.labels.len(),
        output: output_path,
        name: bundle.meta.name.clone(),
        family: bundle.meta.family.clone(),
        per_class: classes.iter().cloned().zip(counts).collect(),
        invalid_rows: loaded.report.invalid_rows,
        rejects: loaded.report.rejects.clone(),
    })
}
