//! TensorBoard event files, written by hand (no protobuf dependency; shared/STACK.md §5).
//!
//! A file is a sequence of TFRecords: `u64 len (LE) | u32 masked_crc32c(len) | data |
//! u32 masked_crc32c(data)`, each `data` an `Event` protobuf: `double wall_time = 1; int64 step
//! = 2; string file_version = 3; Summary summary = 5`. Scalars are `Summary.Value { string tag =
//! 1; float simple_value = 2 }`. Hyperparameters are the HParams plugin's per-session summaries
//! (`_hparams_/session_start_info`, `_hparams_/session_end_info`): a `Summary.Value` with `tag`
//! and `SummaryMetadata metadata = 9 { PluginData plugin_data = 1 { string plugin_name = 1;
//! bytes content = 2 } }`, `content` an `HParamsPluginData { int32 version = 1;
//! SessionStartInfo session_start_info = 3; SessionEndInfo session_end_info = 4 }`. No
//! experiment summary is written: with several runs in one log folder the plugin builds the
//! experiment from the sessions (their hparams and scalar tags), which is what we want.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Result, TrackError};
use crate::local::safe_name;
use crate::tracker::{RunSink, RunSpec, RunStatus, Tracker};

const fn crc32c_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0x82F6_3B78 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}
static CRC_TABLE: [u32; 256] = crc32c_table();

/// CRC-32C (Castagnoli), as TFRecord uses.
fn crc32c(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c = CRC_TABLE[((c ^ u32::from(b)) & 0xFF) as usize] ^ (c >> 8);
    }
    !c
}

fn masked_crc(data: &[u8]) -> u32 {
    crc32c(data).rotate_right(15).wrapping_add(0xA282_EAD8)
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn key(field: u32, wire: u32, out: &mut Vec<u8>) {
    varint(u64::from((field << 3) | wire), out);
}

fn bytes_field(field: u32, bytes: &[u8], out: &mut Vec<u8>) {
    key(field, 2, out);
    varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

fn double_field(field: u32, v: f64, out: &mut Vec<u8>) {
    key(field, 1, out);
    out.extend_from_slice(&v.to_le_bytes());
}

fn wall_time() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// `google.protobuf.Value` of a hyperparameter: number, string or bool (others as JSON text).
fn proto_value(value: &serde_json::Value) -> Vec<u8> {
    let mut out = Vec::new();
    match value {
        serde_json::Value::Number(n) => double_field(2, n.as_f64().unwrap_or(f64::NAN), &mut out),
        serde_json::Value::String(s) => bytes_field(3, s.as_bytes(), &mut out),
        serde_json::Value::Bool(b) => {
            key(4, 0, &mut out);
            varint(u64::from(*b), &mut out);
        }
        other => bytes_field(3, other.to_string().as_bytes(), &mut out),
    }
    out
}

/// One event file.
pub struct EventWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl EventWriter {
    /// Creates `dir` and a new event file in it (`events.out.tfevents.<secs>.<host>.<pid>`).
    pub fn create(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| TrackError::io(dir, e))?;
        let now = wall_time();
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into());
        let path = dir.join(format!(
            "events.out.tfevents.{}.{}.{}",
            now as u64,
            safe_name(host.trim()),
            std::process::id()
        ));
        let file = File::create(&path).map_err(|e| TrackError::io(&path, e))?;
        let mut writer = Self {
            path,
            out: BufWriter::new(file),
        };
        let mut event = Vec::new();
        double_field(1, now, &mut event);
        bytes_field(3, b"brain.Event:2", &mut event);
        writer.record(&event)?;
        Ok(writer)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn record(&mut self, data: &[u8]) -> Result<()> {
        let len = (data.len() as u64).to_le_bytes();
        let io = |e| TrackError::io(&self.path, e);
        self.out.write_all(&len).map_err(io)?;
        self.out
            .write_all(&masked_crc(&len).to_le_bytes())
            .map_err(io)?;
        self.out.write_all(data).map_err(io)?;
        self.out
            .write_all(&masked_crc(data).to_le_bytes())
            .map_err(io)
    }

    fn summary_event(&mut self, step: u64, values: &[Vec<u8>]) -> Result<()> {
        let mut summary = Vec::new();
        for value in values {
            bytes_field(1, value, &mut summary);
        }
        let mut event = Vec::new();
        double_field(1, wall_time(), &mut event);
        key(2, 0, &mut event);
        varint(step, &mut event);
        bytes_field(5, &summary, &mut event);
        self.record(&event)
    }

    /// Scalars at `step`, in one event.
    pub fn add_scalars(&mut self, step: u64, scalars: &[(&str, f64)]) -> Result<()> {
        let values: Vec<Vec<u8>> = scalars
            .iter()
            .map(|(tag, v)| {
                let mut value = Vec::new();
                bytes_field(1, tag.as_bytes(), &mut value);
                key(2, 5, &mut value);
                value.extend_from_slice(&(*v as f32).to_le_bytes());
                value
            })
            .collect();
        self.summary_event(step, &values)
    }

    fn hparams_summary(&mut self, tag: &str, plugin_content: &[u8]) -> Result<()> {
        let mut plugin_data = Vec::new();
        bytes_field(1, b"hparams", &mut plugin_data);
        bytes_field(2, plugin_content, &mut plugin_data);
        let mut metadata = Vec::new();
        bytes_field(1, &plugin_data, &mut metadata);
        let mut value = Vec::new();
        bytes_field(1, tag.as_bytes(), &mut value);
        bytes_field(9, &metadata, &mut value);
        self.summary_event(0, &[value])
    }

    /// The HParams plugin's session start: the run's hyperparameters and its group name.
    pub fn add_hparams_start(
        &mut self,
        hparams: &std::collections::BTreeMap<String, serde_json::Value>,
        group: &str,
    ) -> Result<()> {
        let mut info = Vec::new();
        for (name, value) in hparams {
            let mut entry = Vec::new();
            bytes_field(1, name.as_bytes(), &mut entry);
            bytes_field(2, &proto_value(value), &mut entry);
            bytes_field(1, &entry, &mut info);
        }
        bytes_field(4, group.as_bytes(), &mut info);
        double_field(5, wall_time(), &mut info);
        let mut content = Vec::new();
        key(1, 0, &mut content);
        varint(0, &mut content); // plugin data version 0
        bytes_field(3, &info, &mut content);
        self.hparams_summary("_hparams_/session_start_info", &content)
    }

    /// The HParams plugin's session end with the run's status.
    pub fn add_hparams_end(&mut self, status: RunStatus) -> Result<()> {
        // tensorboard.hparams.Status: STATUS_SUCCESS = 1, STATUS_FAILURE = 2, STATUS_RUNNING = 3.
        let code = match status {
            RunStatus::Finished => 1,
            RunStatus::Failed | RunStatus::Killed => 2,
            RunStatus::Running => 3,
        };
        let mut info = Vec::new();
        key(1, 0, &mut info);
        varint(code, &mut info);
        double_field(2, wall_time(), &mut info);
        let mut content = Vec::new();
        key(1, 0, &mut content);
        varint(0, &mut content);
        bytes_field(4, &info, &mut content);
        self.hparams_summary("_hparams_/session_end_info", &content)
    }

    /// Writes buffered records to the file.
    pub fn flush(&mut self) -> Result<()> {
        self.out.flush().map_err(|e| TrackError::io(&self.path, e))
    }
}

/// TensorBoard sink: one folder per run, `<root>/<experiment>/<run name>` (default root
/// `reports/tensorboard`); point `tensorboard --logdir <root>/<experiment>` at it.
#[derive(Clone, Debug)]
pub struct TensorBoard {
    root: PathBuf,
}

impl TensorBoard {
    /// A sink writing under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }
}

struct TensorBoardRun {
    writer: EventWriter,
}

impl Tracker for TensorBoard {
    fn name(&self) -> &'static str {
        "tensorboard"
    }

    fn start_run(&self, spec: &RunSpec) -> Result<Box<dyn RunSink>> {
        let base = self.root.join(safe_name(&spec.experiment));
        let name = safe_name(&spec.name);
        // A rerun of the same name gets its own folder, so runs never mix in one chart.
        let mut dir = base.join(&name);
        let mut n = 2;
        while dir.exists() {
            dir = base.join(format!("{name}-{n}"));
            n += 1;
        }
        let mut writer = EventWriter::create(&dir)?;
        writer.add_hparams_start(&spec.params, &spec.experiment)?;
        writer.flush()?;
        Ok(Box::new(TensorBoardRun { writer }))
    }
}

