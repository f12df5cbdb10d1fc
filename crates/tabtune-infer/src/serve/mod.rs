//! The HTTP API (`tabtune serve`): axum, one loaded model (swapped atomically by
//! `POST /admin/reload`), predictions on a blocking pool behind a bounded number of permits
//! (overload = 429), request validation with field paths (422, the first problems listed and all
//! counted), a body size limit (413, a large `Content-Length` refused before the body is read),
//! a records limit (413), a body timeout (408), a connection cap and header / idle timeouts in
//! our own accept loop ([`Server`]), Prometheus metrics, monitoring reports over a window of
//! recent predictions, an optional bearer token on the monitoring and admin routes, graceful
//! shutdown with a deadline.

mod app;
mod auth;
mod error;
mod feedback;
mod memory;
mod metrics;
mod monitoring;
mod openapi;
mod request;
mod server;
mod state;
mod window;

pub use app::app;
pub use server::{Server, exposure_warning};
pub use state::{AppState, ModelSource, ReloadError, ReloadFn, ServeOptions};
