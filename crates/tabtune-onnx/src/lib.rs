//! ONNX export of tabtune model bundles.
//!
//! Owns: turning a [`Bundle`](tabtune_models::bundle::Bundle) into one self-contained ONNX
//! model ([`export_onnx`], [`export_onnx_dir`]): the raw record columns as inputs (numbers as
//! double, categorical columns as strings), the fitted preprocessor as graph ops (unit
//! conversion, rounding half away from zero, engineered features, log1p, quantile bins,
//! scaling, one-hot or ordinal encoding with the unknown slot), the model (boosted trees of all
//! three growth styles with learned missing-value directions, category-set splits and ordered
//! target statistics; decision trees and random forests as ai.onnx.ml tree ensembles; MLP and
//! TabM as plain ops), the decision layer's weighted ensemble with class weights, the outputs
//! `class` and `probabilities` (as `/predict` names them) and metadata (tabtune version,
//! bundle sha256, class order, metrics); writing it as a file or as a Triton model repository
//! entry ([`write_triton`]). The protobuf encoding is written here (a subset of onnx.proto, no
//! dependency); the graph uses ai.onnx opset 17 and ai.onnx.ml opset 3 (see the README).
//!
//! Must not depend on the trainer, the tuner, the pipeline or the CLI: it reads bundles
//! through `tabtune-models` and preprocessors through `tabtune-features` only.
#![warn(missing_docs)]

mod error;
mod export;
mod graph;
mod neural;
mod preprocess;
mod proto;
mod trees;
mod triton;

pub use error::{OnnxError, Part, Result};
pub use export::{
    CLASS_OUTPUT, ML_OPSET, OPSET, OnnxMetadata, OnnxModel, OnnxOptions, PROBABILITIES_OUTPUT,
    export_onnx, export_onnx_dir,
};
pub use preprocess::InputColumn;
pub use triton::{TritonOptions, triton_config, triton_model_name, write_triton};
