//! The [`Pruner`] trait, what it sees of the study, and the name table.

use serde_json::Value;

use crate::error::{PrunerProblem, Result, TuneError};
use crate::model::{Direction, FrozenTrial};

use super::halving::SuccessiveHalvingPruner;
use super::hyperband::HyperbandPruner;
use super::percentile::PercentilePruner;
use super::wilcoxon::WilcoxonPruner;

/// What a pruner sees of the study.
#[derive(Clone, Copy, Debug)]
pub struct StudyView<'a> {
    /// The study's name (Hyperband assigns brackets by a hash of it and the trial number, as
    /// Optuna does, so a study is split the same way in every process).
    pub name: &'a str,
    /// The study's direction.
    pub direction: Direction,
    /// All trials of the study, in any state (the judged trial may be among them; pruners
    /// recognise it by its number).
    pub trials: &'a [FrozenTrial],
}

/// A pruner's answer.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Verdict {
    /// Stop the trial now.
    pub prune: bool,
    /// System attributes to write on the judged trial before answering (successive halving
    /// records the value with which a trial completed a rung as `completed_rung_<k>`, exactly
    /// as Optuna does; later judgements read them back from the trials).
    pub system_attrs: Vec<(String, Value)>,
}

impl Verdict {
    /// Keep going, nothing to record.
    pub fn keep() -> Self {
        Self::default()
    }

    /// Stop or keep, nothing to record.
    pub fn from_bool(prune: bool) -> Self {
        Self {
            prune,
            system_attrs: Vec::new(),
        }
    }
}

/// Decides whether a running trial stops early.
pub trait Pruner: Send + Sync {
    /// Whether `trial` (RUNNING, with the intermediate values reported so far, the last one
    /// included, and its system attributes) stops now. The storage must write
    /// [`Verdict::system_attrs`] on the trial.
    fn prune(&self, trial: &FrozenTrial, study: &StudyView<'_>) -> Verdict;

    /// The pruner's name as [`pruner_from_name`] accepts it.
    fn name(&self) -> &'static str;
}

/// Never prunes (Optuna's `NopPruner`).
#[derive(Clone, Copy, Debug, Default)]
pub struct NopPruner;

impl Pruner for NopPruner {
    fn prune(&self, _trial: &FrozenTrial, _study: &StudyView<'_>) -> Verdict {
        Verdict::keep()
    }

    fn name(&self) -> &'static str {
        "none"
    }
}

/// The forms [`pruner_from_name`] accepts (settings as `name:key=value,key=value`).
pub const PRUNER_NAMES: &[&str] = &[
    "none",
    "median",
    "percentile:<p>",
    "asha",
    "hyperband",
    "wilcoxon",
];

