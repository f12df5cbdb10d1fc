//! The MLflow sink: calls queue on a bounded channel and one background thread sends them, so
//! training never waits on the network. Metrics queued together go out in as few
//! `runs/log-batch` calls as MLflow's limits allow. When the server is unreachable (after the
//! client's retries) the sink says so once, as a warning, and drops MLflow work for the rest of
//! the process: the other sinks still record everything, and training goes on.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::{Result, TrackError};
use crate::mlflow::client::{Cancel, MAX_PARAM_VALUE_LEN, MlflowClient};
use crate::tracker::{RunSink, RunSpec, RunStatus, Tracker, now_millis, param_text};

/// Messages queued before the sink starts dropping (and warns once).
pub const DEFAULT_QUEUE: usize = 10_000;
/// How long the sender collects updates before sending them (a flush sends at once).
const LINGER: Duration = Duration::from_millis(500);

enum Msg {
    Start {
        key: u64,
        spec: RunSpec,
        start_ms: u64,
    },
    Metrics {
        key: u64,
        step: u64,
        timestamp_ms: u64,
        items: Vec<(String, f64)>,
    },
    Tags {
        key: u64,
        items: Vec<(String, String)>,
    },
    Artifact {
        key: u64,
        path: PathBuf,
    },
    End {
        key: u64,
        status: RunStatus,
        end_ms: u64,
    },
    Flush(mpsc::Sender<()>),
}

#[derive(Default)]
struct Shared {
    /// Warned that the server is down (or the queue overflowed): never warn twice.
    warned_down: AtomicBool,
    warned_full: AtomicBool,
    /// Messages dropped because the queue was full.
    dropped: AtomicU64,
    /// Set when the server was found unreachable.
    down: AtomicBool,
    /// The first error that took the sink down.
    first_error: Mutex<Option<String>>,
    /// Warnings logged so far.
    warnings: AtomicU64,
}

/// MLflow tracking sink (see the module docs).
pub struct Mlflow {
    uri: String,
    tx: SyncSender<Msg>,
    shared: Arc<Shared>,
    next_key: AtomicU64,
    cancel: Cancel,
}

impl std::fmt::Debug for Mlflow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mlflow")
            .field("uri", &self.uri)
            .finish_non_exhaustive()
    }
}

impl Mlflow {
    /// A sink sending to the server at `uri` (checked for form only; an unreachable server is
    /// found and reported by the background thread).
    pub fn new(uri: &str) -> Result<Self> {
        Self::with_client(MlflowClient::new(uri)?, DEFAULT_QUEUE)
    }

    /// A sink using `client`, queueing at most `queue` messages.
    pub fn with_client(client: MlflowClient, queue: usize) -> Result<Self> {
        let (tx, rx) = mpsc::sync_channel(queue.max(1));
        let shared = Arc::new(Shared::default());
        let uri = client.uri().to_owned();
        let cancel = client.cancel_handle();
        let worker = Worker {
            client,
            shared: shared.clone(),
            runs: HashMap::new(),
            experiments: HashMap::new(),
        };
        std::thread::Builder::new()
            .name("tabtune-mlflow".into())
            .spawn(move || worker.run(&rx))
            .map_err(|e| TrackError::io("(mlflow sender thread)", e))?;
        Ok(Self {
            uri,
            tx,
            shared,
            next_key: AtomicU64::new(0),
            cancel,
        })
    }

    /// The server's URL.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// Whether the server was found unreachable (MLflow work is being dropped).
    pub fn is_down(&self) -> bool {
        self.shared.down.load(Ordering::Relaxed)
    }

    /// Messages dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Warnings this sink has logged (an unreachable server is reported once).
    pub fn warnings(&self) -> u64 {
        self.shared.warnings.load(Ordering::Relaxed)
    }
}

