//! Fan-out to every configured sink: what trainers and sweeps hold.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Result, TrackError};
use crate::tracker::{RunSink, RunSpec, RunStatus, Tracker};

/// Several trackers behind one API. A failing sink never fails the caller: its first error is
/// logged as a warning and kept in the [`RunSummary`]; the other sinks go on.
#[derive(Clone, Default)]
pub struct MultiTracker {
    trackers: Vec<Arc<dyn Tracker>>,
}

impl std::fmt::Debug for MultiTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.trackers.iter().map(|t| t.name().to_owned()))
            .finish()
    }
}

impl MultiTracker {
    /// No sinks: every call is a no-op (tracking turned off).
    pub fn none() -> Self {
        Self::default()
    }

    /// Adds a sink.
    #[must_use]
    pub fn with(mut self, tracker: impl Tracker + 'static) -> Self {
        self.trackers.push(Arc::new(tracker));
        self
    }

    /// Adds a shared sink.
    #[must_use]
    pub fn with_shared(mut self, tracker: Arc<dyn Tracker>) -> Self {
        self.trackers.push(tracker);
        self
    }

    /// Names of the sinks, in order.
    pub fn names(&self) -> Vec<String> {
        self.trackers.iter().map(|t| t.name().to_owned()).collect()
    }

    /// Whether there are no sinks.
    pub fn is_empty(&self) -> bool {
        self.trackers.is_empty()
    }

    /// Starts the run in every sink; a sink that cannot start is warned about and left out.
    pub fn start_run(&self, spec: &RunSpec) -> RunHandle {
        let mut sinks = Vec::with_capacity(self.trackers.len());
        let mut problems = Vec::new();
        for tracker in &self.trackers {
            match tracker.start_run(spec) {
                Ok(sink) => sinks.push(SinkSlot {
                    name: tracker.name().to_owned(),
                    sink,
                    failed: false,
                }),
                Err(e) => {
                    tracing::warn!(
                        "tracking: {} cannot start run {:?}: {e}; the run goes on without it",
                        tracker.name(),
                        spec.name
                    );
                    problems.push(format!("{}: {e}", tracker.name()));
                }
            }
        }
        RunHandle {
            name: spec.name.clone(),
            sinks,
            problems,
            ended: false,
        }
    }

    /// Waits until every sink has sent what it queued, `timeout` in all (a deadline for the
    /// final flush: a sink that is not done by then is reported, not waited for). Call before
    /// the process exits.
    pub fn flush(&self, timeout: Duration) -> Vec<TrackError> {
        let deadline = std::time::Instant::now() + timeout;
        self.trackers
            .iter()
            .filter_map(|t| {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                t.flush(left).err()
            })
            .collect()
    }

    /// Cancels every sink's network work (see [`Tracker::cancel`]): call on SIGTERM/SIGINT.
    pub fn cancel(&self) {
        for t in &self.trackers {
            t.cancel();
        }
    }
}

struct SinkSlot {
    name: String,
    sink: Box<dyn RunSink>,
    failed: bool,
}

/// One run in every sink. Dropping it without [`RunHandle::end`] ends the run as failed.
pub struct RunHandle {
    name: String,
    sinks: Vec<SinkSlot>,
    problems: Vec<String>,
    ended: bool,
}

impl std::fmt::Debug for RunHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunHandle")
            .field("name", &self.name)
            .field(
                "sinks",
                &self
                    .sinks
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// What [`RunHandle::end`] reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunSummary {
    /// The run's name.
    pub name: String,
    /// Sinks that recorded the whole run.
    pub complete: Vec<String>,
    /// The first error of each sink that failed (`sink: message`).
    pub problems: Vec<String>,
}

impl RunHandle {
    fn each(&mut self, what: &str, mut call: impl FnMut(&mut dyn RunSink) -> Result<()>) {
        for slot in &mut self.sinks {
            if slot.failed {
                continue;
            }
            if let Err(e) = call(slot.sink.as_mut()) {
                tracing::warn!(
                    "tracking: {} failed to {what} for run {:?}: {e}; it records nothing more for this run",
                    slot.name,
                    self.name
                );
                self.problems.push(format!("{}: {e}", slot.name));
                slot.failed = true;
            }
        }
    }

