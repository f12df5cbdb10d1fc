//! Pruners: whether a running trial stops early, judged on the intermediate values it reported
//! (per epoch, boosting round or fold) against the other trials of the study, by Optuna's rules.

mod base;
mod halving;
mod hyperband;
mod percentile;
mod wilcoxon;

pub use base::{NopPruner, PRUNER_NAMES, Pruner, StudyView, Verdict, pruner_from_name};
pub use halving::SuccessiveHalvingPruner;
pub use hyperband::HyperbandPruner;
pub use percentile::PercentilePruner;
pub use wilcoxon::{Alternative, WilcoxonPruner, wilcoxon_signed_rank};

#[cfg(test)]
mod tests;
