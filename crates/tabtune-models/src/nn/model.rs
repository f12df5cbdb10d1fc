//! A trained neural model: parameters, shape and weights; CPU prediction (the flex backend) and
//! the `tabtune-neural` file pair (JSON + safetensors, FORMAT.md).

use std::path::{Path, PathBuf};

use burn::backend::Flex;
use burn::backend::flex::FlexDevice;
use burn::tensor::activation::softmax;
use burn::tensor::{Tensor, TensorData};
use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};

use super::net::{Masks, NetShape, forward};
use super::params::NeuralParams;
use crate::error::{ModelError, Result};

/// Name of the neural model format.
pub const NEURAL_FORMAT: &str = "tabtune-neural";
/// Version of the neural model format.
pub const NEURAL_FORMAT_VERSION: u32 = 1;

/// Name of the single-file checkpoint format (a safetensors file whose metadata holds the
/// model description).
pub const CHECKPOINT_FORMAT: &str = "tabtune-neural-checkpoint";
/// Version of the checkpoint format.
pub const CHECKPOINT_FORMAT_VERSION: u32 = 1;
/// The safetensors metadata key holding the checkpoint's JSON description.
const CHECKPOINT_KEY: &str = "tabtune";

/// Rows per forward pass when predicting (bounds memory on large files).
const PREDICT_CHUNK: usize = 4096;

/// One named parameter tensor of a single model, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct NamedTensor {
    /// Name ([`NetShape::layout`]).
    pub name: String,
    /// Shape `[a, b]`.
    pub dims: [usize; 2],
    /// Values, `a · b` of them.
    pub values: Vec<f32>,
}

/// A trained MLP or TabM.
#[derive(Clone, Debug, PartialEq)]
pub struct NeuralModel {
    /// The parameters it was trained with.
    pub params: NeuralParams,
    /// Feature names, in input order.
    pub feature_names: Vec<String>,
    /// Classes.
    pub n_classes: usize,
    /// Epochs trained up to the kept (best) weights.
    pub best_epoch: usize,
    /// Weights in [`NetShape::layout`] order.
    pub tensors: Vec<NamedTensor>,
}

/// The JSON half of the file pair.
#[derive(Serialize, Deserialize)]
struct NeuralFile {
    format: String,
    format_version: u32,
    params: NeuralParams,
    feature_names: Vec<String>,
    n_classes: usize,
    best_epoch: usize,
    /// The safetensors file beside this one.
    weights: String,
    /// Tensor names and shapes, in layout order.
    tensors: Vec<(String, [usize; 2])>,
}

/// What a checkpoint records besides the model: the epoch of its weights and their
/// validation scores.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointInfo {
    /// Epoch of the weights, from 1.
    pub epoch: usize,
    /// Validation log loss at that epoch.
    pub valid_logloss: Option<f64>,
    /// Validation accuracy at that epoch.
    pub valid_accuracy: Option<f64>,
}

/// The JSON description inside a checkpoint's safetensors metadata.
#[derive(Serialize, Deserialize)]
struct CheckpointFile {
    format: String,
    format_version: u32,
    params: NeuralParams,
    feature_names: Vec<String>,
    n_classes: usize,
    info: CheckpointInfo,
}

impl NeuralModel {
    /// The network shape.
    pub fn shape(&self) -> NetShape {
        NetShape::new(&self.params, self.feature_names.len(), self.n_classes)
    }

