//! `tabtune serve`: the HTTP API over one model bundle (or registry alias, reloadable).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use tabtune_features::TargetPresence;
use tabtune_infer::load_bundle;
use tabtune_infer::serve::{AppState, ModelSource, ReloadError, ReloadFn, ServeOptions, Server};

use crate::cli::{InputArgs, OnInvalidArg, ServeArgs};
use crate::context::Context;
use crate::model_ref::resolve_model;

/// Runs the command until Ctrl-C or SIGTERM.
pub fn run(ctx: &Context, args: &ServeArgs) -> Result<()> {
    let source = args.model.to_string_lossy().into_owned();
    let predictor = load_bundle(&resolve_model(&source, None)?)?;
    let name = predictor.bundle().meta.name.clone();
    let options = ServeOptions {
        max_body_bytes: args.max_body_bytes,
        max_in_flight: args.max_in_flight,
        window: args.window,
        min_window_rows: args.min_window_rows,
        ..ServeOptions::default()
    };
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
        let strict = InputArgs {
            input: None,
            on_invalid: OnInvalidArg::Fail,
            rejects: None,
        };
        let schema = &predictor.bundle().meta.schema;
        match ctx.load_file(&path, &strict, schema, TargetPresence::Optional) {
            Ok(loaded) => Some(loaded.table),
            Err(e) if args.reference.is_none() => {
                tracing::warn!(
                    "no reference data for /monitor/* (they will answer 409): {e:#}; pass --reference FILE"
                );
                None
            }
            Err(e) => return Err(e),
        }
    };
    let reload_source = source.clone();
    let reload: ReloadFn = Arc::new(move || {
        let dir = resolve_model(&reload_source, None).map_err(|e| ReloadError {
            message: format!("{e:#}"),
            bad_input: true,
        })?;
        load_bundle(&dir).map_err(|e| ReloadError {
            message: e.to_string(),
            bad_input: e.is_bad_input(),
        })
    });
    let mut state = AppState::new(predictor, options)
        .with_token(args.token.clone())
        .with_source(ModelSource {
            description: source,
            reload,
        });
    if let Some(reference) = reference {
        state = state.with_reference(reference);
    }
    if args.token.as_deref().is_some_and(|t| !t.is_empty()) {
        tracing::info!("/monitor/*, /feedback and /admin/reload need the bearer token");
    }
    let addr = SocketAddr::new(args.host, args.port);
    let server = Server::start(state, addr, args.threads)
        .with_context(|| format!("cannot listen on {addr}"))?;
    // Scripts wait for this line: the URL of the running server, on stderr.
    eprintln!(
        "tabtune serve: model {name} listening on http://{}",
        server.addr()
    );
    server.run_until_signal().context("serving")?;
    tracing::info!("stopped");
    Ok(())
}
