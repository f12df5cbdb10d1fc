//! Types shared by every part of the engine, with Optuna's meaning and serialisation.
//!
//! Optuna stores a parameter as one float, its *internal* representation: a float as itself, an
//! int as a float, a categorical as the index of its choice; the distribution (as
//! `distribution_json`) says how to read it back. [`Distribution::to_internal`] and
//! [`Distribution::to_external`] convert between the two, exactly as Optuna does, so a study
//! written here reads the same in `optuna.load_study`.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Value, json};

use crate::error::{DistributionProblem, Result, TuneError};

/// Whether the objective is minimised or maximised (Optuna's `StudyDirection`): the
/// workspace's one `Direction`, defined with the task's metric in `tabtune-features`.
pub use tabtune_features::Direction;

/// The state of a trial (Optuna's `TrialState`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TrialState {
    /// Being evaluated.
    Running,
    /// Finished with a value.
    Complete,
    /// Stopped early by a pruner (its last intermediate value may stand as its value).
    Pruned,
    /// The objective failed, or the worker died (stale heartbeat).
    Fail,
    /// Enqueued, not yet started.
    Waiting,
}

impl TrialState {
    /// The upper-case name Optuna stores.
    pub fn as_optuna(self) -> &'static str {
        match self {
            Self::Running => "RUNNING",
            Self::Complete => "COMPLETE",
            Self::Pruned => "PRUNED",
            Self::Fail => "FAIL",
            Self::Waiting => "WAITING",
        }
    }

    /// Parses Optuna's stored name.
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "RUNNING" => Self::Running,
            "COMPLETE" => Self::Complete,
            "PRUNED" => Self::Pruned,
            "FAIL" => Self::Fail,
            "WAITING" => Self::Waiting,
            other => {
                return Err(TuneError::unknown(
                    "trial state",
                    other,
                    &["RUNNING", "COMPLETE", "PRUNED", "FAIL", "WAITING"],
                ));
            }
        })
    }

    /// Whether the trial has ended (complete, pruned or failed).
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Complete | Self::Pruned | Self::Fail)
    }
}

/// One choice of a categorical distribution: Optuna allows `None`, bools, ints, floats and
/// strings.
#[derive(Clone, Debug, PartialEq)]
pub enum Choice {
    /// `None` / `null`.
    Null,
    /// A bool.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string.
    Str(String),
}

impl Choice {
    /// As JSON (how Optuna writes `choices`).
    pub fn to_json(&self) -> Value {
        match self {
            Self::Null => Value::Null,
            Self::Bool(b) => Value::Bool(*b),
            Self::Int(i) => json!(i),
            Self::Float(f) => json!(f),
            Self::Str(s) => Value::String(s.clone()),
        }
    }

    /// From JSON; arrays and objects are not valid choices.
    pub fn from_json(v: &Value) -> Result<Self> {
        Ok(match v {
            Value::Null => Self::Null,
            Value::Bool(b) => Self::Bool(*b),
            Value::Number(n) => match n.as_i64() {
                Some(i) => Self::Int(i),
                None => Self::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            Value::String(s) => Self::Str(s.clone()),
            other => {
                return Err(TuneError::ChoiceType {
                    found: other.clone(),
                });
            }
        })
    }

    /// The choice as a string (a string choice as itself, others as JSON).
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(s) => Some(s),
            _ => None,
        }
    }
}

impl fmt::Display for Choice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Str(s) => f.write_str(s),
            other => write!(f, "{}", other.to_json()),
        }
    }
}