fn enqueue(tx: &SyncSender<Msg>, shared: &Shared, msg: Msg) {
    match tx.try_send(msg) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) => {
            shared.dropped.fetch_add(1, Ordering::Relaxed);
            if !shared.warned_full.swap(true, Ordering::Relaxed) {
                shared.warnings.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    "MLflow: the send queue is full (the server is slower than training); dropping MLflow updates until it catches up. The local store and TensorBoard still record everything"
                );
            }
        }
        Err(TrySendError::Disconnected(_)) => {
            if !shared.warned_down.swap(true, Ordering::Relaxed) {
                shared.warnings.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("MLflow: the sender thread has stopped; MLflow tracking is off");
            }
        }
    }
}

struct MlflowRun {
    key: u64,
    tx: SyncSender<Msg>,
    shared: Arc<Shared>,
}

impl Tracker for Mlflow {
    fn name(&self) -> &'static str {
        "mlflow"
    }

    fn start_run(&self, spec: &RunSpec) -> Result<Box<dyn RunSink>> {
        let key = self.next_key.fetch_add(1, Ordering::Relaxed);
        enqueue(
            &self.tx,
            &self.shared,
            Msg::Start {
                key,
                spec: spec.clone(),
                start_ms: now_millis(),
            },
        );
        Ok(Box::new(MlflowRun {
            key,
            tx: self.tx.clone(),
            shared: self.shared.clone(),
        }))
    }

    fn cancel(&self) {
        self.cancel.cancel();
        self.shared.down.store(true, Ordering::Relaxed);
    }

    fn flush(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let (ack_tx, ack_rx) = mpsc::channel();
        let mut msg = Msg::Flush(ack_tx);
        loop {
            match self.tx.try_send(msg) {
                Ok(()) => break,
                Err(TrySendError::Full(m)) if Instant::now() < deadline => {
                    msg = m;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => {
                    return Err(TrackError::Mlflow {
                        endpoint: "(flush)".into(),
                        message: format!(
                            "queued updates for {} not sent within {timeout:?}",
                            self.uri
                        ),
                        code: None,
                        unavailable: true,
                    });
                }
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        ack_rx.recv_timeout(left).map_err(|_| TrackError::Mlflow {
            endpoint: "(flush)".into(),
            message: format!(
                "queued updates for {} not sent within {timeout:?}",
                self.uri
            ),
            code: None,
            unavailable: true,
        })?;
        match self
            .shared
            .first_error
            .lock()
            .expect("not poisoned")
            .clone()
        {
            Some(message) => Err(TrackError::Mlflow {
                endpoint: "(tracking)".into(),
                message,
                code: None,
                unavailable: true,
            }),
            None => Ok(()),
        }
    }
}

impl RunSink for MlflowRun {
    fn log_metrics(&mut self, step: u64, metrics: &[(&str, f64)]) -> Result<()> {
        enqueue(
            &self.tx,
            &self.shared,
            Msg::Metrics {
                key: self.key,
                step,
                timestamp_ms: now_millis(),
                items: metrics.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
            },
        );
        Ok(())
    }

    fn set_tags(&mut self, tags: &[(&str, &str)]) -> Result<()> {
        enqueue(
            &self.tx,
            &self.shared,
            Msg::Tags {
                key: self.key,
                items: tags
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            },
        );
        Ok(())
    }

    fn log_artifact(&mut self, path: &Path) -> Result<()> {
        enqueue(
            &self.tx,
            &self.shared,
            Msg::Artifact {
                key: self.key,
                path: path.to_owned(),
            },
        );
        Ok(())
    }

    fn end(&mut self, status: RunStatus) -> Result<()> {
        enqueue(
            &self.tx,
            &self.shared,
            Msg::End {
                key: self.key,
                status,
                end_ms: now_millis(),
            },
        );
        Ok(())
    }
}

struct RemoteRun {
    run_id: String,
    artifact_uri: String,
    /// Metrics waiting for one `log-batch`: (key, value, timestamp ms, step).
    pending: Vec<(String, f64, u64, u64)>,
}

struct Worker {
    client: MlflowClient,
    shared: Arc<Shared>,
    /// Runs by key; `None` when the run could not be created (its updates are dropped).
    runs: HashMap<u64, Option<RemoteRun>>,
    experiments: HashMap<String, String>,
}

impl Worker {
    fn run(mut self, rx: &Receiver<Msg>) {
        while let Ok(first) = rx.recv() {
            // Linger a little so the metrics of many steps go out in one `log-batch`: one call
            // per step would cost the server (often on the same machine) far more CPU.
            let deadline = Instant::now() + LINGER;
            let mut batch = vec![first];
            while batch.len() < 4096 && !matches!(batch.last(), Some(Msg::Flush(_))) {
                match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                    Ok(more) => batch.push(more),
                    Err(_) => break,
                }
            }
            for msg in batch {
                self.handle(msg);
            }
            self.send_pending();
        }
    }

    /// Unreachable or cancelled: MLflow work is dropped.
    fn down(&self) -> bool {
        self.shared.down.load(Ordering::Relaxed) || self.client.cancel_handle().is_cancelled()
    }

    /// Records a failure: an unreachable server takes the sink down (warned once); a refused
    /// request is warned about and the sink goes on.
    fn failed(&self, what: &str, e: &TrackError) {
        if e.is_unavailable() {
            self.shared.down.store(true, Ordering::Relaxed);
            let mut first = self.shared.first_error.lock().expect("not poisoned");
            if first.is_none() {
                *first = Some(e.to_string());
            }
            if !self.shared.warned_down.swap(true, Ordering::Relaxed) {
                self.shared.warnings.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    "MLflow at {} is unavailable ({what}: {e}); MLflow tracking is off for the rest of this run. Training goes on and the local store and TensorBoard still record everything",
                    self.client.uri()
                );
            }
        } else {
            self.shared.warnings.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("MLflow refused to {what}: {e}");
        }
    }

    fn handle(&mut self, msg: Msg) {
        if let Msg::Flush(ack) = msg {
            self.send_pending();
            let _ = ack.send(());
            return;
        }
        if self.down() {
            if let Msg::End { key, .. } = &msg {
                self.runs.remove(key);
            }
            return;
        }
        match msg {
            Msg::Start {
                key,
                spec,
                start_ms,
            } => {
                let run = self.create(&spec, start_ms);
                self.runs.insert(key, run);
            }
            Msg::Metrics {
                key,
                step,
                timestamp_ms,
                items,
            } => {
                if let Some(Some(run)) = self.runs.get_mut(&key) {
                    run.pending.extend(
                        items
                            .into_iter()
                            .filter(|(_, v)| v.is_finite())
                            .map(|(k, v)| (k, v, timestamp_ms, step)),
                    );
                }
            }
            Msg::Tags { key, items } => {
                self.send_pending_of(key);
                if let Some(Some(run)) = self.runs.get(&key)
                    && let Err(e) = self.client.log_batch(&run.run_id, &[], &[], &items)
                {
                    self.failed("set tags", &e);
                }
            }
            Msg::Artifact { key, path } => {
                self.send_pending_of(key);
                if let Some(Some(run)) = self.runs.get(&key) {
                    let name = path
                        .file_name()
                        .map_or_else(|| "artifact".into(), |n| n.to_string_lossy().into_owned());
                    if let Err(e) = self.client.upload_artifact(&run.artifact_uri, &name, &path) {
                        self.failed(&format!("upload {}", path.display()), &e);
                    }
                }
            }
            Msg::End {
                key,
                status,
                end_ms,
            } => {
                self.send_pending_of(key);
                if let Some(Some(run)) = self.runs.remove(&key)
                    && let Err(e) = self.client.end_run(&run.run_id, status.as_str(), end_ms)
                {
                    self.failed("end a run", &e);
                }
            }
            Msg::Flush(_) => unreachable!("handled above"),
        }
    }

    fn create(&mut self, spec: &RunSpec, start_ms: u64) -> Option<RemoteRun> {
        let experiment_id = match self.experiments.get(&spec.experiment) {
            Some(id) => id.clone(),
            None => match self.client.experiment_id(&spec.experiment) {
                Ok(id) => {
                    self.experiments.insert(spec.experiment.clone(), id.clone());
                    id
                }
                Err(e) => {
                    self.failed(&format!("open experiment {:?}", spec.experiment), &e);
                    return None;
                }
            },
        };
        let mut tags: Vec<(String, String)> = spec
            .tags
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        tags.push(("mlflow.source.name".into(), "tabtune".into()));
        let (run_id, artifact_uri) =
            match self
                .client
                .create_run(&experiment_id, &spec.name, start_ms, &tags)
            {
                Ok(r) => r,
                Err(e) => {
                    self.failed(&format!("create run {:?}", spec.name), &e);
                    return None;
                }
            };
        let params: Vec<(String, String)> = spec
            .params
            .iter()
            .map(|(k, v)| {
                let mut text = param_text(v);
                if text.len() > MAX_PARAM_VALUE_LEN {
                    tracing::warn!(
                        "MLflow: param {k} is {} characters; cut to MLflow's {MAX_PARAM_VALUE_LEN}",
                        text.len()
                    );
                    let mut cut = MAX_PARAM_VALUE_LEN;
                    while !text.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    text.truncate(cut);
                }
                (k.clone(), text)
            })
            .collect();
        // Tags beyond the first call's limit go with the params.
        let extra_tags: Vec<(String, String)> = tags
            .into_iter()
            .skip(crate::mlflow::client::MAX_TAGS_PER_BATCH)
            .collect();
        if let Err(e) = self.client.log_batch(&run_id, &[], &params, &extra_tags) {
            self.failed(&format!("log params of run {:?}", spec.name), &e);
        }
        Some(RemoteRun {
            run_id,
            artifact_uri,
            pending: Vec::new(),
        })
    }

    fn send_pending_of(&mut self, key: u64) {
        if self.down() {
            return;
        }
        let Some(Some(run)) = self.runs.get_mut(&key) else {
            return;
        };
        if run.pending.is_empty() {
            return;
        }
        let pending = std::mem::take(&mut run.pending);
        let run_id = run.run_id.clone();
        if let Err(e) = self.client.log_batch(&run_id, &pending, &[], &[]) {
            self.failed("log metrics", &e);
        }
    }

    fn send_pending(&mut self) {
        let keys: Vec<u64> = self.runs.keys().copied().collect();
        for key in keys {
            self.send_pending_of(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_silent_server_is_left_behind_at_the_flush_deadline_and_on_cancel() {
        let client = MlflowClient::new(&crate::mlflow::client::tests::silent_server())
            .expect("client")
            .with_timeouts(crate::mlflow::Timeouts {
                connect: Duration::from_secs(1),
                response: Duration::from_secs(5),
                call: Duration::from_secs(20),
            });
        let sink = Mlflow::with_client(client, 64).expect("sink");
        for trial in 0..3 {
            let mut run = sink
                .start_run(&RunSpec::new("e", format!("t{trial}")))
                .expect("start");
            run.log_metrics(0, &[("a", 1.0)]).expect("queued");
            run.end(RunStatus::Finished).expect("queued");
        }
        // The final flush has a deadline, whatever the server does.
        let started = Instant::now();
        assert!(sink.flush(Duration::from_millis(500)).is_err());
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        // Cancelled (SIGTERM): the sender gives up its call and every later flush is quick.
        sink.cancel();
        let started = Instant::now();
        let _ = sink.flush(Duration::from_secs(15));
        assert!(
            started.elapsed() < Duration::from_secs(7),
            "flush after cancel took {:?}",
            started.elapsed()
        );
        assert!(sink.is_down());
    }

    #[test]
    fn a_dead_server_never_blocks_and_flush_reports_it() {
        let client = MlflowClient::new("http://127.0.0.1:9")
            .expect("client")
            .with_retries(2, Duration::from_millis(1));
        let sink = Mlflow::with_client(client, 64).expect("sink");
        let started = Instant::now();
        for trial in 0..20 {
            let mut run = sink
                .start_run(&RunSpec::new("e", format!("t{trial}")))
                .expect("start");
            for step in 0..10 {
                run.log_metrics(step, &[("a", 1.0)]).expect("queued");
            }
            run.end(RunStatus::Finished).expect("queued");
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "queueing took {:?}",
            started.elapsed()
        );
        let err = sink
            .flush(Duration::from_secs(30))
            .expect_err("server is down");
        assert!(err.to_string().contains("127.0.0.1:9"), "{err}");
        assert!(sink.is_down());
    }
}
