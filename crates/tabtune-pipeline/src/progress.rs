//! Progress of long work, reported to whoever drives the pipeline: the CLI draws bars, a
//! library caller may draw nothing ([`Silent`]). The pipeline itself never prints.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// Makes progress indicators. Implementations must be cheap when nothing is shown.
pub trait Progress: Send + Sync {
    /// An indicator of work of unknown length (a spinner with a message).
    fn spinner(&self, message: &str) -> Box<dyn Task>;
    /// A counter of `total` `unit`s (trials, feature sets), starting at `position`.
    fn counter(&self, total: u64, position: u64, unit: &str) -> Box<dyn Task>;
    /// A byte counter for a download named `message` (its length is set when known).
    fn bytes(&self, message: &str) -> Box<dyn Task>;
}

/// One running indicator; dropping it clears it.
pub trait Task: Send + Sync {
    /// Replaces the message shown beside it.
    fn set_message(&self, message: String);
    /// Moves the position forward by `n`.
    fn inc(&self, n: u64);
    /// Sets the position.
    fn set_position(&self, position: u64);
    /// Sets the total (for a byte counter whose length becomes known).
    fn set_length(&self, total: u64);
}

/// Shows nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct Silent;

struct NoTask;

impl Task for NoTask {
    fn set_message(&self, _: String) {}
    fn inc(&self, _: u64) {}
    fn set_position(&self, _: u64) {}
    fn set_length(&self, _: u64) {}
}

impl Progress for Silent {
    fn spinner(&self, _: &str) -> Box<dyn Task> {
        Box::new(NoTask)
    }
    fn counter(&self, _: u64, _: u64, _: &str) -> Box<dyn Task> {
        Box::new(NoTask)
    }
    fn bytes(&self, _: &str) -> Box<dyn Task> {
        Box::new(NoTask)
    }
}

/// What a caller hands to long-running steps: how to show progress, and a flag that stops
/// them cleanly (running trials are stored as FAIL and no new one starts). The CLI sets the
/// flag from SIGINT/SIGTERM; a library caller sets it when it wants the run to end.
#[derive(Clone)]
pub struct Hooks {
    /// Progress indicators.
    pub progress: Arc<dyn Progress>,
    /// Set it to stop.
    pub stop: Arc<AtomicBool>,
}

impl Default for Hooks {
    fn default() -> Self {
        Self {
            progress: Arc::new(Silent),
            stop: Arc::new(AtomicBool::new(false)),
        }
    }
}

impl Hooks {
    /// Hooks with a progress implementation and a fresh stop flag.
    pub fn with_progress(progress: Arc<dyn Progress>) -> Self {
        Self {
            progress,
            ..Self::default()
        }
    }

    /// Whether a stop was asked for.
    pub fn stopped(&self) -> bool {
        self.stop.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks")
            .field("stop", &self.stopped())
            .finish_non_exhaustive()
    }
}
