//! Samplers: where the next trial's parameters come from.
//!
//! Every sampler proposes a complete parameter set at once, walking the space's parameters in
//! order and skipping those whose conditions do not hold. A proposal depends only on the
//! sampler's seed, the trial number and the trials passed in, so two workers asking for the same
//! trial number with the same history get the same answer, and a rerun reproduces a study.

mod base;
mod grid;
mod parzen;
mod qmc;
mod random;
pub(crate) mod rng;
mod tpe;
pub(crate) mod truncnorm;

pub use base::{Proposal, SAMPLER_NAMES, Sampler, sampler_from_name};
pub use grid::GridSampler;
pub use qmc::{MAX_QMC_DIMENSIONS, QmcSampler};
pub use random::RandomSampler;
pub use tpe::{TpeOptions, TpeSampler, default_gamma, default_weights};

#[cfg(test)]
mod tests;
