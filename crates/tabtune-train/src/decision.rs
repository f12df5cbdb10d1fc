//! The decision layer applied after a sweep: per-class probability weights and an ensemble of
//! the top trials, both fitted on out-of-fold (OOF) predictions only.
//!
//! Leak-free evaluation: whatever is tuned on OOF predictions is scored by *cross-fitting* over
//! the same folds the OOF predictions came from. For every fold `k`, the weights (or the
//! ensemble) are tuned on the OOF rows of the other folds and scored on fold `k`'s rows; the
//! reported accuracy is the mean over folds. The weights shipped with the model are then tuned
//! on all OOF rows. So the reported number never saw the rows it is scored on, and it is
//! reported beside the raw CV accuracy of the best single trial, never in its place.
//!
//! - [`ClassWeights`]: the predicted class is `argmax_c w_c · p_c`. Tuned by coordinate ascent
//!   over a log-spaced grid of weights per class (accuracy, ties broken by log loss).
//! - [`Ensemble`]: Caruana et al.'s greedy forward selection with replacement over candidate
//!   OOF probability matrices, minimising log loss; the weights are selection counts.

use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// Multiplicative per-class weights on predicted probabilities.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassWeights {
    /// One weight per class, in label order; all 1 is the plain argmax.
    pub weights: Vec<f64>,
}

impl ClassWeights {
    /// The plain argmax.
    pub fn identity(n_classes: usize) -> Self {
        Self {
            weights: vec![1.0; n_classes],
        }
    }

    /// The decided class of every row of `proba`.
    pub fn decide(&self, proba: ArrayView2<'_, f64>) -> Vec<u32> {
        proba
            .rows()
            .into_iter()
            .map(|row| {
                let mut best = 0;
                let mut best_v = f64::NEG_INFINITY;
                for (c, (&p, &w)) in row.iter().zip(&self.weights).enumerate() {
                    let v = p * w;
                    if v > best_v {
                        best_v = v;
                        best = c;
                    }
                }
                best as u32
            })
            .collect()
    }
}

/// A weighted average of candidates' probabilities.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ensemble {
    /// `(candidate index, weight)`, weights summing to 1, largest first.
    pub members: Vec<(usize, f64)>,
}

