//! A study: trials asked for, reported on and told, in a [`Storage`].
//!
//! [`Study::open`] creates or loads a study by name; [`Study::ask`] starts a trial (a WAITING
//! one first, e.g. the retry of a trial whose worker died, else a new one sampled by the
//! study's [`Sampler`]) and returns a [`TrialHandle`]; [`TrialHandle::report`] records an
//! intermediate value and asks the [`Pruner`] whether to stop; [`TrialHandle::tell`] ends the
//! trial. While a handle lives a background thread records its heartbeat; trials whose heartbeat
//! is older than the grace period are failed and retried by the next `ask`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::Value;

use crate::error::{Result, TuneError};
use crate::model::{Choice, Direction, Distribution, FrozenTrial, ParamValue, TrialState};
use crate::pruner::{Pruner, StudyView};
use crate::sampler::Sampler;
use crate::space::SearchSpace;
use crate::storage::{AttrKind, NewTrial, Storage, StudyRecord};

/// How a trial ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Finished with the objective's value (NaN fails the trial, as in Optuna).
    Complete(f64),
    /// Stopped by the pruner; the last intermediate value stands as its value, as in Optuna.
    Pruned,
    /// Failed; the reason is stored as the system attribute `fail_reason`.
    Fail(String),
}

/// How a study runs its trials: the search space, the sampler and the pruner, and the
/// heartbeat settings.
pub struct Engine {
    /// The space the sampler draws from.
    pub space: SearchSpace,
    /// Proposes parameters.
    pub sampler: Box<dyn Sampler>,
    /// Stops unpromising trials.
    pub pruner: Box<dyn Pruner>,
    /// How often a running trial records its heartbeat.
    pub heartbeat_interval: Duration,
    /// A RUNNING trial whose last heartbeat is older than this is failed (and retried).
    pub grace_period: Duration,
    /// How often one trial is retried after its worker died (`None`: without limit).
    pub max_retry: Option<u32>,
}

/// Default heartbeat interval (Optuna leaves it to the user and suggests 60 s; trials here are
/// seconds to minutes long, and a dead worker's trial should come back within a minute).
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(10);
/// Default grace period: a trial is stale after missing three heartbeats (Optuna: two).
pub const DEFAULT_GRACE: Duration = Duration::from_secs(30);
/// Default number of retries of a trial whose worker died.
pub const DEFAULT_MAX_RETRY: u32 = 3;

impl Engine {
    /// An engine with the default heartbeat interval, grace period and retry limit.
    pub fn new(space: SearchSpace, sampler: Box<dyn Sampler>, pruner: Box<dyn Pruner>) -> Self {
        Self {
            space,
            sampler,
            pruner,
            heartbeat_interval: DEFAULT_HEARTBEAT,
            grace_period: DEFAULT_GRACE,
            max_retry: Some(DEFAULT_MAX_RETRY),
        }
    }
}

struct Inner {
    storage: Arc<dyn Storage>,
    record: StudyRecord,
    engine: Option<Engine>,
}

/// A study in a storage. Cheap to clone (shared); safe to use from many threads.
#[derive(Clone)]
pub struct Study {
    inner: Arc<Inner>,
}

/// Study system attributes tabtune writes (Optuna shows them in `study.system_attrs`).
pub const ATTR_SAMPLER: &str = "tabtune:sampler";
/// The pruner's name.
pub const ATTR_PRUNER: &str = "tabtune:pruner";
/// Study user attribute holding the space's fixed parameters (name → value).
pub const ATTR_FIXED_PARAMS: &str = "fixed_params";