/// The range a parameter is drawn from (Optuna's `FloatDistribution`, `IntDistribution`,
/// `CategoricalDistribution`).
#[derive(Clone, Debug, PartialEq)]
pub enum Distribution {
    /// A float in `[low, high]`, on a log scale when `log`, on a grid of `step` when given
    /// (`log` and `step` exclude each other, as in Optuna).
    Float {
        /// Lower bound (inclusive).
        low: f64,
        /// Upper bound (inclusive).
        high: f64,
        /// Log scale.
        log: bool,
        /// Grid step.
        step: Option<f64>,
    },
    /// An integer in `[low, high]` on a grid of `step` (1 for every integer), on a log scale
    /// when `log` (then `step` must be 1).
    Int {
        /// Lower bound (inclusive).
        low: i64,
        /// Upper bound (inclusive).
        high: i64,
        /// Log scale.
        log: bool,
        /// Grid step.
        step: i64,
    },
    /// One of a list of choices.
    Categorical {
        /// The choices, in order (a stored value is an index into this list).
        choices: Vec<Choice>,
    },
}

impl Distribution {
    /// Checks Optuna's constraints; `name` goes into the message.
    pub fn check(&self, name: &str) -> Result<()> {
        let bad = |problem: DistributionProblem| {
            Err(TuneError::Distribution {
                param: name.to_owned(),
                problem,
            })
        };
        match self {
            Self::Float {
                low,
                high,
                log,
                step,
            } => {
                if !low.is_finite() || !high.is_finite() {
                    return bad(DistributionProblem::NotFinite {
                        low: *low,
                        high: *high,
                    });
                }
                if low > high {
                    return bad(DistributionProblem::FloatBounds {
                        low: *low,
                        high: *high,
                    });
                }
                if *log && *low <= 0.0 {
                    return bad(DistributionProblem::LogLow { low: *low });
                }
                if let Some(s) = step {
                    if *log {
                        return bad(DistributionProblem::StepWithLog { step: *s });
                    }
                    if !(s.is_finite() && *s > 0.0) {
                        return bad(DistributionProblem::FloatStep { step: *s });
                    }
                }
                Ok(())
            }
            Self::Int {
                low,
                high,
                log,
                step,
            } => {
                if low > high {
                    return bad(DistributionProblem::IntBounds {
                        low: *low,
                        high: *high,
                    });
                }
                if *step < 1 {
                    return bad(DistributionProblem::IntStep { step: *step });
                }
                if *log && (*low < 1 || *step != 1) {
                    return bad(DistributionProblem::IntLog {
                        low: *low,
                        step: *step,
                    });
                }
                Ok(())
            }
            Self::Categorical { choices } => {
                if choices.is_empty() {
                    return bad(DistributionProblem::NoChoices);
                }
                Ok(())
            }
        }
    }

    /// Whether the distribution has a single possible value.
    pub fn is_single(&self) -> bool {
        match self {
            Self::Float {
                low, high, step, ..
            } => low == high || step.is_some_and(|s| high - low < s),
            Self::Int {
                low, high, step, ..
            } => low == high || high - low < *step,
            Self::Categorical { choices } => choices.len() == 1,
        }
    }

    /// Optuna's `distribution_json`, e.g. `{"name": "FloatDistribution", "attributes":
    /// {"step": null, "low": 0.001, "high": 1.0, "log": true}}`.
    pub fn to_optuna_json(&self) -> String {
        let v = match self {
            Self::Float {
                low,
                high,
                log,
                step,
            } => json!({
                "name": "FloatDistribution",
                "attributes": {"step": step, "low": low, "high": high, "log": log},
            }),
            Self::Int {
                low,
                high,
                log,
                step,
            } => json!({
                "name": "IntDistribution",
                "attributes": {"log": log, "step": step, "low": low, "high": high},
            }),
            Self::Categorical { choices } => json!({
                "name": "CategoricalDistribution",
                "attributes": {"choices": choices.iter().map(Choice::to_json).collect::<Vec<_>>()},
            }),
        };
        v.to_string()
    }

