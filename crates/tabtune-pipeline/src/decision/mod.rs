//! The decision layer: what is decided on out-of-fold predictions after the sweeps (the best
//! trial, a greedy ensemble or a stacker over every trial, each with or without per-class
//! logit biases), scored leak-free by nested cross-fitting, and the winner shipped as an
//! ensemble bundle.

mod bundle;
mod candidates;
mod layer;

pub use bundle::{EnsembleBundle, Member, ship_ensemble};
pub use candidates::top_oofs;
pub use layer::{
    ClassWeights, DecisionOptions, DecisionReport, Fitted, Method, Scored, decide, greedy_ensemble,
    tune_class_weights,
};