    /// Class probabilities `[n_rows, n_classes]` on the CPU (TabM: the mean of its members'
    /// probabilities). Refuses NaN or infinite inputs, naming the row and feature.
    pub fn predict_proba(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f64>> {
        let n = self.feature_names.len();
        if x.ncols() != n {
            return Err(ModelError::Data(format!(
                "the neural model expects {n} features, got {}",
                x.ncols()
            )));
        }
        if let Some(((row, col), v)) = x.indexed_iter().find(|(_, v)| !v.is_finite()) {
            return Err(ModelError::Data(format!(
                "row {row}, feature `{}`: value {v} is not finite; a neural model needs finite \
                 inputs (impute missing values in the preprocessor)",
                self.feature_names[col]
            )));
        }
        let device = FlexDevice;
        let shape = self.shape();
        let weights: Vec<Tensor<Flex, 3>> = self
            .tensors
            .iter()
            .map(|t| {
                Tensor::from_data(
                    TensorData::new(t.values.clone(), [1, t.dims[0], t.dims[1]]),
                    &device,
                )
            })
            .collect();
        let masks = Masks::<Flex>::eval(&[shape.width], shape.width, &device);
        let mut out = Array2::<f64>::zeros((x.nrows(), self.n_classes));
        let mut start = 0;
        while start < x.nrows() {
            let end = (start + PREDICT_CHUNK).min(x.nrows());
            let rows = end - start;
            let mut flat = Vec::with_capacity(rows * n);
            for r in start..end {
                flat.extend(x.row(r).iter().copied());
            }
            let xt = Tensor::<Flex, 3>::from_data(TensorData::new(flat, [1, rows, n]), &device);
            let logits = forward(&shape, &weights, xt, &masks);
            let proba = softmax(logits, 3).mean_dim(1);
            let values: Vec<f32> = proba
                .into_data()
                .into_vec()
                .expect("a float tensor reads back as f32");
            for r in 0..rows {
                for c in 0..self.n_classes {
                    out[[start + r, c]] = f64::from(values[r * self.n_classes + c]);
                }
            }
            start = end;
        }
        Ok(out)
    }

    /// The safetensors file written beside the JSON file `path`.
    pub fn weights_path(path: &Path) -> PathBuf {
        path.with_extension("safetensors")
    }

    /// The weights as safetensors bytes, with `metadata`.
    fn safetensors_bytes(
        &self,
        path: &Path,
        metadata: Option<std::collections::HashMap<String, String>>,
    ) -> Result<Vec<u8>> {
        let bytes: Vec<Vec<u8>> = self
            .tensors
            .iter()
            .map(|t| t.values.iter().flat_map(|v| v.to_le_bytes()).collect())
            .collect();
        let views = self
            .tensors
            .iter()
            .zip(&bytes)
            .map(|(t, b)| {
                safetensors::tensor::TensorView::new(
                    safetensors::Dtype::F32,
                    t.dims.to_vec(),
                    b.as_slice(),
                )
                .map(|v| (t.name.clone(), v))
                .map_err(|e| ModelError::Data(format!("tensor {}: {e}", t.name)))
            })
            .collect::<Result<Vec<_>>>()?;
        safetensors::tensor::serialize(views, metadata).map_err(|e| ModelError::Load {
            path: path.to_owned(),
            message: format!("cannot serialize the weights: {e}"),
        })
    }

    /// Writes a one-file checkpoint of this model at `path`: a safetensors file whose
    /// metadata describes the model and `info`. The file is written to a temporary file beside
    /// `path` and renamed over it, so `path` always holds a whole checkpoint (the previous one
    /// until the rename), whatever happens mid-write.
    pub fn save_checkpoint(&self, path: &Path, info: &CheckpointInfo) -> Result<()> {
        let file = CheckpointFile {
            format: CHECKPOINT_FORMAT.to_owned(),
            format_version: CHECKPOINT_FORMAT_VERSION,
            params: self.params.clone(),
            feature_names: self.feature_names.clone(),
            n_classes: self.n_classes,
            info: info.clone(),
        };
        let json = serde_json::to_string(&file).map_err(|e| ModelError::Load {
            path: path.to_owned(),
            message: format!("cannot describe the checkpoint: {e}"),
        })?;
        let metadata = std::iter::once((CHECKPOINT_KEY.to_owned(), json)).collect();
        let blob = self.safetensors_bytes(path, Some(metadata))?;
        tabtune_features::io::write_bytes_atomic(path, &blob).map_err(|e| ModelError::Load {
            path: path.to_owned(),
            message: format!("cannot write: {e}"),
        })
    }

    /// Reads a checkpoint written by [`Self::save_checkpoint`], checking its format and every
    /// tensor against the architecture it describes.
    pub fn load_checkpoint(path: &Path) -> Result<(Self, CheckpointInfo)> {
        let err = |message: String| ModelError::Load {
            path: path.to_owned(),
            message,
        };
        let blob = std::fs::read(path).map_err(|e| ModelError::Io {
            path: path.to_owned(),
            source: e,
        })?;
        let (_, header) = safetensors::SafeTensors::read_metadata(&blob)
            .map_err(|e| err(format!("not a safetensors file: {e}")))?;
        let json = header
            .metadata()
            .as_ref()
            .and_then(|m| m.get(CHECKPOINT_KEY))
            .ok_or_else(|| {
                err(format!(
                    "no `{CHECKPOINT_KEY}` metadata: not a {CHECKPOINT_FORMAT} file"
                ))
            })?;
        let file: CheckpointFile = serde_json::from_str(json)
            .map_err(|e| err(format!("bad `{CHECKPOINT_KEY}` metadata: {e}")))?;
        if file.format != CHECKPOINT_FORMAT || file.format_version != CHECKPOINT_FORMAT_VERSION {
            return Err(err(format!(
                "format {} version {}; expected {CHECKPOINT_FORMAT} version \
                 {CHECKPOINT_FORMAT_VERSION}",
                file.format, file.format_version
            )));
        }
        let st = safetensors::SafeTensors::deserialize(&blob)
            .map_err(|e| err(format!("not a safetensors file: {e}")))?;
        crate::check::neural_header(
            &file.params,
            file.feature_names.len(),
            file.n_classes,
            st.len(),
        )
        .map_err(|message| err(format!("invalid model: {message}")))?;
        let shape = NetShape::new(&file.params, file.feature_names.len(), file.n_classes);
        let tensors = read_tensors(&st, &shape, &err)?;
        let model = Self {
            params: file.params,
            feature_names: file.feature_names,
            n_classes: file.n_classes,
            best_epoch: file.info.epoch,
            tensors,
        };
        Ok((model, file.info))
    }

    /// Writes `path` (JSON) and the weights beside it ([`Self::weights_path`]), each atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let weights_path = Self::weights_path(path);
        let blob = self.safetensors_bytes(&weights_path, None)?;
        tabtune_features::io::write_bytes_atomic(&weights_path, &blob).map_err(|e| {
            ModelError::Load {
                path: weights_path.clone(),
                message: format!("cannot write: {e}"),
            }
        })?;
        let file = NeuralFile {
            format: NEURAL_FORMAT.to_owned(),
            format_version: NEURAL_FORMAT_VERSION,
            params: self.params.clone(),
            feature_names: self.feature_names.clone(),
            n_classes: self.n_classes,
            best_epoch: self.best_epoch,
            weights: weights_path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            tensors: self
                .tensors
                .iter()
                .map(|t| (t.name.clone(), t.dims))
                .collect(),
        };
        crate::saved::save(&file, path)
    }

