//! Classification trees on class-count histograms: a single decision tree (Gini or entropy)
//! and random forests (bootstrap rows, a random subset of features per split, out-of-bag
//! score). They share the GBDT family's binning. [`batched`] grows the trees of many forests
//! together, level by level, on the CPU or a GPU, equal to the engine's fits.

pub mod batched;
mod grow;
mod model;
mod params;

pub use model::{ClassNode, ClassTree, FOREST_FORMAT, FOREST_FORMAT_VERSION, ForestModel};
pub use params::{Criterion, ForestKind, ForestParams, ForestValid};
