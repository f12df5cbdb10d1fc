//! The engineered table of a data file: features engineered, the preprocessor fitted on the
//! (de-duplicated) training rows or an existing one applied, the matrix written as Parquet or
//! CSV and the fitted preprocessor saved.

use std::path::PathBuf;
use std::time::Instant;

use tabtune_features::io::write_matrix;
use tabtune_features::{Config, Preprocessor, PreprocessorSpec, TargetPresence};

use crate::data::{Input, load};
use crate::error::Result;
use crate::progress::Progress;

/// What to build.
#[derive(Clone, Debug, Default)]
pub struct FeaturesSettings {
    /// The rows.
    pub input: Input,
    /// The table to write (`.parquet` or `.csv`); `None`:
    /// `data/features/<input stem>.features.parquet`.
    pub output: Option<PathBuf>,
    /// Where the fitted preprocessor goes; `None`: `data/features/preprocessor.json`.
    pub preprocessor: Option<PathBuf>,
    /// Apply this fitted preprocessor instead of fitting one (the target may be absent).
    pub apply: Option<PathBuf>,
}

/// What was written.
#[derive(Clone, Debug)]
pub struct Features {
    /// Rows written.
    pub rows: usize,
    /// Feature names, in column order.
    pub names: Vec<String>,
    /// The table.
    pub output: PathBuf,
    /// The preprocessor fitted and written, or applied.
    pub preprocessor: PathBuf,
    /// Whether it was fitted here.
    pub fitted: bool,
    /// Rows that failed validation.
    pub invalid_rows: usize,
    /// Where they went.
    pub rejects: Option<PathBuf>,
    /// Duplicate training rows dropped before fitting.
    pub dropped_duplicates: usize,
    /// Wall seconds.
    pub seconds: f64,
}

/// Engineers, fits or applies, and writes.
pub fn build_features(
    config: &Config,
    settings: &FeaturesSettings,
    progress: &dyn Progress,
) -> Result<Features> {
    let start = Instant::now();
    let presence = if settings.apply.is_some() {
        TargetPresence::Optional
    } else {
        TargetPresence::Required
    };
    let loaded = load(config, &settings.input, presence, progress)?;
    let mut table = loaded.table;
    let mut dropped = 0;
    let (preprocessor, preprocessor_path, fitted) = match &settings.apply {
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
            let path = settings
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
    let output = settings.output.clone().unwrap_or_else(|| {
        let stem = table
            .source
            .file_stem()
            .map_or_else(|| "data".into(), |s| s.to_string_lossy().into_owned());
        PathBuf::from("data/features").join(format!("{stem}.features.parquet"))
    });
    let id_name = config.schema.id.as_deref().unwrap_or("id");
    write_matrix(&output, &matrix, id_name, &config.schema.target)?;
    if fitted {
        preprocessor.save(&preprocessor_path)?;
    }
    Ok(Features {
        rows: matrix.values.nrows(),
        names: matrix.names,
        output,
        preprocessor: preprocessor_path,
        fitted,
        invalid_rows: loaded.report.invalid_rows,
        rejects: loaded.report.rejects,
        dropped_duplicates: dropped,
        seconds: start.elapsed().as_secs_f64(),
    })
}
