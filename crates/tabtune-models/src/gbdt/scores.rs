//! The per-row passes of a boosting round, over blocks of rows in parallel: adding the round's
//! tree outputs to the raw scores, the next round's gradients, and the validation metrics.
//!
//! Every row's arithmetic is the one a sequential loop does, and sums over rows are taken in
//! row order, so the results do not depend on the number of threads.

use rayon::prelude::*;

use super::booster::RoundEval;
use super::hist::GradPair;
use super::objective::{logistic_grad, sigmoid, softmax, softmax_grad};
use crate::metrics::argmax;

/// Rows per parallel block: large enough that a block's work (a softmax per row) outweighs
/// handing it to a thread, small enough that two threads share a few thousand rows evenly.
const ROW_BLOCK: usize = 512;

/// Raw outputs per row: 1 for binary models, `n_classes` otherwise.
fn outputs(n_classes: usize) -> usize {
    if n_classes == 2 { 1 } else { n_classes }
}

/// Splits every column (all of one length) into blocks of [`ROW_BLOCK`] rows and groups the
/// pieces by block: `result[block][column]`.
fn by_block<T>(columns: &mut [Vec<T>]) -> Vec<Vec<&mut [T]>> {
    let n_blocks = columns.first().map_or(0, |c| c.len().div_ceil(ROW_BLOCK));
    let mut blocks: Vec<Vec<&mut [T]>> = (0..n_blocks)
        .map(|_| Vec::with_capacity(columns.len()))
        .collect();
    for column in columns {
        for (block, piece) in column.chunks_mut(ROW_BLOCK).enumerate() {
            blocks[block].push(piece);
        }
    }
    blocks
}

/// Class probabilities of one row's raw scores into `out` (`n_classes` values): the values the
/// model's predictions give (softmax, or the sigmoid and its complement for binary models).
pub(crate) fn proba_into(raw: &[f64], n_classes: usize, out: &mut [f64]) {
    if n_classes == 2 {
        let p = sigmoid(raw[0]);
        out[0] = 1.0 - p;
        out[1] = p;
    } else {
        out.copy_from_slice(raw);
        softmax(out);
    }
}

/// Adds each output's per-row tree values `deltas[output][row]` (when given) to the row-major
/// raw scores `scores[row * n_outputs + output]`, then fills `grads[output][row]` with the
/// gradients of the loss at the new scores (row weights `weights`, labels `y`).
pub(crate) fn add_and_gradients(
    scores: &mut [f64],
    deltas: Option<&[Vec<f32>]>,
    y: &[u32],
    weights: &[f64],
    n_classes: usize,
    grads: &mut [Vec<GradPair>],
) {
    let k = outputs(n_classes);
    scores
        .par_chunks_mut(ROW_BLOCK * k)
        .zip(by_block(grads))
        .enumerate()
        .for_each(|(block, (scores, mut grads))| {
            let first = block * ROW_BLOCK;
            let mut probs = vec![0.0f64; k];
            for (i, row) in scores.chunks_exact_mut(k).enumerate() {
                if let Some(deltas) = deltas {
                    for (s, d) in row.iter_mut().zip(deltas) {
                        *s += f64::from(d[first + i]);
                    }
                }
                let (label, weight) = (y[first + i], weights[first + i]);
                if n_classes == 2 {
                    grads[0][i] = logistic_grad(row[0], label as usize, weight);
                } else {
                    probs.copy_from_slice(row);
                    softmax(&mut probs);
                    for (out, g) in grads.iter_mut().enumerate() {
                        g[i] = softmax_grad(&probs, label as usize, out, weight);
                    }
                }
            }
        });
}

