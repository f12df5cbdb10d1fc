//! The truncated normal distribution as Optuna's TPE uses it (a port of
//! `optuna/samplers/_tpe/_truncnorm.py`, itself scipy's): log-space masses so that kernels far in
//! a tail keep their precision, and sampling by the inverse CDF of a uniform draw.

// The erf coefficients are FreeBSD's (s_erf.c), copied digit for digit from Optuna's `_erf.py`.
#![allow(clippy::unreadable_literal)]

use std::f64::consts::{PI, SQRT_2};

/// `log(sqrt(2 pi))`.
const LOG_SQRT_2PI: f64 = 0.918_938_533_204_672_8;

/// Horner evaluation of `c[0] + c[1] x + c[2] x^2 + ...`.
fn poly(c: &[f64], x: f64) -> f64 {
    c.iter().rev().fold(0.0, |acc, k| acc * x + k)
}

// FreeBSD's s_erf.c (what C's erf/erfc and Optuna's `_erf.py` use).
const ERX: f64 = 0.8450629115104675;
const EFX: f64 = 0.1283791670955126;
const PP: [f64; 5] = [
    0.12837916709551256,
    -0.3250421072470015,
    -0.02848174957559851,
    -0.005770270296489442,
    -2.3763016656650163e-05,
];
const QQ: [f64; 6] = [
    1.0,
    0.39791722395915535,
    0.0650222499887673,
    0.005081306281875766,
    0.00013249473800432164,
    -3.960228278775368e-06,
];
const PA: [f64; 7] = [
    -0.0023621185607526594,
    0.41485611868374833,
    -0.3722078760357013,
    0.31834661990116175,
    -0.11089469428239668,
    0.035478304325618236,
    -0.002166375594868791,
];
const QA: [f64; 7] = [
    1.0,
    0.10642088040084423,
    0.540397917702171,
    0.07182865441419627,
    0.12617121980876164,
    0.01363708391202905,
    0.011984499846799107,
];
const RA: [f64; 8] = [
    -0.009864944034847148,
    -0.6938585727071818,
    -10.558626225323291,
    -62.375332450326006,
    -162.39666946257347,
    -184.60509290671104,
    -81.2874355063066,
    -9.814329344169145,
];
const SA: [f64; 9] = [
    1.0,
    19.651271667439257,
    137.65775414351904,
    434.56587747522923,
    645.3872717332679,
    429.00814002756783,
    108.63500554177944,
    6.570249770319282,
    -0.0604244152148581,
];
const RB: [f64; 7] = [
    -0.0098649429247001,
    -0.799283237680523,
    -17.757954917754752,
    -160.63638485582192,
    -637.5664433683896,
    -1025.0951316110772,
    -483.5191916086514,
];
const SB: [f64; 8] = [
    1.0,
    30.33806074348246,
    325.7925129965739,
    1536.729586084437,
    3199.8582195085955,
    2553.0504064331644,
    474.52854120695537,
    -22.44095244658582,
];

/// `erfc(x) * x * exp(x^2)`-style tail of FreeBSD's erfc for `x >= 1.25`, as `erfc(x)`.
fn erfc_tail(x: f64) -> f64 {
    let s = 1.0 / (x * x);
    let rs = if x < 1.0 / 0.35 {
        poly(&RA, s) / poly(&SA, s)
    } else {
        poly(&RB, s) / poly(&SB, s)
    };
    // z is x with the low 32 bits cleared, so that z * z is exact (SET_LOW_WORD).
    let z = f64::from_bits(x.to_bits() & 0xffff_ffff_0000_0000);
    (-z * z - 0.5625).exp() * ((z - x) * (z + x) + rs).exp() / x
}

/// The error function.
pub(crate) fn erf(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    let a = x.abs();
    let r = if a < 2f64.powi(-28) {
        a + EFX * a
    } else if a < 0.84375 {
        let z = a * a;
        a + a * (poly(&PP, z) / poly(&QQ, z))
    } else if a < 1.25 {
        ERX + poly(&PA, a - 1.0) / poly(&QA, a - 1.0)
    } else if a < 6.0 {
        1.0 - erfc_tail(a)
    } else {
        1.0
    };
    r.copysign(x)
}

