//! The decision layer applied after the sweeps: every way of turning the trials' out-of-fold
//! (OOF) predictions into one model, each scored leak-free, and the winner fitted on every OOF
//! row to ship.
//!
//! The methods ([`Method`]):
//! - [`Method::Single`]: the best single trial;
//! - [`Method::Greedy`]: Caruana et al. (2004) greedy forward selection with replacement over
//!   *every* candidate, minimising log loss; the weights are selection counts;
//! - [`Method::Stack`]: a multinomial logistic regression on the clipped log-probabilities of
//!   the greedy selection's members (padded with the next-best candidates to at least
//!   [`DecisionOptions::stack_min`]), L2-regularised toward their geometric mean;
//! - `…` + [`ClassWeights`]: per-class logit biases (`argmax_c log p_c + log w_c`, i.e.
//!   multiplicative weights on the probabilities) tuned for accuracy on top of each of the
//!   above.
//!
//! Leak-free evaluation (nested cross-fitting): for every fold `k` of the folds the OOF
//! predictions came from, each method (the choice of members, the blend weights, the
//! stacker, the biases) is fitted on the OOF rows of the other folds and scored on fold `k`'s
//! rows; a method's score is its accuracy (and log loss) over all rows scored that way. So no
//! reported number ever saw the rows it is scored on — including the best single trial's,
//! which is picked on the other folds too. The champion is the method with the best
//! cross-fitted accuracy, log loss breaking ties; it is then fitted on every OOF row and that
//! is what ships.

use std::collections::VecDeque;

use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};
use tabtune_models::ensemble::{STACK_CLIP, Stack};

use crate::error::{PipelineError, Result};

/// The negative log-likelihood of a true-class probability (clamped to 1e-15 as log loss
/// does everywhere in tabtune).
fn nll(p: f64) -> f64 {
    -p.clamp(1e-15, 1.0).ln()
}

/// Multiplicative per-class weights on predicted probabilities (per-class logit biases
/// `log w_c`).
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

    /// Whether these are all 1.
    pub fn is_identity(&self) -> bool {
        self.weights.iter().all(|&w| w == 1.0)
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

    /// `proba` reweighted and renormalised per row (what the shipped model predicts).
    pub fn apply(&self, proba: &mut Array2<f64>) {
        if self.is_identity() {
            return;
        }
        for mut row in proba.rows_mut() {
            for (p, w) in row.iter_mut().zip(&self.weights) {
                *p *= w;
            }
            let s = row.sum();
            if s > 0.0 {
                row /= s;
            }
        }
    }
}

/// A way of combining the candidates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// The best single trial.
    Single,
    /// The best single trial with per-class logit biases.
    SingleBiased,
    /// Greedy ensemble selection (Caruana et al. 2004).
    Greedy,
    /// Greedy ensemble selection with per-class logit biases.
    GreedyBiased,
    /// A logistic-regression stacker on the members' log-probabilities.
    Stack,
    /// The stacker with per-class logit biases.
    StackBiased,
}

impl Method {
    /// Every method, simplest first (the order of the report and of exact ties).
    pub const ALL: [Method; 6] = [
        Method::Single,
        Method::SingleBiased,
        Method::Greedy,
        Method::GreedyBiased,
        Method::Stack,
        Method::StackBiased,
    ];

    /// Its name in reports and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Method::Single => "single",
            Method::SingleBiased => "single+biases",
            Method::Greedy => "greedy-ensemble",
            Method::GreedyBiased => "greedy-ensemble+biases",
            Method::Stack => "stack",
            Method::StackBiased => "stack+biases",
        }
    }

    fn biased(self) -> bool {
        matches!(
            self,
            Method::SingleBiased | Method::GreedyBiased | Method::StackBiased
        )
    }

    fn base(self) -> Method {
        match self {
            Method::Single | Method::SingleBiased => Method::Single,
            Method::Greedy | Method::GreedyBiased => Method::Greedy,
            Method::Stack | Method::StackBiased => Method::Stack,
        }
    }
}

/// Which methods compete, and their knobs.
#[derive(Clone, Debug, PartialEq)]
pub struct DecisionOptions {
    /// Greedy ensemble selection.
    pub greedy: bool,
    /// The stacker.
    pub stack: bool,
    /// Per-class logit biases (on top of every method).
    pub biases: bool,
    /// Greedy selection rounds (additions with replacement).
    pub rounds: usize,
    /// The stacker reads at least this many candidates (the greedy members, then the next
    /// best by log loss).
    pub stack_min: usize,
    /// … and at most this many.
    pub stack_max: usize,
    /// L2 strength pulling the stacker toward the members' geometric mean.
    pub stack_l2: f64,
}

