//! Histogram gradient-boosted trees in three growth styles: depth-wise (XGBoost `hist`),
//! leaf-wise (LightGBM) and oblivious (CatBoost).

pub mod batched;
mod binning;
mod booster;
mod ctr;
mod grow;
mod hist;
mod objective;
mod params;
mod quant;
mod scores;
mod tree;

pub use binning::{BinMapper, Binned};
pub(crate) use booster::check_data as check_labelled;
pub use booster::{
    BinnedData, GBDT_FORMAT, GBDT_FORMAT_VERSION, GbdtModel, Labelled, RoundEval, labels_of,
};
pub use ctr::TargetStats;
pub(crate) use grow::partition;
pub use hist::{GradPair, Split, SplitRules, Stats};
pub use objective::softmax;
pub use params::{GbdtParams, GbdtValid, Growth, Quantize};
pub use tree::{Node, Tree};
