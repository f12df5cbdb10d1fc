//! `tabtune run`: the whole pipeline from one config. Finds (or fetches) the data, writes the
//! EDA report, runs the config's sweeps (`[run]`: trees, then neural nets) within a time budget,
//! registers each sweep's best and keeps the best of all as `champion`, applies the decision
//! layer, predicts the test file (a Kaggle-style submission), writes the monitoring report of
//! the current data, and says where everything is.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, Result};
use clap::Parser;
use ndarray::Array2;
use serde_json::{Value, json};
use tabtune_features::fetch::{FetchStatus, fetch};
use tabtune_features::{Config, FeaturesError, KFold, TargetPresence};
use tabtune_models::AnyModel;
use tabtune_models::bundle::{Bundle, BundleMeta};
use tabtune_models::ensemble::{EnsembleMember, EnsembleModel};
use tabtune_track::registry::{
    CHAMPION, Direction as RegistryDirection, ModelRef, register_and_maybe_promote,
};
use tabtune_train::decision::{DecisionReport, decide};
use tabtune_train::nn::device::{Device, select};
use tabtune_train::nn::{DeviceChoice, DeviceRequest};
use tabtune_train::objective::OofStore;

use crate::cli::{InputArgs, MonitorArgs, PredictArgs, RunArgs, SweepArgs};
use crate::commands::export::{ExportRequest, export_trial};
use crate::commands::sweep::{SweepOutcome, execute, fold_of, study_dir, top_oofs};
use crate::commands::{eda, monitor, predict};
use crate::context::Context;
use crate::output;

/// Seconds kept back from the sweeps for what follows them (export and registration of each
/// sweep's best, the decision layer's members, the submission, the monitoring report).
const RESERVE_SECONDS: f64 = 120.0;

/// Parses a command's arguments the way the command line would (defaults, environment
/// variables and validation included), so `run` drives the other commands exactly as a user
/// typing them would.
fn parse_args<T: clap::Args>(argv: &[String]) -> Result<T> {
    #[derive(Parser)]
    #[command(no_binary_name = true)]
    struct Argv<T: clap::Args> {
        #[command(flatten)]
        args: T,
    }
    Ok(Argv::<T>::try_parse_from(argv)
        .with_context(|| format!("internal: bad arguments {argv:?}"))?
        .args)
}

/// One step's outcome for the summary.
struct Step {
    name: &'static str,
    seconds: f64,
    detail: String,
}

/// One sweep's outcome for the summary.
struct SweepDone {
    space: PathBuf,
    n_trials: u64,
    population: usize,
    timeout: f64,
    outcome: SweepOutcome,
}

