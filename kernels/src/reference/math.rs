//! The arithmetic every kernel shares, defined once here and mirrored by the GPU code.
//!
//! Results must be bit-identical on the CPU and on every GPU, so the kernels use only
//! operations that IEEE 754 rounds exactly and that compilers do not rewrite: `+ − × ÷` on
//! `f32`, comparisons, integer-float conversions, and integer operations. There are no
//! transcendental functions (GPU `exp`/`ln` differ from the CPU's in the last bits): `exp(−d)`
//! and `ln(v)` come from lookup tables computed once on the host. No multiplication whose
//! result is inexact feeds an addition, so a GPU compiler that fuses `a·b + c` into one FMA
//! (CUDA does by default) cannot change a result: where a product feeds a sum, one factor is a
//! power of two and the product is exact.

/// `log2` of the grid of [`exp_neg`]: arguments are rounded to multiples of 2^-14.
pub const EXP_GRID_LOG2: u32 = 14;
/// The grid's inverse step, `2^EXP_GRID_LOG2`.
pub const EXP_GRID: f32 = 16384.0;
/// [`exp_neg`] is 0 from this argument on (`exp(−24)` ≈ 3.8e-11).
pub const EXP_RANGE: u32 = 24;
/// Entries of the `exp(−d)` table.
pub const EXP_TABLE_LEN: usize = ((EXP_RANGE as usize) << EXP_GRID_LOG2) + 1;
/// Mantissa bits kept by [`ln_ge1`].
pub const LN_MANTISSA_BITS: u32 = 16;
/// Entries of the `ln(1 + j / 2^16)` table (`j = 0..=2^16`).
pub const LN_MANTISSA_LEN: usize = (1 << LN_MANTISSA_BITS) + 1;
/// Entries of the `e · ln 2` table (`e = 0..128`: every finite `f32` ≥ 1).
pub const LN_POW2_LEN: usize = 128;
/// A row's log loss is clipped here, `−ln(1e-15)` (as the CPU metric clips probabilities).
pub const LOSS_CLIP: f32 = 34.538_776;
/// Log losses are summed as integers in units of `2^-20` (exact and order-free).
pub const LOSS_FIXED_ONE: f32 = 1_048_576.0;

/// The lookup tables of [`exp_neg`] and [`ln_ge1`], computed in `f64` and rounded to `f32`.
#[derive(Clone, Debug, PartialEq)]
pub struct Tables {
    /// `exp(−i / 2^14)` for `i = 0..EXP_TABLE_LEN`.
    pub exp_neg: Vec<f32>,
    /// `ln(1 + j / 2^16)` for `j = 0..=2^16`.
    pub ln_mantissa: Vec<f32>,
    /// `e · ln 2` for `e = 0..128`.
    pub ln_pow2: Vec<f32>,
}

impl Default for Tables {
    fn default() -> Self {
        Self::new()
    }
}

impl Tables {
    /// Computes the tables.
    pub fn new() -> Self {
        let step = 1.0 / f64::from(EXP_GRID);
        Self {
            exp_neg: (0..EXP_TABLE_LEN)
                .map(|i| (-(i as f64) * step).exp() as f32)
                .collect(),
            ln_mantissa: (0..LN_MANTISSA_LEN)
                .map(|j| (1.0 + j as f64 / f64::from(1u32 << LN_MANTISSA_BITS)).ln() as f32)
                .collect(),
            ln_pow2: (0..LN_POW2_LEN)
                .map(|e| (e as f64 * std::f64::consts::LN_2) as f32)
                .collect(),
        }
    }
}

/// `exp(−d)` for `d ≥ 0`, with `d` rounded to the nearest multiple of 2^-14 (relative error
/// below 3.1e-5); 0 from [`EXP_RANGE`] on and for NaN.
#[inline]
pub fn exp_neg(t: &Tables, d: f32) -> f32 {
    let x = d * EXP_GRID;
    if x < (EXP_TABLE_LEN - 1) as f32 {
        t.exp_neg[(x + 0.5) as u32 as usize]
    } else {
        0.0
    }
}

/// `ln(v)` for finite `v ≥ 1`: `e · ln 2 + ln(1.m)` from the bits of `v`, the mantissa rounded
/// to 16 bits (absolute error below 1e-5).
#[inline]
pub fn ln_ge1(t: &Tables, v: f32) -> f32 {
    let bits = v.to_bits();
    let e = (bits >> 23).wrapping_sub(127);
    let m = ((bits & 0x007F_FFFF) + 64) >> 7;
    t.ln_pow2[e as usize] + t.ln_mantissa[m as usize]
}

/// A 32-bit integer hash (Chris Wellons' "lowbias32"): xor-shifts and two multiplications
/// modulo 2^32.
#[inline]
pub fn lowbias32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7FEB_352D);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846C_A68B);
    x ^= x >> 16;
    x
}

