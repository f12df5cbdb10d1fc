//! Monitoring a current file against a reference through a bundle: data drift per column,
//! target and prediction drift, data quality and model performance, as an HTML report.

use std::path::PathBuf;

use tabtune_features::io::write_bytes_atomic;
use tabtune_features::{Config, FeaturesError, OnInvalid, TargetPresence};
use tabtune_infer::load_model;
use tabtune_infer::monitor::{DriftReport, QualityReport, data_drift, data_quality, monitor_html};

use crate::data::{Input, load_file};
use crate::error::Result;
use crate::progress::Progress;

/// What to monitor.
#[derive(Clone, Debug)]
pub struct MonitorSettings {
    /// A bundle folder or a `models:/name@alias` reference (its schema validates both files,
    /// its predictions give the prediction drift).
    pub model: String,
    /// Reference data; `None`: the config's training file.
    pub reference: Option<PathBuf>,
    /// Current data; `None`: the config's `data.current` file.
    pub current: Option<PathBuf>,
    /// The HTML report; `None`: `reports/monitor-<bundle>-<current stem>.html`.
    pub output: Option<PathBuf>,
    /// Invalid rows of the current file: fail, or quarantine them and count their cells in
    /// the data quality report.
    pub on_invalid: OnInvalid,
}

impl MonitorSettings {
    /// The config's training file against its `data.current` file through `model`.
    pub fn new(model: impl Into<String>) -> Self {
        Self {
            model: model.into(),
            reference: None,
            current: None,
            output: None,
            on_invalid: OnInvalid::Fail,
        }
    }
}

/// What monitoring computed and where its report went.
#[derive(Clone, Debug)]
pub struct Monitored {
    /// Drift of every column, the target, the prediction, and performance when labelled.
    pub report: DriftReport,
    /// Data quality of the current data against the reference.
    pub quality: QualityReport,
    /// The HTML report.
    pub path: PathBuf,
}

/// Computes drift and data quality of the current data and writes the HTML report.
pub fn monitor(
    config: &Config,
    settings: &MonitorSettings,
    progress: &dyn Progress,
) -> Result<Monitored> {
    let predictor = load_model(&settings.model)?;
    let reference = settings
        .reference
        .clone()
        .unwrap_or_else(|| config.train_path());
    let Some(current) = settings
        .current
        .clone()
        .or_else(|| config.data.current.as_ref().map(|f| config.data_path(f)))
    else {
        return Err(FeaturesError::ConfigValue {
            path: config.path.clone(),
            key: "data.current".into(),
            message: "is not set; pass --current FILE".into(),
        }
        .into());
    };
    let schema = &predictor.bundle().meta.schema;
    let spinner = progress.spinner("computing drift");
    let reference_table = load_file(
        &reference,
        &Input::default(),
        schema,
        TargetPresence::Optional,
        progress,
    )?
    .table;
    let current_input = Input {
        on_invalid: settings.on_invalid,
        ..Input::default()
    };
    let current_loaded = load_file(
        &current,
        &current_input,
        schema,
        TargetPresence::Optional,
        progress,
    )?;
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
    drop(spinner);
    let path = settings.output.clone().unwrap_or_else(|| {
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