/// The complementary error function.
pub(crate) fn erfc(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    let a = x.abs();
    if a < 0.84375 {
        return 1.0 - erf(x);
    }
    let r = if a < 1.25 {
        1.0 - ERX - poly(&PA, a - 1.0) / poly(&QA, a - 1.0)
    } else if a < 28.0 {
        erfc_tail(a)
    } else {
        0.0
    };
    if x < 0.0 { 2.0 - r } else { r }
}

/// The standard normal CDF.
pub(crate) fn ndtr(a: f64) -> f64 {
    let x = a / SQRT_2;
    if x < -1.0 / SQRT_2 {
        0.5 * erfc(-x)
    } else if x < 1.0 / SQRT_2 {
        0.5 + 0.5 * erf(x)
    } else {
        1.0 - 0.5 * erfc(x)
    }
}

/// `log(ndtr(a))`, accurate far into the left tail (asymptotic series below -20).
pub(crate) fn log_ndtr(a: f64) -> f64 {
    if a > 6.0 {
        -ndtr(-a)
    } else if a > -20.0 {
        ndtr(a).ln()
    } else {
        let log_lhs = -0.5 * a * a - (-a).ln() - 0.5 * (2.0 * PI).ln();
        let mut last_total = 0.0_f64;
        let mut rhs = 1.0_f64;
        let mut numerator = 1.0;
        let mut denom_factor = 1.0;
        let denom_cons = 1.0 / (a * a);
        let mut sign = 1.0;
        let mut i = 0.0;
        while (last_total - rhs).abs() > f64::EPSILON && i < 100.0 {
            i += 1.0;
            last_total = rhs;
            sign = -sign;
            denom_factor *= denom_cons;
            numerator *= 2.0 * i - 1.0;
            rhs += sign * numerator * denom_factor;
        }
        log_lhs + rhs.ln()
    }
}

/// `log(exp(p) - exp(q))` for `p >= q`.
fn log_diff(log_p: f64, log_q: f64) -> f64 {
    log_p + (-(log_q - log_p).exp()).ln_1p()
}

/// `log(exp(p) + exp(q))`.
fn log_sum(log_p: f64, log_q: f64) -> f64 {
    let m = log_p.max(log_q);
    if m == f64::NEG_INFINITY {
        return m;
    }
    m + ((log_p - m).exp() + (log_q - m).exp()).ln()
}

/// Log of the standard normal mass in `[a, b]`, computed in the left tail for precision.
pub(crate) fn log_gauss_mass(a: f64, b: f64) -> f64 {
    if b <= 0.0 {
        log_diff(log_ndtr(b), log_ndtr(a))
    } else if a > 0.0 {
        log_diff(log_ndtr(-a), log_ndtr(-b))
    } else {
        (-ndtr(a) - ndtr(-b)).ln_1p()
    }
}