impl Study {
    /// Creates the study `name` in `storage`, or loads it when it exists; a loaded study must
    /// have `direction` (the error says which it has). Records the sampler and pruner names as
    /// study system attributes and the space's fixed parameters as the user attribute
    /// `fixed_params`.
    pub fn open(
        storage: Arc<dyn Storage>,
        name: &str,
        direction: Direction,
        engine: Engine,
    ) -> Result<Self> {
        let record = match storage.find_study(name)? {
            Some(r) => r,
            None => match storage.create_study(name, direction) {
                Ok(r) => r,
                // Another worker created it meanwhile.
                Err(e) => storage.find_study(name)?.ok_or(e)?,
            },
        };
        if record.direction != direction {
            return Err(TuneError::DirectionMismatch {
                study: name.to_owned(),
                url: storage.url().to_owned(),
                stored: record.direction,
                requested: direction,
            });
        }
        let id = record.study_id;
        storage.set_study_attr(
            id,
            AttrKind::System,
            ATTR_SAMPLER,
            &Value::from(engine.sampler.name()),
        )?;
        storage.set_study_attr(
            id,
            AttrKind::System,
            ATTR_PRUNER,
            &Value::from(engine.pruner.name()),
        )?;
        let fixed: serde_json::Map<String, Value> = engine
            .space
            .fixed()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        storage.set_study_attr(id, AttrKind::User, ATTR_FIXED_PARAMS, &Value::Object(fixed))?;
        Ok(Self {
            inner: Arc::new(Inner {
                storage,
                record,
                engine: Some(engine),
            }),
        })
    }

    /// Loads an existing study to read it (its trials, best trial); `ask` is refused. The
    /// error names the study and the storage when there is no such study.
    pub fn load(storage: Arc<dyn Storage>, name: &str) -> Result<Self> {
        let Some(record) = storage.find_study(name)? else {
            let known: Vec<String> = storage.studies()?.into_iter().map(|s| s.name).collect();
            return Err(TuneError::NoSuchStudy {
                study: name.to_owned(),
                url: storage.url().to_owned(),
                known,
            });
        };
        Ok(Self {
            inner: Arc::new(Inner {
                storage,
                record,
                engine: None,
            }),
        })
    }

    /// The study's name.
    pub fn name(&self) -> &str {
        &self.inner.record.name
    }

    /// The storage's id of the study.
    pub fn id(&self) -> i64 {
        self.inner.record.study_id
    }

    /// The direction.
    pub fn direction(&self) -> Direction {
        self.inner.record.direction
    }