/// Runs the command.
pub fn run(ctx: &Context, args: &RunArgs) -> Result<()> {
    let started = Instant::now();
    let config = &ctx.config;
    let plan = &config.run;
    let budget = args.budget_minutes.unwrap_or(plan.budget_minutes);
    if !(budget.is_finite() && budget > 0.0) {
        invalid!("--budget-minutes must be a number of minutes > 0, got {budget}");
    }
    if plan.sweeps.is_empty() {
        return Err(FeaturesError::ConfigValue {
            path: config.path.clone(),
            key: "run.sweeps".into(),
            message: "is empty: `tabtune run` needs at least one [[run.sweeps]] entry".into(),
        }
        .into());
    }
    if args.n_trials == Some(0) {
        invalid!("--n-trials must be at least 1");
    }
    // Every space must be there before anything runs.
    for (i, s) in plan.sweeps.iter().enumerate() {
        if !s.space.is_file() {
            return Err(FeaturesError::ConfigValue {
                path: config.path.clone(),
                key: format!("run.sweeps[{i}].space"),
                message: format!(
                    "{} does not exist (paths are relative to the current directory)",
                    s.space.display()
                ),
            }
            .into());
        }
    }
    let mut steps = Vec::new();

    // 1. The data: present, or fetched from the config's sources.
    let t = Instant::now();
    let fetched = ensure_data(ctx, config, args.no_fetch)?;
    steps.push(Step {
        name: "data",
        seconds: t.elapsed().as_secs_f64(),
        detail: if fetched.is_empty() {
            format!("found in {}", config.data.dir.display())
        } else {
            format!("fetched {}", fetched.join(", "))
        },
    });

    // 2. EDA report of the training data.
    let t = Instant::now();
    let eda = eda::write_report(ctx, &parse_args::<InputArgs>(&[])?, None)?;
    steps.push(Step {
        name: "eda",
        seconds: t.elapsed().as_secs_f64(),
        detail: format!("{} rows", eda.valid_rows),
    });

    // 3. The sweeps, sized by the device and sharing the budget.
    let device = select(DeviceRequest::parse(&args.device)?)?;
    let gpu = is_gpu(&device);
    tracing::info!(
        "device {}{}: {}",
        device.name,
        device
            .adapter
            .as_deref()
            .map(|a| format!(" ({a})"))
            .unwrap_or_default(),
        device.reason
    );
    let sweep_seconds = (budget * 60.0 - started.elapsed().as_secs_f64() - RESERVE_SECONDS)
        .max(30.0 * plan.sweeps.len() as f64);
    let mut done = Vec::new();
    for (i, s) in plan.sweeps.iter().enumerate() {
        let t = Instant::now();
        let n_trials = args
            .n_trials
            .unwrap_or(if gpu { s.gpu_n_trials } else { s.n_trials });
        let population = if gpu { s.gpu_population } else { 1 };
        let timeout = (s.share * sweep_seconds).max(30.0);
        let stem = s
            .space
            .file_stem()
            .map_or_else(|| format!("sweep{i}"), |x| x.to_string_lossy().into_owned());
        let study = format!("{}-{stem}", config.name);
        tracing::info!(
            "sweep {}/{}: {} ({} trials, at most {:.0} s{})",
            i + 1,
            plan.sweeps.len(),
            s.space.display(),
            n_trials,
            timeout,
            if population > 1 {
                format!(", populations of {population}")
            } else {
                String::new()
            }
        );
        let mut argv: Vec<String> = [
            "--sweep",
            &s.space.to_string_lossy(),
            "--study",
            &study,
            "--storage",
            &args.storage,
            "--n-trials",
            &n_trials.to_string(),
            "--timeout",
            &format!("{timeout:.0}"),
            "--pruner",
            &s.pruner,
            "--sampler",
            &s.sampler,
            "--device",
            &device_arg(&args.device, &device),
            "--top-k",
            &plan.top_k.to_string(),
            "--register",
            &plan.register,
        ]
        .iter()
        .map(|a| (*a).to_owned())
        .collect();
        if let Some(k) = args.folds {
            argv.extend(["--folds".into(), k.to_string()]);
        }
        if let Some(seed) = args.seed {
            argv.extend(["--seed".into(), seed.to_string()]);
        }
        if let Some(uri) = &args.tracking_uri {
            argv.extend(["--tracking-uri".into(), uri.clone()]);
        }
        if args.no_track {
            argv.push("--no-track".into());
        }
        if population > 1 {
            argv.extend(["--population".into(), population.to_string()]);
        }
        let sweep_args: SweepArgs = parse_args(&argv)?;
        let outcome = execute(ctx, &sweep_args)
            .with_context(|| format!("sweep {} ({})", i + 1, s.space.display()))?;
        if let Some(e) = &outcome.register_error {
            // The trials are stored; without a registered model there is no champion to serve.
            anyhow::bail!(
                "sweep {} ({}): its best trial could not be registered: {e}",
                i + 1,
                s.space.display()
            );
        }
        steps.push(Step {
            name: "sweep",
            seconds: t.elapsed().as_secs_f64(),
            detail: format!(
                "{}: {} complete, {} pruned, best {}",
                outcome.study,
                outcome.summary.n_complete,
                outcome.summary.n_pruned,
                outcome
                    .summary
                    .best
                    .as_ref()
                    .and_then(|b| b.value)
                    .map_or_else(|| "-".into(), |v| format!("{v:.5}"))
            ),
        });
        done.push(SweepDone {
            space: s.space.clone(),
            n_trials,
            population,
            timeout,
            outcome,
        });
    }

    // 4. The decision layer over the top trials of every sweep (same folds, so the out-of-fold
    // predictions line up): an ensemble with class weights, scored by cross-fitting, exported
    // and registered; it becomes the champion only if it beats every single model.
    let t = Instant::now();
    let decision = if plan.top_k > 0 {
        decision_layer(ctx, args, &done, plan.top_k)?
    } else {
        None
    };
    steps.push(Step {
        name: "decision",
        seconds: t.elapsed().as_secs_f64(),
        detail: decision.as_ref().map_or_else(
            || "skipped (fewer than 2 trials with out-of-fold predictions)".into(),
            |d| {
                format!(
                    "ensemble of {} from {} candidates: {:.5} cross-fitted (best single {:.5}){}",
                    d.report.ensemble.members.len(),
                    d.candidates,
                    d.accuracy,
                    d.report.raw_accuracy,
                    if d.promoted { ", champion" } else { "" }
                )
            },
        ),
    });

    // 5. The champion: the registry's, which every sweep's best and the ensemble competed for.
    let t = Instant::now();
    let registry = crate::model_ref::open_registry(args.tracking_uri.as_deref())?;
    let reference = ModelRef::parse(&format!("models:/{}@{CHAMPION}", plan.register))?
        .context("internal: champion reference")?;
    let version = registry.version_of(&reference).with_context(|| {
        format!(
            "no champion of `{}` after the sweeps (did every trial fail or get pruned?)",
            plan.register
        )
    })?;
    let champion_dir = registry.bundle_dir(&plan.register, version)?;
    let champion = registry
        .model(&plan.register)?
        .versions
        .into_iter()
        .find(|v| v.version == version)
        .with_context(|| format!("version {version} of `{}` not listed", plan.register))?;
    let cv_accuracy = champion.metrics.get("cv_accuracy_mean").copied();
    let cv_logloss = champion.metrics.get("cv_logloss_mean").copied();
    steps.push(Step {
        name: "champion",
        seconds: t.elapsed().as_secs_f64(),
        detail: format!(
            "{} version {version} ({}), CV accuracy {}",
            plan.register,
            champion.family,
            cv_accuracy.map_or_else(|| "-".into(), |a| format!("{a:.5}"))
        ),
    });

    // 6. Submission for the test file.
    let model_arg = champion_dir.to_string_lossy().into_owned();
    let submission = match &config.data.test {
        Some(test) => {
            let t = Instant::now();
            let path = PathBuf::from(format!("reports/submission-{}.csv", config.name));
            let predict_args: PredictArgs = parse_args(&[
                "--model".into(),
                model_arg.clone(),
                "--input".into(),
                config.data_path(test).to_string_lossy().into_owned(),
                "--output".into(),
                path.to_string_lossy().into_owned(),
                "--submission".into(),
            ])?;
            let p = predict::predict_file(ctx, &predict_args)?;
            steps.push(Step {
                name: "submission",
                seconds: t.elapsed().as_secs_f64(),
                detail: format!("{} rows", p.rows),
            });
            Some(p)
        }
        None => None,
    };

    // 7. Monitoring: the current data against the training data, through the champion.
    let monitored = match &config.data.current {
        Some(_) => {
            let t = Instant::now();
            let monitor_args: MonitorArgs = parse_args(&["--model".into(), model_arg.clone()])?;
            let m = monitor::monitor(ctx, &monitor_args)?;
            steps.push(Step {
                name: "monitor",
                seconds: t.elapsed().as_secs_f64(),
                detail: format!(
                    "dataset drift {}, {} of {} columns drifted",
                    if m.report.dataset_drift { "yes" } else { "no" },
                    m.report.drifted_columns().len(),
                    m.report.columns.len()
                ),
            });
            Some(m)
        }
        None => None,
    };

    let seconds = started.elapsed().as_secs_f64();
    let studies: Vec<Value> = done.iter().map(sweep_json).collect();
    let reports = json!({
        "eda": eda.path,
        "studies": done.iter().map(|d| &d.outcome.report).collect::<Vec<_>>(),
        "monitor": monitored.as_ref().map(|m| &m.path),
        "submission": submission.as_ref().map(|p| &p.output),
    });
    if ctx.json {
        output::json(&json!({
            "champion": champion_dir,
            "champion_ref": format!("models:/{}@{CHAMPION}", plan.register),
            "version": version,
            "family": champion.family,
            "cv_accuracy": cv_accuracy,
            "cv_logloss": cv_logloss,
            "device": device.name,
            "adapter": device.adapter,
            "registry": registry.describe(),
            "studies": studies,
            "decision": decision.as_ref().map(|d| json!({
                "candidates": d.candidates,
                "raw_accuracy": d.report.raw_accuracy,
                "ensemble_accuracy": d.report.ensemble_accuracy,
                "ensemble_weighted_accuracy": d.report.ensemble_weighted_accuracy,
                "ensemble_logloss": d.report.ensemble_logloss,
                "members": d.members.iter().map(|(label, w)| json!({"trial": label, "weight": w})).collect::<Vec<_>>(),
                "class_weights": d.class_weights,
                "accuracy": d.accuracy,
                "bundle": d.bundle,
                "version": d.version,
                "champion": d.promoted,
            })),
            "reports": reports,
            "submission_rows": submission.as_ref().map(|p| p.rows),
            "dataset_drift": monitored.as_ref().map(|m| m.report.dataset_drift),
            "drifted_columns": monitored.as_ref().map(|m| m.report.drifted_columns()),
            "budget_minutes": budget,
            "seconds": seconds,
            "steps": steps.iter().map(|s| json!({"step": s.name, "seconds": s.seconds, "detail": s.detail})).collect::<Vec<_>>(),
        }));
        return Ok(());
    }
    let rows: Vec<Vec<String>> = steps
        .iter()
        .map(|s| {
            vec![
                s.name.to_owned(),
                format!("{:.1}", s.seconds),
                s.detail.clone(),
            ]
        })
        .collect();
    let mut s = format!(
        "tabtune run: {} on {} in {:.1} min (budget {budget} min)\n\n",
        config.name,
        device.name,
        seconds / 60.0
    );
    s.push_str(&output::table(&["step", "seconds", "result"], &rows));
    s.push_str(&format!(
        "\nchampion: models:/{}@{CHAMPION} = version {version} ({}), CV accuracy {}\n  bundle: {}\n",
        plan.register,
        champion.family,
        cv_accuracy.map_or_else(|| "-".into(), |a| format!("{a:.5}")),
        champion_dir.display()
    ));
    if let Some(d) = &decision {
        s.push_str(&format!(
            "decision layer (out-of-fold, cross-fitted): best single {:.5} | ensemble of {} {:.5} | + class weights {:.5} -> version {}{}\n",
            d.report.raw_accuracy,
            d.members.len(),
            d.report.ensemble_accuracy,
            d.report.ensemble_weighted_accuracy,
            d.version,
            if d.promoted { " (champion)" } else { " (not better than the champion)" }
        ));
    }
    s.push_str(&format!("\nEDA report:        {}\n", eda.path.display()));
    for d in &done {
        s.push_str(&format!(
            "study report:      {}\n",
            d.outcome.report.display()
        ));
    }
    if let Some(m) = &monitored {
        s.push_str(&format!("monitoring report: {}\n", m.path.display()));
    }
    if let Some(p) = &submission {
        s.push_str(&format!(
            "submission:        {} ({} rows)\n",
            p.output.display(),
            p.rows
        ));
    }
    s.push_str(&format!(
        "\nserve it:          tabtune serve --model models:/{}@{CHAMPION}\n",
        plan.register
    ));
    output::text(&s);
    Ok(())
}

