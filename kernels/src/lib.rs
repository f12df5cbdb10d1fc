//! GPU kernels of tabtune's batched gradient boosting, each with a CPU reference.
//!
//! Owns: the arithmetic of quantized-gradient boosting ([`reference::math`]: table-based
//! `exp`/`ln`, power-of-two quantization scales, rounding noise, structure scores, leaf values,
//! exact gains), the flat data layout shared by host and device ([`layout`]), the CPU reference
//! of every kernel ([`reference`]), and, with the `wgpu` or `cuda` feature, the same kernels in
//! CubeCL on the device (`gpu`). Kernels: gradients, gradient quantization, root sums,
//! histogram build (integer gradients and hessians added atomically, so sums are exact and
//! order-free), histogram zeroing and subtraction, split search (per node, and per level for
//! oblivious trees), split sums, applying splits, row partition, leaf values, score updates
//! (training and validation rows) and the validation metric; for classification trees
//! (decision trees, random forests: [`reference::forest`]) class-count histograms, Gini and
//! entropy split search, applying splits and moving rows.
//!
//! Must not depend on any other tabtune crate: `tabtune-models` drives these kernels.
//!
//! Features: `wgpu` and `cuda` select the runtimes; without either the crate builds and its
//! CPU reference runs.
#![warn(missing_docs)]
// A kernel takes every array it touches; its CPU reference mirrors that signature.
#![allow(clippy::too_many_arguments)]

mod error;
pub mod layout;
pub mod reference;

pub use error::{KernelError, Result};

#[cfg(any(feature = "wgpu", feature = "cuda"))]
pub mod gpu;