impl Default for DecisionOptions {
    fn default() -> Self {
        Self {
            greedy: true,
            stack: true,
            biases: true,
            rounds: 25,
            stack_min: 3,
            stack_max: 8,
            stack_l2: 1e-3,
        }
    }
}

impl DecisionOptions {
    fn enabled(&self, m: Method) -> bool {
        (!m.biased() || self.biases)
            && match m.base() {
                Method::Greedy => self.greedy,
                Method::Stack => self.stack,
                _ => true,
            }
    }
}

/// A method fitted on some rows: what it predicts for every row.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Fitted {
    /// The method.
    pub method: Method,
    /// `(candidate index, weight)`: the blend's members, weights summing to 1, largest
    /// first (for the stacker: its inputs in the stacker's group order, equal weights).
    pub members: Vec<(usize, f64)>,
    /// The stacker over `members`, in their order.
    pub stack: Option<Stack>,
    /// The class weights applied last (all 1 for an unbiased method).
    pub class_weights: ClassWeights,
}

impl Fitted {
    /// Its probabilities for every row of the candidates.
    pub fn proba(&self, candidates: &[ArrayView2<'_, f64>]) -> Array2<f64> {
        let mut out = match &self.stack {
            None => {
                let mut out = Array2::<f64>::zeros(candidates[0].raw_dim());
                for &(i, w) in &self.members {
                    out.scaled_add(w, &candidates[i]);
                }
                out
            }
            Some(stack) => {
                let idx: Vec<usize> = self.members.iter().map(|m| m.0).collect();
                let x = log_features(candidates, &idx);
                let k = candidates[0].ncols();
                let params = StackParams::from_stack(stack, idx.len() * k, k);
                let all: Vec<usize> = (0..x.nrows()).collect();
                params.proba(&x, &all)
            }
        };
        self.class_weights.apply(&mut out);
        out
    }
}

/// One method's cross-fitted score.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Scored {
    /// The method.
    pub method: Method,
    /// Accuracy over every row, each scored by the method fitted on the other folds.
    pub accuracy: f64,
    /// Log loss, likewise.
    pub log_loss: f64,
}

/// What the decision layer found, measured leak-free.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DecisionReport {
    /// Candidates considered.
    pub candidates: usize,
    /// OOF accuracy of the best single candidate, picked on all rows (the raw CV number;
    /// optimistic when there are many candidates).
    pub raw_accuracy: f64,
    /// Index of that candidate.
    pub best_single: usize,
    /// Every enabled method's cross-fitted score, in [`Method::ALL`] order.
    pub methods: Vec<Scored>,
    /// The method with the best cross-fitted accuracy (log loss breaks ties).
    pub champion: Method,
    /// The champion fitted on every OOF row: what ships.
    pub shipped: Fitted,
    /// Folds used for cross-fitting.
    pub folds: usize,
}

impl DecisionReport {
    /// The cross-fitted score of `method`, if it competed.
    pub fn score(&self, method: Method) -> Option<&Scored> {
        self.methods.iter().find(|s| s.method == method)
    }

    /// The champion's cross-fitted score.
    pub fn champion_score(&self) -> &Scored {
        self.score(self.champion)
            .expect("the champion is one of the scored methods")
    }
}

fn accuracy(decided: &[u32], y: &[u32], rows: &[usize]) -> f64 {
    let hits = rows.iter().filter(|&&r| decided[r] == y[r]).count();
    hits as f64 / rows.len().max(1) as f64
}

fn log_loss_rows(proba: ArrayView2<'_, f64>, y: &[u32], rows: &[usize]) -> f64 {
    let mut s = 0.0;
    for &r in rows {
        s += nll(proba[[r, y[r] as usize]]);
    }
    s / rows.len().max(1) as f64
}