    /// Parses Optuna's `distribution_json`, including the legacy names Optuna still reads
    /// (`UniformDistribution`, `LogUniformDistribution`, `DiscreteUniformDistribution`,
    /// `IntUniformDistribution`, `IntLogUniformDistribution`).
    pub fn from_optuna_json(text: &str) -> Result<Self> {
        let bad = |expected: &'static str| {
            Err(TuneError::DistributionJson {
                json: text.to_owned(),
                expected,
            })
        };
        let Ok(v) = serde_json::from_str::<Value>(text) else {
            return bad("a JSON object with `name` and `attributes`");
        };
        let name = v.get("name").and_then(Value::as_str).unwrap_or("");
        let Some(a) = v.get("attributes") else {
            return bad("an `attributes` object");
        };
        let f = |k: &str| a.get(k).and_then(Value::as_f64);
        let i = |k: &str| a.get(k).and_then(Value::as_i64);
        let b = |k: &str| a.get(k).and_then(Value::as_bool).unwrap_or(false);
        let d = match name {
            "FloatDistribution" => match (f("low"), f("high")) {
                (Some(low), Some(high)) => Self::Float {
                    low,
                    high,
                    log: b("log"),
                    step: f("step"),
                },
                _ => return bad("numbers `low` and `high` for a FloatDistribution"),
            },
            "UniformDistribution" | "LogUniformDistribution" | "DiscreteUniformDistribution" => {
                match (f("low"), f("high")) {
                    (Some(low), Some(high)) => Self::Float {
                        low,
                        high,
                        log: name == "LogUniformDistribution",
                        step: if name == "DiscreteUniformDistribution" {
                            f("q")
                        } else {
                            None
                        },
                    },
                    _ => return bad("numbers `low` and `high`"),
                }
            }
            "IntDistribution" | "IntUniformDistribution" | "IntLogUniformDistribution" => {
                match (i("low"), i("high")) {
                    (Some(low), Some(high)) => Self::Int {
                        low,
                        high,
                        log: b("log") || name == "IntLogUniformDistribution",
                        step: i("step").unwrap_or(1),
                    },
                    _ => return bad("integers `low` and `high` for an IntDistribution"),
                }
            }
            "CategoricalDistribution" => {
                let Some(cs) = a.get("choices").and_then(Value::as_array) else {
                    return bad("a `choices` array for a CategoricalDistribution");
                };
                Self::Categorical {
                    choices: cs.iter().map(Choice::from_json).collect::<Result<_>>()?,
                }
            }
            other => {
                return Err(TuneError::UnknownDistribution {
                    json: text.to_owned(),
                    name: other.to_owned(),
                });
            }
        };
        Ok(d)
    }

    /// The float Optuna stores for `value` (an index for a categorical). Errors when the value
    /// does not belong to the distribution.
    pub fn to_internal(&self, value: &ParamValue) -> Result<f64> {
        match (self, value) {
            (Self::Float { .. }, ParamValue::Float(x)) if self.contains(value) => Some(*x),
            (Self::Int { .. }, ParamValue::Int(x)) if self.contains(value) => Some(*x as f64),
            (Self::Categorical { choices }, ParamValue::Choice(c)) => {
                choices.iter().position(|x| x == c).map(|i| i as f64)
            }
            _ => None,
        }
        .ok_or_else(|| TuneError::ValueOutside {
            value: value.clone(),
            distribution: self.clone(),
        })
    }

    /// The value a stored float stands for.
    pub fn to_external(&self, internal: f64) -> Result<ParamValue> {
        match self {
            Self::Float { .. } => Ok(ParamValue::Float(internal)),
            Self::Int { .. } => Ok(ParamValue::Int(internal.round() as i64)),
            Self::Categorical { choices } => {
                let i = internal.round();
                if i < 0.0 || i as usize >= choices.len() || (internal - i).abs() > 1e-9 {
                    return Err(TuneError::CategoricalIndex {
                        index: internal,
                        n_choices: choices.len(),
                    });
                }
                Ok(ParamValue::Choice(choices[i as usize].clone()))
            }
        }
    }

    /// Whether `value` lies in the distribution (on its grid, for stepped ones).
    pub fn contains(&self, value: &ParamValue) -> bool {
        match (self, value) {
            (
                Self::Float {
                    low, high, step, ..
                },
                ParamValue::Float(x),
            ) => {
                if !(x.is_finite() && low <= x && x <= high) {
                    return false;
                }
                match step {
                    None => true,
                    Some(s) => {
                        let k = ((x - low) / s).round();
                        ((x - low) - k * s).abs() <= 1e-8 * s.max(1.0)
                    }
                }
            }
            (
                Self::Int {
                    low, high, step, ..
                },
                ParamValue::Int(x),
            ) => low <= x && x <= high && (x - low) % step == 0,
            (Self::Categorical { choices }, ParamValue::Choice(c)) => choices.contains(c),
            _ => false,
        }
    }
}

