//! Batch predictions of a file with a model bundle (or a registry reference), written as a
//! CSV of probabilities or as a Kaggle-style submission.

use std::io::Write as _;
use std::path::PathBuf;

use tabtune_features::io::write_atomic;
use tabtune_features::{Config, FeaturesError, TargetPresence};
use tabtune_infer::load_model;

use crate::data::{Input, load_file};
use crate::error::Result;
use crate::progress::Progress;

/// What to predict.
#[derive(Clone, Debug)]
pub struct PredictSettings {
    /// A bundle folder or a `models:/name@alias` reference.
    pub model: String,
    /// The rows; `None` path: the config's `data.test` file.
    pub input: Input,
    /// The CSV; `None`: `reports/predictions/<input stem>-<bundle>.csv`.
    pub output: Option<PathBuf>,
    /// Write only `<id>,<target>` with the predicted class names.
    pub submission: bool,
}

/// What `predict` wrote.
#[derive(Clone, Debug)]
pub struct Predicted {
    /// Rows predicted.
    pub rows: usize,
    /// The CSV written.
    pub output: PathBuf,
    /// The bundle's model name.
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

/// Predicts the input with the model and writes the CSV (or the submission) atomically.
pub fn predict_file(
    config: &Config,
    settings: &PredictSettings,
    progress: &dyn Progress,
) -> Result<Predicted> {
    let predictor = load_model(&settings.model)?;
    let bundle = predictor.bundle();
    let input = match (&settings.input.path, &config.data.test) {
        (Some(path), _) => path.clone(),
        (None, Some(test)) => config.data_path(test),
        (None, None) => {
            return Err(FeaturesError::ConfigValue {
                path: config.path.clone(),
                key: "data.test".into(),
                message: "is not set; pass --input FILE".into(),
            }
            .into());
        }
    };
    let schema = &bundle.meta.schema;
    let loaded = load_file(
        &input,
        &settings.input,
        schema,
        TargetPresence::Optional,
        progress,
    )?;
    let prediction = predictor.predict(&loaded.table)?;
    let classes = predictor.classes();
    let id_name = schema.id.clone().unwrap_or_else(|| "id".to_owned());
    if settings.submission && prediction.ids.is_none() {
        return Err(FeaturesError::BadFile {
            path: input.clone(),
            message: format!("--submission needs the id column `{id_name}`, which this file lacks"),
        }
        .into());
    }
    let output_path = settings.output.clone().unwrap_or_else(|| {
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
        if settings.submission {
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
            if settings.submission {
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
