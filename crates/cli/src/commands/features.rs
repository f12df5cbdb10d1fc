//! `tabtune features`: engineer features, fit (or apply) the preprocessor, write the table.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use serde_json::json;
use tabtune_features::io::write_matrix;
use tabtune_features::{Preprocessor, PreprocessorSpec, TargetPresence};

use crate::cli::FeaturesArgs;
use crate::context::Context;
use crate::output;

/// Runs the command.
pub fn run(ctx: &Context, args: &FeaturesArgs) -> Result<()> {
    let start = Instant::now();
    let config = &ctx.config;
    let presence = if args.apply.is_some() {
        TargetPresence::Optional
    } else {
        TargetPresence::Required
    };
    let loaded = ctx.load(&args.input, presence)?;
    let mut table = loaded.table;
    let mut dropped = 0;
    let (preprocessor, preprocessor_path, fitted) = match &args.apply {
        Some(path) => (Preprocessor::load(path)?, path.clone(), false),
        None => {
            if config.transforms.dedup {
                let (deduped, removed) = table.dedup();
                dropped = removed.len();
                if dropped > 0 {
                    tracing::info!(
                        "transforms.dedup: dropped {dropped} duplicate training rows (first: row {})",
                        removed[0].row
                    );
                }
                table = deduped;
            }
            let path = args
                .preprocessor
                .clone()
                .unwrap_or_else(|| PathBuf::from("data/features/preprocessor.json"));
            (
                PreprocessorSpec::from_config(config).fit(&table)?,
                path,
                true,
            )
        }
    };
    let matrix = preprocessor.transform(&table)?;
    let output_path = args.output.clone().unwrap_or_else(|| {
        let stem = table
            .source
            .file_stem()
            .map_or_else(|| "data".into(), |s| s.to_string_lossy().into_owned());
        PathBuf::from("data/features").join(format!("{stem}.features.parquet"))
    });
    let id_name = config.schema.id.as_deref().unwrap_or("id");
    write_matrix(&output_path, &matrix, id_name, &config.schema.target)?;
    if fitted {
        preprocessor.save(&preprocessor_path)?;
    }
    let seconds = start.elapsed().as_secs_f64();
    if ctx.json {
        output::json(&json!({
            "rows": matrix.values.nrows(),
            "columns": matrix.names.len(),
            "names": matrix.names,
            "output": output_path,
            "preprocessor": preprocessor_path,
            "fitted": fitted,
            "invalid_rows": loaded.report.invalid_rows,
            "rejects": loaded.report.rejects,
            "dropped_duplicates": dropped,
            "seconds": seconds,
        }));
    } else {
        let verb = if fitted {
            "fitted and wrote"
        } else {
            "applied"
        };
        output::text(&format!(
            "{} rows x {} features -> {}\npreprocessor: {verb} {}\n({seconds:.2} s)\n",
            matrix.values.nrows(),
            matrix.names.len(),
            output_path.display(),
            preprocessor_path.display()
        ));
    }
    Ok(())
}
