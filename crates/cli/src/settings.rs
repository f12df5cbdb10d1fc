//! Flags into typed settings, in one place: each command's arguments (flags, environment
//! variables already applied by clap, the config's defaults) become the pipeline's settings.
//! Flag values out of range are usage errors naming the flag.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tabtune_pipeline::export::ExportSettings;
use tabtune_pipeline::monitor::MonitorSettings;
use tabtune_pipeline::portable::{PortableFormat, PortableSettings};
use tabtune_pipeline::predict::PredictSettings;
use tabtune_pipeline::select::SelectSettings;
use tabtune_pipeline::sweep::Validation;
use tabtune_pipeline::tracking::Tracking;
use tabtune_pipeline::train::TrainSettings;
use tabtune_pipeline::{RunPlan, SweepSettings};

use crate::cli::{
    ExportArgs, ExportFormat, MonitorArgs, PredictArgs, RunArgs, SelectArgs, SweepArgs, TrainArgs,
};
use crate::context::{Context, on_invalid};
use crate::error::{Result, UsageError};

fn tracking(no_track: bool, uri: Option<&String>) -> Tracking {
    Tracking {
        enabled: !no_track,
        uri: uri.cloned(),
    }
}

/// `tabtune train`.
pub fn train(args: &TrainArgs) -> TrainSettings {
    TrainSettings {
        input: Context::input(&args.input),
        model: args.model.clone(),
        device: args.device.clone(),
        folds: args.folds,
        repeats: args.repeats,
        seed: args.seed,
        params: args.params.clone(),
        oof: args.oof.clone(),
        save: args.save.clone(),
        checkpoint_dir: args.checkpoint_dir.clone(),
        tracking: tracking(args.no_track, args.tracking_uri.as_ref()),
        experiment: args.experiment.clone(),
    }
}

/// `tabtune sweep`.
pub fn sweep(ctx: &Context, args: &SweepArgs) -> Result<SweepSettings> {
    let max_workers = tabtune_tune::executor::MAX_WORKERS;
    if !(1..=max_workers).contains(&args.workers) {
        let expected = format!("an integer in 1..={max_workers}");
        return Err(UsageError::new("--workers", args.workers, expected).into());
    }
    if args.trials_per_device == 0 {
        return Err(UsageError::new("--trials-per-device", 0, "at least 1").into());
    }
    if args.population == 0 {
        return Err(
            UsageError::new("--population", 0, "at least 1 (1: one trial at a time)").into(),
        );
    }
    let validation = match args.holdout {
        Some(h) if !(0.05..=0.5).contains(&h) => {
            return Err(UsageError::new("--holdout", h, "between 0.05 and 0.5").into());
        }
        Some(h) => Validation::Holdout(h),
        None => Validation::Folds(args.folds),
    };
    let timeout = match args.timeout.map(|s| (s, Duration::try_from_secs_f64(s))) {
        Some((s, Err(_))) => {
            return Err(UsageError::new("--timeout", s, "a number of seconds ≥ 0").into());
        }
        other => other.and_then(|(_, d)| d.ok()),
    };
    let mut s = SweepSettings::new(Arc::clone(&ctx.config), &args.sweep);
    s.input = Context::input(&args.input);
    s.study.clone_from(&args.study);
    s.storage.clone_from(&args.storage);
    s.validation = validation;
    s.n_trials = args.n_trials;
    s.timeout = timeout;
    s.workers = args.workers;
    s.device.clone_from(&args.device);
    s.trials_per_device = args.trials_per_device;
    s.population = args.population;
    s.sampler.clone_from(&args.sampler);
    s.pruner.clone_from(&args.pruner);
    s.seed = args.seed;
    s.features.clone_from(&args.features);
    s.top_k = args.top_k;
    s.report.clone_from(&args.report);
    s.tracking = tracking(args.no_track, args.tracking_uri.as_ref());
    s.register.clone_from(&args.register);
    s.final_model = args.final_model;
    Ok(s)
}

/// `tabtune select`.
pub fn select(args: &SelectArgs) -> Result<SelectSettings> {
    for (flag, v) in [
        ("--min-share", args.min_share),
        ("--max-share", args.max_share),
    ] {
        if !(v > 0.0 && v <= 1.0) {
            return Err(UsageError::new(flag, v, "in (0, 1]").into());
        }
    }
    if args.min_share > args.max_share {
        return Err(UsageError::new(
            "--min-share",
            args.min_share,
            format!("at most --max-share ({})", args.max_share),
        )
        .into());
    }
    Ok(SelectSettings {
        input: Context::input(&args.input),
        model: args.model.clone(),
        params: args.params.clone(),
        strategy: args.strategy,
        folds: args.folds,
        min_share: args.min_share,
        max_share: args.max_share,
        study: args.study.clone(),
        storage: args.storage.clone(),
        seed: args.seed,
        output: args.output.clone(),
        tracking: tracking(args.no_track, args.tracking_uri.as_ref()),
        register: args.register.clone(),
    })
}

