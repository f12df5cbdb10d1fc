//! Neural training on burn (MLP and TabM from [`tabtune_models::nn`]).
//!
//! - [`device`]: `--device auto|cpu|wgpu|cuda[:N]`, probing and the one place that names
//!   concrete backends (`flex` always; `wgpu` and `cuda` behind the cargo features of the same
//!   names).
//! - [`train_population`]: P members as one stacked model (see [`population`]); one member is an
//!   ordinary training run.
//! - [`cross_validate_neural`]: k-fold CV with the folds as population members.
//!
//! The per-epoch hook `on_epoch(member, &EpochMetrics) -> Control` is how a tuner reads
//! intermediate values and prunes: it is called after each epoch of each member still training,
//! and [`Control::Stop`](tabtune_models::metrics::Control::Stop) masks that member out of the remaining epochs (its best weights are kept).

mod cv;
pub mod device;
mod memory;
pub mod population;
pub mod trials;

pub use cv::{cross_validate_neural, fit_all_neural};
pub use device::{DeviceChoice, DeviceRequest};
pub use population::{
    DataBlock, EpochMetrics, Member, MemberResult, PopulationData, StopReason, train_population,
};

#[cfg(test)]
mod tests;
