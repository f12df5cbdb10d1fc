//! `tabtune train`: k-fold cross-validation of one model family.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde_json::json;
use tabtune_features::io::write_atomic;
use tabtune_features::{FeaturesError, KFold, PreprocessorSpec, Table, TargetPresence};
use tabtune_models::nn::CheckpointInfo;
use tabtune_train::nn::{Control, DeviceChoice, DeviceRequest, device};
use tabtune_train::{CvReport, Family, ModelParams, argmax, cross_validate_on};

use crate::bundle_out::{BundleInput, final_params, mean_rounds, write_bundle};
use crate::cli::TrainArgs;
use crate::context::Context;
use crate::output;

/// Runs the command.
pub fn run(ctx: &Context, args: &TrainArgs) -> Result<()> {
    let config = &ctx.config;
    let family = Family::parse(&args.model)?;
    let cv = config.cv;
    let seed = args.seed.unwrap_or(cv.seed);
    let mut overrides = vec![("seed".to_owned(), seed.to_string())];
    overrides.extend(args.params.iter().cloned());
    let params = family.params(&overrides)?;
    let request = DeviceRequest::parse(&args.device)?;
    let device = if family.is_neural() {
        device::select(request)?.with_checkpoints()
    } else {
        DeviceChoice::cpu("tree families run on the CPU")
    };
    let kfold = KFold {
        folds: args.folds.unwrap_or(cv.folds),
        repeats: args.repeats.unwrap_or(cv.repeats),
        seed,
        stratify: cv.stratify,
    };
    let loaded = ctx.load(&args.input, TargetPresence::Required)?;
    let mut table = loaded.table;
    if config.transforms.dedup {
        let (deduped, removed) = table.dedup();
        tracing::info!(
            "transforms.dedup: dropped {} duplicate training rows",
            removed.len()
        );
        table = deduped;
    }
    let spec = PreprocessorSpec::from_config(config);
    let total = kfold.folds * kfold.repeats;
    let bar = output::spinner(ctx.progress, format!("{}: {total} folds", family.name()));
    let mut done = 0;
    let epochs = match &params {
        ModelParams::Neural(p) => p.epochs,
        _ => 0,
    };
    let epoch_bar = bar.clone();
    // Neural folds: each fold's best epoch so far is written to its checkpoint file.
    let checkpoint_dir = family.is_neural().then(|| {
        args.checkpoint_dir.clone().unwrap_or_else(|| {
            PathBuf::from(format!("checkpoints/{}-{}-cv", config.name, family.name()))
        })
    });
    let mut checkpoint_error: Option<anyhow::Error> = None;
    let mut on_epoch = |member: usize, m: &tabtune_train::nn::EpochMetrics| {
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
                checkpoint_error = Some(anyhow::anyhow!("best-epoch checkpoint: {e}"));
            }
        }
        if checkpoint_error.is_some() {
            // A checkpoint that cannot be written stops the run (reported below).
            return Control::Stop;
        }
        if member == 0 {
            epoch_bar.set_message(format!(
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
        &table,
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
    bar.finish_and_clear();
    if let Some(e) = checkpoint_error {
        return Err(e);
    }
    let report = report?;

    let oof_path = args.oof.clone().unwrap_or_else(|| {
        PathBuf::from(format!("reports/oof/{}-{}.csv", config.name, family.name()))
    });
    write_atomic(&oof_path, |w| {
        let to_err = |e: std::io::Error| FeaturesError::Io {
            path: oof_path.clone(),
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

    // The final fit has no validation rows: no best-epoch checkpoints to hand over.
    let final_device = DeviceChoice {
        checkpoints: false,
        ..device.clone()
    };
    let bundle = match &args.save {
        Some(dir) => Some(save_bundle(
            ctx,
            args,
            family,
            &params,
            &final_device,
            &table,
            &spec,
            &report,
            dir,
        )?),
        None => None,
    };
    crate::tracking::log_train_run(
        ctx,
        args,
        family.name(),
        &params,
        &report,
        bundle.as_deref(),
    );

    if ctx.json {
        output::json(&json!({
            "bundle": bundle,
            "checkpoints": checkpoint_dir,
            "model": family.name(),
            "device": report.device,
            "folds": report.folds.len(),
            "accuracy_mean": report.accuracy_mean,
            "accuracy_std": report.accuracy_std,
            "logloss_mean": report.logloss_mean,
            "seconds": report.seconds,
            "fold_results": report.folds,
            "oof": oof_path,
            "rows": table.n_rows(),
            "params": params,
            "importance": report.importance.iter().map(|(n, g)| json!({"feature": n, "gain": g})).collect::<Vec<_>>(),
        }));
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
        let mut s = format!(
            "{} on {} rows ({}), {}-fold CV x {}\n",
            family.name(),
            table.n_rows(),
            report.device,
            kfold.folds,
            kfold.repeats
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
            oof_path.display()
        ));
        if let Some(dir) = &checkpoint_dir {
            s.push_str(&format!(
                "best-epoch checkpoints (one per fold): {}\n",
                dir.display()
            ));
        }
        if let Some(b) = &bundle {
            s.push_str(&format!("bundle (fitted on all rows): {}\n", b.display()));
        }
        output::text(&s);
    }
    Ok(())
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

/// Fits the model on every row and writes it as a bundle; returns its folder.
#[allow(clippy::too_many_arguments)]
fn save_bundle(
    ctx: &Context,
    args: &TrainArgs,
    family: Family,
    params: &ModelParams,
    device: &DeviceChoice,
    table: &Table,
    spec: &PreprocessorSpec,
    report: &CvReport,
    dir: &Path,
) -> Result<PathBuf> {
    let final_params = final_params(params, mean_rounds(report));
    let metrics = [
        ("cv_accuracy_mean", report.accuracy_mean),
        ("cv_accuracy_std", report.accuracy_std),
        ("cv_logloss_mean", report.logloss_mean),
        ("cv_folds", report.folds.len() as f64),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let input = ctx.input_path(&args.input);
    write_bundle(
        &BundleInput {
            family,
            params: &final_params,
            table,
            spec,
            input: &input,
            metrics,
            device,
            progress: ctx.progress,
        },
        dir,
    )
}
