//! What every handler shares: the current model (swapped atomically on reload), metrics,
//! admission permits, the window of recent predictions, the reference data, the token.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tabtune_features::Table;
use tokio::sync::Semaphore;

use super::metrics::Metrics;
use super::window::Window;
use crate::predictor::Predictor;

/// Limits and timeouts of the server (each a `tabtune serve` flag; see the README's server
/// section).
#[derive(Clone, Copy, Debug)]
pub struct ServeOptions {
    /// Largest accepted request body, in bytes (larger: 413; a larger `Content-Length` is
    /// refused before the body is read).
    pub max_body_bytes: usize,
    /// Most records in one `/predict` or `/feedback` request (more: 413 at once).
    pub max_records: usize,
    /// Most problems a 422 answer lists (all are counted in `errors_total`).
    pub max_errors_listed: usize,
    /// Predictions that may run or wait at once (more: 429).
    pub max_in_flight: usize,
    /// Recent predicted rows kept for the monitoring routes (0: none; at most
    /// [`ServeOptions::MAX_WINDOW`]).
    pub window: usize,
    /// Rows a monitoring report needs at least (labelled rows for model performance).
    pub min_window_rows: usize,
    /// Monitoring reports computed at once (more: 429).
    pub max_reports_in_flight: usize,
    /// Open connections at most. At the limit a new connection closes the connection idle the
    /// longest (no request in progress); when every connection is busy it gets a 503 and is
    /// closed. Keep it below the process's open-file limit (`ulimit -n`).
    pub max_connections: usize,
    /// Once the first byte of a request arrives, its headers must be complete within this
    /// (else the connection is closed: slow headers).
    pub header_timeout: Duration,
    /// Once the headers are in, the whole body must arrive within this (else 408).
    pub body_timeout: Duration,
    /// A connection with no request in progress and nothing received for this long is closed
    /// (connections that never send, idle keep-alive).
    pub idle_timeout: Duration,
    /// On shutdown, how long requests in progress may take to finish.
    pub shutdown_timeout: Duration,
}

impl ServeOptions {
    /// The largest window: 100 000 rows (about 25 MB for the obesity schema).
    pub const MAX_WINDOW: usize = 100_000;

    /// Checks that the request and connection limits let something through (no zero counts
    /// or timeouts; `max_in_flight` 0 is allowed: every prediction is refused with 429).
    pub fn check(&self) -> Result<(), String> {
        for (name, value) in [
            ("max_body_bytes", self.max_body_bytes),
            ("max_records", self.max_records),
            ("max_errors_listed", self.max_errors_listed),
            ("max_connections", self.max_connections),
        ] {
            if value == 0 {
                return Err(format!("{name} is 0; expected at least 1"));
            }
        }
        for (name, value) in [
            ("header_timeout", self.header_timeout),
            ("body_timeout", self.body_timeout),
            ("idle_timeout", self.idle_timeout),
        ] {
            if value.is_zero() {
                return Err(format!("{name} is 0; expected a positive duration"));
            }
        }
        Ok(())
    }
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            max_body_bytes: 1 << 20,
            max_records: 10_000,
            max_errors_listed: 100,
            max_in_flight: 64,
            window: 1000,
            min_window_rows: 30,
            max_reports_in_flight: 2,
            max_connections: 512,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(10),
        }
    }
}

/// Why a reload failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReloadError {
    /// What went wrong, with the path or URI and the reason.
    pub message: String,
    /// Whether the source is at fault (a missing or modified bundle, an unknown alias: 409)
    /// rather than the server (500).
    pub bad_input: bool,
}

/// Loads the model again from where the server got it (a bundle folder, a registry alias).
pub type ReloadFn = Arc<dyn Fn() -> Result<Predictor, ReloadError> + Send + Sync>;

/// Where the model comes from, and how to load it again.
#[derive(Clone)]
pub struct ModelSource {
    /// What to show in `/version`: a path or `models:/name@alias`.
    pub description: String,
    /// Resolves the source again and loads the model it names now.
    pub reload: ReloadFn,
}

