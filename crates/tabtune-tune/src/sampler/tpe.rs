//! The tree-structured Parzen estimator (Optuna's `TPESampler`), independent or multivariate
//! (grouped), with constant liar for parallel proposals.
//!
//! Follows `optuna/samplers/_tpe/sampler.py`: after `n_startup_trials` finished trials,
//! trials are split into the best `gamma(n)` ("below", complete trials by value, then pruned
//! trials by how far they got and their last intermediate value) and the rest ("above", where
//! RUNNING trials go under constant liar); `n_ei_candidates` draws from the below estimator are
//! scored by `log l(x) - log g(x)` and the best is proposed.

use std::collections::BTreeMap;

use super::base::{Proposal, Sampler, from_unit, walk};
use super::parzen::{ParzenEstimator, ParzenParams};
use super::rng::{Rng, for_trial};
use crate::error::Result;
use crate::model::{Direction, Distribution, FrozenTrial, ParamValue, TrialState};
use crate::space::SearchSpace;

/// The TPE settings, with Optuna 5's defaults (`TPESampler()`).
#[derive(Clone, Copy, Debug)]
#[allow(clippy::struct_excessive_bools)] // Optuna's flags, one for one
pub struct TpeOptions {
    /// Trials drawn at random before TPE starts (Optuna: 10).
    pub n_startup_trials: usize,
    /// Candidates drawn from the "below" estimator per proposal (Optuna: 24).
    pub n_ei_candidates: usize,
    /// Weight of the prior kernel (Optuna: 1.0).
    pub prior_weight: f64,
    /// Bound kernel widths from below by `range / min(100, 1 + n_kernels)` (Optuna: true).
    pub consider_magic_clip: bool,
    /// Let the outermost kernels reach the bounds (Optuna: false).
    pub consider_endpoints: bool,
    /// Model parameters jointly: one estimator per group of parameters that are active
    /// together (Optuna's `multivariate=True, group=True`); off, one estimator per parameter.
    /// Optuna 5 defaults to multivariate for one objective.
    pub multivariate: bool,
    /// Count RUNNING trials as bad ("above") so parallel workers spread out (Optuna 5:
    /// true).
    pub constant_liar: bool,
}

impl Default for TpeOptions {
    fn default() -> Self {
        Self {
            n_startup_trials: 10,
            n_ei_candidates: 24,
            prior_weight: 1.0,
            consider_magic_clip: true,
            consider_endpoints: false,
            multivariate: true,
            constant_liar: true,
        }
    }
}

/// Optuna's `default_gamma`: `min(ceil(0.1 n), 25)`.
pub fn default_gamma(n: usize) -> usize {
    n.div_ceil(10).min(25)
}

/// Optuna's `default_weights`: flat for the 25 newest observations, a linear ramp from `1/n`
/// for older ones (observations ordered by trial number).
pub fn default_weights(n: usize) -> Vec<f64> {
    if n == 0 {
        Vec::new()
    } else if n < 25 {
        vec![1.0; n]
    } else {
        let ramp_len = n - 25;
        let start = 1.0 / n as f64;
        let mut w: Vec<f64> = (0..ramp_len)
            .map(|i| {
                if ramp_len == 1 {
                    start
                } else {
                    start + (1.0 - start) * i as f64 / (ramp_len - 1) as f64
                }
            })
            .collect();
        w.extend(std::iter::repeat_n(1.0, 25));
        w
    }
}

/// The TPE sampler.
#[derive(Clone, Debug)]
pub struct TpeSampler {
    seed: u64,
    options: TpeOptions,
}

impl TpeSampler {
    /// A sampler seeded with `seed`.
    pub fn new(seed: u64, options: TpeOptions) -> Self {
        Self { seed, options }
    }

    fn parzen(&self) -> ParzenParams {
        ParzenParams {
            prior_weight: self.options.prior_weight,
            consider_magic_clip: self.options.consider_magic_clip,
            consider_endpoints: self.options.consider_endpoints,
        }
    }

