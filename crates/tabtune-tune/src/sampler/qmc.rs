//! Quasi-Monte Carlo sampling (Optuna's `QMCSampler` with `qmc_type="sobol"`): trial `n` gets the
//! `n`-th point of a scrambled Sobol sequence, one coordinate per parameter, mapped onto each
//! parameter's scale as the random sampler maps a uniform draw.
//!
//! Direction numbers are Joe and Kuo's `new-joe-kuo-6.21201` (the ones scipy ships), points in
//! Gray-code order as scipy draws them. Scrambling is a random linear matrix scramble plus a
//! random digital shift, both from the seed (scipy's `scramble=True` does the same two steps),
//! which keeps the low-discrepancy net structure.

use super::base::{Proposal, Sampler, from_unit, walk};
use super::rng::for_trial;
use crate::error::{Result, TuneError};
use crate::model::{Direction, FrozenTrial};
use crate::space::SearchSpace;

/// Bits per coordinate.
const BITS: usize = 32;

/// `(primitive polynomial, initial direction numbers)` per dimension, from scipy's
/// `_sobol_direction_numbers.npz` (Joe and Kuo); dimension 0 is the van der Corput sequence.
const JOE_KUO: &[(u32, &[u32])] = &[
    (1, &[1]),
    (3, &[1]),
    (7, &[1, 3]),
    (11, &[1, 3, 1]),
    (13, &[1, 1, 1]),
    (19, &[1, 1, 3, 3]),
    (25, &[1, 3, 5, 13]),
    (37, &[1, 1, 5, 5, 17]),
    (41, &[1, 1, 5, 5, 5]),
    (47, &[1, 1, 7, 11, 19]),
    (55, &[1, 1, 5, 1, 1]),
    (59, &[1, 1, 1, 3, 11]),
    (61, &[1, 3, 5, 5, 31]),
    (67, &[1, 3, 3, 9, 7, 49]),
    (91, &[1, 1, 1, 15, 21, 21]),
    (97, &[1, 3, 1, 13, 27, 49]),
    (103, &[1, 1, 1, 15, 7, 5]),
    (109, &[1, 3, 1, 15, 13, 25]),
    (115, &[1, 1, 5, 5, 19, 61]),
    (131, &[1, 3, 7, 11, 23, 15, 103]),
    (137, &[1, 3, 7, 13, 13, 15, 69]),
    (143, &[1, 1, 3, 13, 7, 35, 63]),
    (145, &[1, 3, 5, 9, 1, 25, 53]),
    (157, &[1, 3, 1, 13, 9, 35, 107]),
    (167, &[1, 3, 1, 5, 27, 61, 31]),
    (171, &[1, 1, 5, 11, 19, 41, 61]),
    (185, &[1, 3, 5, 3, 3, 13, 69]),
    (191, &[1, 1, 7, 13, 1, 19, 1]),
    (193, &[1, 3, 7, 5, 13, 19, 59]),
    (203, &[1, 1, 3, 9, 25, 29, 41]),
    (211, &[1, 3, 5, 13, 23, 1, 55]),
    (213, &[1, 3, 7, 3, 13, 59, 17]),
    (229, &[1, 3, 1, 3, 5, 53, 69]),
    (239, &[1, 1, 5, 5, 23, 33, 13]),
    (241, &[1, 1, 7, 7, 1, 61, 123]),
    (247, &[1, 1, 7, 9, 13, 61, 49]),
    (253, &[1, 3, 3, 5, 3, 55, 33]),
    (285, &[1, 3, 1, 15, 31, 13, 49, 245]),
    (299, &[1, 3, 5, 15, 31, 59, 63, 97]),
    (301, &[1, 3, 1, 11, 11, 11, 77, 249]),
];

/// The most parameters a QMC space may have.
pub const MAX_QMC_DIMENSIONS: usize = JOE_KUO.len();

/// Direction numbers `v[dim][bit]`, scaled to 32-bit fractions (scipy's `_initialize_v`).
fn direction_numbers(dims: usize) -> Vec<[u32; BITS]> {
    (0..dims)
        .map(|d| {
            let mut v = [0u64; BITS];
            if d == 0 {
                v = [1; BITS];
            } else {
                let (poly, init) = JOE_KUO[d];
                let m = (u32::BITS - poly.leading_zeros() - 1) as usize;
                for j in 0..m {
                    v[j] = u64::from(init[j]);
                }
                for j in m..BITS {
                    let mut newv = v[j - m];
                    let mut pow2 = 1u64;
                    for k in 0..m {
                        pow2 <<= 1;
                        if (poly >> (m - 1 - k)) & 1 == 1 {
                            newv ^= pow2 * v[j - k - 1];
                        }
                    }
                    v[j] = newv;
                }
            }
            let mut out = [0u32; BITS];
            for (j, o) in out.iter_mut().enumerate() {
                *o = (v[j] << (BITS - 1 - j)) as u32;
            }
            out
        })
        .collect()
}

/// A Sobol sequence over `dims` dimensions, optionally scrambled.
#[derive(Clone, Debug)]
pub(crate) struct Sobol {
    v: Vec<[u32; BITS]>,
    shift: Vec<u32>,
}

