//! Gradients of the log loss, their quantization, root sums and the validation metric.

use super::math::{
    LOSS_CLIP, LOSS_FIXED_ONE, SALT_GRAD, SALT_HESS, Tables, exp_neg, ln_ge1, quantize,
    rounding_noise,
};
use crate::layout::{Problem, TreeRound};

/// Gradients and hessians of one row's raw scores `s` (`K` outputs; `K = 1`: binary log loss,
/// else softmax cross-entropy) for label `y`, times the class weight `w`, into `g` and `h`.
///
/// Softmax: `p_k = e_k / Σ e_j` with `e_k = exp(−(max − s_k))`, `g = p_k − [y = k]`,
/// `h = K/(K−1) · p_k (1 − p_k)`. Binary: `p = σ(s)`, `g = p − y`, `h = p (1 − p)`.
#[inline]
pub fn row_gradients(t: &Tables, s: &[f32], y: u32, w: f32, g: &mut [f32], h: &mut [f32]) {
    let k = s.len();
    if k == 1 {
        let p = sigmoid(t, s[0]);
        let label = if y == 1 { 1.0 } else { 0.0 };
        g[0] = (p - label) * w;
        h[0] = p * (1.0 - p) * w;
        return;
    }
    let mut max = s[0];
    for &v in &s[1..] {
        if v > max {
            max = v;
        }
    }
    let mut sum = 0.0f32;
    for &v in s {
        sum += exp_neg(t, max - v);
    }
    let c = k as f32 / (k - 1) as f32;
    for (j, &v) in s.iter().enumerate() {
        let p = exp_neg(t, max - v) / sum;
        let label = if y as usize == j { 1.0 } else { 0.0 };
        g[j] = (p - label) * w;
        h[j] = c * p * (1.0 - p) * w;
    }
}

/// `σ(s)` from the `exp(−|s|)` table.
#[inline]
pub fn sigmoid(t: &Tables, s: f32) -> f32 {
    let e = exp_neg(t, s.abs());
    let one_plus = 1.0 + e;
    if s >= 0.0 {
        1.0 / one_plus
    } else {
        e / one_plus
    }
}

/// One validation row's log loss in units of 2^-20 (clipped at [`LOSS_CLIP`]) and whether its
/// most probable class (the first on ties; class 1 when `s > 0` for binary models) is `y`.
#[inline]
pub fn row_metric(t: &Tables, s: &[f32], y: u32) -> (u32, bool) {
    let (loss, predicted) = if s.len() == 1 {
        let d = s[0].abs();
        let l = ln_ge1(t, 1.0 + exp_neg(t, d));
        // −ln σ(s) = ln(1 + e^−s); −ln(1 − σ(s)) = s + ln(1 + e^−s), folded by the sign of s.
        let wrong_side = (y == 1) != (s[0] >= 0.0);
        (if wrong_side { d + l } else { l }, u32::from(s[0] > 0.0))
    } else {
        let mut max = s[0];
        let mut best = 0u32;
        for (j, &v) in s.iter().enumerate().skip(1) {
            if v > max {
                max = v;
                best = j as u32;
            }
        }
        let mut sum = 0.0f32;
        for &v in s {
            sum += exp_neg(t, max - v);
        }
        ((max - s[y as usize]) + ln_ge1(t, sum), best)
    };
    let clipped = if loss < LOSS_CLIP { loss } else { LOSS_CLIP };
    ((clipped * LOSS_FIXED_ONE + 0.5) as u32, predicted == y)
}

