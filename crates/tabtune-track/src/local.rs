//! The local store: every run as a folder of JSON, with no server.
//!
//! ```text
//! <root>/<experiment>/<run id>/run.json       name, status, times, params, tags, artifacts (atomic)
//! <root>/<experiment>/<run id>/metrics.jsonl  one {"step","key","value","timestamp_ms"} per line
//! <root>/<experiment>/<run id>/artifacts/     copies of logged files and folders
//! ```
//! `run.json` is rewritten atomically (temp file + rename) whenever it changes; metric lines are
//! appended one whole batch per write and flushed, so a reader sees complete lines.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use tabtune_features::io::write_bytes_atomic;

use crate::error::{Result, TrackError};
use crate::tracker::{RunSink, RunSpec, RunStatus, Tracker, now_millis, param_text};

const RUN_FILE: &str = "run.json";
const METRICS_FILE: &str = "metrics.jsonl";
const ARTIFACTS_DIR: &str = "artifacts";

/// A folder of runs (default `reports/runs`).
#[derive(Clone, Debug)]
pub struct LocalStore {
    root: PathBuf,
}

/// `run.json` of a local run, plus its metrics when read back.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LocalRun {
    /// Unique id (`<start ms>-<pid>-<n>`): also the folder name.
    pub run_id: String,
    /// Experiment.
    pub experiment: String,
    /// Run name.
    pub name: String,
    /// Current or final status.
    pub status: RunStatus,
    /// Start, ms since the Unix epoch.
    pub start_ms: u64,
    /// End, ms since the Unix epoch (none while running).
    pub end_ms: Option<u64>,
    /// Hyperparameters as text (as MLflow records them).
    pub params: BTreeMap<String, String>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// Artifact names under `artifacts/`.
    pub artifacts: Vec<String>,
    /// Metric points, in the order logged (filled in by [`LocalStore::read_run`]).
    #[serde(skip)]
    pub metrics: Vec<MetricPoint>,
}

/// One logged metric value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricPoint {
    /// Step (fold, epoch).
    pub step: u64,
    /// Metric name.
    pub key: String,
    /// Value (a non-finite value is stored as `null` and read back as NaN).
    #[serde(with = "nan_as_null")]
    pub value: f64,
    /// When it was logged, ms since the Unix epoch.
    pub timestamp_ms: u64,
}

mod nan_as_null {
    use serde::{Deserialize, Deserializer, Serializer};

    #[allow(clippy::trivially_copy_pass_by_ref)]
    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            s.serialize_f64(*v)
        } else {
            s.serialize_none()
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
    }
}

static RUN_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A folder or file name made of safe characters (others become `_`).
pub(crate) fn safe_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '=') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let trimmed = cleaned.trim_start_matches('.');
    if trimmed.is_empty() {
        "_".to_owned()
    } else {
        trimmed.to_owned()
    }
}