impl Ensemble {
    /// The blended probabilities of `candidates` (all of the same shape).
    pub fn blend(&self, candidates: &[ArrayView2<'_, f64>]) -> Array2<f64> {
        let mut out = Array2::<f64>::zeros(candidates[0].raw_dim());
        for &(i, w) in &self.members {
            out.scaled_add(w, &candidates[i]);
        }
        out
    }
}

fn accuracy(decided: &[u32], y: &[u32], rows: &[usize]) -> f64 {
    let hits = rows.iter().filter(|&&r| decided[r] == y[r]).count();
    hits as f64 / rows.len().max(1) as f64
}

fn log_loss_rows(proba: ArrayView2<'_, f64>, y: &[u32], rows: &[usize]) -> f64 {
    let mut s = 0.0;
    for &r in rows {
        s -= proba[[r, y[r] as usize]].clamp(1e-15, 1.0).ln();
    }
    s / rows.len().max(1) as f64
}

/// The weight grid tried for each class (log-spaced, 0.5 .. 2).
const GRID: [f64; 9] = [0.5, 0.6, 0.7, 0.85, 1.0, 1.15, 1.3, 1.5, 2.0];

/// Tunes class weights on `rows` of `proba` (coordinate ascent, at most `passes` sweeps over
/// the classes; a weight moves only when accuracy strictly improves).
pub fn tune_class_weights(
    proba: ArrayView2<'_, f64>,
    y: &[u32],
    rows: &[usize],
    passes: usize,
) -> ClassWeights {
    let n_classes = proba.ncols();
    let mut w = ClassWeights::identity(n_classes);
    let score = |w: &ClassWeights| {
        let sub = proba.select(ndarray::Axis(0), rows);
        let d = w.decide(sub.view());
        d.iter().zip(rows).filter(|(d, r)| **d == y[**r]).count()
    };
    let mut best = score(&w);
    for _ in 0..passes {
        let mut moved = false;
        for c in 0..n_classes {
            let keep = w.weights[c];
            let mut best_c = keep;
            for &g in &GRID {
                if g == keep {
                    continue;
                }
                w.weights[c] = g;
                let s = score(&w);
                if s > best {
                    best = s;
                    best_c = g;
                    moved = true;
                }
            }
            w.weights[c] = best_c;
        }
        if !moved {
            break;
        }
    }
    w
}

/// Greedy forward selection with replacement (`rounds` additions) of `candidates` on `rows`,
/// minimising log loss. Starts from the best single candidate.
pub fn greedy_ensemble(
    candidates: &[ArrayView2<'_, f64>],
    y: &[u32],
    rows: &[usize],
    rounds: usize,
) -> Ensemble {
    let shape = candidates[0].raw_dim();
    let mut sum = Array2::<f64>::zeros(shape);
    let mut counts = vec![0usize; candidates.len()];
    let mut blend_loss = f64::INFINITY;
    for step in 0..rounds.max(1) {
        let mut best: Option<(usize, f64)> = None;
        for (i, c) in candidates.iter().enumerate() {
            let mut trial = sum.clone();
            trial.scaled_add(1.0, c);
            trial.mapv_inplace(|v| v / (step + 1) as f64);
            let loss = log_loss_rows(trial.view(), y, rows);
            if best.is_none_or(|(_, l)| loss < l) {
                best = Some((i, loss));
            }
        }
        let (i, loss) = best.expect("at least one candidate");
        // Stop once another addition no longer helps (after the first pick).
        if step > 0 && loss >= blend_loss {
            break;
        }
        blend_loss = loss;
        sum.scaled_add(1.0, &candidates[i]);
        counts[i] += 1;
    }
    let total: usize = counts.iter().sum();
    let mut members: Vec<(usize, f64)> = counts
        .iter()
        .enumerate()
        .filter(|(_, n)| **n > 0)
        .map(|(i, n)| (i, *n as f64 / total as f64))
        .collect();
    members.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    Ensemble { members }
}

/// What the decision layer gained, measured leak-free.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DecisionReport {
    /// OOF accuracy of the best single candidate (the raw CV number).
    pub raw_accuracy: f64,
    /// Index of that candidate.
    pub best_single: usize,
    /// Cross-fitted accuracy of the ensemble (plain argmax).
    pub ensemble_accuracy: f64,
    /// Cross-fitted accuracy of the ensemble with tuned class weights.
    pub ensemble_weighted_accuracy: f64,
    /// Cross-fitted OOF log loss of the ensemble.
    pub ensemble_logloss: f64,
    /// The ensemble fitted on every OOF row (what ships).
    pub ensemble: Ensemble,
    /// The class weights fitted on every OOF row of the shipped ensemble.
    pub class_weights: ClassWeights,
    /// Folds used for cross-fitting.
    pub folds: usize,
}

/// Fits the ensemble and the class weights on OOF predictions `candidates` (each `[rows,
/// classes]`) with labels `y` and each row's fold `fold_of`, and scores both by
/// cross-fitting (see the module docs).
pub fn decide(
    candidates: &[ArrayView2<'_, f64>],
    y: &[u32],
    fold_of: &[usize],
    rounds: usize,
) -> Result<DecisionReport> {
    let Some(first) = candidates.first() else {
        return Err(TrainError::Invalid(
            "the decision layer needs at least one candidate's out-of-fold predictions".into(),
        ));
    };
    let (n, k) = first.dim();
    if y.len() != n || fold_of.len() != n {
        return Err(TrainError::Invalid(format!(
            "out-of-fold predictions have {n} rows but there are {} labels and {} fold ids",
            y.len(),
            fold_of.len()
        )));
    }
    if let Some((i, c)) = candidates
        .iter()
        .enumerate()
        .find(|(_, c)| c.dim() != (n, k))
    {
        return Err(TrainError::Invalid(format!(
            "candidate {i} has shape {:?}, expected ({n}, {k}) like candidate 0",
            c.dim()
        )));
    }
    if let Some(&bad) = y.iter().find(|&&l| l as usize >= k) {
        return Err(TrainError::Invalid(format!(
            "label {bad} is out of range for {k} classes"
        )));
    }
    let n_folds = fold_of.iter().max().map_or(0, |m| m + 1);
    if n_folds < 2 {
        return Err(TrainError::Invalid(
            "the decision layer needs out-of-fold predictions from at least 2 folds".into(),
        ));
    }
    let all: Vec<usize> = (0..n).collect();
    let plain = ClassWeights::identity(k);
    let (best_single, raw_accuracy) = candidates
        .iter()
        .enumerate()
        .map(|(i, c)| (i, accuracy(&plain.decide(*c), y, &all)))
        .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))
        .expect("non-empty");

