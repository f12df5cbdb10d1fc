//! The study and trial attributes tabtune stores beside Optuna's own, in one place: `sweep`
//! writes them, `export`, `select`, the decision layer and `run` read them.

/// Study user attribute: the seed the trials ran with (export refits with it).
pub const ATTR_SEED: &str = "seed";
/// Study user attribute: the feature subset every trial used (`sweep --features`); trial user
/// attribute of a selection study: the trial's feature set.
pub const ATTR_FEATURES: &str = "features";
/// Trial user attribute: the model family.
pub const ATTR_FAMILY: &str = "family";
/// Trial user attribute: the mean number of boosting rounds (or best epochs) over the folds,
/// which the final model trains for.
pub const ATTR_ROUNDS_MEAN: &str = "rounds_mean";
/// Trial user attributes holding the cross-validation metrics.
pub const ATTR_ACCURACY_MEAN: &str = "accuracy_mean";
/// See [`ATTR_ACCURACY_MEAN`].
pub const ATTR_ACCURACY_STD: &str = "accuracy_std";
/// See [`ATTR_ACCURACY_MEAN`].
pub const ATTR_LOGLOSS_MEAN: &str = "logloss_mean";
/// Trial user attribute: wall seconds of the trial's cross-validation.
pub const ATTR_SECONDS: &str = "seconds";
/// Trial user attribute: folds the trial ran.
pub const ATTR_FOLDS: &str = "folds";
/// Trial user attribute: the device it trained on.
pub const ATTR_DEVICE: &str = "device";
/// Trial user attribute of a selection study: the size of its feature set.
pub const ATTR_N_FEATURES: &str = "n_features";
/// Study user attribute (written by the tuner): the space's fixed parameters.
pub use tabtune_tune::study::ATTR_FIXED_PARAMS;