/// A parameter's value as the objective sees it.
#[derive(Clone, Debug, PartialEq)]
pub enum ParamValue {
    /// From a float distribution.
    Float(f64),
    /// From an int distribution.
    Int(i64),
    /// From a categorical distribution.
    Choice(Choice),
}

impl ParamValue {
    /// The value as a float (ints widened; numeric choices as numbers); `None` for other
    /// choices.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Self::Float(x) | Self::Choice(Choice::Float(x)) => Some(*x),
            Self::Int(i) | Self::Choice(Choice::Int(i)) => Some(*i as f64),
            Self::Choice(Choice::Bool(b)) => Some(f64::from(u8::from(*b))),
            Self::Choice(_) => None,
        }
    }

    /// As JSON (for reports and `--json`).
    pub fn to_json(&self) -> Value {
        match self {
            Self::Float(x) => json!(x),
            Self::Int(i) => json!(i),
            Self::Choice(c) => c.to_json(),
        }
    }
}

impl ParamValue {
    /// The value for a table: floats to 4 significant digits (scientific notation below 1e-3
    /// and from 1e5 on), integers and choices as they are.
    pub fn short(&self) -> String {
        match self {
            Self::Float(x) if *x != 0.0 && (x.abs() < 1e-3 || x.abs() >= 1e5) => format!("{x:.3e}"),
            Self::Float(x) => {
                let digits = (3 - x.abs().log10().floor() as i32).clamp(0, 8) as usize;
                format!("{x:.digits$}")
            }
            other => other.to_string(),
        }
    }
}

impl fmt::Display for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Float(x) => write!(f, "{x}"),
            Self::Int(i) => write!(f, "{i}"),
            Self::Choice(c) => write!(f, "{c}"),
        }
    }
}

/// A trial as the storage returns it (Optuna's `FrozenTrial`, single-objective).
#[derive(Clone, Debug, PartialEq)]
pub struct FrozenTrial {
    /// The storage's id of the trial (unique across studies in one storage).
    pub trial_id: i64,
    /// Number within the study, from 0.
    pub number: u64,
    /// State.
    pub state: TrialState,
    /// The objective's value (complete trials; pruned trials may carry their last
    /// intermediate value).
    pub value: Option<f64>,
    /// Parameter values by name.
    pub params: BTreeMap<String, ParamValue>,
    /// The distribution each parameter was drawn from.
    pub distributions: BTreeMap<String, Distribution>,
    /// Intermediate values by step (epoch, boosting round or fold).
    pub intermediate: BTreeMap<u64, f64>,
    /// User attributes (JSON values).
    pub user_attrs: BTreeMap<String, Value>,
    /// System attributes (JSON values).
    pub system_attrs: BTreeMap<String, Value>,
    /// Start, microseconds since the Unix epoch (UTC).
    pub start_us: Option<i64>,
    /// End, microseconds since the Unix epoch (UTC).
    pub complete_us: Option<i64>,
}