/// The decision layer's outcome.
struct Decided {
    /// Trials considered.
    candidates: usize,
    /// The shipped ensemble's cross-fitted accuracy (with its class weights if they helped).
    accuracy: f64,
    /// The shipped class weights (all 1 when cross-fitting found no gain).
    class_weights: Vec<f64>,
    report: DecisionReport,
    /// `(study#trial, weight)` of the shipped ensemble.
    members: Vec<(String, f64)>,
    bundle: PathBuf,
    version: u64,
    promoted: bool,
}

/// The decision layer over the top `k` complete trials of each sweep that have out-of-fold
/// predictions; exports the ensemble as a bundle and registers it.
fn decision_layer(
    ctx: &Context,
    args: &RunArgs,
    done: &[SweepDone],
    k: usize,
) -> Result<Option<Decided>> {
    let config = &ctx.config;
    let input = parse_args::<InputArgs>(&[])?;
    let loaded = ctx.load(&input, TargetPresence::Required)?;
    let mut table = loaded.table;
    if config.transforms.dedup {
        table = table.dedup().0;
    }
    let y = table.target.clone().unwrap_or_default();
    // (study, trial, oof) of the candidates, best first within each study.
    let mut candidates: Vec<(String, u64, Array2<f64>)> = Vec::new();
    for d in done {
        let o = &d.outcome;
        let store = OofStore::new(study_dir(&o.study).join("oof"));
        let top = top_oofs(&o.trials, o.metric.direction(), &store, k, table.n_rows())?;
        candidates.extend(top.into_iter().map(|(n, m)| (o.study.clone(), n, m)));
    }
    if candidates.len() < 2 {
        tracing::info!("decision layer skipped: fewer than 2 trials with out-of-fold predictions");
        return Ok(None);
    }
    let kfold = KFold {
        folds: args.folds.unwrap_or(config.cv.folds),
        repeats: 1,
        seed: args.seed.unwrap_or(config.cv.seed),
        stratify: config.cv.stratify,
    };
    let fold_of = fold_of(kfold, &y, config.schema.classes().len())?;
    let views: Vec<_> = candidates.iter().map(|(_, _, m)| m.view()).collect();
    let report = decide(&views, &y, &fold_of, 20)?;

    // Fit every member on all rows (a study's registered best is reused) and ship the blend.
    let dir = PathBuf::from(format!("checkpoints/{}-ensemble", config.name));
    let mut members = Vec::new();
    let mut labels = Vec::new();
    let mut preprocessor = None;
    let mut training_data = None;
    for &(i, weight) in &report.ensemble.members {
        let (study, number, _) = &candidates[i];
        let label = format!("{study}#{number}");
        let reused = done.iter().find_map(|d| {
            let o = &d.outcome;
            let best = o.summary.best.as_ref().map(|b| b.number);
            (o.study == *study && best == Some(*number))
                .then(|| o.registered.as_ref().map(|r| r.bundle.clone()))
                .flatten()
        });
        let bundle_dir = match reused {
            Some(b) => b,
            None => {
                export_trial(
                    ctx,
                    &ExportRequest {
                        input: &input,
                        study,
                        storage: &args.storage,
                        trial: Some(*number),
                        output: Some(dir.with_file_name(format!(
                            "{}-ensemble-member-{}-{number}",
                            config.name,
                            study.replace(['/', '\\'], "_")
                        ))),
                        device: &args.device,
                    },
                )?
                .bundle
            }
        };
        let bundle = Bundle::load(&bundle_dir)?;
        match &preprocessor {
            None => preprocessor = Some(bundle.preprocessor.clone()),
            Some(p) if *p != bundle.preprocessor => {
                tracing::warn!(
                    "decision layer not shipped: {label} was fitted with another preprocessing"
                );
                return Ok(None);
            }
            Some(_) => {}
        }
        training_data.get_or_insert(bundle.meta.training_data.clone());
        labels.push((label.clone(), weight));
        members.push(EnsembleMember {
            model: bundle.model,
            weight,
            label,
        });
    }
    let preprocessor = preprocessor.context("internal: an ensemble without members")?;
    // The class weights ship only if cross-fitting says they help.
    let weighted = report.ensemble_weighted_accuracy > report.ensemble_accuracy;
    let (class_weights, accuracy) = if weighted {
        (
            report.class_weights.weights.clone(),
            report.ensemble_weighted_accuracy,
        )
    } else {
        (
            vec![1.0; report.class_weights.weights.len()],
            report.ensemble_accuracy,
        )
    };
    let model = EnsembleModel::new(members, class_weights.clone())?;
    let name = dir
        .file_name()
        .map_or_else(|| "ensemble".into(), |n| n.to_string_lossy().into_owned());
    let mut meta = BundleMeta::new(
        &name,
        "ensemble",
        &preprocessor,
        json!({
            "members": labels.iter().map(|(l, w)| json!({"trial": l, "weight": w})).collect::<Vec<_>>(),
            "class_weights": class_weights,
        }),
        training_data.context("internal: an ensemble without members")?,
    );
    meta.metrics.extend([
        // Cross-fitted (never scored on rows it was tuned on): comparable with the members'
        // CV accuracy.
        ("cv_accuracy_mean".to_owned(), accuracy),
        (
            "cv_accuracy_weighted_ensemble".to_owned(),
            report.ensemble_weighted_accuracy,
        ),
        ("cv_logloss_mean".to_owned(), report.ensemble_logloss),
        (
            "cv_accuracy_plain_ensemble".to_owned(),
            report.ensemble_accuracy,
        ),
        ("cv_accuracy_best_single".to_owned(), report.raw_accuracy),
        ("cv_folds".to_owned(), report.folds as f64),
    ]);
    Bundle {
        meta,
        model: AnyModel::Ensemble(model),
        preprocessor,
    }
    .save(&dir)?;
    let registry = crate::model_ref::open_registry(args.tracking_uri.as_deref())?;
    let (version, promotion) = register_and_maybe_promote(
        registry.as_ref(),
        &config.run.register,
        &dir,
        "cv_accuracy_mean",
        RegistryDirection::Maximize,
    )?;
    tracing::info!(
        "decision layer: registered {} version {}: {}",
        config.run.register,
        version.version,
        promotion.reason
    );
    Ok(Some(Decided {
        candidates: candidates.len(),
        accuracy,
        class_weights,
        report,
        members: labels,
        bundle: dir,
        version: version.version,
        promoted: promotion.promoted,
    }))
}

