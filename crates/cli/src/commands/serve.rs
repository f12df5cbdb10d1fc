//! `tabtune serve`: the HTTP API over one model bundle (or registry alias, reloadable).

use std::net::SocketAddr;

use tabtune_features::TargetPresence;
use tabtune_infer::load_model;
use tabtune_infer::serve::{AppState, ModelSource, ServeOptions, Server};
use tabtune_pipeline::data::{Input, load_file};

use crate::cli::ServeArgs;
use crate::context::Context;
use crate::error::{CliError, Result};
use crate::settings;

/// Runs the command until Ctrl-C or SIGTERM.
pub fn run(ctx: &Context, args: &ServeArgs) -> Result<()> {
    let options = settings::serve_options(args);
    let source = args.model.to_string_lossy().into_owned();
    let predictor = load_model(&source)?;
    let name = predictor.bundle().meta.name.clone();
    if args.window > ServeOptions::MAX_WINDOW {
        tracing::warn!(
            "--window {} is over the limit; keeping the last {} rows",
            args.window,
            ServeOptions::MAX_WINDOW
        );
    }
    // The reference of the monitoring routes: --reference must load; the default (the
    // config's training file) may be missing, and then the routes say so (409).
    let reference = if args.window == 0 {
        None
    } else {
        let path = args
            .reference
            .clone()
            .unwrap_or_else(|| ctx.config.train_path());
        let schema = &predictor.bundle().meta.schema;
        match load_file(
            &path,
            &Input::default(),
            schema,
            TargetPresence::Optional,
            ctx.progress.as_ref(),
        ) {
            Ok(loaded) => Some(loaded.table),
            Err(e) if args.reference.is_none() => {
                tracing::warn!(
                    "no reference data for /monitor/* (they will answer 409): {e}; pass --reference FILE"
                );
                None
            }
            Err(e) => return Err(e.into()),
        }
    };
    let mut state = AppState::new(predictor, options)
        .with_token(args.token.clone())
        .with_source(ModelSource::resolving(source));
    if let Some(reference) = reference {
        state = state.with_reference(reference);
    }
    if args.token.as_deref().is_some_and(|t| !t.is_empty()) {
        tracing::info!("/monitor/*, /feedback and /admin/reload need the bearer token");
    }
    let addr = SocketAddr::new(args.host, args.port);
    let server = Server::start(state, addr, args.threads).map_err(|source| CliError::System {
        what: format!("cannot listen on {addr}"),
        source,
    })?;
    // Scripts wait for this line: the URL of the running server, on stderr.
    eprintln!(
        "tabtune serve: model {name} listening on http://{}",
        server.addr()
    );
    server
        .run_until_signal()
        .map_err(|source| CliError::System {
            what: "serving".into(),
            source,
        })?;
    tracing::info!("stopped");
    Ok(())
}
