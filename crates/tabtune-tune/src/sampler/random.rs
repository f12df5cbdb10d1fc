//! Independent uniform sampling (Optuna's `RandomSampler`).

use super::base::{Proposal, Sampler, from_unit, walk};
use super::rng::for_trial;
use crate::error::Result;
use crate::model::{Direction, FrozenTrial};
use crate::space::SearchSpace;

/// Draws every parameter uniformly on its scale (log scale for `log` parameters, every grid
/// point equally likely for stepped ones, every choice equally likely).
#[derive(Clone, Debug)]
pub struct RandomSampler {
    seed: u64,
}

impl RandomSampler {
    /// A sampler seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self { seed }
    }
}

impl Sampler for RandomSampler {
    fn sample(
        &self,
        space: &SearchSpace,
        _trials: &[FrozenTrial],
        _direction: Direction,
        number: u64,
    ) -> Result<Proposal> {
        let mut rng = for_trial(self.seed, number, 0);
        walk(space, |_, spec, _| {
            Ok(from_unit(&spec.distribution, rng.uniform()))
        })
    }

    fn name(&self) -> &'static str {
        "random"
    }
}