impl LocalStore {
    /// A store under `root` (created on the first run).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The store's folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Every run of `experiment`, oldest first, with its metrics.
    pub fn runs(&self, experiment: &str) -> Result<Vec<LocalRun>> {
        let dir = self.root.join(safe_name(experiment));
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(TrackError::io(&dir, e)),
        };
        let mut runs = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| TrackError::io(&dir, e))?;
            if entry.path().join(RUN_FILE).is_file() {
                runs.push(Self::read_run(&entry.path())?);
            }
        }
        runs.sort_by(|a, b| (a.start_ms, &a.run_id).cmp(&(b.start_ms, &b.run_id)));
        Ok(runs)
    }

    /// Reads one run folder back, naming the file and line of anything malformed.
    pub fn read_run(dir: &Path) -> Result<LocalRun> {
        let path = dir.join(RUN_FILE);
        let text = std::fs::read(&path).map_err(|e| TrackError::io(&path, e))?;
        let mut run: LocalRun = serde_json::from_slice(&text)
            .map_err(|e| TrackError::corrupt(&path, format!("not a tabtune run record: {e}")))?;
        let metrics = dir.join(METRICS_FILE);
        match std::fs::read_to_string(&metrics) {
            Ok(text) => {
                for (i, line) in text.lines().enumerate() {
                    let point: MetricPoint = serde_json::from_str(line).map_err(|e| {
                        TrackError::corrupt(&metrics, format!("line {}: {e}", i + 1))
                    })?;
                    run.metrics.push(point);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(TrackError::io(&metrics, e)),
        }
        Ok(run)
    }
}

/// A run being written to the local store.
struct LocalRunWriter {
    dir: PathBuf,
    record: LocalRun,
    metrics: Option<File>,
}

impl LocalRunWriter {
    fn save(&self) -> Result<()> {
        let json = serde_json::to_vec_pretty(&self.record).expect("run records always serialize");
        write_bytes_atomic(&self.dir.join(RUN_FILE), &json)?;
        Ok(())
    }
}

impl Tracker for LocalStore {
    fn name(&self) -> &'static str {
        "local"
    }

    fn start_run(&self, spec: &RunSpec) -> Result<Box<dyn RunSink>> {
        let start_ms = now_millis();
        let run_id = format!(
            "{start_ms:013}-{}-{}",
            std::process::id(),
            RUN_COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let dir = self.root.join(safe_name(&spec.experiment)).join(&run_id);
        std::fs::create_dir_all(&dir).map_err(|e| TrackError::io(&dir, e))?;
        let writer = LocalRunWriter {
            dir,
            record: LocalRun {
                run_id,
                experiment: spec.experiment.clone(),
                name: spec.name.clone(),
                status: RunStatus::Running,
                start_ms,
                end_ms: None,
                params: spec
                    .params
                    .iter()
                    .map(|(k, v)| (k.clone(), param_text(v)))
                    .collect(),
                tags: spec.tags.clone(),
                artifacts: Vec::new(),
                metrics: Vec::new(),
            },
            metrics: None,
        };
        writer.save()?;
        Ok(Box::new(writer))
    }
}

/// Copies a file, or a folder's files recursively, to `to`.
pub(crate) fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    let meta = std::fs::metadata(from).map_err(|e| TrackError::io(from, e))?;
    if meta.is_dir() {
        std::fs::create_dir_all(to).map_err(|e| TrackError::io(to, e))?;
        for entry in std::fs::read_dir(from).map_err(|e| TrackError::io(from, e))? {
            let entry = entry.map_err(|e| TrackError::io(from, e))?;
            copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
    } else {
        std::fs::copy(from, to).map_err(|e| TrackError::io(to, e))?;
    }
    Ok(())
}

impl RunSink for LocalRunWriter {
    fn log_metrics(&mut self, step: u64, metrics: &[(&str, f64)]) -> Result<()> {
        let timestamp_ms = now_millis();
        let mut lines = Vec::new();
        for (key, value) in metrics {
            let point = MetricPoint {
                step,
                key: (*key).to_owned(),
                value: *value,
                timestamp_ms,
            };
            serde_json::to_writer(&mut lines, &point).expect("metric points always serialize");
            lines.push(b'\n');
        }
        let path = self.dir.join(METRICS_FILE);
        if self.metrics.is_none() {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| TrackError::io(&path, e))?;
            self.metrics = Some(file);
        }
        let file = self.metrics.as_mut().expect("opened above");
        file.write_all(&lines)
            .and_then(|()| file.flush())
            .map_err(|e| TrackError::io(&path, e))
    }

    fn set_tags(&mut self, tags: &[(&str, &str)]) -> Result<()> {
        for (k, v) in tags {
            self.record.tags.insert((*k).to_owned(), (*v).to_owned());
        }
        self.save()
    }

    fn log_artifact(&mut self, path: &Path) -> Result<()> {
        let name = path
            .file_name()
            .map(|n| safe_name(&n.to_string_lossy()))
            .ok_or_else(|| TrackError::bundle(path, "an artifact needs a file or folder name"))?;
        let target = self.dir.join(ARTIFACTS_DIR).join(&name);
        // Copy beside the target, then rename: a reader never sees half an artifact.
        let artifacts = self.dir.join(ARTIFACTS_DIR);
        std::fs::create_dir_all(&artifacts).map_err(|e| TrackError::io(&artifacts, e))?;
        let staging = artifacts.join(format!(".{name}.partial"));
        let _ = std::fs::remove_dir_all(&staging);
        let _ = std::fs::remove_file(&staging);
        copy_tree(path, &staging)?;
        if target.is_dir() {
            std::fs::remove_dir_all(&target).map_err(|e| TrackError::io(&target, e))?;
        }
        std::fs::rename(&staging, &target).map_err(|e| TrackError::io(&target, e))?;
        if !self.record.artifacts.contains(&name) {
            self.record.artifacts.push(name);
        }
        self.save()
    }

    fn end(&mut self, status: RunStatus) -> Result<()> {
        self.metrics = None;
        self.record.status = status;
        self.record.end_ms = Some(now_millis());
        self.save()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_reads_back_whole() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::new(tmp.path());
        let spec = RunSpec::new("my study", "trial-0")
            .trial("my study", 0)
            .param("lr", 0.1)
            .param("growth", "leaf");
        let mut run = store.start_run(&spec).expect("start");
        run.log_metrics(0, &[("accuracy", 0.5), ("logloss", f64::NAN)])
            .expect("log");
        run.log_metrics(1, &[("accuracy", 0.75)]).expect("log");
        run.set_tags(&[("note", "x")]).expect("tags");
        let artifact = tmp.path().join("model.json");
        std::fs::write(&artifact, b"{}").expect("write");
        run.log_artifact(&artifact).expect("artifact");
        run.end(RunStatus::Finished).expect("end");

        let runs = store.runs("my study").expect("runs");
        assert_eq!(runs.len(), 1);
        let r = &runs[0];
        assert_eq!(r.status, RunStatus::Finished);
        assert_eq!(r.params["lr"], "0.1");
        assert_eq!(r.params["growth"], "leaf");
        assert_eq!(r.tags["tabtune.trial"], "0");
        assert_eq!(r.tags["note"], "x");
        assert_eq!(r.artifacts, vec!["model.json"]);
        assert_eq!(r.metrics.len(), 3);
        assert_eq!(r.metrics[2].value, 0.75);
        assert!(r.metrics[1].value.is_nan());
        assert!(r.end_ms.is_some());
    }

    #[test]
    fn a_damaged_metrics_line_is_named() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::new(tmp.path());
        let mut run = store.start_run(&RunSpec::new("e", "r")).expect("start");
        run.log_metrics(0, &[("a", 1.0)]).expect("log");
        run.end(RunStatus::Finished).expect("end");
        let dir = std::fs::read_dir(tmp.path().join("e"))
            .expect("list")
            .next()
            .expect("one run")
            .expect("entry")
            .path();
        std::fs::write(dir.join(METRICS_FILE), b"{\"step\":0}\n").expect("write");
        let err = LocalStore::read_run(&dir).expect_err("damaged");
        let text = err.to_string();
        assert!(
            text.contains("metrics.jsonl") && text.contains("line 1"),
            "{text}"
        );
    }

    #[test]
    fn names_are_made_safe() {
        assert_eq!(safe_name("../x y"), "_x_y");
        assert_eq!(safe_name(""), "_");
    }
}
