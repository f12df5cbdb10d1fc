//! The crate's one error type, [`TrainError`], grouped by kind: upstream errors (features,
//! models), data and folds, devices, populations, sweep parameters and out-of-fold files, the
//! decision layer, study reports. Every variant names what it is about (file, fold, feature,
//! member, device, parameter), the offending value and, where there is one, what was expected.

use std::path::PathBuf;
use std::sync::Arc;

/// Result alias for this crate.
pub type Result<T, E = TrainError> = std::result::Result<T, E>;

/// What can go wrong in a training run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    // --- upstream ------------------------------------------------------------------------
    /// Data, splits or preprocessing.
    #[error(transparent)]
    Features(#[from] tabtune_features::FeaturesError),
    /// Model parameters or fitting.
    #[error(transparent)]
    Model(#[from] tabtune_models::ModelError),

    // --- data and folds ------------------------------------------------------------------
    /// Training data without the target column.
    #[error("{}: training needs the target column", path.display())]
    NoTarget {
        /// The data file.
        path: PathBuf,
    },
    /// A fold with no training or no validation rows.
    #[error("repeat {repeat}, fold {fold}: empty {part} rows")]
    EmptyFold {
        /// The repeat.
        repeat: usize,
        /// The fold.
        fold: usize,
        /// `training` or `validation`.
        part: &'static str,
    },
    /// One fold failed.
    #[error("repeat {repeat}, fold {fold}: {source}")]
    Fold {
        /// The repeat.
        repeat: usize,
        /// The fold.
        fold: usize,
        /// What failed.
        source: Box<TrainError>,
    },
    /// A NaN or infinite input value (neural models need finite inputs).
    #[error(
        "row {row}, feature `{feature}`: value {value} is not finite; neural models need finite \
         inputs (impute or drop missing values first)"
    )]
    NotFinite {
        /// The row.
        row: usize,
        /// The feature (`?` when the names are short).
        feature: String,
        /// The value.
        value: f32,
    },
    /// An error made once and handed to every caller that waited for it (a cached fold).
    #[error(transparent)]
    Shared(Arc<TrainError>),

    // --- devices -------------------------------------------------------------------------
    /// A `--device` value that cannot be parsed.
    #[error("--device {value}: expected {expected}")]
    DeviceRequest {
        /// The value given.
        value: String,
        /// The forms accepted.
        expected: &'static str,
    },
    /// A CUDA device index past the machine's devices.
    #[error("--device cuda:{index}: this machine has {found} CUDA device(s)")]
    NoSuchCudaDevice {
        /// The index asked for.
        index: usize,
        /// How many CUDA devices there are.
        found: usize,
    },
    /// The backend asked for cannot be used here (no driver, no adapter, not built).
    #[error("--device {device}: {reason}")]
    DeviceUnavailable {
        /// The device asked for (`cuda:0`, `wgpu`).
        device: String,
        /// Why it cannot be used, as the probe found.
        reason: String,
    },
    /// A device whose backend this binary was built without.
    #[error("device {device} is not built into this tabtune (cargo features `wgpu` / `cuda`)")]
    DeviceNotBuilt {
        /// The device.
        device: String,
    },

    // --- populations (trials trained as one stacked model) -------------------------------
    /// A population without members.
    #[error("a population needs at least one member")]
    EmptyPopulation,
    /// Fewer than two classes.
    #[error("a classifier needs at least 2 classes, got {n_classes}")]
    TooFewClasses {
        /// The class count given.
        n_classes: usize,
    },
    /// A data block whose matrix or labels do not match the data's shape.
    #[error(
        "data block {block} does not have {rows} rows of {features} features (it has {values} \
         values and {labels} labels)"
    )]
    BlockShape {
        /// The block.
        block: usize,
        /// The rows expected.
        rows: usize,
        /// The features expected.
        features: usize,
        /// The values it has.
        values: usize,
        /// The labels it has.
        labels: usize,
    },
    /// A label past the classes.
    #[error("data block {block}, row {row}: label {label} is not below {n_classes} classes")]
    BlockLabel {
        /// The block.
        block: usize,
        /// The row.
        row: usize,
        /// The label.
        label: u32,
        /// The class count.
        n_classes: usize,
    },
    /// A member whose parameters are not valid.
    #[error("population member {member}: {source}")]
    MemberParams {
        /// The member.
        member: usize,
        /// The parameter error.
        source: tabtune_models::ModelError,
    },
    /// A member that cannot be stacked with member 0.
    #[error(
        "population member {member}: its architecture, epochs, batch size or schedule differs \
         from member 0's; only learning_rate, weight_decay, dropout, label_smoothing, \
         clip_norm, patience, frequency_scale, seed and width may differ"
    )]
    MemberIncompatible {
        /// The member.
        member: usize,
    },
    /// A member naming a data block that does not exist.
    #[error("population member {member}: data block {block} does not exist ({n_blocks} blocks)")]
    MemberBlock {
        /// The member.
        member: usize,
        /// The block it names.
        block: usize,
        /// How many blocks there are.
        n_blocks: usize,
    },
    /// A member without training rows.
    #[error("population member {member}: no training rows (an empty fold?)")]
    MemberNoRows {
        /// The member.
        member: usize,
    },
    /// A member naming a row past the data.
    #[error("population member {member}: row {row} is past the data's {n_rows} rows")]
    MemberRow {
        /// The member.
        member: usize,
        /// The row it names.
        row: usize,
        /// The data's rows.
        n_rows: usize,
    },
    /// A failure shared by every trial of a population trained together (each trial holds it).
    #[error("population of {trials} trials: {source}")]
    Population {
        /// The trials trained together.
        trials: usize,
        /// What failed.
        source: Arc<TrainError>,
    },

    // --- batched GBDT fits on a GPU ----------------------------------------------------------
    /// A failure shared by every trial of a batched GBDT fit (each trial holds it).
    #[error("batched GBDT fit of {trials} trial(s): {source}")]
    Batch {
        /// The trials boosted together.
        trials: usize,
        /// What failed.
        source: Arc<TrainError>,
    },
    /// The preprocessed features hold categorical level codes, which the batched fit cannot
    /// split.
    #[error(
        "the batched GBDT fit on a GPU needs numeric features, and the preprocessed columns {} \
         hold categorical level codes (`encode = \"ordinal\"` in the config): use \
         `encode = \"one-hot\"`, or `--device cpu` for the CPU engine's category splits",
        columns.join(", ")
    )]
    BatchCategorical {
        /// The categorical columns.
        columns: Vec<String>,
    },
    /// The folds' matrices could not be stacked into the batch's matrix.
    #[error("stacking the folds' feature matrices for a batched GBDT fit: {message}")]
    BatchData {
        /// ndarray's message.
        message: String,
    },

    // --- model families and sweep parameters ---------------------------------------------
    /// A model name that is not a family.
    #[error("unknown model `{name}`; expected one of {}", expected.join(", "))]
    UnknownModel {
        /// The name given.
        name: String,
        /// The family names.
        expected: Vec<String>,
    },
    /// A family's parameters that are not valid.
    #[error("model `{family}`: {source}")]
    FamilyParams {
        /// The family.
        family: &'static str,
        /// What is wrong.
        source: Box<TrainError>,
    },
    /// A search space naming no model family.
    #[error("the search space names no model: add a `{param}` parameter or a fixed `{param}`")]
    NoModel {
        /// The parameter that names the family.
        param: &'static str,
    },
    /// A sampled or fixed parameter of a type the family cannot take.
    #[error("{what} `{name}` must be {expected}, got {value}")]
    SweepValue {
        /// `parameter`, `fixed` or `fixed parameter`.
        what: &'static str,
        /// The parameter.
        name: String,
        /// The value given.
        value: String,
        /// What it must be.
        expected: &'static str,
    },

    // --- files -----------------------------------------------------------------------------
    /// Reading or writing a file or folder failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file that is not an out-of-fold prediction file.
    #[error("{}: not an out-of-fold prediction file (bad magic)", path.display())]
    OofMagic {
        /// The file.
        path: PathBuf,
    },
    /// An out-of-fold prediction file whose size does not match its header.
    #[error(
        "{}: {rows}x{columns} values announced but the file has {bytes} bytes",
        path.display()
    )]
    OofSize {
        /// The file.
        path: PathBuf,
        /// Rows announced.
        rows: usize,
        /// Columns announced.
        columns: usize,
        /// The file's size.
        bytes: usize,
    },

    // --- decision layer ----------------------------------------------------------------------
    /// No candidates to blend.
    #[error("the decision layer needs at least one candidate's out-of-fold predictions")]
    NoCandidates,
    /// Out-of-fold predictions, labels and fold ids of different lengths.
    #[error(
        "out-of-fold predictions have {rows} rows but there are {labels} labels and {fold_ids} \
         fold ids"
    )]
    OofRows {
        /// Rows of the predictions.
        rows: usize,
        /// Labels given.
        labels: usize,
        /// Fold ids given.
        fold_ids: usize,
    },
    /// A candidate of another shape than candidate 0.
    #[error("candidate {candidate} has shape {shape:?}, expected {expected:?} like candidate 0")]
    CandidateShape {
        /// The candidate.
        candidate: usize,
        /// Its `(rows, classes)`.
        shape: (usize, usize),
        /// Candidate 0's.
        expected: (usize, usize),
    },
    /// A label past the classes.
    #[error("row {row}: label {label} is out of range for {n_classes} classes")]
    LabelOutOfRange {
        /// The row.
        row: usize,
        /// The label.
        label: u32,
        /// The class count.
        n_classes: usize,
    },
    /// Out-of-fold predictions from fewer than two folds.
    #[error("the decision layer needs out-of-fold predictions from at least 2 folds, got {folds}")]
    TooFewFolds {
        /// The folds found.
        folds: usize,
    },

    // --- study reports -----------------------------------------------------------------------
    /// Drawing a chart of a study report failed.
    #[error("study report chart `{chart}`: {message}")]
    Chart {
        /// The chart.
        chart: &'static str,
        /// The plotting library's message.
        message: String,
    },
}