impl RunSink for TensorBoardRun {
    fn log_metrics(&mut self, step: u64, metrics: &[(&str, f64)]) -> Result<()> {
        self.writer.add_scalars(step, metrics)?;
        self.writer.flush()
    }

    fn set_tags(&mut self, _tags: &[(&str, &str)]) -> Result<()> {
        // TensorBoard has no run tags; the local store and MLflow keep them.
        Ok(())
    }

    fn log_artifact(&mut self, _path: &Path) -> Result<()> {
        // TensorBoard keeps no artifacts; the local store and MLflow do.
        Ok(())
    }

    fn end(&mut self, status: RunStatus) -> Result<()> {
        self.writer.add_hparams_end(status)?;
        self.writer.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_known_vector() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn records_are_framed_with_their_checksums() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut w = EventWriter::create(tmp.path()).expect("create");
        w.add_scalars(3, &[("accuracy", 0.5)]).expect("scalar");
        w.flush().expect("flush");
        let bytes = std::fs::read(w.path()).expect("read");
        let mut at = 0;
        let mut records = 0;
        while at < bytes.len() {
            let len_bytes = &bytes[at..at + 8];
            let len = u64::from_le_bytes(len_bytes.try_into().expect("8 bytes")) as usize;
            let crc = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().expect("4 bytes"));
            assert_eq!(crc, masked_crc(len_bytes));
            let data = &bytes[at + 12..at + 12 + len];
            let crc = u32::from_le_bytes(
                bytes[at + 12 + len..at + 16 + len]
                    .try_into()
                    .expect("4 bytes"),
            );
            assert_eq!(crc, masked_crc(data));
            at += 16 + len;
            records += 1;
        }
        assert_eq!(records, 2);
        // The scalar's tag and float value are in the second record.
        assert!(bytes.windows(8).any(|w| w.starts_with(b"accuracy")));
        assert!(bytes.windows(4).any(|w| w == 0.5f32.to_le_bytes()));
    }

    #[test]
    fn a_rerun_gets_its_own_folder() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let tb = TensorBoard::new(tmp.path());
        let spec = RunSpec::new("e", "run");
        let mut a = tb.start_run(&spec).expect("a");
        let mut b = tb.start_run(&spec).expect("b");
        a.end(RunStatus::Finished).expect("end");
        b.end(RunStatus::Finished).expect("end");
        assert!(tmp.path().join("e/run").is_dir());
        assert!(tmp.path().join("e/run-2").is_dir());
    }
}
