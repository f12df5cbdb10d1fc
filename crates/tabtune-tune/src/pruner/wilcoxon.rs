//! Wilcoxon pruning for per-fold (per-instance) values (Optuna's `WilcoxonPruner`), and the
//! one-sample Wilcoxon signed-rank test it needs, computed as scipy's `wilcoxon(d,
//! alternative=..., zero_method="zsplit")` does (scipy 1.17).

use std::collections::BTreeMap;

use super::base::{Pruner, StudyView, Verdict};
use crate::error::{Result, TuneError};
use crate::model::{Direction, FrozenTrial, TrialState};
use crate::sampler::truncnorm::ndtr;

/// The alternative hypothesis about the median of `d`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alternative {
    /// The median is below zero.
    Less,
    /// The median is above zero.
    Greater,
}

/// Ranks of `|d|` (1-based, ties get their average rank) and whether any tie exists.
fn ranks(d: &[f64]) -> (Vec<f64>, bool) {
    let mut order: Vec<usize> = (0..d.len()).collect();
    order.sort_by(|&a, &b| d[a].abs().total_cmp(&d[b].abs()));
    let mut r = vec![0.0; d.len()];
    let mut ties = false;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && d[order[j + 1]].abs() == d[order[i]].abs() {
            j += 1;
        }
        if j > i {
            ties = true;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            r[k] = avg;
        }
        i = j + 1;
    }
    (r, ties)
}

/// The zero-split statistic: ranks of positive differences plus half the ranks of zeros.
fn r_plus(d: &[f64], r: &[f64]) -> f64 {
    d.iter()
        .zip(r)
        .map(|(x, rk)| {
            if *x > 0.0 {
                *rk
            } else if *x == 0.0 {
                rk / 2.0
            } else {
                0.0
            }
        })
        .sum()
}

/// The p-value of the one-sample Wilcoxon signed-rank test with zero splitting, as scipy 1.17
/// picks its method: n > 50 → normal approximation (tie-corrected, no continuity
/// correction); no ties and no zeros → the exact null distribution; otherwise n <= 13 → exact
/// enumeration of all 2^n sign flips; otherwise the normal approximation. NaN for empty input.
pub fn wilcoxon_signed_rank(d: &[f64], alternative: Alternative) -> f64 {
    let n = d.len();
    if n == 0 {
        return f64::NAN;
    }
    let (r, has_ties) = ranks(d);
    let stat = r_plus(d, &r);
    let has_zero = d.contains(&0.0);
    if n <= 50 && !(has_ties || has_zero) {
        // Exact: counts[k] = number of subsets of {1..n} with sum k.
        let total = n * (n + 1) / 2;
        let mut counts = vec![0f64; total + 1];
        counts[0] = 1.0;
        for k in 1..=n {
            for s in (k..=total).rev() {
                counts[s] += counts[s - k];
            }
        }
        let all = 2f64.powi(n as i32);
        return match alternative {
            // P(T <= ceil(stat)), P(T >= floor(stat))
            Alternative::Less => {
                let k = stat.ceil() as usize;
                counts[..=k.min(total)].iter().sum::<f64>() / all
            }
            Alternative::Greater => {
                let k = stat.floor() as usize;
                counts[k.min(total + 1)..].iter().sum::<f64>() / all
            }
        };
    }
    if n <= 13 {
        // scipy's permutation test with every sign flip (deterministic for n <= 13).
        let eps = f64::EPSILON * 100.0 * stat.abs();
        let mut hits = 0u64;
        let flips = 1u64 << n;
        for mask in 0..flips {
            let s: f64 = d
                .iter()
                .zip(&r)
                .enumerate()
                .map(|(i, (x, rk))| {
                    let x = if (mask >> i) & 1 == 1 { -x } else { *x };
                    if x > 0.0 {
                        *rk
                    } else if x == 0.0 {
                        rk / 2.0
                    } else {
                        0.0
                    }
                })
                .sum();
            let hit = match alternative {
                Alternative::Less => s <= stat + eps,
                Alternative::Greater => s >= stat - eps,
            };
            hits += u64::from(hit);
        }
        return hits as f64 / flips as f64;
    }
    let count = n as f64;
    let mn = count * (count + 1.0) * 0.25;
    let mut se = count * (count + 1.0) * (2.0 * count + 1.0);
    let mut sorted: Vec<f64> = d.iter().map(|x| x.abs()).collect();
    sorted.sort_by(f64::total_cmp);
    let mut tie_correct = 0.0;
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j + 1 < sorted.len() && sorted[j + 1] == sorted[i] {
            j += 1;
        }
        let t = (j - i + 1) as f64;
        tie_correct += t * t * t - t;
        i = j + 1;
    }
    se = ((se - tie_correct / 2.0) / 24.0).sqrt();
    let z = (stat - mn) / se;
    match alternative {
        Alternative::Greater => ndtr(-z),
        Alternative::Less => ndtr(z),
    }
}