/// `tabtune export --study`: the bundle step (`--output` is the bundle only with
/// `--format bundle`).
pub fn export(args: &ExportArgs, study: &str) -> ExportSettings {
    ExportSettings {
        input: Context::input(&args.input),
        study: study.to_owned(),
        storage: args.storage.clone(),
        trial: args.trial,
        output: args
            .output
            .clone()
            .filter(|_| args.format == ExportFormat::Bundle),
        device: args.device.clone(),
        final_model: args.final_model,
    }
}

/// `tabtune export --format onnx|triton`: of `--model`, or of the bundle just written.
pub fn portable(args: &ExportArgs, written: Option<&Path>) -> Result<Option<PortableSettings>> {
    let format = match args.format {
        ExportFormat::Bundle if args.model.is_some() => {
            return Err(
                UsageError::new("--format", "bundle", "onnx or triton with --model").into(),
            );
        }
        ExportFormat::Bundle => return Ok(None),
        ExportFormat::Onnx => PortableFormat::Onnx,
        ExportFormat::Triton => PortableFormat::Triton,
    };
    let Some(model) = written
        .map(|dir| dir.to_string_lossy().into_owned())
        .or_else(|| args.model.clone())
    else {
        return Err(UsageError::new("--model", "nothing", "a bundle (or --study)").into());
    };
    Ok(Some(PortableSettings {
        model,
        format,
        output: args.output.clone(),
        name: None,
    }))
}

/// `tabtune predict`.
pub fn predict(args: &PredictArgs) -> PredictSettings {
    PredictSettings {
        model: args.model.to_string_lossy().into_owned(),
        input: Context::input(&args.input),
        output: args.output.clone(),
        submission: args.submission,
    }
}

/// `tabtune monitor`.
pub fn monitor(args: &MonitorArgs) -> MonitorSettings {
    MonitorSettings {
        model: args.model.to_string_lossy().into_owned(),
        reference: args.reference.clone(),
        current: args.current.clone(),
        output: args.output.clone(),
        on_invalid: on_invalid(args.on_invalid),
    }
}

/// `tabtune run`: the config's `[run]` plan with the flags' overrides.
pub fn run(ctx: &Context, args: &RunArgs) -> Result<RunPlan> {
    let most = tabtune_pipeline::settings::MAX_BUDGET_MINUTES;
    if let Some(budget) = args.budget_minutes
        && !(budget > 0.0 && budget <= most)
    {
        let expected = format!("a number of minutes in (0, {most}]");
        return Err(UsageError::new("--budget-minutes", budget, expected).into());
    }
    if args.n_trials == Some(0) {
        return Err(UsageError::new("--n-trials", 0, "at least 1").into());
    }
    let mut plan = RunPlan::with_preset(Arc::clone(&ctx.config), args.preset.as_deref())?;
    if let Some(budget) = args.budget_minutes {
        plan.settings.budget_minutes = budget;
    }
    plan.n_trials = args.n_trials;
    plan.folds = args.folds;
    plan.device.clone_from(&args.device);
    plan.storage.clone_from(&args.storage);
    plan.seed = args.seed;
    plan.tracking = tracking(args.no_track, args.tracking_uri.as_ref());
    plan.fetch = !args.no_fetch;
    Ok(plan)
}

/// `tabtune serve`'s limits and timeouts (clap checked each: counts at least 1, timeouts
/// positive, threads within the machine's cores).
pub fn serve_options(args: &crate::cli::ServeArgs) -> tabtune_infer::serve::ServeOptions {
    tabtune_infer::serve::ServeOptions {
        max_body_bytes: args.max_body_bytes,
        max_records: args.max_records,
        max_errors_listed: args.max_errors_listed,
        max_in_flight: args.max_in_flight,
        window: args.window,
        min_window_rows: args.min_window_rows,
        max_connections: args.max_connections,
        header_timeout: args.header_timeout,
        body_timeout: args.body_timeout,
        idle_timeout: args.idle_timeout,
        shutdown_timeout: args.shutdown_timeout,
        ..tabtune_infer::serve::ServeOptions::default()
    }
}