impl TrainError {
    /// Whether the error is the user's input (data, flags, parameters, files) rather than a
    /// runtime failure (I/O, drawing); wrapped errors decide by their cause.
    pub fn is_bad_input(&self) -> bool {
        match self {
            Self::Features(e) => e.is_bad_input(),
            Self::Model(e) | Self::MemberParams { source: e, .. } => e.is_bad_input(),
            Self::Fold { source, .. } | Self::FamilyParams { source, .. } => source.is_bad_input(),
            Self::Shared(source) | Self::Population { source, .. } | Self::Batch { source, .. } => {
                source.is_bad_input()
            }
            Self::Io { .. } | Self::Chart { .. } | Self::BatchData { .. } => false,
            Self::BatchCategorical { .. }
            | Self::NoTarget { .. }
            | Self::EmptyFold { .. }
            | Self::NotFinite { .. }
            | Self::DeviceRequest { .. }
            | Self::NoSuchCudaDevice { .. }
            | Self::DeviceUnavailable { .. }
            | Self::DeviceNotBuilt { .. }
            | Self::EmptyPopulation
            | Self::TooFewClasses { .. }
            | Self::BlockShape { .. }
            | Self::BlockLabel { .. }
            | Self::MemberIncompatible { .. }
            | Self::MemberBlock { .. }
            | Self::MemberNoRows { .. }
            | Self::MemberRow { .. }
            | Self::UnknownModel { .. }
            | Self::NoModel { .. }
            | Self::SweepValue { .. }
            | Self::OofMagic { .. }
            | Self::OofSize { .. }
            | Self::NoCandidates
            | Self::OofRows { .. }
            | Self::CandidateShape { .. }
            | Self::LabelOutOfRange { .. }
            | Self::TooFewFolds { .. } => true,
        }
    }

