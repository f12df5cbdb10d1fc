//! The [`Sampler`] trait, the name table and what every sampler shares.

use std::collections::BTreeMap;

use crate::error::{Result, TuneError};
use crate::model::{Direction, Distribution, FrozenTrial, ParamValue};
use crate::space::{ParamSpec, SearchSpace};

use super::grid::GridSampler;
use super::qmc::QmcSampler;
use super::random::RandomSampler;
use super::tpe::{TpeOptions, TpeSampler};

/// One trial's parameters, in the space's order: name, the distribution it was drawn from (what
/// the storage writes as `distribution_json`) and the value.
pub type Proposal = Vec<(String, Distribution, ParamValue)>;

/// Proposes parameter sets.
pub trait Sampler: Send + Sync {
    /// A complete parameter set for trial `number`: exactly the parameters active under the
    /// space's conditions. `trials` are all trials of the study so far, in any state (a trial
    /// with number `number` itself is ignored); RUNNING ones are what constant liar uses.
    /// Deterministic given (sampler seed, `number`, `trials`).
    fn sample(
        &self,
        space: &SearchSpace,
        trials: &[FrozenTrial],
        direction: Direction,
        number: u64,
    ) -> Result<Proposal>;

    /// The sampler's name (as [`sampler_from_name`] accepts it).
    fn name(&self) -> &'static str;

    /// The most trials the sampler can propose for `space` (the grid's size); `None` when
    /// unbounded. The executor stops the study there.
    fn max_trials(&self, space: &SearchSpace) -> Option<u64> {
        let _ = space;
        None
    }
}

/// The names [`sampler_from_name`] accepts: `random`, `grid`, `qmc` (scrambled Sobol), `tpe`
/// (independent TPE) and `tpe-multivariate` (grouped multivariate TPE, what Optuna 5's
/// `TPESampler()` does by default); both TPEs use constant liar, as Optuna 5 does by default.
pub const SAMPLER_NAMES: &[&str] = &["random", "grid", "qmc", "tpe", "tpe-multivariate"];

/// The sampler called `name`, seeded with `seed`. Errors name the sampler, or the parameter a
/// sampler cannot handle (the grid refuses continuous parameters without `step`).
pub fn sampler_from_name(name: &str, seed: u64, space: &SearchSpace) -> Result<Box<dyn Sampler>> {
    match name {
        "random" => Ok(Box::new(RandomSampler::new(seed))),
        "grid" => Ok(Box::new(GridSampler::new(seed, space)?)),
        "qmc" => Ok(Box::new(QmcSampler::new(seed, true, space)?)),
        "tpe" | "tpe-multivariate" => {
            let options = TpeOptions {
                multivariate: name == "tpe-multivariate",
                ..TpeOptions::default()
            };
            Ok(Box::new(TpeSampler::new(seed, options)))
        }
        other => Err(TuneError::unknown("sampler", other, SAMPLER_NAMES)),
    }
}

/// Walks the space in order, drawing each active parameter with `draw(index, spec, assigned)`;
/// a distribution with a single value gets that value without a draw.
pub(crate) fn walk(
    space: &SearchSpace,
    mut draw: impl FnMut(usize, &ParamSpec, &BTreeMap<String, ParamValue>) -> Result<ParamValue>,
) -> Result<Proposal> {
    let mut assigned = BTreeMap::new();
    let mut out = Vec::new();
    for (i, spec) in space.params().iter().enumerate() {
        if !spec.is_active(&assigned) {
            continue;
        }
        let value = if spec.distribution.is_single() {
            from_unit(&spec.distribution, 0.0)
        } else {
            draw(i, spec, &assigned)?
        };
        assigned.insert(spec.name.clone(), value.clone());
        out.push((spec.name.clone(), spec.distribution.clone(), value));
    }
    Ok(out)
}

/// The value at position `u` in `[0, 1)` of a distribution, as Optuna's search-space transform
/// maps it: uniform on the (log) scale, a stepped range widened by half a step at each end and
/// rounded back onto the grid, a categorical as `floor(u * n_choices)`.
pub(crate) fn from_unit(d: &Distribution, u: f64) -> ParamValue {
    let u = u.clamp(0.0, 1.0);
    match d {
        Distribution::Float {
            low,
            high,
            log: true,
            ..
        } => {
            let (a, b) = (low.ln(), high.ln());
            ParamValue::Float((a + u * (b - a)).exp().clamp(*low, *high))
        }
        Distribution::Float {
            low,
            high,
            step: Some(s),
            ..
        } => {
            let n = ((high - low) / s + 1e-9).floor();
            let x = (low - s / 2.0) + u * (n * s + s);
            let k = ((x - low) / s).round().clamp(0.0, n);
            ParamValue::Float((low + k * s).min(*high))
        }
        Distribution::Float { low, high, .. } => ParamValue::Float(low + u * (high - low)),
        Distribution::Int {
            low,
            high,
            log: true,
            ..
        } => {
            let (a, b) = ((*low as f64 - 0.5).ln(), (*high as f64 + 0.5).ln());
            let x = (a + u * (b - a)).exp().round() as i64;
            ParamValue::Int(x.clamp(*low, *high))
        }
        Distribution::Int {
            low, high, step, ..
        } => {
            let n = (high - low) / step;
            let k = ((u * (n + 1) as f64).floor() as i64).clamp(0, n);
            ParamValue::Int(low + k * step)
        }
        Distribution::Categorical { choices } => {
            let k = ((u * choices.len() as f64).floor() as usize).min(choices.len() - 1);
            ParamValue::Choice(choices[k].clone())
        }
    }
}
