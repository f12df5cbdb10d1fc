//! Histogram gradient-boosted trees in three growth styles: depth-wise (XGBoost `hist`),
//! leaf-wise (LightGBM) and oblivious (CatBoost).

mod binning;
mod booster;
mod ctr;
mod grow;
mod hist;
mod objective;
mod params;
mod scores;
mod tree;

pub use binning::{BinMapper, Binned};
pub(crate) use booster::check_data as check_labelled;
pub use booster::{
    BinnedData, Control, GBDT_FORMAT, GBDT_FORMAT_VERSION, GbdtModel, Labelled, RoundEval, argmax,
    labels_of,
};
pub use ctr::TargetStats;
pub(crate) use grow::partition;
pub use hist::{GradPair, Split, SplitRules, Stats};
pub use objective::{log_loss, softmax};
pub use params::{GbdtParams, GbdtValid, Growth};
pub use tree::{Node, Tree};