/// Salt of the gradient's rounding noise.
pub const SALT_GRAD: u32 = 0x68E3_1DA4;
/// Salt of the hessian's rounding noise.
pub const SALT_HESS: u32 = 0xB529_7A4D;

/// The stochastic-rounding noise of one value, uniform in `[0, 1)` on a 2^-24 grid: a hash of
/// the member's seed, the round, the output (tree of the round), the member-local row and a
/// salt. It depends on nothing else, so a member draws the same noise alone or in a batch.
#[inline]
pub fn rounding_noise(seed: u32, round: u32, output: u32, row: u32, salt: u32) -> f32 {
    let mut x = lowbias32(seed ^ salt);
    x = lowbias32(x ^ round);
    x = lowbias32(x ^ output);
    x = lowbias32(x ^ row);
    (x >> 8) as f32 * (1.0 / 16_777_216.0)
}

/// The 32-bit seed of a member's rounding noise from its 64-bit seed.
pub fn seed32(seed: u64) -> u32 {
    (seed ^ (seed >> 32)) as u32
}

/// Quantizes one value: `floor(v · inverse_scale + noise)`, `noise` = 0.5 rounds to nearest,
/// uniform noise rounds stochastically. `inverse_scale` is a power of two, so the product is
/// exact.
#[inline]
pub fn quantize(v: f32, inverse_scale: f32, noise: f32) -> i32 {
    let x = v * inverse_scale + noise;
    // `floor(x)` (the GPU's) without a libm call: truncate, then step down for negative
    // fractions; the same integer for every |x| < 2^31.
    let t = x as i32;
    if (t as f32) > x { t - 1 } else { t }
}

/// The power-of-two scale of one tree's quantized values: the smallest `s = 2^e` with
/// `max_abs / s ≤ levels` (`levels = 2^levels_log2`), as `(s, 1/s)`. `max_abs` of 0 gives
/// `(1, 1)`; `e` stays within the normal range of `f32` (−126..=127) and `1/s` is clamped to
/// `2^127`. `max_abs` must be finite.
pub fn pow2_scale(max_abs: f32, levels_log2: u32) -> (f32, f32) {
    if max_abs <= 0.0 {
        return (1.0, 1.0);
    }
    let bits = max_abs.to_bits();
    let biased = (bits >> 23) as i32;
    let mantissa = bits & 0x007F_FFFF;
    // Subnormals count as the smallest normal number.
    let exponent = if biased == 0 { -126 } else { biased - 127 };
    let round_up = i32::from(biased != 0 && mantissa != 0);
    let e = (exponent - levels_log2 as i32 + round_up).clamp(-126, 127);
    let inverse = (-e).clamp(-126, 127);
    (pow2(e), pow2(inverse))
}

/// `2^e` for `e` in −126..=127.
pub fn pow2(e: i32) -> f32 {
    f32::from_bits(((e + 127) as u32) << 23)
}

/// The largest `levels_log2` (at most `max_log2`) for which `rows` values of magnitude up to
/// `2^levels_log2` sum to less than 2^31 (histogram bins are `i32`).
pub fn levels_log2_for(rows: usize, max_log2: u32) -> u32 {
    let mut b = max_log2.min(30);
    while b > 0 && (rows as u64) << b > i32::MAX as u64 {
        b -= 1;
    }
    b
}

/// Soft threshold `T(g)` by `alpha` (L1), in quantized units.
#[inline]
pub fn shrink(g: f32, alpha: f32) -> f32 {
    if g > alpha {
        g - alpha
    } else if g < -alpha {
        g + alpha
    } else {
        0.0
    }
}

/// The structure score `T(G)² / (H + λ)` of quantized sums, in quantized units (`alpha` and
/// `lambda` divided by the gradient's and hessian's scales).
#[inline]
pub fn score(g: i32, h: i32, lambda: f32, alpha: f32) -> f32 {
    let t = shrink(g as f32, alpha);
    t * t / (h as f32 + lambda)
}

/// A node's output `−T(G)/(H + λ) · learning_rate` from quantized sums, in `f32`: `alpha_q` is
/// `alpha / scale_g`, `lambda` and `learning_rate` are in real units. 0 when `H + λ` is 0.
#[inline]
pub fn leaf_value(
    g: i32,
    h: i32,
    scale_g: f32,
    scale_h: f32,
    lambda: f32,
    alpha_q: f32,
    learning_rate: f32,
) -> f32 {
    let numerator = shrink(g as f32, alpha_q) * scale_g;
    let denominator = h as f32 * scale_h + lambda;
    if denominator > 0.0 {
        -(numerator / denominator) * learning_rate
    } else {
        0.0
    }
}

