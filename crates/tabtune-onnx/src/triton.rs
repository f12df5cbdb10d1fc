//! A Triton Inference Server model repository entry for an exported model:
//!
//! ```text
//! REPO/<name>/config.pbtxt     platform onnxruntime_onnx, inputs/outputs, dynamic batching
//! REPO/<name>/labels.txt       class names, one per line (Triton's classification extension)
//! REPO/<name>/<version>/model.onnx
//! ```
//!
//! Every input is `dims: [ 1 ]` under Triton's batch dimension (the model's `[N, 1]`); the class
//! output is the model's `[N]`, declared `dims: [ 1 ]` with `reshape: { shape: [ ] }`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::error::{OnnxError, Result};
use crate::export::{CLASS_OUTPUT, OnnxModel, PROBABILITIES_OUTPUT};

/// Options of the Triton layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TritonOptions {
    /// The largest batch Triton forms (`max_batch_size`). Default 1024.
    pub max_batch_size: u32,
    /// The model version folder. Default 1.
    pub version: u64,
}

impl Default for TritonOptions {
    fn default() -> Self {
        Self {
            max_batch_size: 1024,
            version: 1,
        }
    }
}

/// The model's folder name in a repository: its name with anything but letters, digits, `-`,
/// `_` and `.` replaced by `_` (and never `.` or `..`).
pub fn triton_model_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.chars().all(|c| c == '.') {
        out = "model".into();
    }
    out
}

fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The `config.pbtxt` of `model` under `name`.
pub fn triton_config(model: &OnnxModel, name: &str, options: &TritonOptions) -> String {
    let m = &model.metadata;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# tabtune bundle {} ({}), exported by tabtune {}",
        m.name, m.family, m.exporter_version
    );
    let _ = writeln!(out, "name: {}", quoted(name));
    let _ = writeln!(out, "platform: \"onnxruntime_onnx\"");
    let _ = writeln!(out, "max_batch_size: {}", options.max_batch_size);
    let _ = writeln!(
        out,
        "version_policy: {{ specific: {{ versions: [ {} ] }} }}",
        options.version
    );
    out.push_str("input [\n");
    for (i, c) in m.inputs.iter().enumerate() {
        let ty = if c.categorical {
            "TYPE_STRING"
        } else {
            "TYPE_FP64"
        };
        let _ = write!(
            out,
            "  {{ name: {} data_type: {ty} dims: [ 1 ] }}",
            quoted(&c.name)
        );
        out.push_str(if i + 1 < m.inputs.len() { ",\n" } else { "\n" });
    }
    out.push_str("]\n");
    out.push_str("output [\n");
    let _ = writeln!(
        out,
        "  {{ name: {} data_type: TYPE_STRING dims: [ 1 ] reshape: {{ shape: [ ] }} }},",
        quoted(CLASS_OUTPUT)
    );
    let _ = writeln!(
        out,
        "  {{ name: {} data_type: TYPE_FP32 dims: [ {} ] label_filename: \"labels.txt\" }}",
        quoted(PROBABILITIES_OUTPUT),
        m.classes.len()
    );
    out.push_str("]\n");
    out.push_str("dynamic_batching { }\n");
    out.push_str("parameters { key: \"tabtune_bundle_sha256\" value: { string_value: ");
    out.push_str(&quoted(&m.bundle_sha256));
    out.push_str(" } }\n");
    out
}

/// Writes `model` into the Triton model repository `repo` as `repo/<name>/` (see the module
/// docs) and returns that folder. The folder is assembled beside its destination and renamed
/// into place whole; an existing one is replaced only once the new one is complete.
pub fn write_triton(model: &OnnxModel, repo: &Path, options: &TritonOptions) -> Result<PathBuf> {
    let name = triton_model_name(&model.metadata.name);
    let dest = repo.join(&name);
    let io = |path: &Path, e: std::io::Error| OnnxError::io(path, e);
    std::fs::create_dir_all(repo).map_err(|e| io(repo, e))?;
    let staged = tempfile::Builder::new()
        .prefix(".tabtune-triton-")
        .tempdir_in(repo)
        .map_err(|e| io(repo, e))?;
    let version_dir = staged.path().join(options.version.to_string());
    std::fs::create_dir_all(&version_dir).map_err(|e| io(&version_dir, e))?;
    let files = [
        (version_dir.join("model.onnx"), model.bytes.clone()),
        (
            staged.path().join("config.pbtxt"),
            triton_config(model, &name, options).into_bytes(),
        ),
        (
            staged.path().join("labels.txt"),
            model
                .metadata
                .classes
                .iter()
                .fold(String::new(), |mut s, c| {
                    s.push_str(c);
                    s.push('\n');
                    s
                })
                .into_bytes(),
        ),
    ];
    for (path, bytes) in files {
        std::fs::write(&path, bytes).map_err(|e| io(&path, e))?;
    }
    #[cfg(unix)]
    std::fs::set_permissions(
        staged.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .map_err(|e| io(staged.path(), e))?;
    if dest.exists() {
        // The old folder moves aside (into a temporary folder that is removed with it) and
        // the new one takes its place.
        let old = tempfile::Builder::new()
            .prefix(".tabtune-triton-old-")
            .tempdir_in(repo)
            .map_err(|e| io(repo, e))?;
        let aside = old.path().join(&name);
        std::fs::rename(&dest, &aside).map_err(|e| io(&dest, e))?;
        if let Err(e) = std::fs::rename(staged.path(), &dest) {
            // Put the old one back; the new one is removed with its temporary folder.
            let _ = std::fs::rename(&aside, &dest);
            return Err(io(&dest, e));
        }
        let _ = staged.keep();
    } else {
        std::fs::rename(staged.path(), &dest).map_err(|e| io(&dest, e))?;
        let _ = staged.keep();
    }
    Ok(dest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_safe_folder_names() {
        assert_eq!(
            triton_model_name("obesity-champion_v2"),
            "obesity-champion_v2"
        );
        assert_eq!(triton_model_name("a/b c"), "a_b_c");
        assert_eq!(triton_model_name(".."), "model");
        assert_eq!(triton_model_name(""), "model");
    }

    #[test]
    fn strings_are_quoted_for_text_format() {
        assert_eq!(quoted(r#"a"b\c"#), r#""a\"b\\c""#);
    }
}
