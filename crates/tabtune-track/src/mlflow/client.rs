//! A small synchronous client of MLflow's REST API 2.0 (endpoints verified against MLflow
//! 3.17.2, shared/STACK.md §6), with retries on transport errors, 429 and 5xx.

use std::io::Read as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::error::{Result, TrackError};

/// MLflow's limits per `runs/log-batch` call.
pub const MAX_METRICS_PER_BATCH: usize = 1000;
/// MLflow's limit of params per `runs/log-batch` call.
pub const MAX_PARAMS_PER_BATCH: usize = 100;
/// MLflow's limit of tags per `runs/log-batch` call.
pub const MAX_TAGS_PER_BATCH: usize = 100;
/// MLflow's longest param value (longer values are cut, with a warning).
pub const MAX_PARAM_VALUE_LEN: usize = 6000;

/// How long MLflow calls may take. A server that accepts connections but never answers once
/// held a finished sweep for 218 s (a 60 s limit per attempt, three attempts, per call); every
/// call is now bounded by `call`, retries included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Connecting (TCP and TLS). Default 3 s.
    pub connect: Duration,
    /// From the request sent to the answer's headers. Default 10 s.
    pub response: Duration,
    /// One call with all its attempts and back-offs (also the most one attempt may take,
    /// body included). Default 30 s.
    pub call: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(3),
            response: Duration::from_secs(10),
            call: Duration::from_secs(30),
        }
    }
}

/// Stops a client's calls (and the sink using it) early: set on SIGTERM/SIGINT so a process
/// never waits on MLflow to exit. Shared by clones.
#[derive(Clone, Debug, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// Cancels: calls in progress give up at their next retry, new calls fail at once.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether [`Cancel::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// A connection to one MLflow tracking server.
#[derive(Clone)]
pub struct MlflowClient {
    base: String,
    agent: ureq::Agent,
    attempts: u32,
    backoff: Duration,
    timeouts: Timeouts,
    cancel: Cancel,
}

impl std::fmt::Debug for MlflowClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MlflowClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// A registered model version as MLflow returns it.
#[derive(Clone, Debug, PartialEq)]
pub struct MlflowVersion {
    /// Model name.
    pub name: String,
    /// Version number.
    pub version: u64,
    /// `source` (`runs:/<run id>/bundle`).
    pub source: String,
    /// Run that produced it.
    pub run_id: Option<String>,
    /// Creation time, ms since the Unix epoch.
    pub created_ms: u64,
    /// Tags.
    pub tags: std::collections::BTreeMap<String, String>,
    /// Aliases pointing at it.
    pub aliases: Vec<String>,
}

