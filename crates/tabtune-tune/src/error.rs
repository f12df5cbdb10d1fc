//! The crate's one error type, [`TuneError`], grouped by kind: search spaces and parameter
//! values, samplers, pruners, storage, studies and trials, the executor. Every variant names
//! what it is about (file, key, parameter, study, storage URL, setting), the value that was
//! wrong and, where there is one, what was expected. The `*Problem` enums and
//! [`StorageFailure`] say what exactly was wrong inside one group.

use std::path::PathBuf;

use serde_json::Value;

use crate::model::{Choice, Direction, Distribution, ParamValue, TrialState};

/// Result alias for this crate.
pub type Result<T, E = TuneError> = std::result::Result<T, E>;

/// The forms a storage URL may take (every [`TuneError::StorageUrl`] message lists them).
pub const STORAGE_URL_FORMS: &str = "sqlite:///PATH (relative), sqlite:////PATH (absolute), \
postgresql://USER@HOST:PORT/DATABASE or memory";

/// What can go wrong in a study.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TuneError {
    // --- search spaces, distributions, parameter values ----------------------------------
    /// A search-space file cannot be read.
    #[error("cannot read search space {}: {source}", path.display())]
    SpaceRead {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A search-space file is not valid TOML.
    #[error("{origin}: not valid TOML: {}", source.message().trim())]
    SpaceToml {
        /// The file (or what the text came from).
        origin: String,
        /// The parser's error (names the line and column).
        source: toml::de::Error,
    },
    /// A key of a search space is missing, unknown or holds a value that is not allowed.
    #[error("{origin}: {key}: {problem}")]
    Space {
        /// The file, or `search space` for a space built in code.
        origin: String,
        /// Dotted key, e.g. `params.learning_rate.low`.
        key: String,
        /// What is wrong with it.
        problem: SpaceProblem,
    },
    /// A distribution breaks Optuna's rules.
    #[error("parameter `{param}`: {problem}")]
    Distribution {
        /// The parameter.
        param: String,
        /// The rule it breaks, with the offending bounds.
        problem: DistributionProblem,
    },
    /// An Optuna `distribution_json` that lacks what its distribution needs.
    #[error("distribution_json `{json}`: expected {expected}")]
    DistributionJson {
        /// The text as stored.
        json: String,
        /// What the text should hold.
        expected: &'static str,
    },
    /// An Optuna `distribution_json` naming a distribution tabtune does not know.
    #[error(
        "distribution_json `{json}`: unknown distribution `{name}`; expected one of \
         FloatDistribution, IntDistribution, CategoricalDistribution (or a legacy name)"
    )]
    UnknownDistribution {
        /// The text as stored.
        json: String,
        /// The distribution's name in it.
        name: String,
    },
    /// A categorical choice of a kind Optuna does not allow (arrays, objects).
    #[error("a categorical choice must be null, a bool, a number or a string, not {found}")]
    ChoiceType {
        /// The JSON value given as a choice.
        found: Value,
    },
    /// A value that does not belong to the distribution it is stored with.
    #[error("value {value} does not belong to {}", distribution.to_optuna_json())]
    ValueOutside {
        /// The value.
        value: ParamValue,
        /// The distribution.
        distribution: Distribution,
    },
    /// A stored categorical index that points past the choices.
    #[error("stored categorical index {index} is out of range (0..{n_choices})")]
    CategoricalIndex {
        /// The stored float.
        index: f64,
        /// How many choices the distribution has.
        n_choices: usize,
    },
    /// A parameter set gives a parameter a value outside its distribution.
    #[error("parameter `{param}`: {value} is outside {}", distribution.to_optuna_json())]
    ParamOutside {
        /// The parameter.
        param: String,
        /// The value given.
        value: ParamValue,
        /// Its distribution in the space.
        distribution: Distribution,
    },
    /// A parameter set lacks an active parameter.
    #[error("parameter `{param}` is active but has no value")]
    ParamMissing {
        /// The parameter.
        param: String,
    },
    /// A parameter set gives a value to a parameter whose condition does not hold.
    #[error("parameter `{param}` has a value ({value}) but its condition does not hold")]
    ParamInactive {
        /// The parameter.
        param: String,
        /// The value given.
        value: ParamValue,
    },
    /// A parameter set names a parameter the space does not have.
    #[error("parameter `{param}` is not in the search space (it has: {})", known.join(", "))]
    ParamUnknown {
        /// The parameter.
        param: String,
        /// The space's parameters.
        known: Vec<String>,
    },
    /// A name from a fixed set (direction, trial state, sampler, pruner) that is not in it.
    #[error("unknown {what} `{name}`; expected {}", one_of(expected))]
    UnknownName {
        /// What was named: `direction`, `trial state`, `sampler`, `pruner`.
        what: &'static str,
        /// The name given.
        name: String,
        /// The names accepted.
        expected: Vec<String>,
    },

    // --- samplers --------------------------------------------------------------------------
    /// The grid sampler was given a continuous parameter.
    #[error(
        "parameter `{param}`: the grid sampler needs a finite set of values; give this float \
         parameter in [{low}, {high}] a `step`"
    )]
    GridNeedsStep {
        /// The parameter.
        param: String,
        /// Its lower bound.
        low: f64,
        /// Its upper bound.
        high: f64,
    },
    /// The grid is too large to enumerate.
    #[error(
        "the grid has more than {max_points} points; add steps, narrow ranges or use another \
         sampler"
    )]
    GridTooLarge {
        /// The most points a grid may have.
        max_points: usize,
    },
    /// Every grid point has a finished trial.
    #[error("the grid is exhausted: all {points} points have a finished trial")]
    GridExhausted {
        /// The grid's size.
        points: usize,
    },
    /// The space has more parameters than the QMC sampler's Sobol sequence has dimensions.
    #[error("the QMC sampler handles at most {max} parameters; this space has {dims}")]
    QmcDimensions {
        /// The space's parameter count.
        dims: usize,
        /// The most the sampler handles.
        max: usize,
    },

    // --- pruners ---------------------------------------------------------------------------
    /// A pruner spec (`name:key=value,...`) or a pruner setting that is not valid.
    #[error("pruner `{spec}`: {problem}")]
    Pruner {
        /// The spec as given (the pruner's name for a pruner built in code).
        spec: String,
        /// What is wrong in it.
        problem: PrunerProblem,
    },

    // --- storage ---------------------------------------------------------------------------
    /// A storage URL that cannot be parsed.
    #[error("storage URL `{url}`: {problem}; expected {STORAGE_URL_FORMS}")]
    StorageUrl {
        /// The URL, password hidden.
        url: String,
        /// What is wrong with it.
        problem: UrlProblem,
    },
    /// The folder of a SQLite storage file does not exist.
    #[error("storage `{url}`: folder {} does not exist", folder.display())]
    StorageFolder {
        /// The URL.
        url: String,
        /// The missing folder.
        folder: PathBuf,
    },
    /// A SQLite storage URL names a folder.
    #[error("storage `{url}`: {} is a folder, not a database file", path.display())]
    StorageIsFolder {
        /// The URL.
        url: String,
        /// The folder.
        path: PathBuf,
    },
    /// A storage operation failed (the database, or what it holds).
    #[error("storage `{url}`: {operation}: {source}")]
    Storage {
        /// The URL, password hidden.
        url: String,
        /// What was being done, e.g. `writing parameter `lr``.
        operation: String,
        /// What failed.
        source: StorageFailure,
    },
    /// The database holds another revision of Optuna's schema.
    #[error(
        "storage `{url}` holds Optuna schema revision {found:?}; tabtune reads and writes \
         {expected} (Optuna 4.x-5.x): upgrade it with `optuna storage upgrade --storage URL`"
    )]
    SchemaRevision {
        /// The URL, password hidden.
        url: String,
        /// The revisions in `alembic_version`.
        found: Vec<String>,
        /// The revision tabtune uses.
        expected: &'static str,
    },
    /// The database has tables of another program.
    #[error(
        "storage `{url}` has a `studies` or `trials` table but no alembic_version: not an \
         Optuna study database"
    )]
    NotOptuna {
        /// The URL, password hidden.
        url: String,
    },

    // --- studies and trials ----------------------------------------------------------------
    /// A study name that is empty or too long.
    #[error("study name `{name}` must have 1 to 512 characters (it has {length})")]
    StudyName {
        /// The name.
        name: String,
        /// Its length in bytes.
        length: usize,
    },
    /// A study of that name exists already.
    #[error("study `{study}` already exists in `{url}`")]
    StudyExists {
        /// The study.
        study: String,
        /// The storage URL.
        url: String,
    },
    /// No study of that name.
    #[error(
        "no study `{study}` in `{url}` (it holds: {})",
        or_none(known, "no studies")
    )]
    NoSuchStudy {
        /// The study asked for.
        study: String,
        /// The storage URL.
        url: String,
        /// The studies the storage holds.
        known: Vec<String>,
    },
    /// A study is stored with the other direction.
    #[error(
        "study `{study}` in `{url}` is stored with direction {} but this run asks to {}; use \
         the stored direction or another study name",
        stored.as_optuna().to_lowercase(),
        requested.as_optuna().to_lowercase()
    )]
    DirectionMismatch {
        /// The study.
        study: String,
        /// The storage URL.
        url: String,
        /// The stored direction.
        stored: Direction,
        /// The direction this run asked for.
        requested: Direction,
    },
    /// Trials were asked of a study loaded to be read.
    #[error(
        "study `{study}` was opened read-only (Study::load); open it with an engine to run trials"
    )]
    ReadOnlyStudy {
        /// The study.
        study: String,
    },
    /// The storage created no trial although nothing limited it.
    #[error("study `{study}`: no trial was created although no budget was set")]
    TrialNotCreated {
        /// The study.
        study: String,
    },
    /// A trial told to end in a state that does not end it.
    #[error(
        "trial id {trial_id}: a trial ends as COMPLETE, PRUNED or FAIL, not {}",
        state.as_optuna()
    )]
    UnfinishedState {
        /// The trial's storage id.
        trial_id: i64,
        /// The state given.
        state: TrialState,
    },
    /// A trial told to end with a NaN value.
    #[error("trial id {trial_id}: a trial value cannot be NaN")]
    NanValue {
        /// The trial's storage id.
        trial_id: i64,
    },
    /// An objective asked a trial for a parameter it does not have.
    #[error("trial {trial} has no parameter `{param}` (it has: {})", known.join(", "))]
    NoSuchParam {
        /// The trial's number.
        trial: u64,
        /// The parameter asked for.
        param: String,
        /// The trial's parameters.
        known: Vec<String>,
    },
    /// An enqueued trial (Optuna's `enqueue_trial`) fixes a parameter outside its distribution.
    #[error(
        "enqueued parameter `{param}` = {value} does not belong to {}",
        distribution.to_optuna_json()
    )]
    EnqueuedParam {
        /// The parameter.
        param: String,
        /// The value enqueued (JSON).
        value: Value,
        /// Its distribution.
        distribution: Distribution,
    },

    // --- executor and objective ------------------------------------------------------------
    /// An executor option out of its range (`workers`, `n_trials`, population size).
    #[error("{name}: {expected}, got {value}")]
    Setting {
        /// The option.
        name: &'static str,
        /// The value given.
        value: String,
        /// What is allowed, as a phrase (`must be at least 1`).
        expected: &'static str,
    },
    /// A trial's heartbeat thread could not be started.
    #[error("cannot start the heartbeat thread of trial id {trial_id}: {source}")]
    HeartbeatThread {
        /// The trial's storage id.
        trial_id: i64,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A worker thread of a study run could not be started (the run stops; trials already
    /// running finish).
    #[error("cannot start worker thread {worker} of the study run: {source}")]
    WorkerThread {
        /// The worker's index.
        worker: usize,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The objective failed too many times in a row, so the run stopped.
    #[error(
        "study `{study}`: {failures} trials failed in a row; the last (trial {last_trial}) \
         failed with: {reason}"
    )]
    ObjectiveFailing {
        /// The study.
        study: String,
        /// Consecutive failures.
        failures: u64,
        /// The last failed trial's number.
        last_trial: u64,
        /// Its recorded `fail_reason`.
        reason: String,
    },
}

