//! Optuna's Parzen estimator (`optuna/samplers/_tpe/parzen_estimator.py`): a mixture of product
//! kernels, one per observation plus a prior kernel, over one parameter (independent TPE) or a
//! group of parameters (multivariate TPE).

use std::collections::HashMap;

use super::rng::Rng;
use super::truncnorm;
use crate::model::Distribution;

/// `log(sqrt(2 pi))`.
const LOG_SQRT_2PI: f64 = 0.918_938_533_204_672_8;

/// Optuna's `_ParzenEstimatorParameters` (weights and gamma live in the sampler). Optuna 5
/// always adds the prior kernel and uses the same bandwidth rule for independent and
/// multivariate TPE.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ParzenParams {
    pub prior_weight: f64,
    pub consider_magic_clip: bool,
    pub consider_endpoints: bool,
}

/// One dimension's kernels.
#[derive(Clone, Debug)]
enum Kernels {
    /// Truncated normals over `[adapted_low, adapted_high]`: the bounds widened by half a step
    /// for stepped parameters, and everything in log space for log parameters. Samples are
    /// mapped back (`exp`) and rounded onto the grid of `step` (0: continuous).
    Numerical {
        mus: Vec<f64>,
        sigmas: Vec<f64>,
        low: f64,
        high: f64,
        step: f64,
        log: bool,
        adapted_low: f64,
        adapted_high: f64,
    },
    /// A probability row per kernel over the choices.
    Categorical { weights: Vec<Vec<f64>> },
}

/// The estimator over `dists.len()` dimensions.
#[derive(Clone, Debug)]
pub(crate) struct ParzenEstimator {
    weights: Vec<f64>,
    dims: Vec<Kernels>,
}

impl ParzenEstimator {
    /// Builds the estimator from `observations[dim][i]` (internal representation: the value of
    /// a float or int, the index of a choice) with per-observation `obs_weights` (Optuna's
    /// `default_weights`); the prior kernel is appended with `prior_weight`.
    pub(crate) fn new(
        observations: &[Vec<f64>],
        dists: &[&Distribution],
        obs_weights: &[f64],
        params: &ParzenParams,
    ) -> Self {
        let mut weights: Vec<f64> = if obs_weights.is_empty() {
            vec![1.0]
        } else {
            obs_weights
                .iter()
                .copied()
                .chain([params.prior_weight])
                .collect()
        };
        let total: f64 = weights.iter().sum();
        for w in &mut weights {
            *w /= total;
        }
        let dims = dists
            .iter()
            .zip(observations)
            .map(|(d, obs)| dimension(d, obs, params))
            .collect();
        Self { weights, dims }
    }

    /// `n` samples (`[dim][sample]`, internal representation, on each parameter's grid). Each
    /// sample picks one kernel by weight and draws every dimension from it.
    pub(crate) fn sample(&self, rng: &mut Rng, n: usize) -> Vec<Vec<f64>> {
        let cumulative: Vec<f64> = self
            .weights
            .iter()
            .scan(0.0, |acc, w| {
                *acc += w;
                Some(*acc)
            })
            .collect();
        let active: Vec<usize> = (0..n)
            .map(|_| {
                let u = rng.uniform();
                cumulative
                    .iter()
                    .position(|c| u < *c)
                    .unwrap_or(cumulative.len() - 1)
            })
            .collect();
        self.dims
            .iter()
            .map(|kernels| {
                active
                    .iter()
                    .map(|&k| match kernels {
                        Kernels::Categorical { weights } => {
                            let u = rng.uniform();
                            let row = &weights[k];
                            let mut acc = 0.0;
                            let mut pick = row.len() - 1;
                            for (i, w) in row.iter().enumerate().take(row.len() - 1) {
                                acc += w;
                                if u < acc {
                                    pick = i;
                                    break;
                                }
                            }
                            pick as f64
                        }
                        Kernels::Numerical {
                            mus,
                            sigmas,
                            low,
                            high,
                            step,
                            log,
                            adapted_low,
                            adapted_high,
                        } => {
                            let (mu, s) = (mus[k], sigmas[k]);
                            let q = rng.uniform();
                            let mut x =
                                truncnorm::ppf(q, (adapted_low - mu) / s, (adapted_high - mu) / s)
                                    * s
                                    + mu;
                            if *log {
                                x = x.exp();
                            }
                            if *step != 0.0 {
                                x = (low + ((x - low) / step).round() * step).clamp(*low, *high);
                            }
                            x
                        }
                    })
                    .collect()
            })
            .collect()
    }