/// Whether the device is a GPU (CUDA, or a wgpu adapter that `select` found to be a real GPU).
fn is_gpu(device: &DeviceChoice) -> bool {
    !matches!(device.device, Device::Cpu)
}

/// The `--device` the sweeps get: the one already picked, so every sweep uses the same device
/// and `auto` is probed once.
fn device_arg(requested: &str, picked: &DeviceChoice) -> String {
    if requested == "auto" {
        picked.name.clone()
    } else {
        requested.to_owned()
    }
}

fn sweep_json(d: &SweepDone) -> Value {
    let o = &d.outcome;
    json!({
        "space": d.space,
        "study": o.study,
        "storage": o.storage,
        "metric": o.metric.name(),
        "n_trials": d.n_trials,
        "population": d.population,
        "timeout_seconds": d.timeout,
        "n_complete": o.summary.n_complete,
        "n_pruned": o.summary.n_pruned,
        "n_failed": o.summary.n_failed,
        "best_value": o.summary.best.as_ref().and_then(|b| b.value),
        "best_trial": o.summary.best.as_ref().map(|b| b.number),
        "decision": o.decision.as_ref().map(|(d, _)| json!({
            "raw_accuracy": d.raw_accuracy,
            "ensemble_accuracy": d.ensemble_accuracy,
            "ensemble_weighted_accuracy": d.ensemble_weighted_accuracy,
        })),
        "registered": o.registered.as_ref().map(|r| json!({
            "name": r.name,
            "version": r.version.version,
            "bundle": r.bundle,
            "champion": r.promotion.promoted,
            "reason": r.promotion.reason,
        })),
        "report": o.report,
        "seconds": o.summary.seconds,
    })
}