impl TuneError {
    /// Whether the error is the user's input (a space, a spec, a URL, a name, a parameter
    /// value, an option) rather than a runtime failure (the database, the objective, a thread).
    pub fn is_bad_input(&self) -> bool {
        match self {
            Self::Storage { .. }
            | Self::SchemaRevision { .. }
            | Self::NotOptuna { .. }
            | Self::TrialNotCreated { .. }
            | Self::HeartbeatThread { .. }
            | Self::WorkerThread { .. }
            | Self::ObjectiveFailing { .. } => false,
            Self::SpaceRead { .. }
            | Self::SpaceToml { .. }
            | Self::Space { .. }
            | Self::Distribution { .. }
            | Self::DistributionJson { .. }
            | Self::UnknownDistribution { .. }
            | Self::ChoiceType { .. }
            | Self::ValueOutside { .. }
            | Self::CategoricalIndex { .. }
            | Self::ParamOutside { .. }
            | Self::ParamMissing { .. }
            | Self::ParamInactive { .. }
            | Self::ParamUnknown { .. }
            | Self::UnknownName { .. }
            | Self::GridNeedsStep { .. }
            | Self::GridTooLarge { .. }
            | Self::GridExhausted { .. }
            | Self::QmcDimensions { .. }
            | Self::Pruner { .. }
            | Self::StorageUrl { .. }
            | Self::StorageFolder { .. }
            | Self::StorageIsFolder { .. }
            | Self::StudyName { .. }
            | Self::StudyExists { .. }
            | Self::NoSuchStudy { .. }
            | Self::DirectionMismatch { .. }
            | Self::ReadOnlyStudy { .. }
            | Self::UnfinishedState { .. }
            | Self::NanValue { .. }
            | Self::NoSuchParam { .. }
            | Self::EnqueuedParam { .. }
            | Self::Setting { .. } => true,
        }
    }

