//! Cross-validating one model family: per-fold metrics, out-of-fold predictions written as a
//! CSV, best-epoch checkpoints of neural folds, the model fitted on every row as a bundle, and
//! the run tracked.

use std::io::Write as _;
use std::path::PathBuf;

use tabtune_features::io::write_atomic;
use tabtune_features::{Config, FeaturesError, KFold, PreprocessorSpec, Table};
use tabtune_models::metrics::Control;
use tabtune_models::metrics::argmax;
use tabtune_models::nn::CheckpointInfo;
use tabtune_train::nn::{DeviceChoice, DeviceRequest, EpochMetrics, device};
use tabtune_train::{CvReport, Family, ModelParams, cross_validate_on};

use crate::data::{Input, load_training};
use crate::error::{PipelineError, Result};
use crate::export::{BundleInput, final_params, mean_rounds, write_bundle};
use crate::progress::Progress;
use crate::sweep::params::split_extra_repeats;
use crate::tracking::{Tracking, log_cv_run};

/// What `train` runs.
#[derive(Clone, Debug)]
pub struct TrainSettings {
    /// The training rows.
    pub input: Input,
    /// Model family: gbdt-leafwise, gbdt-depthwise, gbdt-oblivious, random-forest,
    /// decision-tree, mlp, tabm.
    pub model: String,
    /// Device of the neural families (`auto`, `cpu`, `wgpu`, `cuda:N`).
    pub device: String,
    /// Folds; `None`: the config's `cv.folds`.
    pub folds: Option<usize>,
    /// Repeats of the k-fold split; `None`: the config's `cv.repeats`.
    pub repeats: Option<usize>,
    /// Seed of the splits and of the model's sampling; `None`: the config's `cv.seed`.
    pub seed: Option<u64>,
    /// Hyperparameters as `NAME=VALUE` pairs; `extra_repeats=N` sets the copies of the
    /// config's extra training files (`[[data.extra-train]]`, default: each file's `repeats`).
    pub params: Vec<(String, String)>,
    /// Out-of-fold predictions file; `None`: `reports/oof/<task>-<model>.csv`.
    pub oof: Option<PathBuf>,
    /// After cross-validation, fit on every row and write a bundle to this folder.
    pub save: Option<PathBuf>,
    /// Neural families: folder of the best-epoch checkpoints; `None`:
    /// `checkpoints/<task>-<model>-cv`.
    pub checkpoint_dir: Option<PathBuf>,
    /// Where the run is tracked.
    pub tracking: Tracking,
    /// Experiment the run is logged under; `None`: the config's name.
    pub experiment: Option<String>,
}

impl TrainSettings {
    /// Cross-validation of `model` with the config's defaults.
    pub fn new(model: impl Into<String>) -> Self {
        Self {
            input: Input::default(),
            model: model.into(),
            device: "auto".to_owned(),
            folds: None,
            repeats: None,
            seed: None,
            params: Vec::new(),
            oof: None,
            save: None,
            checkpoint_dir: None,
            tracking: Tracking::default(),
            experiment: None,
        }
    }
}

/// What `train` did.
#[derive(Clone, Debug)]
pub struct TrainOutcome {
    /// The family.
    pub family: Family,
    /// Its parameters.
    pub params: ModelParams,
    /// The split.
    pub kfold: KFold,
    /// Per-fold metrics, means, OOF predictions, importances.
    pub report: CvReport,
    /// Rows validated and scored on (the training file's).
    pub rows: usize,
    /// Extra training rows appended to every fold's training rows (and the final model's).
    pub extra_rows: usize,
    /// The out-of-fold predictions file.
    pub oof: PathBuf,
    /// The best-epoch checkpoints folder (neural families).
    pub checkpoints: Option<PathBuf>,
    /// The bundle, when one was saved.
    pub bundle: Option<PathBuf>,
}

/// The checkpoint file of population member `member` of a CV run: the folds of every repeat,
/// repeat by repeat, `fold-<repeat>-<fold>.safetensors`.
fn checkpoint_name(member: usize, folds: usize) -> String {
    format!(
        "fold-{}-{}.safetensors",
        member / folds.max(1),
        member % folds.max(1)
    )
}