    /// Records `metrics` at `step` in every sink.
    pub fn log_metrics(&mut self, step: u64, metrics: &[(&str, f64)]) {
        self.each("log metrics", |s| s.log_metrics(step, metrics));
    }

    /// Adds tags in every sink.
    pub fn set_tags(&mut self, tags: &[(&str, &str)]) {
        self.each("set tags", |s| s.set_tags(tags));
    }

    /// Stores a file or folder (a bundle) as an artifact in every sink that keeps artifacts.
    pub fn log_artifact(&mut self, path: &Path) {
        self.each("log an artifact", |s| s.log_artifact(path));
    }

    /// Ends the run in every sink.
    pub fn end(mut self, status: RunStatus) -> RunSummary {
        self.finish(status)
    }

    fn finish(&mut self, status: RunStatus) -> RunSummary {
        self.ended = true;
        self.each("end the run", |s| s.end(status));
        RunSummary {
            name: self.name.clone(),
            complete: self
                .sinks
                .iter()
                .filter(|s| !s.failed)
                .map(|s| s.name.clone())
                .collect(),
            problems: self.problems.clone(),
        }
    }
}

impl Drop for RunHandle {
    fn drop(&mut self) {
        if !self.ended {
            self.finish(RunStatus::Failed);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[derive(Default)]
    struct Recorder {
        calls: Arc<Mutex<Vec<String>>>,
        fail_metrics: bool,
    }

    struct RecRun {
        calls: Arc<Mutex<Vec<String>>>,
        fail_metrics: bool,
    }

    impl RunSink for RecRun {
        fn log_metrics(&mut self, step: u64, metrics: &[(&str, f64)]) -> Result<()> {
            if self.fail_metrics {
                return Err(TrackError::corrupt("x", "disk full"));
            }
            self.calls
                .lock()
                .expect("lock")
                .push(format!("metrics {step} {}", metrics.len()));
            Ok(())
        }
        fn set_tags(&mut self, _: &[(&str, &str)]) -> Result<()> {
            Ok(())
        }
        fn log_artifact(&mut self, _: &Path) -> Result<()> {
            Ok(())
        }
        fn end(&mut self, status: RunStatus) -> Result<()> {
            self.calls
                .lock()
                .expect("lock")
                .push(format!("end {}", status.as_str()));
            Ok(())
        }
    }

    impl Tracker for Recorder {
        fn name(&self) -> &str {
            if self.fail_metrics { "bad" } else { "good" }
        }
        fn start_run(&self, _: &RunSpec) -> Result<Box<dyn RunSink>> {
            Ok(Box::new(RecRun {
                calls: self.calls.clone(),
                fail_metrics: self.fail_metrics,
            }))
        }
    }

    #[test]
    fn a_failing_sink_is_reported_once_and_the_others_go_on() {
        let good = Recorder::default();
        let calls = good.calls.clone();
        let bad = Recorder {
            fail_metrics: true,
            ..Recorder::default()
        };
        let tracker = MultiTracker::none().with(good).with(bad);
        let mut run = tracker.start_run(&RunSpec::new("e", "r"));
        run.log_metrics(0, &[("a", 1.0)]);
        run.log_metrics(1, &[("a", 2.0)]);
        let summary = run.end(RunStatus::Finished);
        assert_eq!(summary.complete, vec!["good".to_owned()]);
        assert_eq!(summary.problems.len(), 1, "{:?}", summary.problems);
        assert!(summary.problems[0].contains("disk full"));
        assert_eq!(
            *calls.lock().expect("lock"),
            vec!["metrics 0 1", "metrics 1 1", "end FINISHED"]
        );
    }

    #[test]
    fn dropping_a_run_ends_it_as_failed() {
        let good = Recorder::default();
        let calls = good.calls.clone();
        let tracker = MultiTracker::none().with(good);
        drop(tracker.start_run(&RunSpec::new("e", "r")));
        assert_eq!(*calls.lock().expect("lock"), vec!["end FAILED"]);
    }
}