/// The weight grid tried for each class (log-spaced, 0.5 .. 2).
const GRID: [f64; 11] = [0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.25, 1.4, 1.6, 2.0];

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
    let sub = proba.select(ndarray::Axis(0), rows);
    let score = |w: &ClassWeights| {
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

/// Each candidate's probability of the true class of every row (all that log loss reads).
fn true_class(candidates: &[ArrayView2<'_, f64>], y: &[u32]) -> Vec<Vec<f64>> {
    candidates
        .iter()
        .map(|c| {
            y.iter()
                .enumerate()
                .map(|(r, &t)| c[[r, t as usize]])
                .collect()
        })
        .collect()
}

/// Greedy forward selection with replacement (at most `rounds` additions) of the candidates
/// on `rows`, minimising log loss (`q[i][r]`: candidate `i`'s probability of row `r`'s true
/// class). Starts from the best single candidate; stops when an addition no longer helps.
/// Returns `(candidate, weight)`, weights summing to 1, largest first.
fn greedy(q: &[Vec<f64>], rows: &[usize], rounds: usize) -> Vec<(usize, f64)> {
    let mut sum = vec![0.0; rows.len()];
    let mut counts = vec![0usize; q.len()];
    let mut blend_loss = f64::INFINITY;
    for step in 0..rounds.max(1) {
        let n = (step + 1) as f64;
        let mut best: Option<(usize, f64)> = None;
        for (i, qi) in q.iter().enumerate() {
            let loss: f64 = rows
                .iter()
                .zip(&sum)
                .map(|(&r, s)| nll((s + qi[r]) / n))
                .sum();
            if best.is_none_or(|(_, l)| loss < l) {
                best = Some((i, loss));
            }
        }
        let (i, loss) = best.expect("at least one candidate");
        if step > 0 && loss >= blend_loss {
            break;
        }
        blend_loss = loss;
        for (s, &r) in sum.iter_mut().zip(rows) {
            *s += q[i][r];
        }
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
    members
}

/// Greedy forward selection with replacement (`rounds` additions) of `candidates` on `rows`,
/// minimising log loss.
pub fn greedy_ensemble(
    candidates: &[ArrayView2<'_, f64>],
    y: &[u32],
    rows: &[usize],
    rounds: usize,
) -> Vec<(usize, f64)> {
    greedy(&true_class(candidates, y), rows, rounds)
}

/// The stacker's features: `[log p_0 | log p_1 | …]` of the chosen candidates, clipped.
fn log_features(candidates: &[ArrayView2<'_, f64>], idx: &[usize]) -> Array2<f64> {
    let (n, k) = candidates[0].dim();
    let mut x = Array2::<f64>::zeros((n, idx.len() * k));
    for (g, &i) in idx.iter().enumerate() {
        let c = &candidates[i];
        for r in 0..n {
            for j in 0..k {
                x[[r, g * k + j]] = c[[r, j]].max(STACK_CLIP).ln();
            }
        }
    }
    x
}

/// A stacker's parameters: `w` row-major `[features, classes]`, then `k` biases.
struct StackParams {
    theta: Vec<f64>,
    features: usize,
    classes: usize,
}

impl StackParams {
    fn from_stack(stack: &Stack, features: usize, classes: usize) -> Self {
        let mut theta = stack.weights.clone();
        theta.extend_from_slice(&stack.bias);
        Self {
            theta,
            features,
            classes,
        }
    }

    fn into_stack(self) -> Stack {
        let split = self.features * self.classes;
        Stack {
            weights: self.theta[..split].to_vec(),
            bias: self.theta[split..].to_vec(),
        }
    }

    fn logits_row(&self, x: &Array2<f64>, r: usize, z: &mut [f64]) {
        let (f, k) = (self.features, self.classes);
        z.copy_from_slice(&self.theta[f * k..]);
        for a in 0..f {
            let xa = x[[r, a]];
            if xa == 0.0 {
                continue;
            }
            let w = &self.theta[a * k..(a + 1) * k];
            for (zc, wc) in z.iter_mut().zip(w) {
                *zc += xa * wc;
            }
        }
    }

    /// Softmax probabilities of `rows` (the output has a row for every row of `x`; rows not
    /// asked for stay 0).
    fn proba(&self, x: &Array2<f64>, rows: &[usize]) -> Array2<f64> {
        let k = self.classes;
        let mut out = Array2::<f64>::zeros((x.nrows(), k));
        let mut z = vec![0.0; k];
        for &r in rows {
            self.logits_row(x, r, &mut z);
            let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let s: f64 = z.iter().map(|v| (v - max).exp()).sum();
            for (c, v) in z.iter().enumerate() {
                out[[r, c]] = (v - max).exp() / s;
            }
        }
        out
    }
}

/// The stacker's training problem: features, labels, the rows it fits, the prior weights it
/// is pulled toward and how hard.
struct StackFit<'a> {
    x: &'a Array2<f64>,
    y: &'a [u32],
    rows: &'a [usize],
    w0: &'a [f64],
    l2: f64,
    classes: usize,
}

/// Mean cross-entropy of the stacker on `rows` plus `l2/2 · ‖w − w0‖²`, and its gradient.
fn stack_loss(fit: &StackFit<'_>, theta: &[f64], grad: &mut [f64]) -> f64 {
    let StackFit {
        x,
        y,
        rows,
        w0,
        l2,
        classes: k,
    } = *fit;
    let f = x.ncols();
    let p = StackParams {
        theta: theta.to_vec(),
        features: f,
        classes: k,
    };
    grad.fill(0.0);
    let mut z = vec![0.0; k];
    let mut loss = 0.0;
    let n = rows.len().max(1) as f64;
    for &r in rows {
        p.logits_row(x, r, &mut z);
        let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let s: f64 = z.iter().map(|v| (v - max).exp()).sum();
        let t = y[r] as usize;
        loss += max + s.ln() - z[t];
        for (c, zc) in z.iter_mut().enumerate() {
            *zc = (*zc - max).exp() / s - if c == t { 1.0 } else { 0.0 };
        }
        for a in 0..f {
            let xa = x[[r, a]];
            if xa == 0.0 {
                continue;
            }
            for (g, d) in grad[a * k..(a + 1) * k].iter_mut().zip(&z) {
                *g += xa * d;
            }
        }
        for (g, d) in grad[f * k..].iter_mut().zip(&z) {
            *g += d;
        }
    }
    loss /= n;
    for g in grad.iter_mut() {
        *g /= n;
    }
    for i in 0..f * k {
        let d = theta[i] - w0[i];
        loss += 0.5 * l2 * d * d;
        grad[i] += l2 * d;
    }
    loss
}

/// Fits the stacker on `rows` by L-BFGS, starting from (and shrunk toward) the geometric mean
/// of the groups.
fn fit_stack(
    x: &Array2<f64>,
    y: &[u32],
    rows: &[usize],
    groups: usize,
    k: usize,
    l2: f64,
) -> Stack {
    let f = groups * k;
    let dim = f * k + k;
    let mut w0 = vec![0.0; dim];
    for g in 0..groups {
        for c in 0..k {
            w0[(g * k + c) * k + c] = 1.0 / groups as f64;
        }
    }
    let mut theta = w0.clone();
    let problem = StackFit {
        x,
        y,
        rows,
        w0: &w0,
        l2,
        classes: k,
    };
    let objective = |t: &[f64], g: &mut [f64]| stack_loss(&problem, t, g);
    lbfgs(&mut theta, objective, 200, 10);
    StackParams {
        theta,
        features: f,
        classes: k,
    }
    .into_stack()
}

/// Minimises `objective` (which writes its gradient) from `x` with limited-memory BFGS and a
/// backtracking (Armijo) line search.
fn lbfgs(
    x: &mut [f64],
    mut objective: impl FnMut(&[f64], &mut [f64]) -> f64,
    iterations: usize,
    memory: usize,
) {
    let n = x.len();
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(p, q)| p * q).sum::<f64>();
    let mut g = vec![0.0; n];
    let mut fx = objective(x, &mut g);
    let mut history: VecDeque<(Vec<f64>, Vec<f64>, f64)> = VecDeque::new();
    let mut trial = vec![0.0; n];
    let mut g_new = vec![0.0; n];
    for _ in 0..iterations {
        if g.iter().all(|v| v.abs() < 1e-7) {
            break;
        }
        // Two-loop recursion: d = -H g.
        let mut d: Vec<f64> = g.iter().map(|v| -v).collect();
        let mut alphas = Vec::with_capacity(history.len());
        for (s, yv, rho) in history.iter().rev() {
            let a = rho * dot(s, &d);
            d.iter_mut().zip(yv).for_each(|(di, yi)| *di -= a * yi);
            alphas.push(a);
        }
        if let Some((s, yv, _)) = history.back() {
            let gamma = dot(s, yv) / dot(yv, yv);
            for di in &mut d {
                *di *= gamma;
            }
        } else {
            let norm = dot(&g, &g).sqrt().max(1e-12);
            for di in &mut d {
                *di /= norm;
            }
        }
        for ((s, yv, rho), a) in history.iter().zip(alphas.iter().rev()) {
            let b = rho * dot(yv, &d);
            d.iter_mut().zip(s).for_each(|(di, si)| *di += (a - b) * si);
        }
        let mut slope = dot(&g, &d);
        if slope >= 0.0 {
            // Not a descent direction: restart from the gradient.
            history.clear();
            d = g.iter().map(|v| -v).collect();
            slope = dot(&g, &d);
        }
        let mut step = 1.0;
        let mut accepted = None;
        for _ in 0..30 {
            trial
                .iter_mut()
                .zip(x.iter().zip(&d))
                .for_each(|(t, (xi, di))| *t = xi + step * di);
            let f_trial = objective(&trial, &mut g_new);
            if f_trial.is_finite() && f_trial <= fx + 1e-4 * step * slope {
                accepted = Some(f_trial);
                break;
            }
            step *= 0.5;
        }
        let Some(f_new) = accepted else { break };
        let s: Vec<f64> = trial.iter().zip(x.iter()).map(|(t, xi)| t - xi).collect();
        let yv: Vec<f64> = g_new.iter().zip(&g).map(|(a, b)| a - b).collect();
        let sy = dot(&s, &yv);
        x.copy_from_slice(&trial);
        std::mem::swap(&mut g, &mut g_new);
        let improved = fx - f_new;
        fx = f_new;
        if sy > 1e-12 {
            if history.len() == memory {
                history.pop_front();
            }
            history.push_back((s, yv, 1.0 / sy));
        }
        if improved.abs() < 1e-10 * fx.abs().max(1.0) {
            break;
        }
    }
}

/// Everything the methods share, computed once.
struct Problem<'a> {
    candidates: &'a [ArrayView2<'a, f64>],
    y: &'a [u32],
    q: Vec<Vec<f64>>,
    decided: Vec<Vec<u32>>,
    options: &'a DecisionOptions,
}

impl Problem<'_> {
    /// The best candidate on `rows` (accuracy, log loss breaking ties, lowest index next).
    fn best_single(&self, rows: &[usize]) -> usize {
        let score = |i: usize| {
            let hits = rows
                .iter()
                .filter(|&&r| self.decided[i][r] == self.y[r])
                .count();
            let ll: f64 = rows.iter().map(|&r| nll(self.q[i][r])).sum();
            (hits, ll)
        };
        (0..self.candidates.len())
            .map(|i| (i, score(i)))
            .max_by(|a, b| {
                a.1.0
                    .cmp(&b.1.0)
                    .then(b.1.1.total_cmp(&a.1.1))
                    .then(b.0.cmp(&a.0))
            })
            .map(|(i, _)| i)
            .expect("at least one candidate")
    }

    /// Fits every enabled method on `rows`.
    fn fit(&self, rows: &[usize]) -> Vec<Fitted> {
        let k = self.candidates[0].ncols();
        let o = self.options;
        let mut out = Vec::new();
        let mut bases: Vec<(Method, Fitted)> = Vec::new();
        let single = self.best_single(rows);
        bases.push((
            Method::Single,
            Fitted {
                method: Method::Single,
                members: vec![(single, 1.0)],
                stack: None,
                class_weights: ClassWeights::identity(k),
            },
        ));
        let members = greedy(&self.q, rows, o.rounds);
        if o.greedy {
            bases.push((
                Method::Greedy,
                Fitted {
                    method: Method::Greedy,
                    members: members.clone(),
                    stack: None,
                    class_weights: ClassWeights::identity(k),
                },
            ));
        }
        if o.stack && self.candidates.len() >= 2 {
            let mut idx: Vec<usize> = members.iter().map(|m| m.0).take(o.stack_max).collect();
            if idx.len() < o.stack_min {
                // Pad with the next best candidates by log loss on these rows.
                let mut by_loss: Vec<(usize, f64)> = self
                    .q
                    .iter()
                    .enumerate()
                    .map(|(i, qi)| (i, rows.iter().map(|&r| nll(qi[r])).sum()))
                    .collect();
                by_loss.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
                for (i, _) in by_loss {
                    if idx.len() >= o.stack_min.min(self.candidates.len()) {
                        break;
                    }
                    if !idx.contains(&i) {
                        idx.push(i);
                    }
                }
            }
            let x = log_features(self.candidates, &idx);
            let stack = fit_stack(&x, self.y, rows, idx.len(), k, o.stack_l2);
            let w = 1.0 / idx.len() as f64;
            bases.push((
                Method::Stack,
                Fitted {
                    method: Method::Stack,
                    members: idx.iter().map(|&i| (i, w)).collect(),
                    stack: Some(stack),
                    class_weights: ClassWeights::identity(k),
                },
            ));
        }
        for (base, fitted) in bases {
            if o.biases {
                let proba = fitted.proba(self.candidates);
                let weights = tune_class_weights(proba.view(), self.y, rows, 3);
                let biased = match base {
                    Method::Single => Method::SingleBiased,
                    Method::Greedy => Method::GreedyBiased,
                    _ => Method::StackBiased,
                };
                out.push(Fitted {
                    method: biased,
                    class_weights: weights,
                    ..fitted.clone()
                });
            }
            out.push(fitted);
        }
        out.sort_by_key(|f| Method::ALL.iter().position(|m| *m == f.method));
        out
    }
}