/// Kernel `gradients`: for every training entry of an active member, the gradients and
/// hessians of its `K` outputs into `grad` / `hess` (`entry · K + output`), and per tree the
/// largest `|g|` and `h` as `f32` bits into `max_bits[2t]`, `max_bits[2t + 1]` (an unsigned
/// maximum over the bits, which orders non-negative floats; NaN ranks above infinity).
pub fn gradients(
    p: &Problem,
    t: &Tables,
    active: &[u32],
    scores: &[f32],
    grad: &mut [f32],
    hess: &mut [f32],
    max_bits: &mut [u32],
) {
    let k = p.n_outputs;
    for e in 0..p.n_entries() {
        let m = p.member_of[e] as usize;
        if active[m] == 0 {
            continue;
        }
        let y = p.labels[p.row_of[e] as usize];
        let w = p.class_weight[m * p.n_classes + y as usize];
        let range = e * k..(e + 1) * k;
        row_gradients(
            t,
            &scores[range.clone()],
            y,
            w,
            &mut grad[range.clone()],
            &mut hess[range],
        );
        for j in 0..k {
            let tree = m * k + j;
            let gb = grad[e * k + j].abs().to_bits();
            let hb = hess[e * k + j].abs().to_bits();
            max_bits[2 * tree] = max_bits[2 * tree].max(gb);
            max_bits[2 * tree + 1] = max_bits[2 * tree + 1].max(hb);
        }
    }
}

/// Kernel `quantize`: every active member's gradients and hessians to integers with its trees'
/// scales, rounding to nearest or stochastically (noise from the member's seed, `round`, the
/// output and the member-local row).
pub fn quantize_all(
    p: &Problem,
    active: &[u32],
    rounds: &[TreeRound],
    round: u32,
    grad: &[f32],
    hess: &[f32],
    gq: &mut [i32],
    hq: &mut [i32],
) {
    let k = p.n_outputs;
    for e in 0..p.n_entries() {
        let m = p.member_of[e] as usize;
        if active[m] == 0 {
            continue;
        }
        let local = e as u32 - p.row_off[m];
        for j in 0..k {
            let tr = &rounds[m * k + j];
            let (ng, nh) = if tr.stochastic {
                (
                    rounding_noise(p.seed[m], round, j as u32, local, SALT_GRAD),
                    rounding_noise(p.seed[m], round, j as u32, local, SALT_HESS),
                )
            } else {
                (0.5, 0.5)
            };
            gq[e * k + j] = quantize(grad[e * k + j], tr.inv_g, ng);
            hq[e * k + j] = quantize(hess[e * k + j], tr.inv_h, nh);
        }
    }
}

/// Kernel `root_sums`: adds every in-bag entry's quantized pair and a row count to its trees'
/// root (node 0) in `node_stats` (which the caller zeroed).
pub fn root_sums(
    p: &Problem,
    active: &[u32],
    in_bag: &[u32],
    gq: &[i32],
    hq: &[i32],
    node_stats: &mut [i32],
) {
    let k = p.n_outputs;
    for e in 0..p.n_entries() {
        let m = p.member_of[e] as usize;
        if active[m] == 0 || in_bag[e] == 0 {
            continue;
        }
        for j in 0..k {
            let root = (m * k + j) * p.cap * 3;
            node_stats[root] = node_stats[root].wrapping_add(gq[e * k + j]);
            node_stats[root + 1] = node_stats[root + 1].wrapping_add(hq[e * k + j]);
            node_stats[root + 2] = node_stats[root + 2].wrapping_add(1);
        }
    }
}

/// Kernel `metrics`: per active member, the summed fixed-point log loss of its validation rows
/// as a 64-bit value in two words and the number of correct predictions:
/// `acc[3m] = low word, acc[3m + 1] = high word, acc[3m + 2] = hits` (added to what is there).
pub fn metrics(p: &Problem, t: &Tables, active: &[u32], valid_scores: &[f32], acc: &mut [u32]) {
    let k = p.n_outputs;
    for v in 0..p.n_valid() {
        let m = p.valid_member_of[v] as usize;
        if active[m] == 0 {
            continue;
        }
        let y = p.labels[p.valid_row_of[v] as usize];
        let (loss, hit) = row_metric(t, &valid_scores[v * k..(v + 1) * k], y);
        let (low, carry) = acc[3 * m].overflowing_add(loss);
        acc[3 * m] = low;
        acc[3 * m + 1] = acc[3 * m + 1].wrapping_add(u32::from(carry));
        acc[3 * m + 2] += u32::from(hit);
    }
}