    /// Reads `path` and its weights file (`model.safetensors` beside it), checking the
    /// parameters and every tensor's name, dtype, shape and values (finite) against the
    /// architecture the parameters describe.
    pub fn load(path: &Path) -> Result<Self> {
        let file: NeuralFile = crate::saved::load(path, NEURAL_FORMAT, NEURAL_FORMAT_VERSION)?;
        // The weights live beside the model file under the one name `save` gives them (a bundle
        // lists and checksums exactly that file); any other name is refused.
        let weights_path = Self::weights_path(path);
        if weights_path.file_name() != Some(std::ffi::OsStr::new(&file.weights)) {
            return Err(ModelError::Load {
                path: path.to_owned(),
                message: format!(
                    "invalid model: weights file `{}`; expected `{}` beside the model file",
                    tabtune_features::text::clip(&file.weights),
                    weights_path
                        .file_name()
                        .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
                ),
            });
        }
        let err = |message: String| ModelError::Load {
            path: weights_path.clone(),
            message,
        };
        let blob = std::fs::read(&weights_path).map_err(|e| ModelError::Io {
            path: weights_path.clone(),
            source: e,
        })?;
        let st = safetensors::SafeTensors::deserialize(&blob)
            .map_err(|e| err(format!("not a safetensors file: {e}")))?;
        crate::check::neural_header(
            &file.params,
            file.feature_names.len(),
            file.n_classes,
            st.len(),
        )
        .map_err(|message| ModelError::Load {
            path: path.to_owned(),
            message: format!("invalid model: {message}"),
        })?;
        let shape = NetShape::new(&file.params, file.feature_names.len(), file.n_classes);
        let tensors = read_tensors(&st, &shape, &err)?;
        Ok(Self {
            params: file.params,
            feature_names: file.feature_names,
            n_classes: file.n_classes,
            best_epoch: file.best_epoch,
            tensors,
        })
    }
}