/// Cross-validates the family, writes the OOF file (and the bundle with `save`), tracks it.
pub fn train(
    config: &Config,
    settings: &TrainSettings,
    progress: &dyn Progress,
) -> Result<TrainOutcome> {
    let family = Family::parse(&settings.model)?;
    let cv = config.cv;
    let seed = settings.seed.unwrap_or(cv.seed);
    // `extra_repeats` sets the extra training data's copies, not a model parameter.
    let (model_params, repeats) = split_extra_repeats(&settings.params)?;
    let mut overrides = vec![("seed".to_owned(), seed.to_string())];
    overrides.extend(model_params);
    let params = family.params(&overrides)?;
    let request = DeviceRequest::parse(&settings.device)?;
    let device = match &params {
        ModelParams::Neural(_) => device::select(request)?.with_checkpoints(),
        // On a GPU the folds boost as one batched fit (a forest's trees grow together); on
        // the CPU the engine fits them.
        ModelParams::Gbdt(_) | ModelParams::Forest(_) => device::select(request)?,
    };
    let kfold = KFold {
        folds: settings.folds.unwrap_or(cv.folds),
        repeats: settings.repeats.unwrap_or(cv.repeats),
        seed,
        stratify: cv.stratify,
    };
    let training = load_training(config, &settings.input, progress)?;
    let table = &training.table_with(repeats)?;
    let extra_rows = table.train_only;
    let spec = PreprocessorSpec::from_config(config);
    let total = kfold.folds * kfold.repeats;
    let bar = progress.spinner(&format!("{}: {total} folds", family.name()));
    let mut done = 0;
    let epochs = match &params {
        ModelParams::Neural(p) => p.epochs,
        _ => 0,
    };
    // Neural folds: each fold's best epoch so far is written to its checkpoint file.
    let checkpoint_dir = family.is_neural().then(|| {
        settings.checkpoint_dir.clone().unwrap_or_else(|| {
            PathBuf::from(format!("checkpoints/{}-{}-cv", config.name, family.name()))
        })
    });
    let mut checkpoint_error: Option<PipelineError> = None;
    let mut on_epoch = |member: usize, m: &EpochMetrics| {
        if let (Some(dir), Some(model)) = (&checkpoint_dir, &m.best_model) {
            let path = dir.join(checkpoint_name(member, kfold.folds));
            let info = CheckpointInfo {
                epoch: m.epoch,
                valid_logloss: m.valid_logloss,
                valid_accuracy: m.valid_accuracy,
            };
            if checkpoint_error.is_none()
                && let Err(e) = model.save_checkpoint(&path, &info)
            {
                checkpoint_error = Some(PipelineError::Checkpoint { path, source: e });
            }
        }
        if checkpoint_error.is_some() {
            // A checkpoint that cannot be written stops the run (reported below).
            return Control::Stop;
        }
        if member == 0 {
            bar.set_message(format!(
                "{} on {}: {total} folds as one population, epoch {}/{epochs}, fold 0 valid \
                 accuracy {:.4}",
                family.name(),
                device.name,
                m.epoch,
                m.valid_accuracy.unwrap_or(f64::NAN)
            ));
        }
        tracing::debug!(
            member,
            epoch = m.epoch,
            train_loss = m.train_loss,
            valid_logloss = m.valid_logloss,
            valid_accuracy = m.valid_accuracy,
            "epoch done"
        );
        Control::Continue
    };
    let report = cross_validate_on(
        table,
        &spec,
        &params,
        kfold,
        &device,
        &mut |f| {
            done += 1;
            bar.set_message(format!(
                "{}: fold {done}/{total} accuracy {:.4} logloss {:.4}",
                family.name(),
                f.accuracy,
                f.logloss
            ));
            tracing::debug!(
                repeat = f.repeat,
                fold = f.fold,
                accuracy = f.accuracy,
                logloss = f.logloss,
                seconds = f.seconds,
                "fold done"
            );
        },
        &mut on_epoch,
    );
    drop(bar);
    if let Some(e) = checkpoint_error {
        return Err(e);
    }
    let report = report?;

    let oof_path = settings.oof.clone().unwrap_or_else(|| {
        PathBuf::from(format!("reports/oof/{}-{}.csv", config.name, family.name()))
    });
    write_oof(&oof_path, table, &report)?;

    // The final fit has no validation rows: no best-epoch checkpoints to hand over.
    let final_device = DeviceChoice {
        checkpoints: false,
        ..device.clone()
    };
    let bundle = match &settings.save {
        Some(dir) => {
            let metrics = [
                ("cv_accuracy_mean", report.accuracy_mean),
                ("cv_accuracy_std", report.accuracy_std),
                ("cv_logloss_mean", report.logloss_mean),
                ("cv_folds", report.folds.len() as f64),
                ("extra_train_rows", extra_rows as f64),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
            Some(write_bundle(
                &BundleInput {
                    family,
                    params: &final_params(&params, mean_rounds(&report)),
                    table,
                    spec: &spec,
                    input: &training.path,
                    metrics,
                    device: &final_device,
                },
                dir,
                progress,
            )?)
        }
        None => None,
    };
    let experiment = settings
        .experiment
        .clone()
        .unwrap_or_else(|| config.name.clone());
    log_cv_run(
        &settings.tracking,
        &experiment,
        family.name(),
        &params,
        &report,
        bundle.as_deref(),
    );
    Ok(TrainOutcome {
        family,
        params,
        kfold,
        rows: table.n_main(),
        extra_rows,
        report,
        oof: oof_path,
        checkpoints: checkpoint_dir,
        bundle,
    })
}

/// Writes the out-of-fold predictions: index, source row, id, fold, one probability column
/// per class, the predicted and the actual class.
fn write_oof(path: &std::path::Path, table: &Table, report: &CvReport) -> Result<()> {
    write_atomic(path, |w| {
        let to_err = |e: std::io::Error| FeaturesError::Io {
            path: path.to_owned(),
            source: e,
        };
        let mut header = vec![
            "index".to_owned(),
            "row".to_owned(),
            "id".to_owned(),
            "fold".to_owned(),
        ];
        header.extend(report.classes.iter().cloned());
        header.extend(["predicted".to_owned(), "actual".to_owned()]);
        writeln!(w, "{}", header.join(",")).map_err(to_err)?;
        let labels = table.target.as_deref().unwrap_or_default();
        for (i, probs) in report.oof.rows().into_iter().enumerate() {
            let id = table.ids.as_ref().map_or("", |ids| ids[i].as_str());
            let probs = probs.as_slice().expect("standard layout");
            let predicted = argmax(probs) as usize;
            let cells: Vec<String> = probs.iter().map(|p| format!("{p:.6}")).collect();
            writeln!(
                w,
                "{i},{},{id},{},{},{},{}",
                table.rows[i],
                report.oof_fold[i],
                cells.join(","),
                report.classes[predicted],
                report.classes[labels[i] as usize]
            )
            .map_err(to_err)?;
        }
        Ok(())
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::checkpoint_name;

    #[test]
    fn checkpoints_are_named_by_repeat_and_fold() {
        assert_eq!(checkpoint_name(0, 5), "fold-0-0.safetensors");
        assert_eq!(checkpoint_name(7, 5), "fold-1-2.safetensors");
    }
}