    /// A [`UnknownName`](Self::UnknownName) error.
    pub(crate) fn unknown(what: &'static str, name: &str, expected: &[&str]) -> Self {
        Self::UnknownName {
            what,
            name: name.to_owned(),
            expected: expected.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    /// A [`Space`](Self::Space) error.
    pub(crate) fn space(origin: &str, key: &str, problem: SpaceProblem) -> Self {
        Self::Space {
            origin: origin.to_owned(),
            key: key.to_owned(),
            problem,
        }
    }

    /// A [`Pruner`](Self::Pruner) error.
    pub(crate) fn pruner(spec: &str, problem: PrunerProblem) -> Self {
        Self::Pruner {
            spec: spec.to_owned(),
            problem,
        }
    }

    /// A pruner setting out of its range, for the pruner called `pruner`.
    pub(crate) fn pruner_setting(
        pruner: &str,
        name: &'static str,
        value: impl ToString,
        expected: impl Into<String>,
    ) -> Self {
        Self::pruner(
            pruner,
            PrunerProblem::Setting {
                name,
                value: value.to_string(),
                expected: expected.into(),
            },
        )
    }
}

/// What is wrong with one key of a search space ([`TuneError::Space`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpaceProblem {
    /// The value has the wrong type or is not one of the allowed values.
    #[error("expected {expected}, got {found}")]
    WrongType {
        /// What the key takes.
        expected: &'static str,
        /// The value found (TOML scalars as written, `an array`, `a table`).
        found: String,
    },
    /// A required key is missing.
    #[error("missing; expected {expected}")]
    Missing {
        /// What the key takes.
        expected: &'static str,
    },
    /// A key the table does not take.
    #[error("unknown key for {table}; expected one of {}", expected.join(", "))]
    UnknownKey {
        /// The table, e.g. `a float parameter`.
        table: String,
        /// The keys it takes.
        expected: Vec<&'static str>,
    },
    /// A parameter `type` that is not float, int or categorical.
    #[error("unknown type \"{found}\"; expected \"float\", \"int\" or \"categorical\"")]
    UnknownType {
        /// The type given.
        found: String,
    },
    /// The space has no `[params.NAME]` table.
    #[error("the space declares no parameters")]
    NoParams,
    /// A parameter with an empty name.
    #[error("a parameter name must not be empty")]
    EmptyName,
    /// Two parameters of one name (the key names it).
    #[error("declared twice")]
    DeclaredTwice {
        /// The parameter.
        name: String,
    },
    /// A categorical choice listed twice.
    #[error("`{choice}` listed twice")]
    ListedTwice {
        /// The choice.
        choice: Choice,
    },
    /// A condition naming the same parent twice.
    #[error("`{parent}` named twice")]
    NamedTwice {
        /// The parent.
        parent: String,
    },
    /// A parameter both drawn and in `[fixed]`.
    #[error("`{name}` is also in [fixed]; a parameter is either drawn or fixed")]
    AlsoFixed {
        /// The parameter.
        name: String,
    },
    /// The parameter's distribution breaks Optuna's rules.
    #[error("parameter `{param}`: {problem}")]
    Distribution {
        /// The parameter.
        param: String,
        /// The rule it breaks.
        problem: DistributionProblem,
    },
    /// A condition on the parameter itself.
    #[error("a parameter cannot depend on itself")]
    SelfCondition,
    /// A condition on a parameter the space does not have.
    #[error("`{parent}` is not a parameter of this space")]
    UnknownParent {
        /// The parent named.
        parent: String,
    },
    /// A condition on a parameter that is not categorical.
    #[error("`{parent}` must be a categorical parameter to be a condition")]
    ParentNotCategorical {
        /// The parent named.
        parent: String,
    },
    /// A condition with no values.
    #[error("needs at least one value")]
    NoConditionValues,
    /// A condition value that is not one of the parent's choices.
    #[error("`{value}` is not one of its choices ({})", join(choices))]
    NotAChoice {
        /// The value given.
        value: Choice,
        /// The parent's choices.
        choices: Vec<Choice>,
    },
    /// Conditions that depend on each other in a circle.
    #[error("conditions form a cycle: {}", cycle.join(" -> "))]
    Cycle {
        /// The parameters of the cycle, the first repeated at the end.
        cycle: Vec<String>,
    },
}

/// The rule of Optuna's a distribution breaks ([`TuneError::Distribution`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DistributionProblem {
    /// Infinite or NaN float bounds.
    #[error("low ({low}) and high ({high}) must be finite")]
    NotFinite {
        /// Lower bound.
        low: f64,
        /// Upper bound.
        high: f64,
    },
    /// Float bounds in the wrong order.
    #[error("low ({low}) must not exceed high ({high})")]
    FloatBounds {
        /// Lower bound.
        low: f64,
        /// Upper bound.
        high: f64,
    },
    /// Int bounds in the wrong order.
    #[error("low ({low}) must not exceed high ({high})")]
    IntBounds {
        /// Lower bound.
        low: i64,
        /// Upper bound.
        high: i64,
    },
    /// A float log scale from zero or below.
    #[error("a log scale needs low > 0, got {low}")]
    LogLow {
        /// Lower bound.
        low: f64,
    },
    /// A float with both `step` and `log`.
    #[error("`step` and `log` cannot be used together (step {step})")]
    StepWithLog {
        /// The step given.
        step: f64,
    },
    /// A float step that is not positive.
    #[error("step must be > 0, got {step}")]
    FloatStep {
        /// The step given.
        step: f64,
    },
    /// An int step below 1.
    #[error("step must be >= 1, got {step}")]
    IntStep {
        /// The step given.
        step: i64,
    },
    /// An int log scale from below 1 or with a step.
    #[error("a log scale needs low >= 1 and step 1, got low {low} and step {step}")]
    IntLog {
        /// Lower bound.
        low: i64,
        /// Step.
        step: i64,
    },
    /// A categorical without choices.
    #[error("a categorical needs at least one choice")]
    NoChoices,
}

