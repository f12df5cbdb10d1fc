//! `tabtune export`: the best (or a chosen) trial of a study, fitted on every training row and
//! written as a bundle.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use serde_json::{Value, json};
use tabtune_features::{PreprocessorSpec, TargetPresence};
use tabtune_train::nn::device::select;
use tabtune_train::nn::{DeviceChoice, DeviceRequest};
use tabtune_train::objective::trial_params;
use tabtune_train::{Family, ModelParams};
use tabtune_tune::storage::{AttrKind, Storage, open, redact};
use tabtune_tune::study::{ATTR_FIXED_PARAMS, Study, best_of};
use tabtune_tune::{FrozenTrial, TrialState};

use crate::bundle_out::{BundleInput, final_params, write_bundle};
use crate::cli::{ExportArgs, InputArgs};
use crate::commands::select::ATTR_FEATURES;
use crate::commands::sweep::ATTR_SEED;
use crate::context::Context;
use crate::output;

/// The trial to export: `--trial N` (which must be COMPLETE) or the study's best.
fn pick(study: &Study, trials: &[FrozenTrial], number: Option<u64>) -> Result<FrozenTrial> {
    match number {
        Some(n) => {
            let Some(t) = trials.iter().find(|t| t.number == n) else {
                invalid!(
                    "study `{}` has no trial {n} (it has {} trials)",
                    study.name(),
                    trials.len()
                );
            };
            if t.state != TrialState::Complete {
                invalid!(
                    "trial {n} of study `{}` is {}, not COMPLETE; only complete trials can be exported",
                    study.name(),
                    t.state.as_optuna()
                );
            }
            Ok(t.clone())
        }
        None => best_of(trials, study.direction()).cloned().ok_or_else(|| {
            tabtune_tune::TuneError::Invalid(format!(
                "study `{}` has no complete trial yet; run `tabtune sweep` first",
                study.name()
            ))
            .into()
        }),
    }
}

/// The study's fixed parameters (stored by `sweep` as the user attribute `fixed_params`).
fn fixed_params(storage: &dyn Storage, study: &Study) -> Result<BTreeMap<String, Value>> {
    let attrs = storage.study_attrs(study.id(), AttrKind::User)?;
    let mut fixed: BTreeMap<String, Value> = match attrs.get(ATTR_FIXED_PARAMS) {
        Some(Value::Object(m)) => m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        _ => BTreeMap::new(),
    };
    // The seed the trials ran with (`sweep --seed`, else the config's), unless the space fixes
    // or samples one.
    if let Some(seed) = attrs.get(ATTR_SEED) {
        fixed.entry("seed".into()).or_insert_with(|| seed.clone());
    }
    Ok(fixed)
}

/// A trial fitted on every row and written as a bundle.
pub struct Exported {
    /// The bundle folder.
    pub bundle: PathBuf,
    /// The trial.
    pub trial: FrozenTrial,
    /// Its family.
    pub family: Family,
    /// The final model's parameters.
    pub params: ModelParams,
    /// Rows it was fitted on.
    pub rows: usize,
}

/// What to export.
pub struct ExportRequest<'a> {
    /// The rows to fit on (and their validation policy).
    pub input: &'a InputArgs,
    /// The study.
    pub study: &'a str,
    /// Its storage URL.
    pub storage: &'a str,
    /// A trial number, else the best trial.
    pub trial: Option<u64>,
    /// Bundle folder [default: checkpoints/<study>-trial<N>].
    pub output: Option<PathBuf>,
    /// Device for a neural model.
    pub device: &'a str,
}

/// Fits the chosen trial of a study on every row and writes it as a bundle.
pub fn export_trial(ctx: &Context, req: &ExportRequest<'_>) -> Result<Exported> {
    let config = &ctx.config;
    let storage: Arc<dyn Storage> = Arc::new(open(req.storage)?);
    let study = Study::load(Arc::clone(&storage), req.study)?;
    let trials = study.trials()?;
    let trial = pick(&study, &trials, req.trial)?;
    let fixed = fixed_params(storage.as_ref(), &study)?;
    let (family, params) = trial_params(&trial.params, &fixed)?;
    let mean_rounds = trial.user_attrs.get("rounds_mean").and_then(Value::as_f64);
    let params = final_params(&params, mean_rounds);
    let device = if family.is_neural() {
        select(DeviceRequest::parse(req.device)?)?
    } else {
        DeviceChoice::cpu("tree families run on the CPU")
    };

    let loaded = ctx.load(req.input, TargetPresence::Required)?;
    let mut table = loaded.table;
    if config.transforms.dedup {
        table = table.dedup().0;
    }
    let mut spec = PreprocessorSpec::from_config(config);
    let attrs = storage.study_attrs(study.id(), AttrKind::User)?;
    if let Some(Value::Array(names)) = attrs.get(ATTR_FEATURES) {
        spec = spec.with_features(
            names
                .iter()
                .filter_map(|n| n.as_str().map(str::to_owned))
                .collect(),
        );
    }
    let output_dir = req.output.clone().unwrap_or_else(|| {
        PathBuf::from(format!("checkpoints/{}-trial{}", req.study, trial.number))
    });
    let mut metrics = BTreeMap::new();
    for key in ["accuracy_mean", "accuracy_std", "logloss_mean", "folds"] {
        if let Some(v) = trial.user_attrs.get(key).and_then(Value::as_f64) {
            metrics.insert(format!("cv_{key}"), v);
        }
    }
    metrics.insert("study_trial".into(), trial.number as f64);
    let input_path = ctx.input_path(req.input);
    let bundle = write_bundle(
        &BundleInput {
            family,
            params: &params,
            table: &table,
            spec: &spec,
            input: &input_path,
            metrics,
            device: &device,
            progress: ctx.progress,
        },
        &output_dir,
    )?;
    Ok(Exported {
        bundle,
        trial,
        family,
        params,
        rows: table.n_rows(),
    })
}

/// Runs the command.
pub fn run(ctx: &Context, args: &ExportArgs) -> Result<()> {
    let url = args.storage.clone();
    let Exported {
        bundle,
        trial,
        family,
        params,
        rows,
    } = export_trial(
        ctx,
        &ExportRequest {
            input: &args.input,
            study: &args.study,
            storage: &url,
            trial: args.trial,
            output: args.output.clone(),
            device: &args.device,
        },
    )?;
    if ctx.json {
        output::json(&json!({
            "bundle": bundle,
            "study": args.study,
            "storage": redact(&url),
            "trial": trial.number,
            "value": trial.value,
            "model": family.name(),
            "params": params,
        }));
    } else {
        output::text(&format!(
            "study {} trial {} ({}, value {}) fitted on {} rows\nbundle: {}\n",
            args.study,
            trial.number,
            family.name(),
            trial
                .value
                .map_or_else(|| "-".into(), |v| format!("{v:.5}")),
            rows,
            bundle.display()
        ));
    }
    Ok(())
}
