//! Hyperband (Optuna's `HyperbandPruner`): trials are spread over brackets of successive
//! halving with different early-stopping rates.

use std::sync::OnceLock;

use super::base::{Pruner, StudyView, Verdict};
use super::halving::SuccessiveHalvingPruner;
use crate::error::{Result, TuneError};
use crate::model::{FrozenTrial, TrialState};

/// Brackets, set once the maximum resource is known.
#[derive(Debug)]
struct Brackets {
    pruners: Vec<SuccessiveHalvingPruner>,
    budgets: Vec<u64>,
    total: u64,
}

/// Hyperband over asynchronous successive halving.
#[derive(Debug)]
pub struct HyperbandPruner {
    min_resource: u64,
    /// `None`: "auto", the largest last step of a complete trial plus one.
    max_resource: Option<u64>,
    reduction_factor: u64,
    bootstrap_count: usize,
    brackets: OnceLock<Brackets>,
}

impl HyperbandPruner {
    /// Optuna's `HyperbandPruner(min_resource, max_resource, reduction_factor,
    /// bootstrap_count)`; `max_resource` `None` is "auto".
    pub fn new(
        min_resource: u64,
        max_resource: Option<u64>,
        reduction_factor: u64,
        bootstrap_count: usize,
    ) -> Result<Self> {
        if min_resource < 1 {
            return Err(TuneError::pruner_setting(
                "hyperband",
                "min_resource",
                min_resource,
                "must be >= 1",
            ));
        }
        if let Some(m) = max_resource
            && m < min_resource
        {
            return Err(TuneError::pruner_setting(
                "hyperband",
                "max_resource",
                m,
                format!("must be >= min_resource ({min_resource})"),
            ));
        }
        if reduction_factor < 2 {
            return Err(TuneError::pruner_setting(
                "hyperband",
                "reduction_factor",
                reduction_factor,
                "must be >= 2",
            ));
        }
        Ok(Self {
            min_resource,
            max_resource,
            reduction_factor,
            bootstrap_count,
            brackets: OnceLock::new(),
        })
    }

    fn brackets(&self, trials: &[FrozenTrial]) -> Option<&Brackets> {
        if let Some(b) = self.brackets.get() {
            return Some(b);
        }
        let max_resource = match self.max_resource {
            Some(m) => m,
            None => {
                trials
                    .iter()
                    .filter(|t| t.state == TrialState::Complete)
                    .filter_map(|t| t.last_step().map(|(s, _)| s))
                    .max()?
                    + 1
            }
        };
        // Python's math.log(x, base) is log(x) / log(base); the same doubles here.
        let ratio = max_resource as f64 / self.min_resource as f64;
        let n_brackets = ((ratio.ln() / (self.reduction_factor as f64).ln()).floor() as u32) + 1;
        let mut pruners = Vec::new();
        let mut budgets = Vec::new();
        for bracket in 0..n_brackets {
            let s = n_brackets - 1 - bracket;
            let budget = (f64::from(n_brackets) * (self.reduction_factor as f64).powi(s as i32)
                / f64::from(s + 1))
            .ceil() as u64;
            budgets.push(budget);
            pruners.push(
                SuccessiveHalvingPruner::new(
                    Some(self.min_resource),
                    self.reduction_factor,
                    bracket,
                    self.bootstrap_count,
                )
                .expect("settings checked in HyperbandPruner::new"),
            );
        }
        let total = budgets.iter().sum();
        Some(self.brackets.get_or_init(|| Brackets {
            pruners,
            budgets,
            total,
        }))
    }
}

/// Optuna's `_get_bracket_id`: CRC-32 of `"{study_name}_{number}"` modulo the total budget,
/// walked through the brackets' budgets.
fn bracket_of(study_name: &str, number: u64, b: &Brackets) -> usize {
    let mut n =
        i128::from(crc32(format!("{study_name}_{number}").as_bytes())) % i128::from(b.total);
    for (i, budget) in b.budgets.iter().enumerate() {
        n -= i128::from(*budget);
        if n < 0 {
            return i;
        }
    }
    b.budgets.len() - 1
}

/// CRC-32 (IEEE 802.3, as Python's `binascii.crc32`).
pub(crate) fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

impl Pruner for HyperbandPruner {
    fn prune(&self, trial: &FrozenTrial, study: &StudyView<'_>) -> Verdict {
        let Some(b) = self.brackets(study.trials) else {
            return Verdict::keep();
        };
        let bracket = bracket_of(study.name, trial.number, b);
        let in_bracket: Vec<FrozenTrial> = study
            .trials
            .iter()
            .filter(|t| bracket_of(study.name, t.number, b) == bracket)
            .cloned()
            .collect();
        let view = StudyView {
            name: study.name,
            direction: study.direction,
            trials: &in_bracket,
        };
        b.pruners[bracket].prune(trial, &view)
    }

    fn name(&self) -> &'static str {
        "hyperband"
    }
}