/// Makes sure the config's data files are in the data folder: a missing file that a
/// `[[data.sources]]` entry provides is fetched (sha256 checked), unless `no_fetch`. Returns
/// the files fetched. A missing training file with no way to get it is an error saying what to
/// do; a missing test or current file is an error too, since the run would skip a report.
fn ensure_data(ctx: &Context, config: &Config, no_fetch: bool) -> Result<Vec<String>> {
    let mut wanted = vec![config.data.train.clone()];
    wanted.extend(config.data.test.iter().cloned());
    wanted.extend(config.data.current.iter().cloned());
    let dir = &config.data.dir;
    let mut fetched = Vec::new();
    for file in wanted {
        if dir.join(&file).is_file() {
            continue;
        }
        let source = config.data.sources.iter().find(|s| s.file == file);
        match (source, no_fetch) {
            (Some(source), false) => {
                let bar =
                    output::bytes_bar(ctx.progress, format!("{} -> {}", source.name, source.file));
                let outcome = fetch(source, dir, false, &mut |done, total| {
                    if let Some(t) = total {
                        bar.set_length(t);
                    }
                    bar.set_position(done);
                });
                bar.finish_and_clear();
                let outcome = outcome.with_context(|| {
                    format!(
                        "{} is missing and fetching it from source `{}` failed; put the file there \
                         (or set --data-dir / TABTUNE_DATA_DIR to the folder that has it)",
                        dir.join(&file).display(),
                        source.name
                    )
                })?;
                if outcome.status == FetchStatus::Downloaded {
                    fetched.push(file);
                }
            }
            (Some(_), true) => missing(config, dir, &file, "--no-fetch was given")?,
            (None, _) => missing(config, dir, &file, "no [[data.sources]] entry provides it")?,
        }
    }
    Ok(fetched)
}

fn missing(config: &Config, dir: &Path, file: &str, why: &str) -> Result<()> {
    Err(FeaturesError::BadFile {
        path: dir.join(file),
        message: format!(
            "not found ({why}); put it in {} or point --data-dir / TABTUNE_DATA_DIR at the folder \
             that has it (config {})",
            dir.display(),
            config.path.display()
        ),
    }
    .into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweep_arguments_parse_like_the_command_line() {
        let args: SweepArgs = parse_args(&[
            "--sweep".into(),
            "x.toml".into(),
            "--n-trials".into(),
            "3".into(),
        ])
        .expect("valid");
        assert_eq!(args.sweep, PathBuf::from("x.toml"));
        assert_eq!(args.n_trials, 3);
        assert_eq!(args.workers, 1);
        let bad = parse_args::<SweepArgs>(&["--n-trials".into(), "x".into()]);
        assert!(bad.is_err());
    }

    #[test]
    fn auto_becomes_the_picked_device() {
        let cpu = DeviceChoice::cpu("test");
        assert_eq!(device_arg("auto", &cpu), "cpu");
        assert_eq!(device_arg("cuda:1", &cpu), "cuda:1");
        assert!(!is_gpu(&cpu));
    }
}
