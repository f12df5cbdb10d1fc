//! Losses: multi-class softmax (one tree per class per round) and binary log loss.

use super::hist::GradPair;

/// Softmax of raw scores, in place, numerically stable.
pub fn softmax(scores: &mut [f64]) {
    let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for s in scores.iter_mut() {
        *s = (*s - max).exp();
        sum += *s;
    }
    for s in scores.iter_mut() {
        *s /= sum;
    }
}

/// The logistic function.
pub fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Softmax cross-entropy gradients for class `k` of one row with probabilities `p`:
/// `g = p_k − [y = k]`, `h = K/(K−1) · p_k (1 − p_k)` (the diagonal Newton step, scaled as in
/// LightGBM), both times the row weight.
pub fn softmax_grad(p: &[f64], label: usize, k: usize, weight: f64) -> GradPair {
    let n = p.len() as f64;
    let y = if label == k { 1.0 } else { 0.0 };
    let g = (p[k] - y) * weight;
    let h = (n / (n - 1.0) * p[k] * (1.0 - p[k])).max(1e-16) * weight;
    GradPair {
        g: g as f32,
        h: h as f32,
    }
}

/// Binary log-loss gradients for raw score `f` and label `y ∈ {0, 1}`: `g = σ(f) − y`,
/// `h = σ(f)(1 − σ(f))`, times the row weight.
pub fn logistic_grad(f: f64, label: usize, weight: f64) -> GradPair {
    let p = sigmoid(f);
    let y = if label == 1 { 1.0 } else { 0.0 };
    GradPair {
        g: ((p - y) * weight) as f32,
        h: ((p * (1.0 - p)).max(1e-16) * weight) as f32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cross-entropy of raw scores for a label.
    fn loss(scores: &[f64], label: usize) -> f64 {
        let mut p = scores.to_vec();
        softmax(&mut p);
        -p[label].ln()
    }

    #[test]
    fn softmax_gradients_match_numerical_derivatives() {
        let scores = [0.3, -1.2, 0.8, 0.1];
        let label = 2;
        let mut p = scores.to_vec();
        softmax(&mut p);
        let eps = 1e-5;
        for k in 0..4 {
            let mut up = scores;
            up[k] += eps;
            let mut down = scores;
            down[k] -= eps;
            let numeric_g = (loss(&up, label) - loss(&down, label)) / (2.0 * eps);
            let numeric_h =
                (loss(&up, label) - 2.0 * loss(&scores, label) + loss(&down, label)) / (eps * eps);
            let analytic = softmax_grad(&p, label, k, 1.0);
            assert!((f64::from(analytic.g) - numeric_g).abs() < 1e-6, "g[{k}]");
            // The hessian is the diagonal one, scaled by K/(K-1).
            assert!(
                (f64::from(analytic.h) - 4.0 / 3.0 * numeric_h).abs() < 1e-3,
                "h[{k}]"
            );
        }
    }

    #[test]
    fn logistic_gradients_match_numerical_derivatives() {
        let l = |f: f64| -(sigmoid(f).ln());
        let (f, eps) = (0.4, 1e-5);
        let g = (l(f + eps) - l(f - eps)) / (2.0 * eps);
        let h = (l(f + eps) - 2.0 * l(f) + l(f - eps)) / (eps * eps);
        let a = logistic_grad(f, 1, 1.0);
        assert!((f64::from(a.g) - g).abs() < 1e-6 && (f64::from(a.h) - h).abs() < 1e-3);
    }
}