    /// Samples one group of parameters (one for independent TPE) from the split trials.
    fn sample_group(
        &self,
        names: &[&str],
        dists: &[&Distribution],
        below: &[&FrozenTrial],
        above: &[&FrozenTrial],
        rng: &mut Rng,
    ) -> Vec<ParamValue> {
        let parzen = self.parzen();
        let build = |trials: &[&FrozenTrial]| {
            let obs = observations(names, dists, trials);
            let n = obs.first().map_or(0, Vec::len);
            ParzenEstimator::new(&obs, dists, &default_weights(n), &parzen)
        };
        let l = build(below);
        let g = build(above);
        let candidates = l.sample(rng, self.options.n_ei_candidates.max(1));
        let ll = l.log_pdf(&candidates);
        let lg = g.log_pdf(&candidates);
        let mut best = 0;
        let mut best_score = f64::NEG_INFINITY;
        for (i, (a, b)) in ll.iter().zip(&lg).enumerate() {
            let score = a - b;
            // np.argmax: the first maximum; NaN never wins.
            if score > best_score {
                best = i;
                best_score = score;
            }
        }
        dists
            .iter()
            .zip(&candidates)
            .map(|(d, xs)| to_external(d, xs[best]))
            .collect()
    }
}

impl Sampler for TpeSampler {
    fn sample(
        &self,
        space: &SearchSpace,
        trials: &[FrozenTrial],
        direction: Direction,
        number: u64,
    ) -> Result<Proposal> {
        let finished: Vec<&FrozenTrial> = trials
            .iter()
            .filter(|t| t.number != number)
            .filter(|t| matches!(t.state, TrialState::Complete | TrialState::Pruned))
            .filter(|t| t.state != TrialState::Complete || t.value.is_some_and(|v| !v.is_nan()))
            .collect();
        if finished.len() < self.options.n_startup_trials {
            let mut rng = for_trial(self.seed, number, 0);
            return walk(space, |_, spec, _| {
                Ok(from_unit(&spec.distribution, rng.uniform()))
            });
        }
        let running: Vec<&FrozenTrial> = if self.options.constant_liar {
            trials
                .iter()
                .filter(|t| t.number != number && t.state == TrialState::Running)
                .collect()
        } else {
            Vec::new()
        };
        let (below, above) = split_trials(
            &finished,
            &running,
            direction,
            default_gamma(finished.len()),
        );
        if self.options.multivariate {
            Ok(self.sample_grouped(space, &below, &above, number))
        } else {
            walk(space, |i, spec, _| {
                let mut rng = for_trial(self.seed, number, 1 + i as u64);
                let v = self.sample_group(
                    &[spec.name.as_str()],
                    &[&spec.distribution],
                    &below,
                    &above,
                    &mut rng,
                );
                Ok(v.into_iter().next().expect("one value per parameter"))
            })
        }
    }

    fn name(&self) -> &'static str {
        if self.options.multivariate {
            "tpe-multivariate"
        } else {
            "tpe"
        }
    }
}

impl TpeSampler {
    /// Multivariate TPE over groups: parameters that share the same conditions are active
    /// together and form one group (what Optuna's group decomposition finds for such a space).
    /// Groups are sampled in the space's order, so a group's conditions are settled first.
    fn sample_grouped(
        &self,
        space: &SearchSpace,
        below: &[&FrozenTrial],
        above: &[&FrozenTrial],
        number: u64,
    ) -> Proposal {
        let params = space.params();
        let mut groups: Vec<Vec<usize>> = Vec::new();
        for (i, p) in params.iter().enumerate() {
            match groups.iter_mut().find(|g| params[g[0]].when == p.when) {
                Some(g) => g.push(i),
                None => groups.push(vec![i]),
            }
        }
        let mut assigned: BTreeMap<String, ParamValue> = BTreeMap::new();
        let mut values: BTreeMap<usize, ParamValue> = BTreeMap::new();
        for (gi, group) in groups.iter().enumerate() {
            if !params[group[0]].is_active(&assigned) {
                continue;
            }
            let (single, multi): (Vec<usize>, Vec<usize>) = group
                .iter()
                .partition(|&&i| params[i].distribution.is_single());
            for i in single {
                values.insert(i, from_unit(&params[i].distribution, 0.0));
            }
            if !multi.is_empty() {
                let names: Vec<&str> = multi.iter().map(|&i| params[i].name.as_str()).collect();
                let dists: Vec<&Distribution> =
                    multi.iter().map(|&i| &params[i].distribution).collect();
                let mut rng = for_trial(self.seed, number, 1_000_000 + gi as u64);
                let drawn = self.sample_group(&names, &dists, below, above, &mut rng);
                for (&i, v) in multi.iter().zip(drawn) {
                    values.insert(i, v);
                }
            }
            for &i in group {
                assigned.insert(params[i].name.clone(), values[&i].clone());
            }
        }
        values
            .into_iter()
            .map(|(i, v)| (params[i].name.clone(), params[i].distribution.clone(), v))
            .collect()
    }
}

