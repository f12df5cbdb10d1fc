//! Portable exports: a bundle (a folder or a `models:/name@alias` reference) as one
//! self-contained ONNX file, or as a Triton model-repository entry, for serving without
//! tabtune (see `tabtune-onnx` for what the graph holds).
//!
//! The bundle is read as `tabtune predict` reads it (a modified bundle is refused) and the
//! output is written whole or not at all.

use std::path::{Path, PathBuf};

use tabtune_onnx::{
    OnnxMetadata, OnnxOptions, TritonOptions, export_onnx_dir, triton_model_name, write_triton,
};

use crate::error::{PipelineError, Result};

/// Where portable exports go when no output is given: `checkpoints/<name>.onnx` and the
/// Triton repository `checkpoints/triton/`.
pub const DEFAULT_DIR: &str = "checkpoints";

/// The portable form to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum PortableFormat {
    /// One `.onnx` file: raw record columns in, the label and the class probabilities out.
    Onnx,
    /// A Triton model-repository entry: `REPO/<name>/1/model.onnx`, `config.pbtxt`,
    /// `labels.txt`.
    Triton,
}

impl PortableFormat {
    /// `onnx` or `triton`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Onnx => "onnx",
            Self::Triton => "triton",
        }
    }
}

/// What to export and where.
#[derive(Clone, Debug)]
pub struct PortableSettings {
    /// A bundle folder or a `models:/name@alias` reference (resolved with
    /// `MLFLOW_TRACKING_URI`, as `predict` resolves it).
    pub model: String,
    /// ONNX file or Triton entry.
    pub format: PortableFormat,
    /// The `.onnx` file, or the Triton repository folder; `None`: under [`DEFAULT_DIR`].
    pub output: Option<PathBuf>,
    /// The graph's (and Triton model's) name; `None`: the bundle's name.
    pub name: Option<String>,
}

impl PortableSettings {
    /// `model` as one ONNX file in the default place.
    pub fn onnx(model: impl Into<String>) -> Self {
        Self {
            model: model.into(),
            format: PortableFormat::Onnx,
            output: None,
            name: None,
        }
    }
}

/// What was written.
#[derive(Clone, Debug)]
pub struct PortableExport {
    /// The bundle folder exported (a registry reference resolved).
    pub bundle: PathBuf,
    /// What was written.
    pub format: PortableFormat,
    /// The `.onnx` file, or the Triton model folder (`REPO/<name>`).
    pub path: PathBuf,
    /// Size of the ONNX model in bytes.
    pub bytes: usize,
    /// What the model records about itself (name, family, classes, bundle sha256, opsets).
    pub metadata: OnnxMetadata,
}

/// Exports the bundle as [`PortableSettings::format`] says. A bundle with a part that has no
/// ONNX form is a [`tabtune_onnx::OnnxError::Unsupported`] naming it; nothing is written then.
///
/// ```no_run
/// use tabtune_pipeline::portable::{PortableSettings, export_portable};
///
/// let out = export_portable(&PortableSettings::onnx("models:/obesity@champion"))?;
/// println!("{} ({} bytes, classes {:?})", out.path.display(), out.bytes, out.metadata.classes);
/// # Ok::<(), tabtune_pipeline::PipelineError>(())
/// ```
pub fn export_portable(settings: &PortableSettings) -> Result<PortableExport> {
    let bundle = tabtune_track::registry::resolve_model(&settings.model, None)?;
    let options = OnnxOptions {
        name: settings.name.clone(),
        ..OnnxOptions::default()
    };
    let model = export_onnx_dir(&bundle, &options)?;
    let path = match settings.format {
        PortableFormat::Onnx => {
            let path = settings.output.clone().unwrap_or_else(|| {
                Path::new(DEFAULT_DIR)
                    .join(format!("{}.onnx", triton_model_name(&model.metadata.name)))
            });
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(|source| PipelineError::Io {
                    path: parent.to_owned(),
                    source,
                })?;
            }
            model.write(&path)?;
            path
        }
        PortableFormat::Triton => {
            let repo = settings
                .output
                .clone()
                .unwrap_or_else(|| Path::new(DEFAULT_DIR).join("triton"));
            write_triton(&model, &repo, &TritonOptions::default())?
        }
    };
    tracing::info!("{} exported to {}", bundle.display(), path.display());
    Ok(PortableExport {
        bundle,
        format: settings.format,
        path,
        bytes: model.bytes.len(),
        metadata: model.metadata,
    })
}