/// The gain `½ [S(L) + S(R) − S(P)] − γ` of a split, in `f64` and real units, from exact
/// quantized sums `[g, h, n]`: for the split's validity (gain > 0), the leaf-wise order and
/// the importances.
pub fn gain_f64(
    parent: [i32; 3],
    left: [i32; 3],
    right: [i32; 3],
    scale_g: f32,
    scale_h: f32,
    lambda: f64,
    alpha: f64,
    gamma: f64,
) -> f64 {
    0.5 * (score_f64(left, scale_g, scale_h, lambda, alpha)
        + score_f64(right, scale_g, scale_h, lambda, alpha)
        - score_f64(parent, scale_g, scale_h, lambda, alpha))
        - gamma
}

/// `T(G)² / (H + λ)` in `f64`, real units.
pub fn score_f64(s: [i32; 3], scale_g: f32, scale_h: f32, lambda: f64, alpha: f64) -> f64 {
    let g = f64::from(s[0]) * f64::from(scale_g);
    let h = f64::from(s[1]) * f64::from(scale_h);
    let t = if g > alpha {
        g - alpha
    } else if g < -alpha {
        g + alpha
    } else {
        0.0
    };
    t * t / (h + lambda)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_approximate_exp_and_ln() {
        let t = Tables::new();
        for i in 0..2000 {
            let d = i as f32 * 0.0123;
            let exact = (-f64::from(d)).exp();
            let got = f64::from(exp_neg(&t, d));
            assert!((got - exact).abs() <= 3.1e-5 * exact + 1e-10, "exp(-{d})");
        }
        assert_eq!(exp_neg(&t, 24.0), 0.0);
        assert_eq!(exp_neg(&t, f32::NAN), 0.0);
        assert_eq!(exp_neg(&t, 0.0), 1.0);
        for v in [1.0f32, 1.5, 2.0, 3.999, 7.0, 1000.0, 3.0e38] {
            let got = f64::from(ln_ge1(&t, v));
            assert!((got - f64::from(v).ln()).abs() < 1e-5, "ln({v}) = {got}");
        }
    }

    #[test]
    fn scales_are_powers_of_two_that_bound_the_values() {
        for (max, b) in [(0.3f32, 15u32), (1.0, 10), (0.75, 4), (1e-30, 16), (5e3, 3)] {
            let (s, inv) = pow2_scale(max, b);
            assert_eq!(s * inv, 1.0);
            assert!(max / s <= (1u32 << b) as f32, "{max} {b}");
            assert!(max / (s / 2.0) > (1u32 << b) as f32, "smallest: {max} {b}");
        }
        assert_eq!(pow2_scale(0.0, 8), (1.0, 1.0));
        assert_eq!(levels_log2_for(16_600, 20), 16);
        assert_eq!(levels_log2_for(1, 40), 30);
    }

    #[test]
    fn rounding_is_nearest_or_stochastic_with_the_right_mean() {
        assert_eq!(quantize(2.49, 1.0, 0.5), 2);
        assert_eq!(quantize(-2.5, 1.0, 0.5), -2);
        assert_eq!(quantize(0.75, 4.0, 0.5), 3);
        for x in [-3.0f32, -2.5, -0.25, 0.0, 0.25, 7.999, -7.999, 1e6 + 0.5] {
            assert_eq!(quantize(x, 1.0, 0.0), x.floor() as i32, "{x}");
        }
        let n = 20_000u32;
        let sum: i64 = (0..n)
            .map(|r| i64::from(quantize(0.3, 1.0, rounding_noise(7, 1, 2, r, SALT_GRAD))))
            .sum();
        let mean = sum as f64 / f64::from(n);
        assert!((mean - 0.3).abs() < 0.01, "{mean}");
        assert_ne!(
            rounding_noise(7, 1, 2, 3, SALT_GRAD),
            rounding_noise(7, 1, 2, 3, SALT_HESS)
        );
    }

    #[test]
    fn leaf_values_and_gains_by_hand() {
        // G = -8 · 0.25 = -2, H = 4 · 0.5 = 2, λ = 1: value = 2/3 · 0.1.
        let v = leaf_value(-8, 4, 0.25, 0.5, 1.0, 0.0, 0.1);
        assert!((f64::from(v) - 2.0 / 30.0).abs() < 1e-7);
        assert_eq!(leaf_value(5, 0, 1.0, 1.0, 0.0, 0.0, 0.1), 0.0);
        // L1: T(-2) with α = 0.5 → -1.5; α_q = 0.5 / 0.25 = 2.
        let v = leaf_value(-8, 4, 0.25, 0.5, 1.0, 2.0, 1.0);
        assert!((f64::from(v) - 0.5).abs() < 1e-7);
        let g = gain_f64([0, 4, 4], [-4, 2, 2], [4, 2, 2], 1.0, 1.0, 0.0, 0.0, 1.0);
        assert!((g - (0.5 * (8.0 + 8.0) - 1.0)).abs() < 1e-12);
    }
}
