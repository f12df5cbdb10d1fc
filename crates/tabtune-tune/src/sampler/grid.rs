//! Exhaustive grid search (Optuna's `GridSampler`): every combination of the space's values,
//! each proposed once, in a seeded random order.

use std::collections::{BTreeMap, HashSet};

use super::base::{Proposal, Sampler};
use super::rng::for_trial;
use crate::error::{Result, TuneError};
use crate::model::{Direction, Distribution, FrozenTrial, ParamValue, TrialState};
use crate::space::SearchSpace;

/// The most grid points the sampler enumerates.
const MAX_POINTS: usize = 1_000_000;

/// Proposes each point of the grid once. Points already taken by any trial (finished or
/// running) are skipped; when only running ones are left, they are proposed again (Optuna does
/// the same, so that a crashed worker's point still gets a result); when every point has a
/// finished trial, sampling fails and [`Sampler::max_trials`] tells the executor to stop.
#[derive(Clone, Debug)]
pub struct GridSampler {
    seed: u64,
}

impl GridSampler {
    /// A grid sampler for `space`; fails naming a parameter with no finite set of values (a
    /// float without `step`) or a grid over a million points.
    pub fn new(seed: u64, space: &SearchSpace) -> Result<Self> {
        for p in space.params() {
            if let Distribution::Float {
                step: None,
                low,
                high,
                ..
            } = p.distribution
                && low < high
            {
                return Err(TuneError::GridNeedsStep {
                    param: p.name.clone(),
                    low,
                    high,
                });
            }
        }
        grid_points(space)?;
        Ok(Self { seed })
    }
}

/// The values of one parameter on the grid.
fn values(d: &Distribution) -> Vec<ParamValue> {
    match d {
        Distribution::Float {
            low, high, step, ..
        } => match step {
            Some(s) => {
                let n = ((high - low) / s + 1e-9).floor() as i64;
                (0..=n)
                    .map(|k| ParamValue::Float((low + k as f64 * s).min(*high)))
                    .collect()
            }
            None => vec![ParamValue::Float(*low)],
        },
        Distribution::Int {
            low, high, step, ..
        } => (0..=(high - low) / step)
            .map(|k| ParamValue::Int(low + k * step))
            .collect(),
        Distribution::Categorical { choices } => {
            choices.iter().cloned().map(ParamValue::Choice).collect()
        }
    }
}

/// Every grid point (active parameters only), in the space's order.
pub(crate) fn grid_points(space: &SearchSpace) -> Result<Vec<Proposal>> {
    fn rec(
        space: &SearchSpace,
        i: usize,
        assigned: &mut BTreeMap<String, ParamValue>,
        current: &mut Proposal,
        out: &mut Vec<Proposal>,
    ) -> Result<()> {
        let params = space.params();
        if i == params.len() {
            if out.len() >= MAX_POINTS {
                return Err(TuneError::GridTooLarge {
                    max_points: MAX_POINTS,
                });
            }
            out.push(current.clone());
            return Ok(());
        }
        let spec = &params[i];
        if !spec.is_active(assigned) {
            return rec(space, i + 1, assigned, current, out);
        }
        for v in values(&spec.distribution) {
            assigned.insert(spec.name.clone(), v.clone());
            current.push((spec.name.clone(), spec.distribution.clone(), v));
            rec(space, i + 1, assigned, current, out)?;
            current.pop();
            assigned.remove(&spec.name);
        }
        Ok(())
    }
    let mut out = Vec::new();
    rec(space, 0, &mut BTreeMap::new(), &mut Vec::new(), &mut out)?;
    Ok(out)
}

/// A point's identity: names and values, floats to 12 significant digits (what survives a
/// storage round trip).
fn key<'a>(params: impl Iterator<Item = (&'a String, &'a ParamValue)>) -> String {
    let mut k = String::new();
    for (name, v) in params {
        match v {
            ParamValue::Float(x) => k.push_str(&format!("{name}={x:.12e};")),
            other => k.push_str(&format!("{name}={other:?};")),
        }
    }
    k
}

impl Sampler for GridSampler {
    fn sample(
        &self,
        space: &SearchSpace,
        trials: &[FrozenTrial],
        _direction: Direction,
        number: u64,
    ) -> Result<Proposal> {
        let points = grid_points(space)?;
        let mut finished = HashSet::new();
        let mut running = HashSet::new();
        for t in trials.iter().filter(|t| t.number != number) {
            let k = key(t.params.iter());
            match t.state {
                TrialState::Running => running.insert(k),
                s if s.is_finished() => finished.insert(k),
                _ => false,
            };
        }
        // A seeded order, the same for every trial of the study.
        let mut order: Vec<usize> = (0..points.len()).collect();
        let mut rng = for_trial(self.seed, u64::MAX, 0);
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i + 1));
        }
        let keys: Vec<String> = points
            .iter()
            .map(|p| {
                let mut named: Vec<(&String, &ParamValue)> =
                    p.iter().map(|(n, _, v)| (n, v)).collect();
                named.sort_by(|a, b| a.0.cmp(b.0));
                key(named.into_iter())
            })
            .collect();
        let pick = order
            .iter()
            .find(|&&i| !finished.contains(&keys[i]) && !running.contains(&keys[i]))
            .or_else(|| order.iter().find(|&&i| !finished.contains(&keys[i])));
        match pick {
            Some(&i) => Ok(points[i].clone()),
            None => Err(TuneError::GridExhausted {
                points: points.len(),
            }),
        }
    }

    fn name(&self) -> &'static str {
        "grid"
    }

    fn max_trials(&self, space: &SearchSpace) -> Option<u64> {
        grid_points(space).ok().map(|p| p.len() as u64)
    }
}