/// Every tensor of `shape`'s layout from `st`, checked by name, dtype and shape.
fn read_tensors(
    st: &safetensors::SafeTensors<'_>,
    shape: &NetShape,
    err: &dyn Fn(String) -> ModelError,
) -> Result<Vec<NamedTensor>> {
    let mut tensors = Vec::new();
    for spec in shape.layout() {
        let view = st
            .tensor(&spec.name)
            .map_err(|e| err(format!("tensor `{}`: {e}", spec.name)))?;
        if view.dtype() != safetensors::Dtype::F32 || view.shape() != spec.dims {
            return Err(err(format!(
                "tensor `{}` is {:?} {:?}; expected F32 {:?}",
                spec.name,
                view.dtype(),
                view.shape(),
                spec.dims
            )));
        }
        let values: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        if let Some(v) = values.iter().find(|v| !v.is_finite()) {
            return Err(err(format!(
                "tensor `{}` holds {v}; expected finite weights",
                spec.name
            )));
        }
        tensors.push(NamedTensor {
            name: spec.name,
            dims: spec.dims,
            values,
        });
    }
    Ok(tensors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::params::NetKind;

    fn model(kind: NetKind) -> NeuralModel {
        let mut params = NeuralParams::new(kind);
        params.width = 16;
        params.depth = 2;
        params.norm = super::super::params::Norm::Layer;
        let names: Vec<String> = (0..5).map(|i| format!("f{i}")).collect();
        let shape = NetShape::new(&params, 5, 3);
        let values = shape.init_member(16, 0.1, 3);
        let tensors = shape
            .layout()
            .into_iter()
            .zip(values)
            .map(|(s, v)| NamedTensor {
                name: s.name,
                dims: s.dims,
                values: v,
            })
            .collect();
        NeuralModel {
            params,
            feature_names: names,
            n_classes: 3,
            best_epoch: 1,
            tensors,
        }
    }

    #[test]
    fn save_load_round_trip_predicts_the_same() {
        let dir = tempfile::tempdir().expect("tmp");
        let x = Array2::from_shape_fn((7, 5), |(r, c)| (r as f32 - 3.0) * 0.3 + c as f32 * 0.1);
        for kind in [NetKind::Mlp, NetKind::Tabm] {
            let m = model(kind);
            let path = dir.path().join("model.json");
            m.save(&path).expect("save");
            assert!(NeuralModel::weights_path(&path).exists());
            let back = NeuralModel::load(&path).expect("load");
            assert_eq!(back, m);
            let p = m.predict_proba(x.view()).expect("predict");
            assert_eq!(p.dim(), (7, 3));
            assert!(p.rows().into_iter().all(|r| (r.sum() - 1.0).abs() < 1e-5));
            assert_eq!(back.predict_proba(x.view()).expect("predict"), p);
        }
    }

    #[test]
    fn piecewise_and_batch_norm_models_round_trip_and_use_their_edges_and_statistics() {
        use crate::nn::net::quantile_edges;
        use crate::nn::params::{Embedding, Norm};
        let x = Array2::from_shape_fn((9, 5), |(r, c)| ((r * 7 + c * 3) % 11) as f32 * 0.4 - 1.0);
        let dir = tempfile::tempdir().expect("tmp");
        for kind in [NetKind::Mlp, NetKind::Tabm] {
            let mut m = model(kind);
            m.params.embedding = Embedding::Piecewise;
            m.params.n_bins = 4;
            m.params.embedding_dim = 3;
            m.params.norm = Norm::Batch;
            let shape = m.shape();
            let values = shape.init_member(16, 0.1, 5);
            m.tensors = shape
                .layout()
                .into_iter()
                .zip(values)
                .map(|(s, mut v)| {
                    if s.name == "embedding.edges" {
                        v = (0..5)
                            .flat_map(|c| quantile_edges(&mut x.column(c).to_vec(), 4))
                            .collect();
                    } else if s.name.ends_with("running_mean") {
                        v.iter_mut()
                            .enumerate()
                            .for_each(|(i, x)| *x = 0.01 * i as f32);
                    } else if s.name.ends_with("running_var") {
                        v.iter_mut()
                            .enumerate()
                            .for_each(|(i, x)| *x = 0.5 + 0.02 * i as f32);
                    }
                    NamedTensor {
                        name: s.name,
                        dims: s.dims,
                        values: v,
                    }
                })
                .collect();
            let path = dir.path().join("model.json");
            m.save(&path).expect("save");
            let back = NeuralModel::load(&path).expect("load");
            assert_eq!(back, m);
            let p = m.predict_proba(x.view()).expect("predict");
            assert_eq!(back.predict_proba(x.view()).expect("predict"), p);
            // Prediction reads the saved edges and running statistics.
            for name in [
                "embedding.edges",
                "layers.1.running_mean",
                "layers.0.running_var",
            ] {
                let mut changed = back.clone();
                let t = changed
                    .tensors
                    .iter_mut()
                    .find(|t| t.name == name)
                    .expect(name);
                t.values.iter_mut().for_each(|v| *v = *v * 1.5 + 0.3);
                let q = changed.predict_proba(x.view()).expect("predict");
                assert_ne!(q, p, "{kind:?}: {name} is not used");
            }
        }
    }

    #[test]
    fn checkpoints_round_trip_in_one_file_and_damage_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("fold-0-0.safetensors");
        let info = CheckpointInfo {
            epoch: 7,
            valid_logloss: Some(0.41),
            valid_accuracy: Some(0.875),
        };
        let mut m = model(NetKind::Tabm);
        m.best_epoch = 7;
        m.save_checkpoint(&path, &info).expect("save");
        // One file, nothing left beside it.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(
            names,
            vec![std::ffi::OsString::from("fold-0-0.safetensors")]
        );
        let (back, back_info) = NeuralModel::load_checkpoint(&path).expect("load");
        assert_eq!((back, back_info), (m.clone(), info.clone()));
        // A plain bundle weights file is not a checkpoint.
        let json = dir.path().join("model.json");
        m.save(&json).expect("save");
        let e = NeuralModel::load_checkpoint(&NeuralModel::weights_path(&json))
            .expect_err("no metadata")
            .to_string();
        assert!(
            e.contains("model.safetensors") && e.contains("not a tabtune-neural-checkpoint"),
            "{e}"
        );
        // A cut file (what a non-atomic write could leave) is refused, naming the file.
        let bytes = std::fs::read(&path).expect("read");
        let cut = dir.path().join("cut.safetensors");
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).expect("write");
        let e = NeuralModel::load_checkpoint(&cut)
            .expect_err("cut")
            .to_string();
        assert!(e.contains("cut.safetensors"), "{e}");
        let e = NeuralModel::load_checkpoint(&dir.path().join("none.safetensors"))
            .expect_err("missing")
            .to_string();
        assert!(e.contains("none.safetensors"), "{e}");
    }

    #[test]
    fn bad_inputs_and_damaged_weights_are_clear_errors() {
        let m = model(NetKind::Mlp);
        let mut x = Array2::<f32>::zeros((3, 5));
        x[[2, 4]] = f32::NAN;
        let e = m.predict_proba(x.view()).expect_err("nan").to_string();
        assert!(e.contains("row 2") && e.contains("`f4`"), "{e}");
        let e = m
            .predict_proba(Array2::<f32>::zeros((3, 4)).view())
            .expect_err("columns")
            .to_string();
        assert!(e.contains("expects 5 features"), "{e}");
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("model.json");
        m.save(&path).expect("save");
        std::fs::write(NeuralModel::weights_path(&path), b"garbage").expect("write");
        let e = NeuralModel::load(&path).expect_err("damaged").to_string();
        assert!(
            e.contains("model.safetensors") && e.contains("safetensors"),
            "{e}"
        );
    }
}
