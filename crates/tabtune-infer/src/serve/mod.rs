//! The HTTP API (`tabtune serve`): axum, one loaded model, predictions on a blocking pool behind
//! a bounded number of permits (overload = 429), request validation with field paths (422),
//! a body size limit (413), Prometheus metrics, graceful shutdown.

mod app;
mod metrics;
mod openapi;
mod request;
mod server;

pub use app::{AppState, ServeOptions, app};
pub use server::Server;
