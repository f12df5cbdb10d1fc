//! The storage trait: what a study needs from its database.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use crate::error::Result;
use crate::model::{Direction, Distribution, FrozenTrial, TrialState};

/// A study as the storage holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StudyRecord {
    /// The storage's id of the study.
    pub study_id: i64,
    /// Its unique name.
    pub name: String,
    /// Its (single) direction.
    pub direction: Direction,
}

/// User attributes (the user's) or system attributes (the engine's), as in Optuna.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttrKind {
    /// `*_user_attributes`.
    User,
    /// `*_system_attributes`.
    System,
}

/// What a new trial starts with (Optuna's template trial): state `Running` (a trial being
/// evaluated now) or `Waiting` (enqueued, e.g. a retry of a failed trial), and anything already
/// known about it.
#[derive(Clone, Debug, Default)]
pub struct NewTrial {
    /// `true` for a WAITING trial, `false` for a RUNNING one.
    pub waiting: bool,
    /// Parameters: name -> (distribution, internal float).
    pub params: BTreeMap<String, (Distribution, f64)>,
    /// Intermediate values by step.
    pub intermediate: BTreeMap<u64, f64>,
    /// User attributes.
    pub user_attrs: BTreeMap<String, Value>,
    /// System attributes.
    pub system_attrs: BTreeMap<String, Value>,
}

/// A study database. Every method is one transaction; trial numbers are assigned under a lock
/// (SQLite `BEGIN IMMEDIATE`, PostgreSQL `SELECT ... FOR UPDATE` on the study row) so that any
/// number of threads, processes and machines sharing a database never collide.
pub trait Storage: Send + Sync {
    /// The storage URL (password hidden), for messages.
    fn url(&self) -> &str;

    /// Creates a study; fails when the name is taken.
    fn create_study(&self, name: &str, direction: Direction) -> Result<StudyRecord>;
    /// The study called `name`, if any.
    fn find_study(&self, name: &str) -> Result<Option<StudyRecord>>;
    /// Every study, by id.
    fn studies(&self) -> Result<Vec<StudyRecord>>;
    /// Sets a study attribute (JSON value), replacing an earlier one.
    fn set_study_attr(&self, study_id: i64, kind: AttrKind, key: &str, value: &Value)
    -> Result<()>;
    /// The study's attributes of one kind.
    fn study_attrs(&self, study_id: i64, kind: AttrKind) -> Result<BTreeMap<String, Value>>;

    /// Creates a trial with the next number. With `budget`, creation is refused (`Ok(None)`)
    /// when the study already holds `budget` trials that are COMPLETE, PRUNED, RUNNING or
    /// WAITING; the check and the insert are one transaction, so parallel workers never
    /// overshoot.
    fn create_trial(
        &self,
        study_id: i64,
        template: &NewTrial,
        budget: Option<u64>,
    ) -> Result<Option<FrozenTrial>>;
    /// Atomically turns the oldest WAITING trial of the study into a RUNNING one and returns
    /// it; `None` when there is none. Two workers never get the same trial.
    fn claim_waiting_trial(&self, study_id: i64) -> Result<Option<FrozenTrial>>;
    /// Records a parameter of a running trial.
    fn set_trial_param(
        &self,
        trial_id: i64,
        name: &str,
        distribution: &Distribution,
        internal: f64,
    ) -> Result<()>;
    /// Records several parameters of a running trial in one transaction.
    fn set_trial_params(
        &self,
        trial_id: i64,
        params: &[(String, Distribution, f64)],
    ) -> Result<()> {
        for (name, d, x) in params {
            self.set_trial_param(trial_id, name, d, *x)?;
        }
        Ok(())
    }
    /// Records the intermediate value of `step` (replacing an earlier one of the same step).
    fn set_intermediate(&self, trial_id: i64, step: u64, value: f64) -> Result<()>;
    /// Sets a trial attribute (JSON value).
    fn set_trial_attr(&self, trial_id: i64, kind: AttrKind, key: &str, value: &Value)
    -> Result<()>;
    /// Ends a RUNNING trial: `state` (COMPLETE, PRUNED or FAIL), its value when it has one,
    /// the completion time. Returns `false` (and changes nothing) when the trial was no longer
    /// RUNNING, e.g. it was failed as stale meanwhile.
    fn finish_trial(&self, trial_id: i64, state: TrialState, value: Option<f64>) -> Result<bool>;
    /// Records that the trial's worker is alive (database clock, as Optuna does).
    fn heartbeat(&self, trial_id: i64) -> Result<()>;
    /// Marks FAIL every RUNNING trial of the study whose last heartbeat is older than `grace`
    /// (by the database clock) and, in the same transaction, enqueues a WAITING copy of each
    /// (same params, user attributes, system attributes `failed_trial` = the first failed
    /// number and `retry_history`, like Optuna's `RetryFailedTrialCallback`) unless it has
    /// already been retried `max_retry` times. Returns the numbers of the failed trials.
    fn fail_stale_trials(
        &self,
        study_id: i64,
        grace: Duration,
        max_retry: Option<u32>,
    ) -> Result<Vec<u64>>;
    /// Every trial of the study, by number, with everything recorded about it.
    fn trials(&self, study_id: i64) -> Result<Vec<FrozenTrial>>;
    /// One trial by id.
    fn trial(&self, trial_id: i64) -> Result<FrozenTrial>;
    /// How many trials of the study are in each state.
    fn count_states(&self, study_id: i64) -> Result<BTreeMap<&'static str, u64>>;
}