impl ModelSource {
    /// A bundle folder or registry reference, resolved and loaded again on every reload
    /// ([`crate::load_model`]).
    pub fn resolving(arg: impl Into<String>) -> Self {
        let description = arg.into();
        let source = description.clone();
        Self {
            description,
            reload: Arc::new(move || {
                crate::load_model(&source).map_err(|e| ReloadError {
                    message: e.to_string(),
                    bad_input: e.is_bad_input(),
                })
            }),
        }
    }
}

/// The model being served, with what is derived from it.
pub(crate) struct Model {
    pub predictor: Predictor,
    /// Seconds since the Unix epoch when this model started serving.
    pub loaded_unix: u64,
    /// The model's predicted classes on the reference data, computed on first use.
    pub reference_labels: OnceLock<Vec<u32>>,
}

impl Model {
    pub(crate) fn new(predictor: Predictor) -> Self {
        Self {
            predictor,
            loaded_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            reference_labels: OnceLock::new(),
        }
    }
}

/// State shared by every request.
pub(crate) struct Shared {
    model: RwLock<Arc<Model>>,
    pub metrics: Metrics,
    pub permits: Arc<Semaphore>,
    pub report_permits: Arc<Semaphore>,
    pub window: Mutex<Window>,
    pub reload_lock: tokio::sync::Mutex<()>,
    pub reloads: AtomicU64,
}

/// What every handler shares; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub(crate) shared: Arc<Shared>,
    pub(crate) options: ServeOptions,
    pub(crate) token: Option<Arc<str>>,
    pub(crate) source: Option<ModelSource>,
    pub(crate) reference: Option<Arc<Table>>,
}

impl AppState {
    /// State serving `predictor` (loaded once, shared by every request).
    pub fn new(predictor: Predictor, options: ServeOptions) -> Self {
        let window = options.window.min(ServeOptions::MAX_WINDOW);
        Self {
            shared: Arc::new(Shared {
                model: RwLock::new(Arc::new(Model::new(predictor))),
                metrics: Metrics::default(),
                permits: Arc::new(Semaphore::new(options.max_in_flight)),
                report_permits: Arc::new(Semaphore::new(options.max_reports_in_flight)),
                window: Mutex::new(Window::new(window)),
                reload_lock: tokio::sync::Mutex::new(()),
                reloads: AtomicU64::new(0),
            }),
            options: ServeOptions { window, ..options },
            token: None,
            source: None,
            reference: None,
        }
    }

    /// Requires `Authorization: Bearer <token>` on the monitoring, feedback and admin routes
    /// (`None` or an empty token: open).
    #[must_use]
    pub fn with_token(mut self, token: Option<String>) -> Self {
        self.token = token.filter(|t| !t.is_empty()).map(Arc::from);
        self
    }

    /// Enables `POST /admin/reload`.
    #[must_use]
    pub fn with_source(mut self, source: ModelSource) -> Self {
        self.source = Some(source);
        self
    }

    /// The reference data of the monitoring routes (validated against the model's schema,
    /// with labels for target drift).
    #[must_use]
    pub fn with_reference(mut self, reference: Table) -> Self {
        self.reference = Some(Arc::new(reference));
        self
    }

    pub(crate) fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The model now; requests that hold it finish on it even if a reload swaps it.
    pub(crate) fn model(&self) -> Arc<Model> {
        self.shared
            .model
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Swaps in a new model and returns the old one.
    pub(crate) fn swap_model(&self, model: Model) -> Arc<Model> {
        let mut slot = self
            .shared
            .model
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        self.shared.reloads.fetch_add(1, Ordering::Relaxed);
        std::mem::replace(&mut *slot, Arc::new(model))
    }

    pub(crate) fn window(&self) -> std::sync::MutexGuard<'_, Window> {
        self.shared
            .window
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}