/// What is wrong in a pruner spec or setting ([`TuneError::Pruner`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PrunerProblem {
    /// A setting that must be a non-negative integer.
    #[error("{key} = `{value}` is not a non-negative integer")]
    NotInteger {
        /// The setting.
        key: String,
        /// The value given.
        value: String,
    },
    /// A setting that must be a positive integer or `auto`.
    #[error("{key} = `{value}` is neither a positive integer nor auto")]
    NotIntegerOrAuto {
        /// The setting.
        key: String,
        /// The value given.
        value: String,
    },
    /// A setting that must be a number.
    #[error("{key} = `{value}` is not a number")]
    NotNumber {
        /// The setting.
        key: String,
        /// The value given.
        value: String,
    },
    /// `percentile` without its percentile.
    #[error("give the percentile, e.g. `percentile:25`")]
    NoPercentile,
    /// A percentile that is not a number.
    #[error("percentile `{value}` is not a number")]
    PercentileNotNumber {
        /// The value given.
        value: String,
    },
    /// A bare value where `key=value` belongs.
    #[error("`{value}` is not a setting; write key=value")]
    Positional {
        /// The value given.
        value: String,
    },
    /// A setting this pruner does not take.
    #[error(
        "unknown setting `{key}`; this pruner takes {}",
        or_none(accepted, "none")
    )]
    UnknownSetting {
        /// The setting given.
        key: String,
        /// The settings the pruner takes.
        accepted: Vec<String>,
    },
    /// A setting out of its range.
    #[error("{name}: {expected}, got {value}")]
    Setting {
        /// The setting.
        name: &'static str,
        /// The value given.
        value: String,
        /// What is allowed, as a phrase (`must be in [0, 100]`).
        expected: String,
    },
}