/// Fits every method (see the module docs) on OOF predictions `candidates` (each `[rows,
/// classes]`) with labels `y` and each row's fold `fold_of`, scores each by nested
/// cross-fitting, and fits the champion on every row.
pub fn decide(
    candidates: &[ArrayView2<'_, f64>],
    y: &[u32],
    fold_of: &[usize],
    options: &DecisionOptions,
) -> Result<DecisionReport> {
    let Some(first) = candidates.first() else {
        return Err(PipelineError::NoCandidates);
    };
    let (n, k) = first.dim();
    if y.len() != n || fold_of.len() != n {
        return Err(PipelineError::OofRows {
            rows: n,
            labels: y.len(),
            folds: fold_of.len(),
        });
    }
    if let Some((i, c)) = candidates
        .iter()
        .enumerate()
        .find(|(_, c)| c.dim() != (n, k))
    {
        return Err(PipelineError::CandidateShape {
            index: i,
            shape: c.dim(),
            expected: (n, k),
        });
    }
    if let Some(&bad) = y.iter().find(|&&l| l as usize >= k) {
        return Err(PipelineError::LabelRange {
            label: bad,
            classes: k,
        });
    }
    let n_folds = fold_of.iter().max().map_or(0, |m| m + 1);
    if n_folds < 2 {
        return Err(PipelineError::TooFewFolds { folds: n_folds });
    }
    let plain = ClassWeights::identity(k);
    let problem = Problem {
        candidates,
        y,
        q: true_class(candidates, y),
        decided: candidates.iter().map(|c| plain.decide(*c)).collect(),
        options,
    };
    let all: Vec<usize> = (0..n).collect();
    let best_single = problem.best_single(&all);
    let raw_accuracy = accuracy(&problem.decided[best_single], y, &all);

    // Nested cross-fitting: each method fitted on the other folds, scored on this one.
    let methods: Vec<Method> = Method::ALL
        .into_iter()
        .filter(|m| options.enabled(*m) && (m.base() != Method::Stack || candidates.len() >= 2))
        .collect();
    let mut hits = vec![0usize; methods.len()];
    let mut ll = vec![0.0; methods.len()];
    let mut scored = 0usize;
    for f in 0..n_folds {
        let (fit, test): (Vec<usize>, Vec<usize>) = all.iter().partition(|&&r| fold_of[r] != f);
        if test.is_empty() || fit.is_empty() {
            continue;
        }
        for fitted in problem.fit(&fit) {
            let Some(m) = methods.iter().position(|m| *m == fitted.method) else {
                continue;
            };
            // `proba` already carries the class weights: its argmax is the decision.
            let proba = fitted.proba(candidates);
            let decided = plain.decide(proba.view());
            hits[m] += test.iter().filter(|&&r| decided[r] == y[r]).count();
            ll[m] += log_loss_rows(proba.view(), y, &test) * test.len() as f64;
        }
        scored += test.len();
    }
    let scored_rows = scored.max(1) as f64;
    let methods: Vec<Scored> = methods
        .iter()
        .enumerate()
        .map(|(i, &method)| Scored {
            method,
            accuracy: hits[i] as f64 / scored_rows,
            log_loss: ll[i] / scored_rows,
        })
        .collect();
    let champion = methods
        .iter()
        .reduce(|best, s| {
            if s.accuracy > best.accuracy
                || (s.accuracy == best.accuracy && s.log_loss < best.log_loss)
            {
                s
            } else {
                best
            }
        })
        .expect("the single trial always competes")
        .method;
    let shipped = problem
        .fit(&all)
        .into_iter()
        .find(|f| f.method == champion)
        .expect("every scored method is fitted");
    Ok(DecisionReport {
        candidates: candidates.len(),
        raw_accuracy,
        best_single,
        methods,
        champion,
        shipped,
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

    fn folds(n: usize) -> Vec<usize> {
        (0..n).map(|i| i % 5).collect()
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
        // The biased single trial wins the decision, cross-fitted.
        let r = decide(&[p.view()], &y, &folds(200), &DecisionOptions::default()).unwrap();
        assert_eq!(r.champion, Method::SingleBiased, "{r:?}");
        assert_eq!(r.champion_score().accuracy, 1.0);
        assert!(!r.shipped.class_weights.is_identity());
    }

    #[test]
    fn the_ensemble_prefers_the_better_candidates_and_beats_each() {
        let y: Vec<u32> = (0..1500).map(|i| (i % 3) as u32).collect();
        let good = candidate(&y, 0.6, 1);
        let noisy = candidate(&y, 0.05, 2);
        let other = candidate(&y, 0.6, 3);
        let views = [good.view(), noisy.view(), other.view()];
        let r = decide(&views, &y, &folds(1500), &DecisionOptions::default()).unwrap();
        assert_ne!(r.best_single, 1);
        let greedy = greedy_ensemble(&views, &y, &(0..1500).collect::<Vec<_>>(), 10);
        assert!(
            greedy.iter().all(|(i, _)| *i != 1),
            "noise picked: {greedy:?}"
        );
        assert!((greedy.iter().map(|m| m.1).sum::<f64>() - 1.0).abs() < 1e-12);
        // Two good, independent candidates average to something better than either.
        let single = r.score(Method::Single).unwrap();
        let blend = r.score(Method::Greedy).unwrap();
        assert!(blend.log_loss < single.log_loss, "{r:?}");
        assert!(blend.accuracy > single.accuracy, "{r:?}");
        assert_ne!(r.champion.base(), Method::Single, "{r:?}");
        assert_eq!(r.folds, 5);
        assert_eq!(r.methods.len(), 6);
    }

    #[test]
    fn the_stacker_learns_which_candidate_to_trust_per_class() {
        // Candidate a is sharp on class 0 and useless on the others; b the opposite. A blend
        // cannot weight them per class; the stacker can.
        let mut rng = Rng(11);
        let y: Vec<u32> = (0..1500).map(|_| (rng.next() * 3.0) as u32 % 3).collect();
        let make = |sharp: &dyn Fn(u32) -> bool, seed: u64| {
            let mut rng = Rng(seed);
            let mut p = Array2::<f64>::zeros((y.len(), 3));
            for (r, &t) in y.iter().enumerate() {
                let mut row = [rng.next(), rng.next(), rng.next()];
                if sharp(t) {
                    row[t as usize] += 1.5;
                }
                let s: f64 = row.iter().sum();
                for c in 0..3 {
                    p[[r, c]] = row[c] / s;
                }
            }
            p
        };
        let a = make(&|t| t == 0, 21);
        let b = make(&|t| t != 0, 22);
        let views = [a.view(), b.view()];
        let r = decide(&views, &y, &folds(1500), &DecisionOptions::default()).unwrap();
        let stack = r.score(Method::Stack).unwrap();
        let greedy = r.score(Method::Greedy).unwrap();
        assert!(stack.log_loss < greedy.log_loss - 0.05, "{r:?}");
        assert!(stack.accuracy > greedy.accuracy, "{r:?}");
        assert_eq!(r.champion.base(), Method::Stack, "{r:?}");
        // What ships predicts what was fitted.
        let p = r.shipped.proba(&views);
        let rows: Vec<usize> = (0..1500).collect();
        assert!(accuracy(&ClassWeights::identity(3).decide(p.view()), &y, &rows) > 0.9);
        let s = r.shipped.stack.as_ref().unwrap();
        assert_eq!(s.weights.len(), 2 * 3 * 3);
        assert_eq!(s.bias.len(), 3);
    }

    #[test]
    fn lbfgs_finds_a_quadratic_minimum() {
        let mut x = vec![5.0, -3.0, 1.0];
        let target = [1.0, 2.0, -0.5];
        lbfgs(
            &mut x,
            |t, g| {
                let mut f = 0.0;
                for i in 0..3 {
                    let d = t[i] - target[i];
                    let scale = (i + 1) as f64;
                    f += scale * d * d;
                    g[i] = 2.0 * scale * d;
                }
                f
            },
            100,
            5,
        );
        for i in 0..3 {
            assert!((x[i] - target[i]).abs() < 1e-5, "{x:?}");
        }
    }

    #[test]
    fn leak_canary_shuffled_labels_show_no_gain_over_chance() {
        // Informative candidates for the true labels, then the labels shuffled: every method,
        // cross-fitted, must stay at chance (majority rate 1/3 here) within noise, even
        // though picking the best of many candidates on all rows looks better than chance.
        let n = 1200;
        let truth: Vec<u32> = (0..n).map(|i| (i % 3) as u32).collect();
        let cands: Vec<Array2<f64>> = (0..15)
            .map(|s| candidate(&truth, 0.3 + 0.02 * s as f64, 200 + s))
            .collect();
        let views: Vec<_> = cands.iter().map(|c| c.view()).collect();
        let mut rng = Rng(99);
        let mut y = truth.clone();
        for i in (1..n).rev() {
            let j = (rng.next() * (i + 1) as f64) as usize;
            y.swap(i, j);
        }
        let r = decide(&views, &y, &folds(n), &DecisionOptions::default()).unwrap();
        let se = (1.0f64 / 3.0 * 2.0 / 3.0 / n as f64).sqrt();
        for s in &r.methods {
            assert!(
                s.accuracy < 1.0 / 3.0 + 3.0 * se,
                "{} reports {} on shuffled labels (chance 0.333, se {se:.4})",
                s.method.name(),
                s.accuracy
            );
        }
        assert!(
            r.champion_score().accuracy < r.raw_accuracy + 3.0 * se,
            "{r:?}"
        );
    }

    #[test]
    fn cross_fitting_does_not_reward_fitting_noise() {
        let mut rng = Rng(7);
        let y: Vec<u32> = (0..300).map(|_| (rng.next() * 3.0) as u32 % 3).collect();
        let cands: Vec<Array2<f64>> = (0..20).map(|s| candidate(&y, 0.0, 100 + s)).collect();
        let views: Vec<_> = cands.iter().map(|c| c.view()).collect();
        let r = decide(&views, &y, &folds(300), &DecisionOptions::default()).unwrap();
        assert!(
            r.raw_accuracy > 0.36,
            "best of 20 noise candidates: {}",
            r.raw_accuracy
        );
        // Cross-fitted, every method stays within noise of chance (se ≈ 0.027 here).
        let se = (2.0f64 / 9.0 / 300.0).sqrt();
        for s in &r.methods {
            assert!(
                s.accuracy <= r.raw_accuracy && s.accuracy < 1.0 / 3.0 + 3.0 * se,
                "{} cross-fitted {} vs selected-on-all {}",
                s.method.name(),
                s.accuracy,
                r.raw_accuracy
            );
        }
    }

    #[test]
    fn switched_off_methods_do_not_compete() {
        let y: Vec<u32> = (0..300).map(|i| (i % 3) as u32).collect();
        let a = candidate(&y, 0.6, 1);
        let b = candidate(&y, 0.6, 2);
        let options = DecisionOptions {
            stack: false,
            biases: false,
            ..DecisionOptions::default()
        };
        let r = decide(&[a.view(), b.view()], &y, &folds(300), &options).unwrap();
        let names: Vec<_> = r.methods.iter().map(|s| s.method).collect();
        assert_eq!(names, [Method::Single, Method::Greedy]);
    }

    #[test]
    fn bad_inputs_are_named() {
        let o = DecisionOptions::default();
        let y = [0u32, 1];
        let a = array![[0.6, 0.4], [0.3, 0.7]];
        let b = array![[0.6, 0.4, 0.0], [0.3, 0.7, 0.0]];
        let e = decide(&[], &y, &[0, 1], &o).unwrap_err().to_string();
        assert!(e.contains("at least one candidate"), "{e}");
        let e = decide(&[a.view(), b.view()], &y, &[0, 1], &o)
            .unwrap_err()
            .to_string();
        assert!(e.contains("candidate 1 has shape"), "{e}");
        let e = decide(&[a.view()], &y, &[0, 0], &o)
            .unwrap_err()
            .to_string();
        assert!(e.contains("at least 2 folds"), "{e}");
        let e = decide(&[a.view()], &[0, 5], &[0, 1], &o)
            .unwrap_err()
            .to_string();
        assert!(e.contains("label 5 is out of range"), "{e}");
        let e = decide(&[a.view()], &[0], &[0, 1], &o)
            .unwrap_err()
            .to_string();
        assert!(e.contains("2 rows but there are 1 labels"), "{e}");
    }
}
