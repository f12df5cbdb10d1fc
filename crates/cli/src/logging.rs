//! Logging through `tracing`, to stderr: `-v`/`-q`, `RUST_LOG`, text or JSON lines.

use tracing_subscriber::EnvFilter;

use crate::cli::{GlobalArgs, LogFormat};
use crate::env;

/// Installs the global subscriber. `RUST_LOG` wins over `-v`/`-q`.
pub fn init(global: &GlobalArgs) {
    let level = match (global.verbose, global.quiet) {
        (0, 0) => "info",
        (1, _) => "debug",
        (v, _) if v >= 2 => "trace",
        (_, 1) => "warn",
        _ => "error",
    };
    let filter = std::env::var(env::RUST_LOG)
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match global.log_format {
        LogFormat::Text => builder.with_target(false).without_time().try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    // A subscriber is already installed only when tabtune runs as a library in tests.
    drop(result);
}
