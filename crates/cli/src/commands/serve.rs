//! `tabtune serve`: the HTTP API over one model bundle.

use std::net::SocketAddr;

use anyhow::{Context as _, Result};
use tabtune_infer::load_bundle;
use tabtune_infer::serve::{AppState, ServeOptions, Server};

use crate::cli::ServeArgs;
use crate::context::Context;
use crate::model_ref::resolve_model;

/// Runs the command until Ctrl-C or SIGTERM.
pub fn run(_ctx: &Context, args: &ServeArgs) -> Result<()> {
    let predictor = load_bundle(&resolve_model(&args.model.to_string_lossy(), None)?)?;
    let name = predictor.bundle().meta.name.clone();
    let options = ServeOptions {
        max_body_bytes: args.max_body_bytes,
        max_in_flight: args.max_in_flight,
        ..ServeOptions::default()
    };
    let addr = SocketAddr::new(args.host, args.port);
    let server = Server::start(AppState::new(predictor, options), addr, args.threads)
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