impl FrozenTrial {
    /// A fresh running trial with nothing recorded yet.
    pub fn new(trial_id: i64, number: u64) -> Self {
        Self {
            trial_id,
            number,
            state: TrialState::Running,
            value: None,
            params: BTreeMap::new(),
            distributions: BTreeMap::new(),
            intermediate: BTreeMap::new(),
            user_attrs: BTreeMap::new(),
            system_attrs: BTreeMap::new(),
            start_us: None,
            complete_us: None,
        }
    }

    /// The last reported intermediate step and value.
    pub fn last_step(&self) -> Option<(u64, f64)> {
        self.intermediate.iter().next_back().map(|(s, v)| (*s, *v))
    }

    /// Wall time in seconds, when both ends are known.
    pub fn duration_s(&self) -> Option<f64> {
        Some((self.complete_us? - self.start_us?) as f64 / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distributions_round_trip_through_optuna_json() {
        let ds = [
            Distribution::Float {
                low: 0.001,
                high: 1.0,
                log: true,
                step: None,
            },
            Distribution::Float {
                low: 0.0,
                high: 1.0,
                log: false,
                step: Some(0.25),
            },
            Distribution::Int {
                low: 2,
                high: 256,
                log: true,
                step: 1,
            },
            Distribution::Categorical {
                choices: vec![
                    Choice::Str("gbdt".into()),
                    Choice::Int(3),
                    Choice::Float(0.5),
                    Choice::Bool(true),
                    Choice::Null,
                ],
            },
        ];
        for d in ds {
            let text = d.to_optuna_json();
            assert_eq!(Distribution::from_optuna_json(&text).unwrap(), d, "{text}");
        }
    }

    #[test]
    fn reads_the_json_optuna_writes() {
        // As written by Optuna 5.0.0 into trial_params.distribution_json.
        let d = Distribution::from_optuna_json(
            r#"{"name": "FloatDistribution", "attributes": {"step": null, "low": 0.001, "high": 1.0, "log": true}}"#,
        )
        .unwrap();
        assert_eq!(
            d,
            Distribution::Float {
                low: 0.001,
                high: 1.0,
                log: true,
                step: None
            }
        );
        let legacy = Distribution::from_optuna_json(
            r#"{"name": "IntUniformDistribution", "attributes": {"low": 1, "high": 9, "step": 2}}"#,
        )
        .unwrap();
        assert!(matches!(legacy, Distribution::Int { step: 2, .. }));
    }

    #[test]
    fn internal_representation_is_optunas() {
        let c = Distribution::Categorical {
            choices: vec![Choice::Str("a".into()), Choice::Str("b".into())],
        };
        let b = ParamValue::Choice(Choice::Str("b".into()));
        assert_eq!(c.to_internal(&b).unwrap(), 1.0);
        assert_eq!(c.to_external(1.0).unwrap(), b);
        let i = Distribution::Int {
            low: 1,
            high: 9,
            log: false,
            step: 2,
        };
        assert_eq!(i.to_internal(&ParamValue::Int(5)).unwrap(), 5.0);
        assert!(i.to_internal(&ParamValue::Int(4)).is_err(), "off the grid");
    }

    #[test]
    fn bad_distributions_and_values_are_named() {
        let e = Distribution::Float {
            low: 0.0,
            high: 1.0,
            log: true,
            step: None,
        }
        .check("learning_rate")
        .unwrap_err()
        .to_string();
        assert!(e.contains("learning_rate") && e.contains("low > 0"), "{e}");
        let e = Distribution::from_optuna_json(r#"{"name": "Nope", "attributes": {}}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown distribution `Nope`"), "{e}");
        let c = Distribution::Categorical {
            choices: vec![Choice::Str("a".into())],
        };
        assert!(c.to_external(3.0).is_err());
        assert!(TrialState::parse("DONE").is_err());
        assert_eq!(TrialState::parse("PRUNED").unwrap(), TrialState::Pruned);
        assert_eq!(Direction::parse("maximize").unwrap(), Direction::Maximize);
    }
}