    /// Log density of each sample (`samples[dim][i]`, internal representation).
    ///
    /// Computed dimension by dimension into a `[sample][kernel]` table. What does not depend on
    /// the sample is computed once per kernel (a continuous kernel's normaliser), and a stepped
    /// dimension's interval masses once per distinct (value, mu, sigma), as Optuna does with
    /// `np.unique`: at a thousand trials this is what keeps a proposal cheap.
    pub(crate) fn log_pdf(&self, samples: &[Vec<f64>]) -> Vec<f64> {
        let n = samples.first().map_or(0, Vec::len);
        let n_kernels = self.weights.len();
        let log_w: Vec<f64> = self.weights.iter().map(|w| w.ln()).collect();
        let mut table: Vec<f64> = Vec::with_capacity(n * n_kernels);
        for _ in 0..n {
            table.extend_from_slice(&log_w);
        }
        for (kernels, xs) in self.dims.iter().zip(samples) {
            match kernels {
                Kernels::Categorical { weights } => {
                    let log_rows: Vec<Vec<f64>> = weights
                        .iter()
                        .map(|row| row.iter().map(|w| w.ln()).collect())
                        .collect();
                    for (i, &x) in xs.iter().enumerate() {
                        let c = x as usize;
                        let row = &mut table[i * n_kernels..(i + 1) * n_kernels];
                        for (lp, lr) in row.iter_mut().zip(&log_rows) {
                            *lp += lr[c];
                        }
                    }
                }
                Kernels::Numerical {
                    mus,
                    sigmas,
                    step,
                    log,
                    adapted_low,
                    adapted_high,
                    ..
                } => {
                    let t = |v: f64| if *log { v.ln() } else { v };
                    let (al, ah) = (*adapted_low, *adapted_high);
                    if *step == 0.0 {
                        // -z^2/2 - log(sqrt(2 pi)) - log(sigma) - log(mass of [low, high]).
                        let consts: Vec<f64> = mus
                            .iter()
                            .zip(sigmas)
                            .map(|(mu, s)| {
                                LOG_SQRT_2PI
                                    + s.ln()
                                    + truncnorm::log_gauss_mass((al - mu) / s, (ah - mu) / s)
                            })
                            .collect();
                        for (i, &x) in xs.iter().enumerate() {
                            let x = t(x);
                            let row = &mut table[i * n_kernels..(i + 1) * n_kernels];
                            if !(al..=ah).contains(&x) {
                                row.fill(f64::NEG_INFINITY);
                                continue;
                            }
                            for (((lp, mu), s), c) in
                                row.iter_mut().zip(mus).zip(sigmas).zip(&consts)
                            {
                                let z = (x - mu) / s;
                                *lp += -0.5 * z * z - c;
                            }
                        }
                    } else {
                        // Distinct (mu, sigma) pairs: duplicated observations share them.
                        let mut index: HashMap<(u64, u64), usize> = HashMap::new();
                        let mut pairs: Vec<(f64, f64)> = Vec::new();
                        let inverse: Vec<usize> = mus
                            .iter()
                            .zip(sigmas)
                            .map(|(&mu, &s)| {
                                *index.entry((mu.to_bits(), s.to_bits())).or_insert_with(|| {
                                    pairs.push((mu, s));
                                    pairs.len() - 1
                                })
                            })
                            .collect();
                        let log_norm: Vec<f64> = pairs
                            .iter()
                            .map(|(mu, s)| truncnorm::log_gauss_mass((al - mu) / s, (ah - mu) / s))
                            .collect();
                        let mut by_value: HashMap<u64, Vec<f64>> = HashMap::new();
                        for (i, &x) in xs.iter().enumerate() {
                            let per_pair = by_value.entry(x.to_bits()).or_insert_with(|| {
                                let left = t(x - step / 2.0);
                                let right = t(x + step / 2.0);
                                pairs
                                    .iter()
                                    .zip(&log_norm)
                                    .map(|((mu, s), norm)| {
                                        truncnorm::log_gauss_mass((left - mu) / s, (right - mu) / s)
                                            - norm
                                    })
                                    .collect()
                            });
                            let row = &mut table[i * n_kernels..(i + 1) * n_kernels];
                            for (lp, &u) in row.iter_mut().zip(&inverse) {
                                *lp += per_pair[u];
                            }
                        }
                    }
                }
            }
        }
        table
            .chunks(n_kernels.max(1))
            .take(n)
            .map(|row| {
                let mut max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                if max == f64::NEG_INFINITY {
                    max = 0.0;
                }
                let sum: f64 = row.iter().map(|lp| (lp - max).exp()).sum();
                sum.ln() + max
            })
            .collect()
    }
}