/// The standard normal quantile: Acklam's rational approximation refined by one Halley step
/// (relative error near machine precision).
pub(crate) fn ndtri(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    let p_low = 0.024_25;
    let x = if p < p_low {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - p_low {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        let q = (-2.0 * (1.0 - p).ln()).sqrt();
        -(((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    // One Halley step on ndtr(x) - p.
    let e = ndtr(x) - p;
    let u = e * (2.0 * PI).sqrt() * (x * x / 2.0).exp();
    x - u / (1.0 + x * u / 2.0)
}

/// The `x` with `log_ndtr(x) = y` (`y <= 0`).
fn ndtri_exp(y: f64) -> f64 {
    if y >= 0.0 {
        return f64::INFINITY;
    }
    let mut x = if y > -700.0 {
        ndtri(y.exp())
    } else {
        // Far left tail: log Phi(x) ~ -x^2/2, a start for Newton.
        -(-2.0 * y).sqrt()
    };
    if !x.is_finite() {
        return x;
    }
    // Newton on log_ndtr(x) - y; d/dx log Phi(x) = phi(x) / Phi(x).
    for _ in 0..3 {
        let l = log_ndtr(x);
        let dlog = (-0.5 * x * x - LOG_SQRT_2PI - l).exp();
        if !(dlog.is_finite() && dlog > 0.0) {
            break;
        }
        let step = (l - y) / dlog;
        x -= step;
        if step.abs() <= 1e-15 * x.abs().max(1.0) {
            break;
        }
    }
    x
}

/// The quantile `q` of the standard normal truncated to `[a, b]`.
pub(crate) fn ppf(q: f64, a: f64, b: f64) -> f64 {
    if q <= 0.0 {
        return a;
    }
    if q >= 1.0 {
        return b;
    }
    let x = if a < 0.0 {
        ndtri_exp(log_sum(log_ndtr(a), q.ln() + log_gauss_mass(a, b)))
    } else {
        -ndtri_exp(log_sum(log_ndtr(-b), (-q).ln_1p() + log_gauss_mass(a, b)))
    };
    x.clamp(a, b)
}

/// Log density at `x` of the normal with mean `mu`, deviation `sigma`, truncated to
/// `[low, high]` (the estimator inlines it with per-kernel constants; kept to check it).
#[cfg(test)]
pub(crate) fn logpdf(x: f64, low: f64, high: f64, mu: f64, sigma: f64) -> f64 {
    if x < low || x > high {
        return f64::NEG_INFINITY;
    }
    let z = (x - mu) / sigma;
    let a = (low - mu) / sigma;
    let b = (high - mu) / sigma;
    -0.5 * z * z - LOG_SQRT_2PI - log_gauss_mass(a, b) - sigma.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_matches_libm() {
        // Python's math.erf / math.erfc.
        for (x, e, c) in [
            (0.1, 0.1124629160182849, 0.8875370839817152),
            (0.9, 0.7969082124228322, 0.20309178757716786),
            (2.0, 0.9953222650189527, 0.004677734981047265),
            (4.5, 0.9999999998033839, 1.9661604415428873e-10),
            (-1.5, -0.9661051464753108, 1.9661051464753108),
            (10.0, 1.0, 2.088487583762545e-45),
        ] {
            assert!(
                (erf(x) - e).abs() <= 2e-16 * e.abs().max(1e-300),
                "erf({x}) = {}",
                erf(x)
            );
            assert!((erfc(x) - c).abs() <= 4e-16 * c, "erfc({x}) = {}", erfc(x));
        }
    }

    #[test]
    fn matches_scipy() {
        // scipy.special.ndtr / log_ndtr / ndtri and scipy.stats.truncnorm (1.17.1).
        assert!(
            (ndtr(1.0) - 0.841_344_746_068_542_9).abs() < 1e-14,
            "{}",
            ndtr(1.0)
        );
        assert!(
            (log_ndtr(-30.0) - -454.321_243_956_343_27).abs() < 1e-9,
            "{}",
            log_ndtr(-30.0)
        );
        assert!(
            (ndtri(0.025) - -1.959_963_984_540_054_5).abs() < 1e-13,
            "{}",
            ndtri(0.025)
        );
        assert!(
            (ndtri(1e-10) - -6.361_340_902_404_056).abs() < 1e-11,
            "{}",
            ndtri(1e-10)
        );
        let x = ppf(0.3, -1.0, 2.0);
        assert!((x - -0.242_403_817_889_226_9).abs() < 1e-12, "{x}");
        let x = ppf(0.5, 5.0, 8.0);
        assert!((x - 5.132_018_331_635_924_5).abs() < 1e-10, "{x}");
        let lp = logpdf(0.2, 0.0, 1.0, 0.5, 0.1);
        assert!((lp - -3.116_352_866_907_319).abs() < 1e-10, "{lp}");
    }

    #[test]
    fn ppf_inverts_the_cdf() {
        for &(a, b) in &[(-1.0, 1.0), (-40.0, -35.0), (3.0, 60.0), (-0.2, 90.0)] {
            for &q in &[0.01, 0.3, 0.5, 0.9, 0.999] {
                let x = ppf(q, a, b);
                assert!(x >= a && x <= b, "{x} outside [{a}, {b}]");
                let mass = (log_gauss_mass(a, x) - log_gauss_mass(a, b)).exp();
                assert!((mass - q).abs() < 1e-8, "q {q} a {a} b {b}: {mass}");
            }
        }
    }
}