/// Adds the round's validation tree values `deltas[output][row]` to the row-major raw scores
/// and returns the log loss (per-row losses clipped at 1e-15, as in
/// [`log_loss`](crate::metrics::log_loss)) and accuracy of the new scores against `y`.
/// `losses` is scratch space for the per-row losses, summed in row order.
pub(crate) fn add_and_evaluate(
    scores: &mut [f64],
    deltas: &[Vec<f32>],
    y: &[u32],
    n_classes: usize,
    losses: &mut Vec<f64>,
) -> RoundEval {
    let k = outputs(n_classes);
    losses.clear();
    losses.resize(y.len(), 0.0);
    let hits: usize = scores
        .par_chunks_mut(ROW_BLOCK * k)
        .zip(losses.par_chunks_mut(ROW_BLOCK))
        .enumerate()
        .map(|(block, (scores, losses))| {
            let first = block * ROW_BLOCK;
            let mut probs = vec![0.0f64; n_classes];
            let mut hits = 0usize;
            for (i, (row, loss)) in scores.chunks_exact_mut(k).zip(losses).enumerate() {
                for (s, d) in row.iter_mut().zip(deltas) {
                    *s += f64::from(d[first + i]);
                }
                proba_into(row, n_classes, &mut probs);
                let label = y[first + i];
                hits += usize::from(argmax(&probs) == label);
                *loss = -probs[label as usize].clamp(1e-15, 1.0).ln();
            }
            hits
        })
        .sum();
    let total: f64 = losses.iter().sum();
    let n = y.len().max(1) as f64;
    RoundEval {
        logloss: total / n,
        accuracy: hits as f64 / n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::log_loss;

    /// Raw scores and labels of `n` rows, deterministic and varied.
    fn data(n: usize, k: usize, n_classes: usize) -> (Vec<f64>, Vec<Vec<f32>>, Vec<u32>) {
        let scores = (0..n * k)
            .map(|i| ((i * 37 % 101) as f64 - 50.0) / 17.0)
            .collect();
        let deltas = (0..k)
            .map(|out| {
                (0..n)
                    .map(|r| ((r * 13 + out * 7) % 29) as f32 / 10.0 - 1.4)
                    .collect()
            })
            .collect();
        let y = (0..n).map(|r| (r * 5 % n_classes) as u32).collect();
        (scores, deltas, y)
    }

    #[test]
    fn parallel_passes_equal_the_row_by_row_loops() {
        // Several blocks and a partial last one; multi-class and binary.
        for n_classes in [7, 2] {
            let n = 3 * ROW_BLOCK + 17;
            let k = outputs(n_classes);
            let (scores, deltas, y) = data(n, k, n_classes);
            let weights: Vec<f64> = (0..n).map(|r| 1.0 + (r % 3) as f64 / 2.0).collect();

            let mut expected = scores.clone();
            let mut expected_grads = vec![vec![GradPair::default(); n]; k];
            let mut expected_probs = Vec::new();
            for r in 0..n {
                for out in 0..k {
                    expected[r * k + out] += f64::from(deltas[out][r]);
                }
                let row = &expected[r * k..(r + 1) * k];
                let mut p = vec![0.0; n_classes];
                proba_into(row, n_classes, &mut p);
                for (out, grads) in expected_grads.iter_mut().enumerate() {
                    grads[r] = if n_classes == 2 {
                        logistic_grad(row[0], y[r] as usize, weights[r])
                    } else {
                        softmax_grad(&p, y[r] as usize, out, weights[r])
                    };
                }
                expected_probs.extend(p);
            }
            let hits = (0..n)
                .filter(|&r| argmax(&expected_probs[r * n_classes..(r + 1) * n_classes]) == y[r])
                .count();

            let mut got = scores.clone();
            let mut grads = vec![vec![GradPair::default(); n]; k];
            add_and_gradients(&mut got, Some(&deltas), &y, &weights, n_classes, &mut grads);
            assert_eq!(got, expected);
            assert_eq!(grads, expected_grads);

            let mut valid = scores.clone();
            let eval = add_and_evaluate(&mut valid, &deltas, &y, n_classes, &mut Vec::new());
            assert_eq!(valid, expected);
            assert_eq!(
                eval.logloss.to_bits(),
                log_loss(&expected_probs, &y, n_classes).to_bits()
            );
            assert_eq!(eval.accuracy.to_bits(), (hits as f64 / n as f64).to_bits());
        }
    }

    #[test]
    fn without_deltas_only_gradients_are_computed() {
        let (scores, _, y) = data(10, 3, 3);
        let weights = vec![1.0; 10];
        let mut got = scores.clone();
        let mut grads = vec![vec![GradPair::default(); 10]; 3];
        add_and_gradients(&mut got, None, &y, &weights, 3, &mut grads);
        assert_eq!(got, scores);
        let mut p = scores[9 * 3..].to_vec();
        softmax(&mut p);
        assert_eq!(grads[2][9], softmax_grad(&p, y[9] as usize, 2, 1.0));
    }
}