/// The pruner described by `spec`, with Optuna's defaults for anything not given:
///
/// - `none`
/// - `median[:n_startup_trials=5,n_warmup_steps=0,interval_steps=1,n_min_trials=1]`
/// - `percentile:<p>[,n_startup_trials=..,n_warmup_steps=..,interval_steps=..,n_min_trials=..]`
/// - `asha[:min_resource=auto,reduction_factor=4,min_early_stopping_rate=0,bootstrap_count=0]`
///   (also `successive-halving`)
/// - `hyperband[:min_resource=1,max_resource=auto,reduction_factor=3,bootstrap_count=0]`
/// - `wilcoxon[:p_threshold=0.1,n_startup_steps=2]`
///
/// Errors name the pruner and the setting.
pub fn pruner_from_name(spec: &str) -> Result<Box<dyn Pruner>> {
    let (name, args) = spec.split_once(':').unwrap_or((spec, ""));
    let mut positional = Vec::new();
    let mut keyed: Vec<(&str, &str)> = Vec::new();
    for part in args.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('=') {
            Some((k, v)) => keyed.push((k.trim(), v.trim())),
            None => positional.push(part),
        }
    }
    let settings = Settings {
        spec,
        keyed,
        used: std::cell::RefCell::new(Vec::new()),
    };
    // A constructor's error names the pruner; the spec as given says more.
    let named = |e: TuneError| match e {
        TuneError::Pruner { problem, .. } => TuneError::pruner(spec, problem),
        other => other,
    };
    let pruner: Box<dyn Pruner> = match name {
        "none" => Box::new(NopPruner),
        "median" => Box::new(
            PercentilePruner::median(
                settings.int("n_startup_trials", 5)?,
                settings.int("n_warmup_steps", 0)?,
                settings.int("interval_steps", 1)?,
                settings.int("n_min_trials", 1)?,
            )
            .map_err(named)?,
        ),
        "percentile" => {
            let Some(p) = positional.pop() else {
                return Err(TuneError::pruner(spec, PrunerProblem::NoPercentile));
            };
            let p: f64 = p.parse().map_err(|_| {
                TuneError::pruner(
                    spec,
                    PrunerProblem::PercentileNotNumber {
                        value: p.to_owned(),
                    },
                )
            })?;
            Box::new(
                PercentilePruner::new(
                    p,
                    settings.int("n_startup_trials", 5)?,
                    settings.int("n_warmup_steps", 0)?,
                    settings.int("interval_steps", 1)?,
                    settings.int("n_min_trials", 1)?,
                )
                .map_err(named)?,
            )
        }
        "asha" | "successive-halving" => Box::new(
            SuccessiveHalvingPruner::new(
                settings.int_or_auto("min_resource", None)?,
                settings.int("reduction_factor", 4)?,
                settings.int("min_early_stopping_rate", 0)?,
                settings.int("bootstrap_count", 0)?,
            )
            .map_err(named)?,
        ),
        "hyperband" => Box::new(
            HyperbandPruner::new(
                settings.int("min_resource", 1)?,
                settings.int_or_auto("max_resource", None)?,
                settings.int("reduction_factor", 3)?,
                settings.int("bootstrap_count", 0)?,
            )
            .map_err(named)?,
        ),
        "wilcoxon" => Box::new(
            WilcoxonPruner::new(
                settings.float("p_threshold", 0.1)?,
                settings.int("n_startup_steps", 2)?,
            )
            .map_err(named)?,
        ),
        other => return Err(TuneError::unknown("pruner", other, PRUNER_NAMES)),
    };
    if name != "percentile"
        && let Some(value) = positional.first()
    {
        return Err(TuneError::pruner(
            spec,
            PrunerProblem::Positional {
                value: (*value).to_owned(),
            },
        ));
    }
    settings.finish()?;
    Ok(pruner)
}

/// `key=value` settings of a pruner spec; unknown keys are errors.
struct Settings<'a> {
    spec: &'a str,
    keyed: Vec<(&'a str, &'a str)>,
    used: std::cell::RefCell<Vec<&'a str>>,
}

impl<'a> Settings<'a> {
    fn raw(&self, key: &'a str) -> Option<&'a str> {
        self.used.borrow_mut().push(key);
        self.keyed.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }

    fn int<T: std::str::FromStr>(&self, key: &'a str, default: T) -> Result<T> {
        match self.raw(key) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| {
                TuneError::pruner(
                    self.spec,
                    PrunerProblem::NotInteger {
                        key: key.to_owned(),
                        value: v.to_owned(),
                    },
                )
            }),
        }
    }

    fn int_or_auto(&self, key: &'a str, default: Option<u64>) -> Result<Option<u64>> {
        match self.raw(key) {
            None => Ok(default),
            Some("auto") => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                TuneError::pruner(
                    self.spec,
                    PrunerProblem::NotIntegerOrAuto {
                        key: key.to_owned(),
                        value: v.to_owned(),
                    },
                )
            }),
        }
    }

    fn float(&self, key: &'a str, default: f64) -> Result<f64> {
        match self.raw(key) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| {
                TuneError::pruner(
                    self.spec,
                    PrunerProblem::NotNumber {
                        key: key.to_owned(),
                        value: v.to_owned(),
                    },
                )
            }),
        }
    }

    fn finish(&self) -> Result<()> {
        let used = self.used.borrow();
        if let Some((k, _)) = self.keyed.iter().find(|(k, _)| !used.contains(k)) {
            return Err(TuneError::pruner(
                self.spec,
                PrunerProblem::UnknownSetting {
                    key: (*k).to_owned(),
                    accepted: used.iter().map(|u| (*u).to_owned()).collect(),
                },
            ));
        }
        Ok(())
    }
}