fn tags_of(value: &Value) -> std::collections::BTreeMap<String, String> {
    value
        .as_array()
        .map(|tags| {
            tags.iter()
                .filter_map(|t| {
                    Some((
                        t.get("key")?.as_str()?.to_owned(),
                        t.get("value")?.as_str().unwrap_or_default().to_owned(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

impl MlflowVersion {
    fn from_json(v: &Value) -> Option<Self> {
        Some(Self {
            name: v.get("name")?.as_str()?.to_owned(),
            version: v.get("version")?.as_str()?.parse().ok()?,
            source: v
                .get("source")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            run_id: v
                .get("run_id")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            created_ms: v
                .get("creation_timestamp")
                .and_then(|t| t.as_u64().or_else(|| t.as_str()?.parse().ok()))
                .unwrap_or(0),
            tags: tags_of(v.get("tags").unwrap_or(&Value::Null)),
            aliases: v
                .get("aliases")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
        })
    }
}

/// An HTTP agent with `timeouts` (status codes are answers, not errors).
fn agent(timeouts: Timeouts) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(timeouts.connect))
        .timeout_recv_response(Some(timeouts.response))
        .timeout_global(Some(timeouts.call))
        .build()
        .into()
}

/// Percent-encodes one path segment of an artifact URL.
fn encode_segment(segment: &str) -> String {
    let mut out = String::new();
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl MlflowClient {
    /// A client of the server at `uri` (`http://host:port`), with 3 attempts per call and the
    /// default [`Timeouts`].
    pub fn new(uri: &str) -> Result<Self> {
        let base = uri.trim().trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(TrackError::Reference {
                reference: uri.to_owned(),
                message: "an MLflow tracking URI must start with http:// or https://".into(),
            });
        }
        let timeouts = Timeouts::default();
        Ok(Self {
            base,
            agent: agent(timeouts),
            attempts: 3,
            backoff: Duration::from_millis(200),
            timeouts,
            cancel: Cancel::default(),
        })
    }

    /// Sets how long calls may take.
    #[must_use]
    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self.agent = agent(timeouts);
        self
    }

    /// The timeouts in effect.
    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// Uses `cancel` to stop calls early (shared with whoever cancels).
    #[must_use]
    pub fn with_cancel(mut self, cancel: Cancel) -> Self {
        self.cancel = cancel;
        self
    }

    /// The client's cancel switch.
    pub fn cancel_handle(&self) -> Cancel {
        self.cancel.clone()
    }

    /// Sets the attempts per call (at least 1) and the first back-off (doubled each retry).
    #[must_use]
    pub fn with_retries(mut self, attempts: u32, backoff: Duration) -> Self {
        self.attempts = attempts.max(1);
        self.backoff = backoff;
        self
    }

    /// The server's URL.
    pub fn uri(&self) -> &str {
        &self.base
    }

    fn send_once(
        &self,
        method: &str,
        url: &str,
        query: &[(&str, &str)],
        body: Option<Vec<u8>>,
        content_type: &str,
    ) -> std::result::Result<(u16, Vec<u8>), String> {
        let response = match method {
            "GET" => {
                let mut req = self.agent.get(url);
                for (k, v) in query {
                    req = req.query(*k, *v);
                }
                req.call()
            }
            "DELETE" => {
                let mut req = self.agent.delete(url);
                for (k, v) in query {
                    req = req.query(*k, *v);
                }
                req.call()
            }
            "PUT" => self
                .agent
                .put(url)
                .content_type(content_type)
                .send(body.unwrap_or_default().as_slice()),
            "PATCH" => self
                .agent
                .patch(url)
                .content_type(content_type)
                .send(body.unwrap_or_default().as_slice()),
            _ => self
                .agent
                .post(url)
                .content_type(content_type)
                .send(body.unwrap_or_default().as_slice()),
        };
        let mut response = response.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let mut bytes = Vec::new();
        response
            .body_mut()
            .as_reader()
            .read_to_end(&mut bytes)
            .map_err(|e| format!("reading the answer: {e}"))?;
        Ok((status, bytes))
    }

    /// One HTTP call with retries; returns the body of a 2xx answer.
    fn request(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Vec<u8>>,
        content_type: &str,
    ) -> Result<Vec<u8>> {
        let url = format!("{}{path}", self.base);
        let endpoint = format!("{method} {path}");
        let started = Instant::now();
        let deadline = started + self.timeouts.call;
        let mut wait = self.backoff;
        let mut last = String::new();
        let mut tried = 0;
        for attempt in 1..=self.attempts {
            if self.cancel.is_cancelled() {
                last = "cancelled".into();
                break;
            }
            if attempt > 1 && Instant::now() >= deadline {
                break;
            }
            tried = attempt;
            match self.send_once(method, &url, query, body.clone(), content_type) {
                Ok((status, bytes)) if (200..300).contains(&status) => return Ok(bytes),
                Ok((status, bytes)) => {
                    let parsed: Option<Value> = serde_json::from_slice(&bytes).ok();
                    let code = parsed
                        .as_ref()
                        .and_then(|v| v.get("error_code")?.as_str().map(str::to_owned));
                    let message = parsed
                        .as_ref()
                        .and_then(|v| v.get("message")?.as_str().map(str::to_owned))
                        .unwrap_or_else(|| {
                            String::from_utf8_lossy(&bytes).chars().take(300).collect()
                        });
                    let retry = status == 429 || status >= 500;
                    last = format!(
                        "HTTP {status}{}: {message}",
                        code.as_deref().map(|c| format!(" {c}")).unwrap_or_default()
                    );
                    if !retry || attempt == self.attempts {
                        return Err(TrackError::Mlflow {
                            endpoint,
                            message: format!("{} at {}", last, self.base),
                            code,
                            unavailable: retry,
                        });
                    }
                }
                Err(transport) => last = transport,
            }
            if attempt < self.attempts {
                // Back off, but never past the call's deadline, and stop at once when
                // cancelled.
                let until = (Instant::now() + wait).min(deadline);
                while Instant::now() < until && !self.cancel.is_cancelled() {
                    std::thread::sleep((until - Instant::now()).min(Duration::from_millis(20)));
                }
                wait *= 2;
            }
        }
        Err(TrackError::Mlflow {
            endpoint,
            message: format!(
                "{last} (server {} unreachable after {tried} attempt(s) in {:.1} s; limit {:?} per call)",
                self.base,
                started.elapsed().as_secs_f64(),
                self.timeouts.call
            ),
            code: None,
            unavailable: true,
        })
    }

    /// A JSON call to `/api/2.0/mlflow/<endpoint>`.
    fn call(&self, method: &str, endpoint: &str, body: &Value) -> Result<Value> {
        let path = format!("/api/2.0/mlflow/{endpoint}");
        let bytes = if method == "GET" {
            let pairs: Vec<(String, String)> = body
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| {
                            (
                                k.clone(),
                                v.as_str().map_or_else(|| v.to_string(), str::to_owned),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            let query: Vec<(&str, &str)> = pairs
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            self.request(method, &path, &query, None, "application/json")?
        } else {
            self.request(
                method,
                &path,
                &[],
                Some(body.to_string().into_bytes()),
                "application/json",
            )?
        };
        if bytes.is_empty() {
            return Ok(json!({}));
        }
        serde_json::from_slice(&bytes).map_err(|e| TrackError::Mlflow {
            endpoint: format!("{method} {endpoint}"),
            message: format!("answer is not JSON: {e}"),
            code: None,
            unavailable: false,
        })
    }

    // --- experiments and runs ---

    /// The id of experiment `name`, created when missing.
    pub fn experiment_id(&self, name: &str) -> Result<String> {
        match self.call(
            "GET",
            "experiments/get-by-name",
            &json!({"experiment_name": name}),
        ) {
            Ok(v) => {
                if let Some(id) = v
                    .pointer("/experiment/experiment_id")
                    .and_then(Value::as_str)
                {
                    return Ok(id.to_owned());
                }
            }
            Err(e) if e.mlflow_code() == Some("RESOURCE_DOES_NOT_EXIST") => {}
            Err(e) => return Err(e),
        }
        match self.call("POST", "experiments/create", &json!({"name": name})) {
            Ok(v) => v
                .get("experiment_id")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| TrackError::Mlflow {
                    endpoint: "POST experiments/create".into(),
                    message: "answer has no experiment_id".into(),
                    code: None,
                    unavailable: false,
                }),
            // Another process created it in between.
            Err(e) if e.mlflow_code() == Some("RESOURCE_ALREADY_EXISTS") => {
                let v = self.call(
                    "GET",
                    "experiments/get-by-name",
                    &json!({"experiment_name": name}),
                )?;
                Ok(v.pointer("/experiment/experiment_id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned())
            }
            Err(e) => Err(e),
        }
    }

    /// Creates a run; returns `(run_id, artifact_uri)`.
    pub fn create_run(
        &self,
        experiment_id: &str,
        name: &str,
        start_ms: u64,
        tags: &[(String, String)],
    ) -> Result<(String, String)> {
        let tags: Vec<Value> = tags
            .iter()
            .take(MAX_TAGS_PER_BATCH)
            .map(|(k, v)| json!({"key": k, "value": v}))
            .collect();
        let v = self.call(
            "POST",
            "runs/create",
            &json!({"experiment_id": experiment_id, "run_name": name, "start_time": start_ms, "tags": tags}),
        )?;
        let run_id = v
            .pointer("/run/info/run_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let artifact_uri = v
            .pointer("/run/info/artifact_uri")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        Ok((run_id, artifact_uri))
    }

    /// Logs metrics `(key, value, timestamp ms, step)`, params and tags, in as many
    /// `runs/log-batch` calls as MLflow's limits need.
    pub fn log_batch(
        &self,
        run_id: &str,
        metrics: &[(String, f64, u64, u64)],
        params: &[(String, String)],
        tags: &[(String, String)],
    ) -> Result<()> {
        let mut m = metrics.chunks(MAX_METRICS_PER_BATCH);
        let mut p = params.chunks(MAX_PARAMS_PER_BATCH);
        let mut t = tags.chunks(MAX_TAGS_PER_BATCH);
        loop {
            let (mc, pc, tc) = (m.next(), p.next(), t.next());
            if mc.is_none() && pc.is_none() && tc.is_none() {
                return Ok(());
            }
            let metrics: Vec<Value> = mc
                .unwrap_or_default()
                .iter()
                .map(
                    |(k, v, ts, step)| json!({"key": k, "value": v, "timestamp": ts, "step": step}),
                )
                .collect();
            let params: Vec<Value> = pc
                .unwrap_or_default()
                .iter()
                .map(|(k, v)| json!({"key": k, "value": v}))
                .collect();
            let tags: Vec<Value> = tc
                .unwrap_or_default()
                .iter()
                .map(|(k, v)| json!({"key": k, "value": v}))
                .collect();
            self.call(
                "POST",
                "runs/log-batch",
                &json!({"run_id": run_id, "metrics": metrics, "params": params, "tags": tags}),
            )?;
        }
    }

    /// Sets a run's final status and end time.
    pub fn end_run(&self, run_id: &str, status: &str, end_ms: u64) -> Result<()> {
        self.call(
            "POST",
            "runs/update",
            &json!({"run_id": run_id, "status": status, "end_time": end_ms}),
        )?;
        Ok(())
    }

    /// `runs/get`: the run as MLflow returns it.
    pub fn get_run(&self, run_id: &str) -> Result<Value> {
        self.call("GET", "runs/get", &json!({"run_id": run_id}))
    }

    // --- artifacts (through the server's artifact proxy) ---

    /// The proxy URL path of `rel` under a run's `mlflow-artifacts:` artifact URI.
    fn artifact_path(artifact_uri: &str, rel: &str) -> Result<String> {
        let Some(rest) = artifact_uri.strip_prefix("mlflow-artifacts:") else {
            return Err(TrackError::Mlflow {
                endpoint: "artifacts".into(),
                message: format!(
                    "the run's artifact URI {artifact_uri} is not served by the tracking server; start `mlflow server` with --serve-artifacts (scripts/mlflow-server.sh does)"
                ),
                code: None,
                unavailable: false,
            });
        };
        // `mlflow-artifacts:/exp/run/artifacts` or `mlflow-artifacts://host:port/exp/...`.
        let rest = match rest.strip_prefix("//") {
            Some(with_host) => with_host.find('/').map_or("", |i| &with_host[i..]),
            None => rest,
        };
        let mut path = String::from("/api/2.0/mlflow-artifacts/artifacts");
        for segment in rest.split('/').chain(rel.split('/')) {
            if !segment.is_empty() {
                path.push('/');
                path.push_str(&encode_segment(segment));
            }
        }
        Ok(path)
    }

    /// Uploads a file, or a folder's files recursively, to `<artifact_uri>/<rel>`.
    pub fn upload_artifact(&self, artifact_uri: &str, rel: &str, local: &Path) -> Result<()> {
        let meta = std::fs::metadata(local).map_err(|e| TrackError::io(local, e))?;
        if meta.is_dir() {
            let mut entries: Vec<_> = std::fs::read_dir(local)
                .map_err(|e| TrackError::io(local, e))?
                .collect::<std::io::Result<_>>()
                .map_err(|e| TrackError::io(local, e))?;
            entries.sort_by_key(std::fs::DirEntry::file_name);
            for entry in entries {
                let name = entry.file_name().to_string_lossy().into_owned();
                self.upload_artifact(artifact_uri, &format!("{rel}/{name}"), &entry.path())?;
            }
            return Ok(());
        }
        let bytes = std::fs::read(local).map_err(|e| TrackError::io(local, e))?;
        let path = Self::artifact_path(artifact_uri, rel)?;
        self.request("PUT", &path, &[], Some(bytes), "application/octet-stream")?;
        Ok(())
    }

    /// Lists the files under `rel` of a run's artifacts, recursively, as paths relative to the
    /// run's artifact root.
    pub fn list_artifacts(&self, run_id: &str, rel: &str) -> Result<Vec<String>> {
        let v = self.call(
            "GET",
            "artifacts/list",
            &json!({"run_id": run_id, "path": rel}),
        )?;
        let mut files = Vec::new();
        for f in v
            .get("files")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(path) = f.get("path").and_then(Value::as_str) else {
                continue;
            };
            if f.get("is_dir").and_then(Value::as_bool) == Some(true) {
                files.extend(self.list_artifacts(run_id, path)?);
            } else {
                files.push(path.to_owned());
            }
        }
        Ok(files)
    }

    /// Downloads `<artifact_uri>/<rel>`.
    pub fn download_artifact(&self, artifact_uri: &str, rel: &str) -> Result<Vec<u8>> {
        let path = Self::artifact_path(artifact_uri, rel)?;
        self.request("GET", &path, &[], None, "application/octet-stream")
    }

    // --- model registry ---

    /// Creates registered model `name` (no error when it exists).
    pub fn create_registered_model(&self, name: &str) -> Result<()> {
        match self.call("POST", "registered-models/create", &json!({"name": name})) {
            Ok(_) => Ok(()),
            Err(e) if e.mlflow_code() == Some("RESOURCE_ALREADY_EXISTS") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Creates a new version of `name` from `source` (`runs:/<run>/bundle`).
    pub fn create_model_version(
        &self,
        name: &str,
        source: &str,
        run_id: &str,
        tags: &[(String, String)],
    ) -> Result<MlflowVersion> {
        let tags: Vec<Value> = tags
            .iter()
            .map(|(k, v)| json!({"key": k, "value": v}))
            .collect();
        let v = self.call(
            "POST",
            "model-versions/create",
            &json!({"name": name, "source": source, "run_id": run_id, "tags": tags}),
        )?;
        v.get("model_version")
            .and_then(MlflowVersion::from_json)
            .ok_or_else(|| TrackError::Mlflow {
                endpoint: "POST model-versions/create".into(),
                message: format!("unexpected answer {v}"),
                code: None,
                unavailable: false,
            })
    }

    /// Points `alias` of `name` at `version`.
    pub fn set_alias(&self, name: &str, alias: &str, version: u64) -> Result<()> {
        self.call(
            "POST",
            "registered-models/alias",
            &json!({"name": name, "alias": alias, "version": version.to_string()}),
        )?;
        Ok(())
    }

    /// The version `alias` of `name` points at.
    pub fn version_by_alias(&self, name: &str, alias: &str) -> Result<MlflowVersion> {
        let v = self.call(
            "GET",
            "registered-models/alias",
            &json!({"name": name, "alias": alias}),
        )?;
        v.get("model_version")
            .and_then(MlflowVersion::from_json)
            .ok_or_else(|| TrackError::Mlflow {
                endpoint: "GET registered-models/alias".into(),
                message: format!("unexpected answer {v}"),
                code: None,
                unavailable: false,
            })
    }

    /// Version `version` of `name`.
    pub fn model_version(&self, name: &str, version: u64) -> Result<MlflowVersion> {
        let v = self.call(
            "GET",
            "model-versions/get",
            &json!({"name": name, "version": version.to_string()}),
        )?;
        v.get("model_version")
            .and_then(MlflowVersion::from_json)
            .ok_or_else(|| TrackError::Mlflow {
                endpoint: "GET model-versions/get".into(),
                message: format!("unexpected answer {v}"),
                code: None,
                unavailable: false,
            })
    }

    /// Every version of `name`.
    pub fn model_versions(&self, name: &str) -> Result<Vec<MlflowVersion>> {
        let filter = format!("name='{}'", name.replace('\'', "\\'"));
        let v = self.call(
            "GET",
            "model-versions/search",
            &json!({"filter": filter, "max_results": 10000}),
        )?;
        let mut versions: Vec<MlflowVersion> = v
            .get("model_versions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(MlflowVersion::from_json)
            .collect();
        versions.sort_by_key(|v| v.version);
        Ok(versions)
    }

    /// `registered-models/get`: the model with its aliases and tags.
    pub fn registered_model(&self, name: &str) -> Result<Value> {
        let v = self.call("GET", "registered-models/get", &json!({"name": name}))?;
        Ok(v.get("registered_model").cloned().unwrap_or(Value::Null))
    }

    /// Names of every registered model.
    pub fn registered_model_names(&self) -> Result<Vec<String>> {
        let v = self.call(
            "GET",
            "registered-models/search",
            &json!({"max_results": 1000}),
        )?;
        let mut names: Vec<String> = v
            .get("registered_models")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|m| m.get("name")?.as_str().map(str::to_owned))
            .collect();
        names.sort();
        Ok(names)
    }
}

/// Tags of a `registered-models/get` answer.
pub(crate) fn model_tags(model: &Value) -> std::collections::BTreeMap<String, String> {
    tags_of(model.get("tags").unwrap_or(&Value::Null))
}

/// Aliases of a `registered-models/get` answer.
pub(crate) fn model_aliases(model: &Value) -> std::collections::BTreeMap<String, u64> {
    model
        .get("aliases")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|a| {
            Some((
                a.get("alias")?.as_str()?.to_owned(),
                a.get("version")?.as_str()?.parse().ok()?,
            ))
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn artifact_urls_go_through_the_proxy() {
        assert_eq!(
            MlflowClient::artifact_path("mlflow-artifacts:/1/abc/artifacts", "bundle/model.json")
                .expect("path"),
            "/api/2.0/mlflow-artifacts/artifacts/1/abc/artifacts/bundle/model.json"
        );
        assert_eq!(
            MlflowClient::artifact_path("mlflow-artifacts://h:5000/1/abc/artifacts", "a b")
                .expect("path"),
            "/api/2.0/mlflow-artifacts/artifacts/1/abc/artifacts/a%20b"
        );
        let err = MlflowClient::artifact_path("file:///tmp/x", "a").expect_err("not served");
        assert!(err.to_string().contains("--serve-artifacts"));
    }

    /// A server that accepts connections and never answers; the sockets stay open until the
    /// listener's thread is dropped with the test.
    pub(crate) fn silent_server() -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming() {
                match stream {
                    Ok(s) => held.push(s),
                    Err(_) => return,
                }
            }
        });
        format!("http://{addr}")
    }

    #[test]
    fn a_server_that_never_answers_costs_one_call_deadline() {
        assert_eq!(
            Timeouts::default(),
            Timeouts {
                connect: Duration::from_secs(3),
                response: Duration::from_secs(10),
                call: Duration::from_secs(30),
            }
        );
        let client = MlflowClient::new(&silent_server())
            .expect("client")
            .with_timeouts(Timeouts {
                connect: Duration::from_secs(1),
                response: Duration::from_millis(300),
                call: Duration::from_secs(1),
            });
        let (tx, rx) = std::sync::mpsc::channel();
        let started = Instant::now();
        let worker = client.clone();
        std::thread::spawn(move || {
            let _ = tx.send(worker.experiment_id("x"));
        });
        // Before the timeouts: 3 attempts of up to 60 s each.
        let result = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the call returns within its deadline");
        let err = result.expect_err("no answer");
        assert!(err.is_unavailable(), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        assert!(err.to_string().contains("limit 1s per call"), "{err}");
    }

    #[test]
    fn a_cancelled_client_stops_retrying_at_once() {
        let client = MlflowClient::new(&silent_server())
            .expect("client")
            .with_retries(5, Duration::from_secs(5))
            .with_timeouts(Timeouts {
                connect: Duration::from_secs(1),
                response: Duration::from_millis(200),
                call: Duration::from_mins(1),
            });
        let cancel = client.cancel_handle();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(client.experiment_id("x"));
        });
        std::thread::sleep(Duration::from_millis(400));
        let started = Instant::now();
        cancel.cancel();
        let result = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("the call stops soon after the cancel");
        assert!(result.is_err());
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn a_uri_must_be_http() {
        let err = MlflowClient::new("localhost:5000").expect_err("no scheme");
        assert!(err.to_string().contains("http://"), "{err}");
    }

    #[test]
    fn a_dead_server_is_an_error_naming_it() {
        // Port 9 (discard) is closed on a normal machine: connection refused at once.
        let client = MlflowClient::new("http://127.0.0.1:9")
            .expect("client")
            .with_retries(2, Duration::from_millis(1));
        let err = client.experiment_id("x").expect_err("dead");
        let text = err.to_string();
        assert!(
            text.contains("127.0.0.1:9") && text.contains("2 attempt(s)"),
            "{text}"
        );
    }
}
