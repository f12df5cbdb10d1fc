//! The `tabtune` binary: parses the command line, sets up logging and dispatches. Exit codes:
//! 0 ok, 1 runtime failure, 2 bad input or usage.

/// Returns a bad-input error (exit code 2) with a formatted message.
macro_rules! invalid {
    ($($arg:tt)*) => {
        return Err(tabtune_tune::TuneError::Invalid(format!($($arg)*)).into())
    };
}

mod bundle_out;
mod cli;
mod commands;
mod context;
mod env;
mod logging;
mod model_ref;
mod output;
mod tracking;

use std::process::ExitCode;

use clap::Parser;
use tabtune_features::FeaturesError;
use tabtune_infer::InferError;
use tabtune_models::ModelError;
use tabtune_track::TrackError;
use tabtune_train::TrainError;

use crate::cli::{Cli, Command, DataCommand};
use crate::context::Context;

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(&cli.global);
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => report(&err, cli.global.json),
    }
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let ctx = Context::new(&cli.global)?;
    match &cli.command {
        Command::Data(DataCommand::Fetch(args)) => commands::fetch::run(&ctx, args),
        Command::Data(DataCommand::Describe(args)) => commands::describe::run(&ctx, args),
        Command::Features(args) => commands::features::run(&ctx, args),
        Command::Eda(args) => commands::eda::run(&ctx, args),
        Command::Train(args) => commands::train::run(&ctx, args),
        Command::Predict(args) => commands::predict::run(&ctx, args),
        Command::Serve(args) => commands::serve::run(&ctx, args),
        Command::Monitor(args) => commands::monitor::run(&ctx, args),
        Command::Registry(command) => commands::registry::run(&ctx, command),
        Command::Sweep(args) => commands::sweep::run(&ctx, args),
        Command::Export(args) => commands::export::run(&ctx, args),
        Command::Select(args) => commands::select::run(&ctx, args),
        Command::Run(args) => commands::run::run(&ctx, args),
    }
}

/// Prints the error (and with `--json` an error object on stdout) and picks the exit code.
fn report(err: &anyhow::Error, json: bool) -> ExitCode {
    let features_error =
        err.downcast_ref::<FeaturesError>()
            .or_else(|| match err.downcast_ref::<TrainError>() {
                Some(TrainError::Features(e)) => Some(e),
                _ => None,
            });
    let bad_input = features_error.is_some_and(FeaturesError::is_bad_input)
        || err
            .downcast_ref::<TrainError>()
            .is_some_and(TrainError::is_bad_input)
        || err
            .downcast_ref::<InferError>()
            .is_some_and(InferError::is_bad_input)
        || err
            .downcast_ref::<ModelError>()
            .is_some_and(ModelError::is_bad_input)
        || err
            .downcast_ref::<TrackError>()
            .is_some_and(TrackError::is_bad_input)
        || err
            .downcast_ref::<tabtune_tune::TuneError>()
            .is_some_and(tabtune_tune::TuneError::is_bad_input);
    let mut text = format!("error: {err}");
    for cause in err.chain().skip(1) {
        text.push_str(&format!("\n  caused by: {cause}"));
    }
    eprintln!("{text}");
    if json {
        let mut object = serde_json::json!({ "error": err.to_string() });
        if let Some(FeaturesError::Invalid(report)) = features_error {
            object["file"] = serde_json::json!(report.file);
            object["rows"] = serde_json::json!(report.rows_read);
            object["invalid_rows"] = serde_json::json!(report.invalid_rows);
            object["issues"] = serde_json::json!(report.issues);
        }
        output::json(&object);
    }
    if bad_input {
        ExitCode::from(2)
    } else {
        ExitCode::from(1)
    }
}