    /// The storage.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.inner.storage
    }

    fn engine(&self) -> Result<&Engine> {
        self.inner
            .engine
            .as_ref()
            .ok_or_else(|| TuneError::ReadOnlyStudy {
                study: self.name().to_owned(),
            })
    }

    /// The most trials the sampler can propose (a grid's size); `None` when unbounded.
    pub fn max_trials(&self) -> Result<Option<u64>> {
        let e = self.engine()?;
        Ok(e.sampler.max_trials(&e.space))
    }

    /// The search space (studies opened with an engine).
    pub fn space(&self) -> Option<&SearchSpace> {
        self.inner.engine.as_ref().map(|e| &e.space)
    }

    /// Every trial, by number.
    pub fn trials(&self) -> Result<Vec<FrozenTrial>> {
        self.inner.storage.trials(self.id())
    }

    /// The best COMPLETE trial (Optuna's `best_trial`; the lowest number wins a tie).
    pub fn best_trial(&self) -> Result<Option<FrozenTrial>> {
        Ok(best_of(&self.trials()?, self.direction()).cloned())
    }

    /// How many trials are in each state (`COMPLETE`, `PRUNED`, ...; absent states are 0).
    pub fn counts(&self) -> Result<BTreeMap<&'static str, u64>> {
        self.inner.storage.count_states(self.id())
    }

    /// Fails the RUNNING trials whose heartbeat is older than the grace period and enqueues
    /// their retries; returns the failed trials' numbers. [`Study::ask`] does this first.
    pub fn fail_stale_trials(&self) -> Result<Vec<u64>> {
        let e = self.engine()?;
        self.inner
            .storage
            .fail_stale_trials(self.id(), e.grace_period, e.max_retry)
    }

    /// Starts a trial (see [`Study::ask_within`]) with no budget.
    pub fn ask(&self) -> Result<TrialHandle> {
        self.ask_within(None)?
            .ok_or_else(|| TuneError::TrialNotCreated {
                study: self.name().to_owned(),
            })
    }

    /// Starts a trial: fails stale trials first, then claims a WAITING trial (a retry keeps its
    /// parameters; an Optuna `enqueue_trial` has its `fixed_params` applied over a sample) or
    /// creates a new one, unless the study already holds `budget` trials that are COMPLETE,
    /// PRUNED, RUNNING or WAITING (then `None`). The sampled parameters are written to the
    /// storage before this returns, and the trial's heartbeat runs until it is told.
    pub fn ask_within(&self, budget: Option<u64>) -> Result<Option<TrialHandle>> {
        let engine = self.engine()?;
        let storage = &self.inner.storage;
        self.fail_stale_trials()?;
        let mut trial = match storage.claim_waiting_trial(self.id())? {
            Some(t) => t,
            None => match storage.create_trial(self.id(), &NewTrial::default(), budget)? {
                Some(t) => t,
                None => return Ok(None),
            },
        };
        // The heartbeat starts before sampling, so a worker killed from here on leaves a trial
        // that goes stale and is retried.
        let heartbeat = Heartbeat::start(
            Arc::clone(storage),
            trial.trial_id,
            engine.heartbeat_interval,
        )?;
        let mut handle = TrialHandle {
            study: self.clone(),
            trial: trial.clone(),
            heartbeat: Some(heartbeat),
            stop: None,
            told: false,
        };
        if let Err(e) = self.fill_params(&mut trial) {
            handle.tell_inner(&Outcome::Fail(format!("sampling failed: {e}")))?;
            return Err(e);
        }
        handle.trial = trial;
        Ok(Some(handle))
    }

    /// Starts up to `p` trials at once for a population trainer (each sampled knowing the
    /// ones before it as RUNNING, which is what constant liar uses); fewer when `budget` is
    /// reached.
    pub fn ask_batch(&self, p: usize, budget: Option<u64>) -> Result<Vec<TrialHandle>> {
        let mut out = Vec::with_capacity(p);
        for _ in 0..p {
            match self.ask_within(budget)? {
                Some(h) => out.push(h),
                None => break,
            }
        }
        Ok(out)
    }

    /// Samples the parameters the trial lacks and writes them.
    fn fill_params(&self, trial: &mut FrozenTrial) -> Result<()> {
        let engine = self.engine()?;
        if !trial.params.is_empty() {
            return Ok(()); // a retry: same parameters as the failed attempt
        }
        let trials = self.trials()?;
        let proposal =
            engine
                .sampler
                .sample(&engine.space, &trials, self.direction(), trial.number)?;
        let fixed = trial
            .system_attrs
            .get("fixed_params")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let mut rows = Vec::with_capacity(proposal.len());
        for (name, dist, sampled) in proposal {
            let value = match fixed.get(&name) {
                Some(v) => value_from_json(&dist, v).ok_or_else(|| TuneError::EnqueuedParam {
                    param: name.clone(),
                    value: v.clone(),
                    distribution: dist.clone(),
                })?,
                None => sampled,
            };
            let internal = dist.to_internal(&value)?;
            rows.push((name.clone(), dist.clone(), internal));
            trial.params.insert(name.clone(), value);
            trial.distributions.insert(name, dist);
        }
        self.inner.storage.set_trial_params(trial.trial_id, &rows)
    }
}

/// The value `v` (JSON, as Optuna's `enqueue_trial` stores it) as a value of `d`.
fn value_from_json(d: &Distribution, v: &Value) -> Option<ParamValue> {
    let value = match d {
        Distribution::Float { .. } => ParamValue::Float(v.as_f64()?),
        Distribution::Int { .. } => ParamValue::Int(v.as_i64()?),
        Distribution::Categorical { .. } => ParamValue::Choice(Choice::from_json(v).ok()?),
    };
    d.contains(&value).then_some(value)
}

/// The best COMPLETE trial of `trials` in `direction` (lowest number on ties).
pub fn best_of(trials: &[FrozenTrial], direction: Direction) -> Option<&FrozenTrial> {
    let mut best: Option<&FrozenTrial> = None;
    for t in trials {
        if t.state != TrialState::Complete {
            continue;
        }
        let Some(v) = t.value else { continue };
        if best.is_none_or(|b| b.value.is_some_and(|bv| direction.beats(v, bv))) {
            best = Some(t);
        }
    }
    best
}

