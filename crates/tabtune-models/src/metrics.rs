//! What every family and every caller measures and decides with, in one place: the predicted
//! class ([`argmax`]), multi-class log loss ([`log_loss`]), accuracy ([`accuracy`]), and the
//! answer of a training callback ([`Control`]).

/// What a training callback (per boosting round, epoch or fold) may answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// Go on.
    Continue,
    /// Stop after this step (for example: pruned by a tuner).
    Stop,
}

/// The index of the largest value (the first on ties).
pub fn argmax(values: &[f64]) -> u32 {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best as u32
}

/// Mean multi-class log loss of probability rows (`probs[i * n_classes..]`), each
/// probability clipped at 1e-15.
pub fn log_loss(probs: &[f64], labels: &[u32], n_classes: usize) -> f64 {
    let total: f64 = labels
        .iter()
        .enumerate()
        .map(|(i, &y)| -probs[i * n_classes + y as usize].clamp(1e-15, 1.0).ln())
        .sum();
    total / labels.len().max(1) as f64
}

/// Share of rows of `probs` (row-major, `n_classes` per row) whose [`argmax`] is the label.
pub fn accuracy(probs: &[f64], labels: &[u32], n_classes: usize) -> f64 {
    let hits = labels
        .iter()
        .enumerate()
        .filter(|&(i, &y)| argmax(&probs[i * n_classes..(i + 1) * n_classes]) == y)
        .count();
    hits as f64 / labels.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_loss_by_hand() {
        let probs = [0.5, 0.5, 0.9, 0.1];
        assert!(
            (log_loss(&probs, &[0, 0], 2) - (-(0.5f64.ln()) - 0.9f64.ln()) / 2.0).abs() < 1e-12
        );
    }

    #[test]
    fn argmax_takes_the_first_of_ties() {
        assert_eq!(argmax(&[0.2, 0.5, 0.5]), 1);
        assert_eq!(argmax(&[1.0]), 0);
    }

    #[test]
    fn log_loss_and_accuracy_by_hand() {
        let probs = [0.5, 0.5, 0.9, 0.1];
        let ll = log_loss(&probs, &[0, 1], 2);
        assert!((ll - (-(0.5f64.ln()) - 0.1f64.ln()) / 2.0).abs() < 1e-12);
        assert!((accuracy(&probs, &[0, 1], 2) - 0.5).abs() < 1e-12);
        // Zero probabilities are clipped, not infinite.
        assert!(log_loss(&[1.0, 0.0], &[1], 2).is_finite());
    }
}
