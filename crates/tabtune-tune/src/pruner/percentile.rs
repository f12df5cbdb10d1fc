//! Percentile and median pruning (Optuna's `PercentilePruner`, `MedianPruner`).

use super::base::{Pruner, StudyView, Verdict};
use crate::error::{Result, TuneError};
use crate::model::{Direction, FrozenTrial, TrialState};

/// Prunes a trial whose best intermediate value so far is worse than the given percentile of
/// the complete trials' values at the same step.
#[derive(Clone, Debug)]
pub struct PercentilePruner {
    percentile: f64,
    n_startup_trials: usize,
    n_warmup_steps: u64,
    interval_steps: u64,
    n_min_trials: usize,
    median: bool,
}

impl PercentilePruner {
    /// Optuna's `PercentilePruner(percentile, n_startup_trials, n_warmup_steps,
    /// interval_steps, n_min_trials)`; errors name the bad setting.
    pub fn new(
        percentile: f64,
        n_startup_trials: usize,
        n_warmup_steps: u64,
        interval_steps: u64,
        n_min_trials: usize,
    ) -> Result<Self> {
        if !(0.0..=100.0).contains(&percentile) {
            return Err(TuneError::pruner_setting(
                "percentile",
                "percentile",
                percentile,
                "must be in [0, 100]",
            ));
        }
        if interval_steps < 1 {
            return Err(TuneError::pruner_setting(
                "percentile",
                "interval_steps",
                interval_steps,
                "must be >= 1",
            ));
        }
        if n_min_trials < 1 {
            return Err(TuneError::pruner_setting(
                "percentile",
                "n_min_trials",
                n_min_trials,
                "must be >= 1",
            ));
        }
        Ok(Self {
            percentile,
            n_startup_trials,
            n_warmup_steps,
            interval_steps,
            n_min_trials,
            median: false,
        })
    }

    /// Optuna's `MedianPruner` (the 50th percentile); defaults 5 startup trials, no warm-up,
    /// every step, one trial at the step.
    pub fn median(
        n_startup_trials: usize,
        n_warmup_steps: u64,
        interval_steps: u64,
        n_min_trials: usize,
    ) -> Result<Self> {
        let mut p = Self::new(
            50.0,
            n_startup_trials,
            n_warmup_steps,
            interval_steps,
            n_min_trials,
        )?;
        p.median = true;
        Ok(p)
    }
}

/// Optuna's `_is_first_in_interval_step`: the trial reported no step between the previous
/// pruning checkpoint and this step.
fn is_first_in_interval_step(
    step: u64,
    trial: &FrozenTrial,
    n_warmup_steps: u64,
    interval_steps: u64,
) -> bool {
    let nearest_lower_pruning_step =
        (step - n_warmup_steps) / interval_steps * interval_steps + n_warmup_steps;
    let second_last_step = trial
        .intermediate
        .keys()
        .copied()
        .filter(|&s| s != step)
        .max()
        .map_or(-1, i128::from);
    second_last_step < i128::from(nearest_lower_pruning_step)
}

/// numpy's `nanpercentile` with linear interpolation; NaN when no finite-or-infinite value.
pub(crate) fn nan_percentile(values: &[f64], q: f64) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let pos = q / 100.0 * (v.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let frac = pos - lo as f64;
    if lo == hi || v[lo] == v[hi] {
        v[lo]
    } else {
        v[lo] + (v[hi] - v[lo]) * frac
    }
}

impl Pruner for PercentilePruner {
    fn prune(&self, trial: &FrozenTrial, study: &StudyView<'_>) -> Verdict {
        let completed: Vec<&FrozenTrial> = study
            .trials
            .iter()
            .filter(|t| t.state == TrialState::Complete && t.number != trial.number)
            .collect();
        if completed.is_empty() || completed.len() < self.n_startup_trials {
            return Verdict::keep();
        }
        let Some((step, _)) = trial.last_step() else {
            return Verdict::keep();
        };
        if step < self.n_warmup_steps {
            return Verdict::keep();
        }
        if !is_first_in_interval_step(step, trial, self.n_warmup_steps, self.interval_steps) {
            return Verdict::keep();
        }
        // np.nanmax / np.nanmin over the trial's values: NaN only when all are NaN.
        let finite = trial.intermediate.values().copied().filter(|v| !v.is_nan());
        let best = match study.direction {
            Direction::Maximize => finite.fold(f64::NAN, f64::max),
            Direction::Minimize => finite.fold(f64::NAN, f64::min),
        };
        if best.is_nan() {
            return Verdict::from_bool(true);
        }
        let at_step: Vec<f64> = completed
            .iter()
            .filter_map(|t| t.intermediate.get(&step).copied())
            .collect();
        if at_step.len() < self.n_min_trials {
            return Verdict::keep();
        }
        let q = match study.direction {
            Direction::Maximize => 100.0 - self.percentile,
            Direction::Minimize => self.percentile,
        };
        let p = nan_percentile(&at_step, q);
        if p.is_nan() {
            return Verdict::keep();
        }
        Verdict::from_bool(match study.direction {
            Direction::Maximize => best < p,
            Direction::Minimize => best > p,
        })
    }

    fn name(&self) -> &'static str {
        if self.median { "median" } else { "percentile" }
    }
}