/// Records a trial's heartbeat on a background thread until stopped.
struct Heartbeat {
    stop: mpsc::Sender<()>,
    thread: Option<JoinHandle<()>>,
}

impl Heartbeat {
    fn start(storage: Arc<dyn Storage>, trial_id: i64, every: Duration) -> Result<Self> {
        storage.heartbeat(trial_id)?;
        let (stop, rx) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("heartbeat-{trial_id}"))
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(every) {
                    // A failed heartbeat is retried at the next tick; a trial that keeps failing
                    // to beat goes stale and is retried elsewhere, which is the safe outcome.
                    let _ = storage.heartbeat(trial_id);
                }
            })
            .map_err(|source| TuneError::HeartbeatThread { trial_id, source })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        let _ = self.stop.send(());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A running trial. Read its parameters, [`report`](Self::report) intermediate values, then
/// [`tell`](Self::tell) how it ended. A handle dropped without `tell` (a panic in the
/// objective) fails its trial.
pub struct TrialHandle {
    study: Study,
    trial: FrozenTrial,
    heartbeat: Option<Heartbeat>,
    stop: Option<Arc<AtomicBool>>,
    told: bool,
}

impl TrialHandle {
    /// The trial's number in the study (from 0).
    pub fn number(&self) -> u64 {
        self.trial.number
    }

    /// The storage's id of the trial.
    pub fn trial_id(&self) -> i64 {
        self.trial.trial_id
    }

    /// The study.
    pub fn study(&self) -> &Study {
        &self.study
    }

    /// The trial as recorded so far (params, intermediate values, attributes).
    pub fn frozen(&self) -> &FrozenTrial {
        &self.trial
    }

    /// The sampled parameters by name (only the active ones of a conditional space).
    pub fn params(&self) -> &BTreeMap<String, ParamValue> {
        &self.trial.params
    }

    /// One parameter; the error names it when the trial has no such parameter.
    pub fn param(&self, name: &str) -> Result<&ParamValue> {
        self.trial
            .params
            .get(name)
            .ok_or_else(|| TuneError::NoSuchParam {
                trial: self.trial.number,
                param: name.to_owned(),
                known: self.trial.params.keys().cloned().collect(),
            })
    }

    /// Makes [`interrupted`](Self::interrupted) and [`report`](Self::report) see `stop` (the
    /// executor passes its Ctrl-C flag).
    pub fn watch(&mut self, stop: Arc<AtomicBool>) {
        self.stop = Some(stop);
    }