/// What is wrong with a storage URL ([`TuneError::StorageUrl`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UrlProblem {
    /// No `scheme://`.
    #[error("no scheme")]
    NoScheme,
    /// `sqlite://` followed by fewer than three slashes.
    #[error("a SQLite URL has three slashes before the path (sqlite:///PATH)")]
    SqliteSlashes,
    /// `sqlite:///` and nothing after it.
    #[error("no database file after sqlite:///")]
    NoSqliteFile,
    /// A PostgreSQL URL without `/DATABASE`.
    #[error("no database name (postgresql://USER@HOST:PORT/DATABASE)")]
    NoDatabaseName,
    /// A PostgreSQL URL with an empty host or database.
    #[error("a PostgreSQL URL needs a host and a database name")]
    NoHostOrDatabase,
    /// A scheme other than sqlite and postgresql.
    #[error("unknown scheme `{scheme}`")]
    UnknownScheme {
        /// The scheme given.
        scheme: String,
    },
}

/// What failed inside a storage operation ([`TuneError::Storage`]): the database driver, or
/// what the database holds.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageFailure {
    /// SQLite's error.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL's error (the server's code and message, when it sent one).
    #[error("{}", postgres_message(.0))]
    Postgres(#[from] postgres::Error),
    /// A column of a PostgreSQL row cannot be read.
    #[error("column {column}: {}", postgres_message(source))]
    PostgresColumn {
        /// The column.
        column: String,
        /// The driver's error.
        source: postgres::Error,
    },
    /// A column holds a blob (Optuna's schema has none).
    #[error("column {column} holds a blob")]
    Blob {
        /// The column's index.
        column: usize,
    },
    /// A statement returned nothing where it must return a row.
    #[error("no {what} returned")]
    NoRow {
        /// What was expected, e.g. `trial_id`.
        what: &'static str,
    },
    /// A row without the columns the schema promises.
    #[error("malformed row {row}")]
    MalformedRow {
        /// The row as read.
        row: String,
    },
    /// An attribute whose value is not JSON.
    #[error("`{key}` is not JSON: {source}")]
    NotJson {
        /// The attribute's key.
        key: String,
        /// The parser's error.
        source: serde_json::Error,
    },
    /// A timestamp tabtune cannot read.
    #[error("unreadable timestamp `{text}`")]
    Timestamp {
        /// The text as stored.
        text: String,
    },
    /// The study disappeared.
    #[error("study id {study_id} does not exist (deleted meanwhile?)")]
    StudyGone {
        /// The study's storage id.
        study_id: i64,
    },
    /// No trial of that id.
    #[error("trial id {trial_id} does not exist")]
    NoTrial {
        /// The trial's storage id.
        trial_id: i64,
    },
    /// A study without a direction.
    #[error("it has no direction (a study Optuna is still creating?)")]
    NoDirection,
    /// A study with a direction tabtune does not support.
    #[error(
        "direction `{found}` is not supported (multi-objective or NOT_SET studies are not \
         supported)"
    )]
    Direction {
        /// The direction as stored.
        found: String,
    },
    /// A stored state, distribution or parameter value that cannot be read.
    #[error(transparent)]
    Stored(Box<TuneError>),
}