fn dimension(d: &Distribution, obs: &[f64], params: &ParzenParams) -> Kernels {
    let (low, high, step, log) = match d {
        Distribution::Categorical { choices } => {
            let n_choices = choices.len();
            if obs.is_empty() {
                return Kernels::Categorical {
                    weights: vec![vec![1.0 / n_choices as f64; n_choices]],
                };
            }
            let n_kernels = obs.len() + 1;
            let mut weights =
                vec![vec![params.prior_weight / n_kernels as f64; n_choices]; n_kernels];
            for (row, &o) in weights.iter_mut().zip(obs) {
                row[o as usize] += 1.0;
            }
            for row in &mut weights {
                let s: f64 = row.iter().sum();
                let s = if s == 0.0 { 1.0 } else { s };
                for w in row.iter_mut() {
                    *w /= s;
                }
            }
            return Kernels::Categorical { weights };
        }
        Distribution::Float {
            low,
            high,
            log,
            step,
        } => (*low, *high, step.unwrap_or(0.0), *log),
        Distribution::Int {
            low,
            high,
            log,
            step,
        } => (*low as f64, *high as f64, *step as f64, *log),
    };
    let t = |v: f64| if log { v.ln() } else { v };
    let adapted_low = t(low - step / 2.0);
    let adapted_high = t(high + step / 2.0);
    let mut mus: Vec<f64> = obs.iter().map(|&x| t(x)).collect();
    let mut sigmas = bandwidths(&mus, adapted_low, adapted_high, params);
    mus.push(0.5 * (adapted_low + adapted_high));
    sigmas.push(adapted_high - adapted_low);
    Kernels::Numerical {
        mus,
        sigmas,
        low,
        high,
        step,
        log,
        adapted_low,
        adapted_high,
    }
}

/// Optuna 5's bandwidths: each kernel as wide as the larger gap to its sorted neighbours (the
/// bounds count as neighbours, except at the ends when `consider_endpoints` is off), clipped
/// to `[range / min(100, 1 + n_kernels), range]` (the "magic clip").
fn bandwidths(mus: &[f64], low: f64, high: f64, params: &ParzenParams) -> Vec<f64> {
    let m = mus.len();
    let mut order: Vec<usize> = (0..m).collect();
    // numpy's argsort is not stable, but equal mus get equal widths anyway.
    order.sort_by(|&a, &b| mus[a].total_cmp(&mus[b]));
    let mut ends = Vec::with_capacity(m + 2);
    ends.push(low);
    ends.extend(order.iter().map(|&i| mus[i]));
    ends.push(high);
    let mut sorted: Vec<f64> = (1..=m)
        .map(|i| (ends[i] - ends[i - 1]).max(ends[i + 1] - ends[i]))
        .collect();
    if !params.consider_endpoints && ends.len() >= 4 {
        sorted[0] = ends[2] - ends[1];
        sorted[m - 1] = ends[m] - ends[m - 1];
    }
    let max_sigma = high - low;
    let min_sigma = if params.consider_magic_clip {
        (high - low) / 100f64.min(1.0 + (m + 1) as f64)
    } else {
        f64::EPSILON
    };
    let mut sigmas = vec![0.0; m];
    for (rank, &i) in order.iter().enumerate() {
        sigmas[i] = sorted[rank].clamp(min_sigma, max_sigma);
    }
    sigmas
}
