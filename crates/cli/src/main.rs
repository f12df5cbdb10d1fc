//! The `tabtune` binary: parses the command line, sets up logging, resolves the flags into the
//! pipeline's settings and prints what it returns. Exit codes: 0 ok, 1 runtime failure, 2 bad
//! input or usage.

mod cli;
mod commands;
mod context;
mod env;
mod error;
mod logging;
mod output;
mod settings;

use std::process::ExitCode;

use clap::Parser;
use tabtune_features::FeaturesError;

use crate::cli::{Cli, Command, DataCommand};
use crate::context::Context;
use crate::error::{CliError, Result};

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(&cli.global);
    match dispatch(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => report(&err, cli.global.json),
    }
}

fn dispatch(cli: &Cli) -> Result<()> {
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

/// Prints the error with its causes (and with `--json` an error object on stdout) and picks
/// the exit code.
fn report(err: &CliError, json: bool) -> ExitCode {
    let mut text = format!("error: {err}");
    let mut cause = std::error::Error::source(err);
    while let Some(c) = cause {
        let line = c.to_string();
        // Messages that already include their cause are not repeated.
        if !text.contains(&line) {
            text.push_str(&format!("\n  caused by: {line}"));
        }
        cause = c.source();
    }
    eprintln!("{text}");
    // An interrupted command already printed its (partial) result, the one JSON object.
    if json && !matches!(err, CliError::Interrupted { .. }) {
        let mut object = serde_json::json!({ "error": err.to_string() });
        if let Some(FeaturesError::Invalid(report)) = err.features() {
            object["file"] = serde_json::json!(report.file);
            object["rows"] = serde_json::json!(report.rows_read);
            object["invalid_rows"] = serde_json::json!(report.invalid_rows);
            object["issues"] = serde_json::json!(report.issues);
        }
        output::json(&object);
    }
    ExitCode::from(err.exit_code())
}
