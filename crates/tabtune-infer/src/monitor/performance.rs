//! Classification quality on labelled data: accuracy, log loss, per-class precision / recall /
//! F1, the confusion matrix.

use serde::Serialize;

/// Classification quality on labelled data.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Performance {
    /// Labelled rows scored.
    pub rows: usize,
    /// Share of correct predictions.
    pub accuracy: f64,
    /// Mean multi-class log loss (probabilities clipped at 1e-15).
    pub logloss: f64,
    /// Per class: precision, recall, F1 and support (true rows).
    pub classes: Vec<ClassScores>,
    /// Unweighted mean F1 over the classes with support.
    pub macro_f1: f64,
    /// `confusion[true][predicted]` row counts.
    pub confusion: Vec<Vec<u64>>,
}

/// Scores of one class.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClassScores {
    /// Class name.
    pub class: String,
    /// Of the rows predicted as the class, the share that are.
    pub precision: f64,
    /// Of the rows of the class, the share predicted as it.
    pub recall: f64,
    /// Harmonic mean of precision and recall (0 when both are 0).
    pub f1: f64,
    /// Rows of the class.
    pub support: u64,
}

/// Accuracy, log loss, per-class precision / recall / F1 and the confusion matrix of
/// `predicted` (with probabilities `proba`, `[n_rows, n_classes]`) against `truth`.
pub fn performance(
    classes: &[String],
    truth: &[u32],
    predicted: &[u32],
    proba: &ndarray::Array2<f64>,
) -> Performance {
    let k = classes.len();
    let mut confusion = vec![vec![0u64; k]; k];
    for (&t, &p) in truth.iter().zip(predicted) {
        confusion[t as usize][p as usize] += 1;
    }
    let n = truth.len().max(1) as f64;
    let accuracy = (0..k).map(|c| confusion[c][c]).sum::<u64>() as f64 / n;
    let logloss = truth
        .iter()
        .enumerate()
        .map(|(i, &t)| -proba[[i, t as usize]].clamp(1e-15, 1.0).ln())
        .sum::<f64>()
        / n;
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let scores: Vec<ClassScores> = (0..k)
        .map(|c| {
            let tp = confusion[c][c];
            let predicted_as: u64 = (0..k).map(|t| confusion[t][c]).sum();
            let support: u64 = confusion[c].iter().sum();
            let (precision, recall) = (ratio(tp, predicted_as), ratio(tp, support));
            let f1 = if precision + recall > 0.0 {
                2.0 * precision * recall / (precision + recall)
            } else {
                0.0
            };
            ClassScores {
                class: classes[c].clone(),
                precision,
                recall,
                f1,
                support,
            }
        })
        .collect();
    let present: Vec<&ClassScores> = scores.iter().filter(|s| s.support > 0).collect();
    let macro_f1 = present.iter().map(|s| s.f1).sum::<f64>() / present.len().max(1) as f64;
    Performance {
        rows: truth.len(),
        accuracy,
        logloss,
        classes: scores,
        macro_f1,
        confusion,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn performance_by_hand() {
        let classes = vec!["a".to_owned(), "b".to_owned()];
        // truth a a b b, predicted a b b b: accuracy 0.75; a: P 1, R 0.5; b: P 2/3, R 1.
        let proba = ndarray::array![[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.3, 0.7]];
        let p = performance(&classes, &[0, 0, 1, 1], &[0, 1, 1, 1], &proba);
        assert_eq!(p.rows, 4);
        assert!((p.accuracy - 0.75).abs() < 1e-12);
        assert_eq!(p.confusion, vec![vec![1, 1], vec![0, 2]]);
        assert!(
            (p.classes[0].precision - 1.0).abs() < 1e-12
                && (p.classes[0].recall - 0.5).abs() < 1e-12
        );
        assert!(
            (p.classes[1].precision - 2.0 / 3.0).abs() < 1e-12
                && (p.classes[1].recall - 1.0).abs() < 1e-12
        );
        assert!(
            (p.classes[0].f1 - 2.0 / 3.0).abs() < 1e-12 && (p.classes[1].f1 - 0.8).abs() < 1e-12
        );
        let ll = -(0.9f64.ln() + 0.4f64.ln() + 0.8f64.ln() + 0.7f64.ln()) / 4.0;
        assert!((p.logloss - ll).abs() < 1e-12);
        assert!((p.macro_f1 - f64::midpoint(2.0 / 3.0, 0.8)).abs() < 1e-12);
    }
}