    /// Whether the run was asked to stop (Ctrl-C): the objective should return soon; the
    /// executor then fails the trial with a reason.
    pub fn interrupted(&self) -> bool {
        self.stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Relaxed))
    }

    /// Records the intermediate value of `step` (epoch, boosting round or fold) and returns
    /// whether the trial should stop now: the pruner says so, or the run was interrupted.
    pub fn report(&mut self, step: u64, value: f64) -> Result<bool> {
        let storage = &self.study.inner.storage;
        storage.set_intermediate(self.trial.trial_id, step, value)?;
        self.trial.intermediate.insert(step, value);
        if self.interrupted() {
            return Ok(true);
        }
        let Some(engine) = self.study.inner.engine.as_ref() else {
            return Ok(false);
        };
        if engine.pruner.name() == "none" {
            return Ok(false); // no need to read the study
        }
        let trials = self.study.trials()?;
        let view = StudyView {
            name: self.study.name(),
            direction: self.study.direction(),
            trials: &trials,
        };
        let verdict = engine.pruner.prune(&self.trial, &view);
        for (k, v) in verdict.system_attrs {
            storage.set_trial_attr(self.trial.trial_id, AttrKind::System, &k, &v)?;
            self.trial.system_attrs.insert(k, v);
        }
        Ok(verdict.prune)
    }

    /// Sets a user attribute of the trial (JSON value).
    pub fn set_user_attr(&mut self, key: &str, value: Value) -> Result<()> {
        self.study.inner.storage.set_trial_attr(
            self.trial.trial_id,
            AttrKind::User,
            key,
            &value,
        )?;
        self.trial.user_attrs.insert(key.to_owned(), value);
        Ok(())
    }

    /// Sets a system attribute of the trial (JSON value).
    pub fn set_system_attr(&mut self, key: &str, value: Value) -> Result<()> {
        self.study.inner.storage.set_trial_attr(
            self.trial.trial_id,
            AttrKind::System,
            key,
            &value,
        )?;
        self.trial.system_attrs.insert(key.to_owned(), value);
        Ok(())
    }

    /// Ends the trial and returns it as stored. A NaN value fails it (Optuna does the same);
    /// a pruned trial takes its last finite intermediate value as its value. When the trial
    /// was meanwhile failed as stale (its heartbeat stopped for longer than the grace period),
    /// the stored FAIL stands and is returned.
    pub fn tell(mut self, outcome: Outcome) -> Result<FrozenTrial> {
        self.tell_inner(&outcome)
    }

    fn tell_inner(&mut self, outcome: &Outcome) -> Result<FrozenTrial> {
        self.told = true;
        // Stop beating first: a finished trial needs no heartbeat.
        drop(self.heartbeat.take());
        let storage = Arc::clone(&self.study.inner.storage);
        let id = self.trial.trial_id;
        match outcome {
            Outcome::Complete(v) if v.is_nan() => {
                let why = "the objective returned NaN".to_owned();
                storage.set_trial_attr(id, AttrKind::System, "fail_reason", &Value::from(why))?;
                storage.finish_trial(id, TrialState::Fail, None)?;
            }
            Outcome::Complete(v) => {
                storage.finish_trial(id, TrialState::Complete, Some(*v))?;
            }
            Outcome::Pruned => {
                let last = self
                    .trial
                    .last_step()
                    .map(|(_, v)| v)
                    .filter(|v| !v.is_nan());
                storage.finish_trial(id, TrialState::Pruned, last)?;
            }
            Outcome::Fail(why) => {
                storage.set_trial_attr(
                    id,
                    AttrKind::System,
                    "fail_reason",
                    &Value::from(why.as_str()),
                )?;
                storage.finish_trial(id, TrialState::Fail, None)?;
            }
        }
        storage.trial(id)
    }
}

impl Drop for TrialHandle {
    fn drop(&mut self) {
        if !self.told {
            let reason = if std::thread::panicking() {
                "the objective panicked".to_owned()
            } else {
                "the trial handle was dropped without tell".to_owned()
            };
            // Best effort: if the storage is unreachable the trial goes stale and is retried.
            let _ = self.tell_inner(&Outcome::Fail(reason));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trial(number: u64, state: TrialState, value: Option<f64>) -> FrozenTrial {
        let mut t = FrozenTrial::new(number as i64 + 1, number);
        t.state = state;
        t.value = value;
        t
    }

    #[test]
    fn best_of_takes_complete_trials_in_the_direction() {
        let ts = [
            trial(0, TrialState::Complete, Some(0.5)),
            trial(1, TrialState::Pruned, Some(0.9)),
            trial(2, TrialState::Complete, Some(0.7)),
            trial(3, TrialState::Complete, Some(0.7)),
            trial(4, TrialState::Running, None),
        ];
        assert_eq!(best_of(&ts, Direction::Maximize).unwrap().number, 2);
        assert_eq!(best_of(&ts, Direction::Minimize).unwrap().number, 0);
        assert!(best_of(&ts[4..], Direction::Minimize).is_none());
    }

    #[test]
    fn enqueued_values_must_belong_to_the_distribution() {
        let d = Distribution::Int {
            low: 1,
            high: 9,
            log: false,
            step: 2,
        };
        assert_eq!(
            value_from_json(&d, &Value::from(5)),
            Some(ParamValue::Int(5))
        );
        assert_eq!(value_from_json(&d, &Value::from(4)), None);
        let c = Distribution::Categorical {
            choices: vec![Choice::Str("a".into())],
        };
        assert!(value_from_json(&c, &Value::from("a")).is_some());
        assert!(value_from_json(&c, &Value::from("b")).is_none());
    }

    #[test]
    fn handles_and_studies_cross_threads() {
        fn send_sync<T: Send + Sync>() {}
        fn send<T: Send>() {}
        send_sync::<Study>();
        send::<TrialHandle>();
    }
}
