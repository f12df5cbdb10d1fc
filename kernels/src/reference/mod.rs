//! The CPU reference of every kernel: plain sequential loops over the same flat arrays the GPU
//! kernels use, defining their results. Each GPU kernel's test compares against these (exactly
//! for integers and chosen splits); the CPU backend of the batched fit runs them.

pub mod forest;
pub mod grad;
pub mod hist;
pub mod math;
pub mod split;
pub mod tree;