impl Sobol {
    /// The sequence; `scramble` is the seed of the scramble, `None` for the plain sequence.
    pub(crate) fn new(dims: usize, scramble: Option<u64>) -> Result<Self> {
        if dims > MAX_QMC_DIMENSIONS {
            return Err(TuneError::QmcDimensions {
                dims,
                max: MAX_QMC_DIMENSIONS,
            });
        }
        let mut v = direction_numbers(dims);
        let mut shift = vec![0u32; dims];
        if let Some(seed) = scramble {
            let mut rng = for_trial(seed, u64::MAX - 1, 0);
            for (vd, sd) in v.iter_mut().zip(&mut shift) {
                // Lower-triangular binary matrix with unit diagonal, row i acting on digit i
                // (digit 0 = the most significant bit).
                let rows: Vec<u32> = (0..BITS)
                    .map(|i| {
                        // Digits k < i sit in the top i bits; digit i at bit 31 - i.
                        let earlier = if i == 0 { 0 } else { u32::MAX << (BITS - i) };
                        (rng.next_u64() as u32 & earlier) | (1u32 << (BITS - 1 - i))
                    })
                    .collect();
                for col in vd.iter_mut() {
                    let mut out = 0u32;
                    for (i, row) in rows.iter().enumerate() {
                        if (row & *col).count_ones() % 2 == 1 {
                            out |= 1 << (BITS - 1 - i);
                        }
                    }
                    *col = out;
                }
                *sd = rng.next_u64() as u32;
            }
        }
        Ok(Self { v, shift })
    }

    /// Point `n` (in `[0, 1)^dims`), Gray-code order.
    pub(crate) fn point(&self, n: u64) -> Vec<f64> {
        let gray = n ^ (n >> 1);
        self.v
            .iter()
            .zip(&self.shift)
            .map(|(v, shift)| {
                let mut x = *shift;
                for (j, vj) in v.iter().enumerate() {
                    if (gray >> j) & 1 == 1 {
                        x ^= vj;
                    }
                }
                f64::from(x) / 4_294_967_296.0
            })
            .collect()
    }
}

/// The QMC sampler.
#[derive(Clone, Debug)]
pub struct QmcSampler {
    seed: u64,
    scramble: bool,
}

impl QmcSampler {
    /// A scrambled Sobol sampler (Optuna's default `scramble=False` gives the same first point
    /// to every study; scrambling with the seed does not), checked against `space`'s size.
    pub fn new(seed: u64, scramble: bool, space: &SearchSpace) -> Result<Self> {
        Sobol::new(space.params().len(), None)?;
        Ok(Self { seed, scramble })
    }
}

impl Sampler for QmcSampler {
    fn sample(
        &self,
        space: &SearchSpace,
        _trials: &[FrozenTrial],
        _direction: Direction,
        number: u64,
    ) -> Result<Proposal> {
        let sobol = Sobol::new(space.params().len(), self.scramble.then_some(self.seed))?;
        let u = sobol.point(number);
        walk(space, |i, spec, _| Ok(from_unit(&spec.distribution, u[i])))
    }

    fn name(&self) -> &'static str {
        "qmc"
    }
}

#[cfg(test)]
mod tests {
    use super::Sobol;

    /// `scipy.stats.qmc.Sobol(d=21, scramble=False).random(32)` times 32 (scipy 1.17.1).
    const SCIPY: [[u32; 32]; 3] = [
        [
            0, 16, 24, 8, 12, 28, 20, 4, 6, 22, 30, 14, 10, 26, 18, 2, 3, 19, 27, 11, 15, 31, 23,
            7, 5, 21, 29, 13, 9, 25, 17, 1,
        ],
        [
            0, 16, 8, 24, 12, 28, 4, 20, 10, 26, 2, 18, 6, 22, 14, 30, 15, 31, 7, 23, 3, 19, 11,
            27, 5, 21, 13, 29, 9, 25, 1, 17,
        ],
        [
            0, 16, 8, 24, 20, 4, 28, 12, 30, 14, 22, 6, 10, 26, 2, 18, 15, 31, 7, 23, 27, 11, 19,
            3, 17, 1, 25, 9, 5, 21, 13, 29,
        ],
    ];
    const SCIPY_20: [u32; 32] = [
        0, 16, 8, 24, 4, 20, 12, 28, 6, 22, 14, 30, 2, 18, 10, 26, 23, 7, 31, 15, 19, 3, 27, 11,
        17, 1, 25, 9, 21, 5, 29, 13,
    ];

    #[test]
    fn plain_sequence_is_scipys() {
        let s = Sobol::new(21, None).expect("valid");
        for n in 0..32 {
            let p = s.point(n as u64);
            for d in 0..3 {
                assert_eq!(
                    (p[d] * 32.0).round() as u32,
                    SCIPY[d][n],
                    "dim {d} point {n}"
                );
            }
            assert_eq!(
                (p[20] * 32.0).round() as u32,
                SCIPY_20[n],
                "dim 20 point {n}"
            );
        }
    }

    #[test]
    fn scrambled_points_stay_a_net() {
        // A (t, m, s)-net property check: in the first 2^k scrambled points every coordinate
        // puts exactly one point in each of the 2^k equal intervals.
        let s = Sobol::new(8, Some(7)).expect("valid");
        let pts: Vec<Vec<f64>> = (0..64).map(|n| s.point(n)).collect();
        for d in 0..8 {
            let mut seen = [false; 64];
            for p in &pts {
                let cell = (p[d] * 64.0).floor() as usize;
                assert!(!seen[cell], "dim {d}: cell {cell} twice");
                seen[cell] = true;
            }
        }
        let other = Sobol::new(8, Some(8)).expect("valid");
        assert_ne!(s.point(1), other.point(1), "seeds scramble differently");
    }
}