/// Optuna's `_split_trials` for one objective: the best `n_below` complete trials, then (if
/// fewer complete trials) the pruned trials that got furthest with the best last value, are
/// "below"; everything else, and RUNNING trials, "above". Both sorted by trial number.
pub(crate) fn split_trials<'a>(
    finished: &[&'a FrozenTrial],
    running: &[&'a FrozenTrial],
    direction: Direction,
    n_below: usize,
) -> (Vec<&'a FrozenTrial>, Vec<&'a FrozenTrial>) {
    let mut complete: Vec<&FrozenTrial> = finished
        .iter()
        .copied()
        .filter(|t| t.state == TrialState::Complete)
        .collect();
    let mut pruned: Vec<&FrozenTrial> = finished
        .iter()
        .copied()
        .filter(|t| t.state == TrialState::Pruned)
        .collect();
    complete.sort_by_key(|t| t.number);
    pruned.sort_by_key(|t| t.number);
    // Stable sorts, as Python's `sorted`.
    complete.sort_by(|a, b| {
        let (x, y) = (a.value.unwrap_or(f64::NAN), b.value.unwrap_or(f64::NAN));
        direction.as_loss(x).total_cmp(&direction.as_loss(y))
    });
    pruned.sort_by(|a, b| {
        pruned_score(a, direction)
            .partial_cmp(&pruned_score(b, direction))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let n_complete_below = n_below.min(complete.len());
    let n_pruned_below = (n_below - n_complete_below).min(pruned.len());
    let mut below: Vec<&FrozenTrial> = complete[..n_complete_below]
        .iter()
        .chain(&pruned[..n_pruned_below])
        .copied()
        .collect();
    let mut above: Vec<&FrozenTrial> = complete[n_complete_below..]
        .iter()
        .chain(&pruned[n_pruned_below..])
        .chain(running)
        .copied()
        .collect();
    below.sort_by_key(|t| t.number);
    above.sort_by_key(|t| t.number);
    (below, above)
}

/// Optuna's `_get_pruned_trial_score`: further steps first, then the better last value (NaN
/// last); a pruned trial with no intermediate value sorts after all others.
fn pruned_score(t: &FrozenTrial, direction: Direction) -> (f64, f64) {
    match t.last_step() {
        Some((step, v)) if v.is_nan() => (-(step as f64), f64::INFINITY),
        Some((step, v)) => (-(step as f64), direction.as_loss(v)),
        None => (1.0, 0.0),
    }
}

/// `observations[dim][i]` over the trials that have every parameter of the group with a value
/// the current distribution can hold (trials of an older space are skipped, not failed).
fn observations(names: &[&str], dists: &[&Distribution], trials: &[&FrozenTrial]) -> Vec<Vec<f64>> {
    let mut obs = vec![Vec::new(); names.len()];
    for t in trials {
        let row: Option<Vec<f64>> = names
            .iter()
            .zip(dists)
            .map(|(name, d)| t.params.get(*name).and_then(|v| internal(d, v)))
            .collect();
        if let Some(row) = row {
            for (o, x) in obs.iter_mut().zip(row) {
                o.push(x);
            }
        }
    }
    obs
}

/// The internal representation of `v` under `d`, if it has one (ints and floats outside the
/// current range still count, as in Optuna; a log parameter needs a positive value).
fn internal(d: &Distribution, v: &ParamValue) -> Option<f64> {
    let x = match (d, v) {
        (Distribution::Float { .. }, ParamValue::Float(x)) => *x,
        (Distribution::Float { .. } | Distribution::Int { .. }, ParamValue::Int(i)) => *i as f64,
        (Distribution::Categorical { choices }, ParamValue::Choice(c)) => {
            return choices.iter().position(|x| x == c).map(|i| i as f64);
        }
        _ => return None,
    };
    let log = matches!(
        d,
        Distribution::Float { log: true, .. } | Distribution::Int { log: true, .. }
    );
    (x.is_finite() && (!log || x > 0.0)).then_some(x)
}

fn to_external(d: &Distribution, x: f64) -> ParamValue {
    match d {
        Distribution::Float { low, high, .. } => ParamValue::Float(x.clamp(*low, *high)),
        Distribution::Int { low, high, .. } => {
            ParamValue::Int((x.round() as i64).clamp(*low, *high))
        }
        Distribution::Categorical { choices } => {
            ParamValue::Choice(choices[(x as usize).min(choices.len() - 1)].clone())
        }
    }
}