/// Prunes a trial whose per-step values (folds or instances: steps are identities, not time)
/// are significantly worse than the best complete trial's at the same steps: Wilcoxon
/// signed-rank test on the differences, `p < p_threshold`, unless the trial's mean is at least
/// as good as the best trial's mean (Optuna's safety rule).
#[derive(Clone, Debug)]
pub struct WilcoxonPruner {
    p_threshold: f64,
    n_startup_steps: usize,
}

impl WilcoxonPruner {
    /// Optuna's `WilcoxonPruner(p_threshold=0.1, n_startup_steps=2)`.
    pub fn new(p_threshold: f64, n_startup_steps: usize) -> Result<Self> {
        if !(0.0..=1.0).contains(&p_threshold) {
            return Err(TuneError::pruner_setting(
                "wilcoxon",
                "p_threshold",
                p_threshold,
                "must be in [0, 1]",
            ));
        }
        Ok(Self {
            p_threshold,
            n_startup_steps,
        })
    }
}

impl Pruner for WilcoxonPruner {
    fn prune(&self, trial: &FrozenTrial, study: &StudyView<'_>) -> Verdict {
        let values = &trial.intermediate;
        if values.is_empty() || values.values().any(|v| !v.is_finite()) {
            return Verdict::keep();
        }
        let best = study
            .trials
            .iter()
            .filter(|t| t.state == TrialState::Complete && t.number != trial.number)
            .filter_map(|t| t.value.filter(|v| !v.is_nan()).map(|v| (t, v)))
            .min_by(|a, b| {
                study
                    .direction
                    .as_loss(a.1)
                    .total_cmp(&study.direction.as_loss(b.1))
                    .then(a.0.number.cmp(&b.0.number))
            });
        let Some((best, _)) = best else {
            return Verdict::keep();
        };
        let best_values: &BTreeMap<u64, f64> = &best.intermediate;
        if best_values.is_empty() || best_values.values().any(|v| !v.is_finite()) {
            return Verdict::keep();
        }
        let diffs: Vec<f64> = values
            .iter()
            .filter_map(|(step, v)| best_values.get(step).map(|b| v - b))
            .collect();
        if diffs.len() < self.n_startup_steps {
            return Verdict::keep();
        }
        let mean = |m: &BTreeMap<u64, f64>| m.values().sum::<f64>() / m.len() as f64;
        let (alternative, average_is_best) = match study.direction {
            Direction::Maximize => (Alternative::Less, mean(best_values) <= mean(values)),
            Direction::Minimize => (Alternative::Greater, mean(best_values) >= mean(values)),
        };
        let p = wilcoxon_signed_rank(&diffs, alternative);
        if p < self.p_threshold && average_is_best {
            return Verdict::keep();
        }
        Verdict::from_bool(p < self.p_threshold)
    }

    fn name(&self) -> &'static str {
        "wilcoxon"
    }
}