/// The mean log loss and the accuracy of a member from its [`metrics`] words and its number of
/// validation rows.
pub fn finish_metrics(words: &[u32], n_valid: usize) -> (f64, f64) {
    let total = (u64::from(words[1]) << 32) | u64::from(words[0]);
    let n = n_valid.max(1) as f64;
    (
        total as f64 / f64::from(LOSS_FIXED_ONE) / n,
        f64::from(words[2]) / n,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gradients_approximate_the_exact_ones() {
        let t = Tables::new();
        let s = [0.3f32, -1.2, 0.8, 0.1];
        let mut p: Vec<f64> = s.iter().map(|&v| f64::from(v).exp()).collect();
        let z: f64 = p.iter().sum();
        for v in &mut p {
            *v /= z;
        }
        let (mut g, mut h) = ([0.0f32; 4], [0.0f32; 4]);
        row_gradients(&t, &s, 2, 1.5, &mut g, &mut h);
        for k in 0..4 {
            let y = if k == 2 { 1.0 } else { 0.0 };
            assert!((f64::from(g[k]) - (p[k] - y) * 1.5).abs() < 1e-4, "g{k}");
            let hk = 4.0 / 3.0 * p[k] * (1.0 - p[k]) * 1.5;
            assert!((f64::from(h[k]) - hk).abs() < 1e-4, "h{k}");
        }
        let (mut g, mut h) = ([0.0f32], [0.0f32]);
        row_gradients(&t, &[-0.7], 1, 1.0, &mut g, &mut h);
        let p = 1.0 / (1.0 + 0.7f64.exp());
        assert!((f64::from(g[0]) - (p - 1.0)).abs() < 1e-4);
        assert!((f64::from(h[0]) - p * (1.0 - p)).abs() < 1e-4);
    }

    #[test]
    fn metric_approximates_the_log_loss() {
        let t = Tables::new();
        let s = [0.3f32, -1.2, 0.8];
        let z: f64 = s.iter().map(|&v| f64::from(v).exp()).sum();
        for y in 0..3u32 {
            let (fixed, hit) = row_metric(&t, &s, y);
            let exact = -(f64::from(s[y as usize]).exp() / z).ln();
            let got = f64::from(fixed) / f64::from(LOSS_FIXED_ONE);
            assert!((got - exact).abs() < 1e-4, "{got} vs {exact}");
            assert_eq!(hit, y == 2);
        }
        for (s, y) in [(1.3f32, 1u32), (1.3, 0), (-0.4, 1), (-0.4, 0)] {
            let p1 = 1.0 / (1.0 + (-f64::from(s)).exp());
            let exact = -(if y == 1 { p1 } else { 1.0 - p1 }).ln();
            let (fixed, hit) = row_metric(&t, &[s], y);
            let got = f64::from(fixed) / f64::from(LOSS_FIXED_ONE);
            assert!((got - exact).abs() < 1e-4, "{s} {y}: {got} vs {exact}");
            assert_eq!(hit, (s > 0.0) == (y == 1));
        }
        // Hopelessly wrong rows are clipped as probabilities below 1e-15 are.
        let (fixed, _) = row_metric(&t, &[60.0, 0.0], 1);
        assert_eq!(fixed, (LOSS_CLIP * LOSS_FIXED_ONE + 0.5) as u32);
    }

    #[test]
    fn the_64_bit_sum_carries() {
        let words = [u32::MAX - 1, 0, 0];
        let mut acc = words.to_vec();
        let (low, carry) = acc[0].overflowing_add(5);
        acc[0] = low;
        acc[1] += u32::from(carry);
        assert_eq!(acc[..2], [3, 1]);
        let (loss, _) = finish_metrics(&[0, 1, 2], 4);
        assert!((loss - (1u64 << 32) as f64 / f64::from(LOSS_FIXED_ONE) / 4.0).abs() < 1e-9);
    }
}