    /// A [`Fold`](Self::Fold) error.
    pub(crate) fn fold(repeat: usize, fold: usize, source: impl Into<TrainError>) -> Self {
        Self::Fold {
            repeat,
            fold,
            source: Box::new(source.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    fn autotraits<T: Send + Sync + 'static>() {}

    #[test]
    fn errors_cross_threads() {
        autotraits::<TrainError>();
    }

    /// Each kind's message names the thing, the value and what was expected; `is_bad_input`
    /// tells the user's mistakes (exit code 2) from runtime failures (exit code 1), and wrapped
    /// errors decide by their cause.
    #[test]
    fn each_kind_names_its_values_and_picks_its_exit_code() {
        let param = || {
            TrainError::Model(tabtune_models::ModelError::Param {
                name: "dropout".into(),
                value: "1.5".into(),
                expected: "a number in [0, 1)".into(),
            })
        };
        let io = || std::io::Error::other("disk full");
        let cases: Vec<(TrainError, &[&str], bool)> = vec![
            (
                TrainError::NoTarget {
                    path: "data/test.csv".into(),
                },
                &["data/test.csv: training needs the target column"],
                true,
            ),
            (
                TrainError::EmptyFold {
                    repeat: 1,
                    fold: 2,
                    part: "validation",
                },
                &["repeat 1, fold 2: empty validation rows"],
                true,
            ),
            (
                TrainError::fold(0, 3, param()),
                &["repeat 0, fold 3: ", "`dropout` = 1.5", "[0, 1)"],
                true,
            ),
            (
                TrainError::fold(
                    0,
                    3,
                    TrainError::Io {
                        path: "oof".into(),
                        source: io(),
                    },
                ),
                &["repeat 0, fold 3: oof: disk full"],
                false,
            ),
            (
                TrainError::DeviceRequest {
                    value: "gpu".into(),
                    expected: "auto, cpu, wgpu, cuda or cuda:N",
                },
                &["--device gpu: expected auto, cpu, wgpu, cuda or cuda:N"],
                true,
            ),
            (
                TrainError::NoSuchCudaDevice { index: 3, found: 1 },
                &["--device cuda:3: this machine has 1 CUDA device(s)"],
                true,
            ),
            (
                TrainError::BlockShape {
                    block: 0,
                    rows: 10,
                    features: 3,
                    values: 27,
                    labels: 10,
                },
                &[
                    "data block 0 does not have 10 rows of 3 features",
                    "27 values",
                ],
                true,
            ),
            (
                TrainError::MemberRow {
                    member: 2,
                    row: 99,
                    n_rows: 50,
                },
                &["population member 2: row 99 is past the data's 50 rows"],
                true,
            ),
            (
                TrainError::Population {
                    trials: 4,
                    source: Arc::new(TrainError::MemberNoRows { member: 1 }),
                },
                &["population of 4 trials: population member 1: no training rows"],
                true,
            ),
            (
                TrainError::Shared(Arc::new(TrainError::Io {
                    path: "cache".into(),
                    source: io(),
                })),
                &["cache: disk full"],
                false,
            ),
            (
                TrainError::UnknownModel {
                    name: "xgboost".into(),
                    expected: vec!["gbdt-leafwise".into(), "mlp".into()],
                },
                &["unknown model `xgboost`; expected one of gbdt-leafwise, mlp"],
                true,
            ),
            (
                TrainError::SweepValue {
                    what: "fixed parameter",
                    name: "depth".into(),
                    value: "[1,2]".into(),
                    expected: "a string, number or bool",
                },
                &["fixed parameter `depth` must be a string, number or bool, got [1,2]"],
                true,
            ),
            (
                TrainError::FamilyParams {
                    family: "mlp",
                    source: Box::new(param()),
                },
                &["model `mlp`: ", "`dropout` = 1.5"],
                true,
            ),
            (
                TrainError::OofSize {
                    path: "trial-5.oof".into(),
                    rows: 9,
                    columns: 2,
                    bytes: 24,
                },
                &["trial-5.oof: 9x2 values announced but the file has 24 bytes"],
                true,
            ),
            (
                TrainError::CandidateShape {
                    candidate: 1,
                    shape: (3, 2),
                    expected: (4, 2),
                },
                &["candidate 1 has shape (3, 2), expected (4, 2) like candidate 0"],
                true,
            ),
            (
                TrainError::TooFewFolds { folds: 1 },
                &["at least 2 folds, got 1"],
                true,
            ),
            (
                TrainError::Chart {
                    chart: "Optimisation history",
                    message: "backend failed".into(),
                },
                &["study report chart `Optimisation history`: backend failed"],
                false,
            ),
        ];
        for (e, parts, bad_input) in cases {
            let m = e.to_string();
            for p in parts {
                assert!(m.contains(p), "{m}\n  lacks: {p}");
            }
            assert_eq!(e.is_bad_input(), bad_input, "{m}");
        }
    }

    #[test]
    fn wrapped_errors_keep_their_cause() {
        let e = TrainError::fold(1, 0, TrainError::EmptyPopulation);
        let cause = e.source().expect("the fold's cause");
        assert_eq!(cause.to_string(), "a population needs at least one member");
        let e = TrainError::Io {
            path: "x".into(),
            source: std::io::Error::other("gone"),
        };
        assert!(e.source().is_some());
    }
}