/// A PostgreSQL error with its server message (the driver's `Display` hides it).
fn postgres_message(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => e.to_string(),
    }
}

/// `a or b`, or `one of a, b, c`.
fn one_of(names: &[String]) -> String {
    match names {
        [a, b] => format!("{a} or {b}"),
        _ => format!("one of {}", names.join(", ")),
    }
}

/// The names joined with commas, or `none` when there are none.
fn or_none(names: &[String], none: &str) -> String {
    if names.is_empty() {
        none.to_owned()
    } else {
        names.join(", ")
    }
}

fn join(choices: &[Choice]) -> String {
    choices
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    fn autotraits<T: Send + Sync + 'static>() {}

    #[test]
    fn errors_cross_threads() {
        autotraits::<TuneError>();
        autotraits::<StorageFailure>();
    }

    /// Each kind's message names the thing, the value and what was expected; `is_bad_input`
    /// tells the user's mistakes (exit code 2) from runtime failures (exit code 1).
    #[test]
    fn each_kind_names_its_values_and_picks_its_exit_code() {
        let cases: Vec<(TuneError, &[&str], bool)> = vec![
            (
                TuneError::space(
                    "s.toml",
                    "params.lr.low",
                    SpaceProblem::WrongType {
                        expected: "a number",
                        found: "\"x\"".into(),
                    },
                ),
                &["s.toml: params.lr.low: expected a number, got \"x\""],
                true,
            ),
            (
                TuneError::Distribution {
                    param: "depth".into(),
                    problem: DistributionProblem::IntBounds { low: 9, high: 2 },
                },
                &["parameter `depth`: low (9) must not exceed high (2)"],
                true,
            ),
            (
                TuneError::unknown("direction", "up", &["minimize", "maximize"]),
                &["unknown direction `up`; expected minimize or maximize"],
                true,
            ),
            (
                TuneError::unknown("sampler", "cmaes", &["random", "grid", "tpe"]),
                &["unknown sampler `cmaes`; expected one of random, grid, tpe"],
                true,
            ),
            (
                TuneError::GridNeedsStep {
                    param: "lr".into(),
                    low: 0.1,
                    high: 0.3,
                },
                &["`lr`", "[0.1, 0.3]", "`step`"],
                true,
            ),
            (
                TuneError::pruner_setting("hyperband", "max_resource", 2, "must be >= 3"),
                &["pruner `hyperband`: max_resource: must be >= 3, got 2"],
                true,
            ),
            (
                TuneError::pruner(
                    "none:x=1",
                    PrunerProblem::UnknownSetting {
                        key: "x".into(),
                        accepted: Vec::new(),
                    },
                ),
                &["pruner `none:x=1`: unknown setting `x`; this pruner takes none"],
                true,
            ),
            (
                TuneError::StorageUrl {
                    url: "mysql://u:***@h/db".into(),
                    problem: UrlProblem::UnknownScheme {
                        scheme: "mysql".into(),
                    },
                },
                &["storage URL `mysql://u:***@h/db`: unknown scheme `mysql`; expected sqlite:///"],
                true,
            ),
            (
                TuneError::Storage {
                    url: "postgresql://u:***@h/db".into(),
                    operation: "reading trials".into(),
                    source: StorageFailure::MalformedRow {
                        row: "[Null]".into(),
                    },
                },
                &["storage `postgresql://u:***@h/db`: reading trials: malformed row [Null]"],
                false,
            ),
            (
                TuneError::SchemaRevision {
                    url: "sqlite:///old.db".into(),
                    found: vec!["v2.6.0.a".into()],
                    expected: "v3.2.0.a",
                },
                &["[\"v2.6.0.a\"]", "v3.2.0.a", "optuna storage upgrade"],
                false,
            ),
            (
                TuneError::DirectionMismatch {
                    study: "acc".into(),
                    url: "memory".into(),
                    stored: Direction::Maximize,
                    requested: Direction::Minimize,
                },
                &[
                    "study `acc` in `memory` is stored with direction maximize but this run asks to minimize",
                ],
                true,
            ),
            (
                TuneError::NoSuchStudy {
                    study: "nope".into(),
                    url: "memory".into(),
                    known: Vec::new(),
                },
                &["no study `nope` in `memory` (it holds: no studies)"],
                true,
            ),
            (
                TuneError::UnfinishedState {
                    trial_id: 4,
                    state: TrialState::Running,
                },
                &["trial id 4", "not RUNNING"],
                true,
            ),
            (
                TuneError::Setting {
                    name: "workers",
                    value: "0".into(),
                    expected: "must be at least 1",
                },
                &["workers: must be at least 1, got 0"],
                true,
            ),
            (
                TuneError::ObjectiveFailing {
                    study: "s".into(),
                    failures: 3,
                    last_trial: 7,
                    reason: "boom".into(),
                },
                &["study `s`: 3 trials failed in a row; the last (trial 7) failed with: boom"],
                false,
            ),
            (
                TuneError::HeartbeatThread {
                    trial_id: 2,
                    source: std::io::Error::other("no threads left"),
                },
                &["trial id 2", "no threads left"],
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
    fn driver_errors_are_the_source_of_storage_errors() {
        let e = TuneError::Storage {
            url: "sqlite:///s.db".into(),
            operation: "creating a trial".into(),
            source: rusqlite::Error::QueryReturnedNoRows.into(),
        };
        let m = e.to_string();
        assert!(
            m.starts_with("storage `sqlite:///s.db`: creating a trial: ") && m.contains("no rows"),
            "{m}"
        );
        assert!(e.source().is_some(), "the driver's error is kept");
        assert!(!e.is_bad_input());
        // A stored value that does not read back keeps the value's own error.
        let stored = TuneError::unknown("trial state", "DONE", &["RUNNING", "COMPLETE"]);
        let e = TuneError::Storage {
            url: "memory".into(),
            operation: "reading trial 3".into(),
            source: StorageFailure::Stored(Box::new(stored)),
        };
        assert!(
            e.to_string()
                .contains("reading trial 3: unknown trial state `DONE`")
        );
        assert!(
            !e.is_bad_input(),
            "a damaged database is not the user's input"
        );
    }
}
