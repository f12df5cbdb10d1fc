//! The neural family on burn: an MLP for tabular data and TabM (a BatchEnsemble MLP), with
//! optional periodic or piecewise-linear numeric embeddings and layer or batch normalization, written as a *stacked* network whose every tensor has a
//! leading member axis `[P, ...]`, so P compatible trials (or the k folds of a CV run) train as
//! one model (`tabtune_train::nn` holds the training loops). One member is an ordinary model:
//! [`NeuralModel`] predicts on the CPU (the flex backend) for `tabtune predict` and `serve`.

mod dropout;
mod model;
mod net;
mod params;

pub use dropout::{DeviceCounters, DropoutKey, DropoutLayout, DropoutMasks};
pub use model::{
    CHECKPOINT_FORMAT, CHECKPOINT_FORMAT_VERSION, CheckpointInfo, NEURAL_FORMAT,
    NEURAL_FORMAT_VERSION, NamedTensor, NeuralModel,
};
pub use net::{
    BATCH_NORM_MOMENTUM, BatchRows, BatchStats, Masks, NetShape, Role, TensorSpec, forward,
    forward_with_stats, quantile_edges, uniform,
};
pub use params::{Activation, Embedding, NetKind, NeuralParams, NeuralValid, Norm, Schedule};
