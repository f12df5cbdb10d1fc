//! The crate's one error type.

use std::path::PathBuf;

/// Result alias for this crate.
pub type Result<T, E = PipelineError> = std::result::Result<T, E>;

/// What can go wrong in an experiment: a lower crate's error, or a setting, study or file of
/// this layer, each naming the value that was wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    // Errors of the crates below, unchanged.
    /// Data, schema, config or preprocessing.
    #[error(transparent)]
    Features(#[from] tabtune_features::FeaturesError),
    /// Model parameters, fitting or bundles.
    #[error(transparent)]
    Model(#[from] tabtune_models::ModelError),
    /// A training run.
    #[error(transparent)]
    Train(#[from] tabtune_train::TrainError),
    /// The study engine or its storage.
    #[error(transparent)]
    Tune(#[from] tabtune_tune::TuneError),
    /// Tracking or the model registry.
    #[error(transparent)]
    Track(#[from] tabtune_track::TrackError),
    /// Loading a bundle or predicting with it.
    #[error(transparent)]
    Infer(#[from] tabtune_infer::InferError),
    /// Exporting a bundle to ONNX (a part with no ONNX form, a modified bundle).
    #[error(transparent)]
    Onnx(#[from] tabtune_onnx::OnnxError),

    // Settings.
    /// A setting outside the values it takes.
    #[error("{name} must be {expected}, got {value}")]
    Setting {
        /// The setting (a field of the settings struct).
        name: &'static str,
        /// The value given.
        value: String,
        /// What it takes.
        expected: String,
    },
    /// A search space whose direction contradicts its metric.
    #[error("{}: direction {direction} does not fit metric {metric} (which is {expected}d)", space.display())]
    DirectionMismatch {
        /// The search space file.
        space: PathBuf,
        /// The direction the file asks for.
        direction: String,
        /// The metric the file names.
        metric: String,
        /// The metric's own direction.
        expected: String,
    },
    /// A feature list file (`select`'s output) that cannot be used.
    #[error("{}: {reason}", path.display())]
    FeatureList {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    // Studies and trials.
    /// A trial parameter (sampled or fixed) that does not fit the model.
    #[error("parameter `{param}` must be {expected}, got {value}")]
    TrialParam {
        /// The parameter.
        param: String,
        /// Its value.
        value: String,
        /// What it takes.
        expected: String,
    },
    /// A search space that names no model family.
    #[error("the search space names no model: add a `family` parameter or a fixed `family`")]
    NoFamily,
    /// A trial's parameters that the family refuses.
    #[error("model `{family}`: {source}")]
    FamilyParams {
        /// The family.
        family: String,
        /// Why.
        #[source]
        source: tabtune_train::TrainError,
    },
    /// A study resumed with another feature subset than it was run with.
    #[error("study `{study}` was run with {stored}; {hint}")]
    StudyFeatures {
        /// The study.
        study: String,
        /// What the study was run with.
        stored: String,
        /// What to do.
        hint: String,
    },
    /// A trial number the study does not have.
    #[error("study `{study}` has no trial {trial} (it has {count} trials)")]
    NoSuchTrial {
        /// The study.
        study: String,
        /// The trial asked for.
        trial: u64,
        /// Trials the study has.
        count: usize,
    },
    /// A trial that did not complete.
    #[error(
        "trial {trial} of study `{study}` is {state}, not COMPLETE; only complete trials can be exported"
    )]
    TrialNotComplete {
        /// The study.
        study: String,
        /// The trial.
        trial: u64,
        /// Its state as Optuna names it.
        state: String,
    },
    /// A study without a complete trial.
    #[error("study `{study}` has no complete trial yet; run `tabtune sweep` first")]
    NoCompleteTrial {
        /// The study.
        study: String,
    },
    /// Feature selection found no set within the allowed sizes.
    #[error("no feature set between {min} and {max} features was evaluated")]
    NoFeatureSet {
        /// Fewest features allowed.
        min: usize,
        /// Most features allowed.
        max: usize,
    },
    /// A stored out-of-fold prediction file that cannot be read.
    #[error("{}: {reason}", path.display())]
    OofFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    // The decision layer's inputs (out-of-fold matrices that do not line up).
    /// No candidate to blend.
    #[error("the decision layer needs at least one candidate's out-of-fold predictions")]
    NoCandidates,
    /// OOF rows, labels and fold ids of different lengths.
    #[error(
        "out-of-fold predictions have {rows} rows but there are {labels} labels and {folds} fold ids"
    )]
    OofRows {
        /// Rows of the OOF matrices.
        rows: usize,
        /// Labels given.
        labels: usize,
        /// Fold ids given.
        folds: usize,
    },
    /// A candidate whose OOF matrix has another shape than the first.
    #[error("candidate {index} has shape {shape:?}, expected {expected:?} like candidate 0")]
    CandidateShape {
        /// The candidate.
        index: usize,
        /// Its `(rows, classes)`.
        shape: (usize, usize),
        /// The first candidate's.
        expected: (usize, usize),
    },
    /// A label outside the classes.
    #[error("label {label} is out of range for {classes} classes")]
    LabelRange {
        /// The label.
        label: u32,
        /// Classes.
        classes: usize,
    },
    /// Cross-fitting needs at least two folds.
    #[error("the decision layer needs out-of-fold predictions from at least 2 folds (got {folds})")]
    TooFewFolds {
        /// Folds found.
        folds: usize,
    },

    // Runs.
    /// A sweep of `tabtune run` failed.
    #[error("sweep {index} ({}): {source}", space.display())]
    Sweep {
        /// Its position in `[[run.sweeps]]`, from 1.
        index: usize,
        /// Its search space.
        space: PathBuf,
        /// Why.
        #[source]
        source: Box<PipelineError>,
    },
    /// A sweep's best trial could not be registered, so the run has no champion to serve.
    #[error("sweep {index} ({}): its best trial could not be registered: {reason}", space.display())]
    NotRegistered {
        /// Its position in `[[run.sweeps]]`, from 1.
        index: usize,
        /// Its search space.
        space: PathBuf,
        /// Why.
        reason: String,
    },
    /// No champion after the sweeps.
    #[error(
        "no champion of `{name}` after the sweeps (did every trial fail or get pruned?): {reason}"
    )]
    NoChampion {
        /// The registered model name.
        name: String,
        /// What the registry said.
        reason: String,
    },
    /// A data file is missing and cannot be fetched.
    #[error("{} is missing and fetching it from source `{source_name}` failed; put the file there (or set --data-dir / TABTUNE_DATA_DIR to the folder that has it): {reason}", path.display())]
    Fetch {
        /// The missing file.
        path: PathBuf,
        /// The `[[data.sources]]` entry tried.
        source_name: String,
        /// Why fetching failed.
        reason: String,
        /// Whether the failure is the user's (a bad URL, no Kaggle credentials) or the network's.
        bad_input: bool,
    },

    // Files.
    /// A best-epoch checkpoint could not be written (the run stops).
    #[error("best-epoch checkpoint {}: {source}", path.display())]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// Why.
        #[source]
        source: tabtune_models::ModelError,
    },
    /// A chart of a report could not be drawn.
    #[error("{chart} chart: {reason}")]
    Chart {
        /// Which chart.
        chart: &'static str,
        /// What the plotting library said.
        reason: String,
    },
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl PipelineError {
    /// Whether the error is the user's input (exit code 2) rather than a runtime failure (1).
    pub fn is_bad_input(&self) -> bool {
        match self {
            Self::Features(e) => e.is_bad_input(),
            Self::Model(e) => e.is_bad_input(),
            Self::Train(e) => e.is_bad_input(),
            Self::Tune(e) => e.is_bad_input(),
            Self::Track(e) => e.is_bad_input(),
            Self::Infer(e) => e.is_bad_input(),
            Self::Onnx(e) => e.is_bad_input(),
            Self::Sweep { source, .. } => source.is_bad_input(),
            Self::Fetch { bad_input, .. } => *bad_input,
            Self::Setting { .. }
            | Self::TrialParam { .. }
            | Self::NoFamily
            | Self::FamilyParams { .. }
            | Self::DirectionMismatch { .. }
            | Self::FeatureList { .. }
            | Self::StudyFeatures { .. }
            | Self::NoSuchTrial { .. }
            | Self::TrialNotComplete { .. }
            | Self::NoCompleteTrial { .. }
            | Self::NoFeatureSet { .. } => true,
            Self::OofFile { .. }
            | Self::NoCandidates
            | Self::OofRows { .. }
            | Self::CandidateShape { .. }
            | Self::LabelRange { .. }
            | Self::TooFewFolds { .. }
            | Self::NotRegistered { .. }
            | Self::NoChampion { .. }
            | Self::Chart { .. }
            | Self::Checkpoint { .. }
            | Self::Io { .. } => false,
        }
    }

    /// A [`PipelineError::Setting`] error.
    pub(crate) fn setting(
        name: &'static str,
        value: impl std::fmt::Display,
        expected: impl Into<String>,
    ) -> Self {
        Self::Setting {
            name,
            value: value.to_string(),
            expected: expected.into(),
        }
    }

    /// The features-layer error inside, if any (the CLI prints its validation report).
    pub fn features(&self) -> Option<&tabtune_features::FeaturesError> {
        match self {
            Self::Features(e) | Self::Train(tabtune_train::TrainError::Features(e)) => Some(e),
            Self::Sweep { source, .. } => source.features(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_name_the_value_and_count_as_bad_input() {
        let e = PipelineError::setting("workers", 0, "at least 1");
        assert_eq!(e.to_string(), "workers must be at least 1, got 0");
        assert!(e.is_bad_input());
        let e = PipelineError::Sweep {
            index: 2,
            space: "a.toml".into(),
            source: Box::new(PipelineError::NoCompleteTrial { study: "s".into() }),
        };
        assert!(e.is_bad_input(), "a sweep's bad input stays bad input");
        assert!(e.to_string().starts_with("sweep 2 (a.toml): study `s`"));
        let e = PipelineError::NoChampion {
            name: "m".into(),
            reason: "alias not set".into(),
        };
        assert!(!e.is_bad_input());
    }

    #[test]
    fn errors_cross_threads() {
        fn check<T: Send + Sync + 'static>() {}
        check::<PipelineError>();
    }
}