    let (mut acc, mut acc_w, mut ll) = (0.0, 0.0, 0.0);
    let mut scored = 0usize;
    for f in 0..n_folds {
        let (fit, test): (Vec<usize>, Vec<usize>) = all.iter().partition(|&&r| fold_of[r] != f);
        if test.is_empty() || fit.is_empty() {
            continue;
        }
        let ens = greedy_ensemble(candidates, y, &fit, rounds);
        let blended = ens.blend(candidates);
        let w = tune_class_weights(blended.view(), y, &fit, 3);
        let w_test = test.len() as f64;
        acc += accuracy(&plain.decide(blended.view()), y, &test) * w_test;
        acc_w += accuracy(&w.decide(blended.view()), y, &test) * w_test;
        ll += log_loss_rows(blended.view(), y, &test) * w_test;
        scored += test.len();
    }
    let scored = scored as f64;
    let ensemble = greedy_ensemble(candidates, y, &all, rounds);
    let blended = ensemble.blend(candidates);
    let class_weights = tune_class_weights(blended.view(), y, &all, 3);
    Ok(DecisionReport {
        raw_accuracy,
        best_single,
        ensemble_accuracy: acc / scored,
        ensemble_weighted_accuracy: acc_w / scored,
        ensemble_logloss: ll / scored,
        ensemble,
        class_weights,
        folds: n_folds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    /// A seeded generator for synthetic OOF matrices.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> f64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// `n` rows, 3 classes; a candidate puts `strength` extra mass on the true class plus noise.
    fn candidate(y: &[u32], strength: f64, seed: u64) -> Array2<f64> {
        let mut rng = Rng(seed);
        let mut p = Array2::<f64>::zeros((y.len(), 3));
        for (r, &t) in y.iter().enumerate() {
            let mut row = [rng.next(), rng.next(), rng.next()];
            row[t as usize] += strength;
            let s: f64 = row.iter().sum();
            for c in 0..3 {
                p[[r, c]] = row[c] / s;
            }
        }
        p
    }

    #[test]
    fn class_weights_fix_a_systematic_bias() {
        // Class 2 is always under-predicted: its probability is 0.4 against 0.45 for class 0.
        let y: Vec<u32> = (0..200).map(|i| if i % 2 == 0 { 2 } else { 0 }).collect();
        let mut p = Array2::<f64>::zeros((200, 3));
        for (r, &t) in y.iter().enumerate() {
            let row = if t == 2 {
                [0.45, 0.15, 0.40]
            } else {
                [0.70, 0.10, 0.20]
            };
            for c in 0..3 {
                p[[r, c]] = row[c];
            }
        }
        let rows: Vec<usize> = (0..200).collect();
        assert_eq!(
            accuracy(&ClassWeights::identity(3).decide(p.view()), &y, &rows),
            0.5
        );
        let w = tune_class_weights(p.view(), &y, &rows, 3);
        assert_eq!(accuracy(&w.decide(p.view()), &y, &rows), 1.0, "{w:?}");
    }

    #[test]
    fn the_ensemble_prefers_the_better_candidate_and_beats_noise() {
        let y: Vec<u32> = (0..600).map(|i| (i % 3) as u32).collect();
        let good = candidate(&y, 0.6, 1);
        let noisy = candidate(&y, 0.05, 2);
        let other = candidate(&y, 0.6, 3);
        let folds: Vec<usize> = (0..600).map(|i| i % 5).collect();
        let views = [good.view(), noisy.view(), other.view()];
        let r = decide(&views, &y, &folds, 10).unwrap();
        assert_ne!(r.best_single, 1);
        // The two good, independent candidates average to something better than either.
        assert!(
            r.ensemble.members.iter().all(|(i, _)| *i != 1),
            "noise must not be picked: {:?}",
            r.ensemble
        );
        assert!((r.ensemble.members.iter().map(|m| m.1).sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(r.ensemble_accuracy >= r.raw_accuracy - 0.02, "{r:?}");
        assert_eq!(r.folds, 5);
    }

    #[test]
    fn cross_fitting_does_not_reward_fitting_noise() {
        // Pure-noise candidates: the leak-free score must stay near chance (1/3), even though
        // choosing the best of many noise candidates on all rows looks better than chance.
        let mut rng = Rng(7);
        let y: Vec<u32> = (0..300).map(|_| (rng.next() * 3.0) as u32 % 3).collect();
        let cands: Vec<Array2<f64>> = (0..20).map(|s| candidate(&y, 0.0, 100 + s)).collect();
        let views: Vec<_> = cands.iter().map(|c| c.view()).collect();
        let folds: Vec<usize> = (0..300).map(|i| i % 5).collect();
        let r = decide(&views, &y, &folds, 5).unwrap();
        assert!(
            r.raw_accuracy > 0.36,
            "best of 20 noise candidates: {}",
            r.raw_accuracy
        );
        assert!(
            r.ensemble_weighted_accuracy < r.raw_accuracy,
            "cross-fitted {} vs selected-on-all {}",
            r.ensemble_weighted_accuracy,
            r.raw_accuracy
        );
    }

    #[test]
    fn bad_inputs_are_named() {
        let y = [0u32, 1];
        let a = array![[0.6, 0.4], [0.3, 0.7]];
        let b = array![[0.6, 0.4, 0.0], [0.3, 0.7, 0.0]];
        let e = decide(&[], &y, &[0, 1], 3).unwrap_err().to_string();
        assert!(e.contains("at least one candidate"), "{e}");
        let e = decide(&[a.view(), b.view()], &y, &[0, 1], 3)
            .unwrap_err()
            .to_string();
        assert!(e.contains("candidate 1 has shape"), "{e}");
        let e = decide(&[a.view()], &y, &[0, 0], 3).unwrap_err().to_string();
        assert!(e.contains("at least 2 folds"), "{e}");
        let e = decide(&[a.view()], &[0, 5], &[0, 1], 3)
            .unwrap_err()
            .to_string();
        assert!(e.contains("label 5 is out of range"), "{e}");
        let e = decide(&[a.view()], &[0], &[0, 1], 3)
            .unwrap_err()
            .to_string();
        assert!(e.contains("2 rows but there are 1 labels"), "{e}");
    }
}
