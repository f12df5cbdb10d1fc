//! Asynchronous successive halving (Optuna's `SuccessiveHalvingPruner`, ASHA).

use std::sync::OnceLock;

use serde_json::Value;

use super::base::{Pruner, StudyView, Verdict};
use crate::error::{Result, TuneError};
use crate::model::{Direction, FrozenTrial, TrialState};

/// Rung `k` is passed at step `min_resource * reduction_factor^(min_early_stopping_rate + k)`;
/// a trial reaching it is promoted when its value is in the top `1/reduction_factor` of the
/// values recorded at that rung so far (any trial, any state), otherwise pruned.
#[derive(Debug)]
pub struct SuccessiveHalvingPruner {
    /// `None`: "auto", estimated once from the first complete trials (max last step / 100).
    min_resource: Option<u64>,
    estimated: OnceLock<u64>,
    reduction_factor: u64,
    min_early_stopping_rate: u32,
    bootstrap_count: usize,
}

impl SuccessiveHalvingPruner {
    /// Optuna's `SuccessiveHalvingPruner(min_resource, reduction_factor,
    /// min_early_stopping_rate, bootstrap_count)`; `min_resource` `None` is "auto".
    pub fn new(
        min_resource: Option<u64>,
        reduction_factor: u64,
        min_early_stopping_rate: u32,
        bootstrap_count: usize,
    ) -> Result<Self> {
        if min_resource == Some(0) {
            return Err(TuneError::pruner_setting(
                "asha",
                "min_resource",
                0,
                "must be >= 1 or auto",
            ));
        }
        if reduction_factor < 2 {
            return Err(TuneError::pruner_setting(
                "asha",
                "reduction_factor",
                reduction_factor,
                "must be >= 2",
            ));
        }
        if bootstrap_count > 0 && min_resource.is_none() {
            return Err(TuneError::pruner_setting(
                "asha",
                "bootstrap_count",
                bootstrap_count,
                "needs a fixed min_resource (not auto) when above 0",
            ));
        }
        Ok(Self {
            min_resource,
            estimated: OnceLock::new(),
            reduction_factor,
            min_early_stopping_rate,
            bootstrap_count,
        })
    }

    fn min_resource(&self, trials: &[FrozenTrial]) -> Option<u64> {
        if let Some(r) = self.min_resource {
            return Some(r);
        }
        if let Some(r) = self.estimated.get() {
            return Some(*r);
        }
        let last = trials
            .iter()
            .filter(|t| t.state == TrialState::Complete)
            .filter_map(|t| t.last_step().map(|(s, _)| s))
            .max()?;
        Some(*self.estimated.get_or_init(|| (last / 100).max(1)))
    }
}

/// Optuna's system attribute recording the value with which a trial completed rung `k`.
pub(crate) fn rung_key(rung: u32) -> String {
    format!("completed_rung_{rung}")
}

impl Pruner for SuccessiveHalvingPruner {
    fn prune(&self, trial: &FrozenTrial, study: &StudyView<'_>) -> Verdict {
        let Some((step, value)) = trial.last_step() else {
            return Verdict::keep();
        };
        let mut rung = 0u32;
        while trial.system_attrs.contains_key(&rung_key(rung)) {
            rung += 1;
        }
        let mut verdict = Verdict::keep();
        loop {
            let Some(min_resource) = self.min_resource(study.trials) else {
                return verdict;
            };
            let exponent = self.min_early_stopping_rate + rung;
            let promotion_step = self
                .reduction_factor
                .checked_pow(exponent)
                .and_then(|p| p.checked_mul(min_resource))
                .unwrap_or(u64::MAX);
            if step < promotion_step {
                return verdict;
            }
            if value.is_nan() {
                verdict.prune = true;
                return verdict;
            }
            let key = rung_key(rung);
            verdict.system_attrs.push((key.clone(), Value::from(value)));
            let mut competing: Vec<f64> = study
                .trials
                .iter()
                .filter(|t| t.number != trial.number)
                .filter_map(|t| t.system_attrs.get(&key).and_then(Value::as_f64))
                .collect();
            competing.push(value);
            if competing.len() <= self.bootstrap_count {
                verdict.prune = true;
                return verdict;
            }
            if !promotable(
                value,
                &mut competing,
                self.reduction_factor,
                study.direction,
            ) {
                verdict.prune = true;
                return verdict;
            }
            rung += 1;
        }
    }

    fn name(&self) -> &'static str {
        "asha"
    }
}

/// Optuna's `_is_trial_promotable_to_next_rung`: in the top `len / reduction_factor` (at least
/// the best one).
fn promotable(
    value: f64,
    competing: &mut [f64],
    reduction_factor: u64,
    direction: Direction,
) -> bool {
    let idx = (competing.len() / reduction_factor as usize).saturating_sub(1);
    competing.sort_by(f64::total_cmp);
    match direction {
        Direction::Maximize => value >= competing[competing.len() - 1 - idx],
        Direction::Minimize => value <= competing[idx],
    }
}
