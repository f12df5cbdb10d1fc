//! `tabtune monitor`: drift of a current file against a reference, through a bundle.

use std::path::PathBuf;

use anyhow::{Result, bail};
use serde_json::json;
use tabtune_features::io::write_bytes_atomic;
use tabtune_features::{FeaturesError, TargetPresence};
use tabtune_infer::load_bundle;
use tabtune_infer::monitor::{DriftReport, QualityReport, data_drift, data_quality, monitor_html};

use crate::cli::{InputArgs, MonitorArgs, OnInvalidArg};
use crate::context::Context;
use crate::model_ref::resolve_model;
use crate::output;

/// What `monitor` computed and where its report went.
pub struct Monitored {
    /// Drift of every column, the target, the prediction, and performance when labelled.
    pub report: DriftReport,
    /// Data quality of the current data against the reference.
    pub quality: QualityReport,
    /// The HTML report.
    pub path: PathBuf,
}

/// Runs the command.
pub fn run(ctx: &Context, args: &MonitorArgs) -> Result<()> {
    let Monitored {
        report,
        quality,
        path,
    } = monitor(ctx, args)?;
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

/// Computes drift and data quality of the current data and writes the HTML report.
pub fn monitor(ctx: &Context, args: &MonitorArgs) -> Result<Monitored> {
    let config = &ctx.config;
    let predictor = load_bundle(&resolve_model(&args.model.to_string_lossy(), None)?)?;
    let reference = args
        .reference
        .clone()
        .unwrap_or_else(|| config.train_path());
    let Some(current) = args
        .current
        .clone()
        .or_else(|| config.data.current.as_ref().map(|f| config.data_path(f)))
    else {
        bail!(FeaturesError::ConfigValue {
            path: config.path.clone(),
            key: "data.current".into(),
            message: "is not set; pass --current FILE".into(),
        });
    };
    let strict = InputArgs {
        input: None,
        on_invalid: OnInvalidArg::Fail,
        rejects: None,
    };
    let schema = &predictor.bundle().meta.schema;
    let spinner = output::spinner(ctx.progress, "computing drift");
    let reference_table = ctx
        .load_file(&reference, &strict, schema, TargetPresence::Optional)?
        .table;
    let current_input = InputArgs {
        input: None,
        on_invalid: args.on_invalid,
        rejects: None,
    };
    let current_loaded =
        ctx.load_file(&current, &current_input, schema, TargetPresence::Optional)?;
    let current_table = current_loaded.table;
    let report = data_drift(&predictor, &reference_table, &current_table)?;
    let quality = data_quality(
        schema,
        &reference_table,
        &current_table,
        Some(&current_loaded.report),
    );
    let name = &predictor.bundle().meta.name;
    let html = monitor_html(&report, &quality, name)?;
    spinner.finish_and_clear();
    let path = args.output.clone().unwrap_or_else(|| {
        let stem = current
            .file_stem()
            .map_or_else(|| "current".into(), |s| s.to_string_lossy().into_owned());
        PathBuf::from(format!("reports/monitor-{name}-{stem}.html"))
    });
    write_bytes_atomic(&path, html.as_bytes())?;
    Ok(Monitored {
        report,
        quality,
        path,
    })
}
