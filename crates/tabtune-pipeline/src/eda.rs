//! The EDA report of a data file: class balance, distributions, correlations (HTML with
//! charts).

use std::path::PathBuf;

use tabtune_features::engineer::engineer;
use tabtune_features::io::write_bytes_atomic;
use tabtune_features::report::{EdaInput, eda_html};
use tabtune_features::{Config, TargetPresence};

use crate::data::{Input, load};
use crate::error::Result;
use crate::progress::Progress;

/// What the EDA step wrote.
#[derive(Clone, Debug)]
pub struct Eda {
    /// The HTML report.
    pub path: PathBuf,
    /// Rows read.
    pub rows: usize,
    /// Rows that failed validation.
    pub invalid_rows: usize,
    /// Valid rows repeating an earlier one.
    pub duplicate_rows: usize,
    /// Rows kept.
    pub valid_rows: usize,
    /// Size of the report.
    pub bytes: usize,
}

/// Loads `input` and writes its EDA report to `output` (default `reports/eda-<task>.html`).
pub fn write_eda(
    config: &Config,
    input: &Input,
    output: Option<PathBuf>,
    progress: &dyn Progress,
) -> Result<Eda> {
    let loaded = load(config, input, TargetPresence::Optional, progress)?;
    let spinner = progress.spinner("drawing the EDA report");
    let engineered = engineer(&loaded.table, &config.features, &config.inputs)?;
    let html = eda_html(&EdaInput {
        task: &config.name,
        schema: &config.schema,
        table: &loaded.table,
        report: &loaded.report,
        engineered: &engineered,
        columns: &config.eda_columns,
    })?;
    let path = output.unwrap_or_else(|| PathBuf::from(format!("reports/eda-{}.html", config.name)));
    write_bytes_atomic(&path, html.as_bytes())?;
    drop(spinner);
    Ok(Eda {
        path,
        rows: loaded.report.rows_read,
        invalid_rows: loaded.report.invalid_rows,
        duplicate_rows: loaded.report.duplicate_rows,
        valid_rows: loaded.table.n_rows(),
        bytes: html.len(),
    })
}
