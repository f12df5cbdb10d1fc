//! Flags into typed settings, in one place: each command's arguments (flags, environment
//! variables already applied by clap, the config's defaults) become the pipeline's settings.
//! Flag values out of range are usage errors naming the flag.

use std::sync::Arc;
use std::time::Duration;

use tabtune_pipeline::export::ExportSettings;
use tabtune_pipeline::monitor::MonitorSettings;
use tabtune_pipeline::predict::PredictSettings;
use tabtune_pipeline::select::SelectSettings;
use tabtune_pipeline::sweep::Validation;
use tabtune_pipeline::tracking::Tracking;
use tabtune_pipeline::train::TrainSettings;
use tabtune_pipeline::{RunPlan, SweepSettings};

use crate::cli::{ExportArgs, MonitorArgs, PredictArgs, RunArgs, SelectArgs, SweepArgs, TrainArgs};
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
    if args.workers == 0 {
        return Err(UsageError::new("--workers", 0, "at least 1").into());
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
    let timeout = match args.timeout {
        Some(s) if !(s.is_finite() && s >= 0.0) => {
            return Err(UsageError::new("--timeout", s, "a number of seconds ≥ 0").into());
        }
        other => other.map(Duration::from_secs_f64),
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
    })
}

/// `tabtune export`.
pub fn export(args: &ExportArgs) -> ExportSettings {
    ExportSettings {
        input: Context::input(&args.input),
        study: args.study.clone(),
        storage: args.storage.clone(),
        trial: args.trial,
        output: args.output.clone(),
        device: args.device.clone(),
        final_model: args.final_model,
    }
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
    if let Some(budget) = args.budget_minutes
        && !(budget.is_finite() && budget > 0.0)
    {
        return Err(UsageError::new("--budget-minutes", budget, "a number of minutes > 0").into());
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

/// `tabtune serve`'s limits and timeouts, each checked (counts at least 1, timeouts positive
/// and finite, runtime threads within the machine's cores).
pub fn serve_options(args: &crate::cli::ServeArgs) -> Result<tabtune_infer::serve::ServeOptions> {
    use std::time::Duration;
    let max_threads = tabtune_models::max_threads();
    if args.threads == 0 || args.threads > max_threads.max(2) * 4 {
        return Err(UsageError::new(
            "--threads",
            args.threads,
            format!(
                "an integer in 1..={} (this machine has {max_threads} cores)",
                max_threads.max(2) * 4
            ),
        )
        .into());
    }
    for (flag, value) in [
        ("--max-body-bytes", args.max_body_bytes),
        ("--max-records", args.max_records),
        ("--max-errors-listed", args.max_errors_listed),
        ("--max-connections", args.max_connections),
    ] {
        if value == 0 {
            return Err(UsageError::new(flag, value, "at least 1").into());
        }
    }
    let seconds = |flag: &'static str, v: f64| -> Result<Duration> {
        if v.is_finite() && v > 0.0 && v <= 86_400.0 {
            Ok(Duration::from_secs_f64(v))
        } else {
            Err(UsageError::new(flag, v, "a number of seconds in (0, 86400]").into())
        }
    };
    Ok(tabtune_infer::serve::ServeOptions {
        max_body_bytes: args.max_body_bytes,
        max_records: args.max_records,
        max_errors_listed: args.max_errors_listed,
        max_in_flight: args.max_in_flight,
        window: args.window,
        min_window_rows: args.min_window_rows,
        max_connections: args.max_connections,
        header_timeout: seconds("--header-timeout", args.header_timeout)?,
        body_timeout: seconds("--body-timeout", args.body_timeout)?,
        idle_timeout: seconds("--idle-timeout", args.idle_timeout)?,
        shutdown_timeout: seconds("--shutdown-timeout", args.shutdown_timeout)?,
        ..tabtune_infer::serve::ServeOptions::default()
    })
}
