//! The HTTP API (`tabtune serve`): axum, one loaded model (swapped atomically by
//! `POST /admin/reload`), predictions on a blocking pool behind a bounded number of permits
//! (overload = 429), request validation with field paths (422), a body size limit (413),
//! Prometheus metrics, monitoring reports over a window of recent predictions, an optional
//! bearer token on the monitoring and admin routes, graceful shutdown.

mod app;
mod auth;
mod error;
mod feedback;
mod metrics;
mod monitoring;
mod openapi;
mod request;
mod server;
mod state;
mod window;

pub use app::app;
pub use server::Server;
pub use state::{AppState, ModelSource, ReloadError, ReloadFn, ServeOptions};
