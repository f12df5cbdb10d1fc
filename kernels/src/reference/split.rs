//! Split search on integer histograms: the best threshold of each node (leaf-wise and
//! depth-wise trees), the best shared threshold of a level (oblivious trees), and the left sums
//! of a given split.
//!
//! Candidates are ranked by the `f32` structure score in quantized units, `S(L) + S(R)` with
//! `S = T(G)² / (H + λ_q)`; ties keep the first candidate (features in increasing order, bins
//! increasing, missing values right before left). Whether a found split is worth making (gain
//! `> 0` after `γ`) is decided by the caller in `f64` from the exact sums
//! ([`gain_f64`](super::math::gain_f64)).

use super::math::score;
use crate::layout::{
    BinMatrix, LevelResult, LevelTask, NONE, NodeRules, SearchResult, SearchTask, SumQuery,
};

/// The best threshold of one feature of a node.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FeatureBest {
    /// Last bin on the left.
    pub bin: u32,
    /// Missing values go left: the better direction when the node has missing values, else
    /// towards the larger child.
    pub missing_left: bool,
    /// `S(L) + S(R)`.
    pub score: f32,
    /// Sums of the left child.
    pub left: [i32; 3],
}

#[inline]
fn add(a: [i32; 3], b: [i32; 3]) -> [i32; 3] {
    [
        a[0].wrapping_add(b[0]),
        a[1].wrapping_add(b[1]),
        a[2].wrapping_add(b[2]),
    ]
}

#[inline]
fn sub(a: [i32; 3], b: [i32; 3]) -> [i32; 3] {
    [
        a[0].wrapping_sub(b[0]),
        a[1].wrapping_sub(b[1]),
        a[2].wrapping_sub(b[2]),
    ]
}

/// The best threshold of a feature with `n_bins` bins (`bin(b)` gives bin `b`'s sums; bin 0
/// holds missing values) in a node with sums `total`. Thresholds after bins `1..n_bins − 1`
/// (the last bin cannot close the left side), empty bins skipped; each with missing values
/// right, then (when the node has any) left; both children need `min_rows` rows and
/// `min_hess` quantized hessian. `None` when no threshold qualifies.
pub fn scan_feature(
    n_bins: usize,
    bin: impl Fn(usize) -> [i32; 3],
    total: [i32; 3],
    rules: &NodeRules,
) -> Option<FeatureBest> {
    let ok = |s: [i32; 3]| s[2] >= rules.min_rows && s[1] >= rules.min_hess;
    let sc = |s: [i32; 3]| score(s[0], s[1], rules.lambda_q, rules.alpha_q);
    let missing = bin(0);
    let has_missing = missing[2] > 0;
    let (mut best, mut best_bin, mut best_dir, mut best_left) =
        (f32::NEG_INFINITY, 0u32, false, [0i32; 3]);
    let mut left = [0i32; 3];
    for b in 1..n_bins.saturating_sub(1) {
        let x = bin(b);
        if x[2] == 0 {
            continue;
        }
        left = add(left, x);
        let right = sub(total, left);
        // Rows only leave the right side from here on.
        if right[2] < rules.min_rows {
            break;
        }
        if ok(left) && ok(right) {
            let s = sc(left) + sc(right);
            if s > best {
                (best, best_bin, best_dir, best_left) = (s, b as u32, false, left);
            }
        }
        if has_missing {
            let l = add(left, missing);
            let r = sub(total, l);
            if ok(l) && ok(r) {
                let s = sc(l) + sc(r);
                if s > best {
                    (best, best_bin, best_dir, best_left) = (s, b as u32, true, l);
                }
            }
        }
    }
    if best_bin == 0 {
        return None;
    }
    let right = sub(total, best_left);
    Some(FeatureBest {
        bin: best_bin,
        missing_left: if has_missing {
            best_dir
        } else {
            best_left[2] >= right[2]
        },
        score: best,
        left: best_left,
    })
}

/// The best split over `features` (increasing) of a node: the feature whose best threshold
/// scores highest, the first on ties.
pub fn best_of_features(
    features: impl IntoIterator<Item = usize>,
    mut scan: impl FnMut(usize) -> Option<FeatureBest>,
) -> Option<(usize, FeatureBest)> {
    let mut best: Option<(usize, FeatureBest)> = None;
    for f in features {
        if let Some(c) = scan(f)
            && best.is_none_or(|b| c.score > b.1.score)
        {
            best = Some((f, c));
        }
    }
    best
}

/// The sums of bin `b` of feature `f` in histogram slot `slot`.
#[inline]
pub fn hist_bin(hist: &[i32], bins: &BinMatrix, slot: usize, f: usize, b: usize) -> [i32; 3] {
    let i = (slot * bins.total_bins + bins.offsets[f] as usize + b) * 3;
    [hist[i], hist[i + 1], hist[i + 2]]
}

/// Node sums from the node table.
#[inline]
pub fn node_sums(node_stats: &[i32], cap: usize, tree: usize, node: usize) -> [i32; 3] {
    let i = (tree * cap + node) * 3;
    [node_stats[i], node_stats[i + 1], node_stats[i + 2]]
}

/// Kernel `search`: the best split of every task's node over the features of its mask row,
/// with its tree's rules (`rules[tree]`).
pub fn search(
    bins: &BinMatrix,
    cap: usize,
    tasks: &[SearchTask],
    masks: &[u32],
    rules: &[NodeRules],
    node_stats: &[i32],
    hist: &[i32],
) -> Vec<SearchResult> {
    let nf = bins.n_features;
    tasks
        .iter()
        .map(|task| {
            let total = node_sums(node_stats, cap, task.tree as usize, task.node as usize);
            let mask = &masks[task.mask_row as usize * nf..(task.mask_row as usize + 1) * nf];
            let r = &rules[task.tree as usize];
            let slot = task.slot as usize;
            let found = best_of_features((0..nf).filter(|&f| mask[f] != 0), |f| {
                let start = (slot * bins.total_bins + bins.offsets[f] as usize) * 3;
                let cells = &hist[start..start + bins.n_bins[f] as usize * 3];
                scan_feature(
                    bins.n_bins[f] as usize,
                    |b| [cells[3 * b], cells[3 * b + 1], cells[3 * b + 2]],
                    total,
                    r,
                )
            });
            found.map_or(SearchResult::NONE, |(f, c)| SearchResult {
                feature: f as u32,
                bin: c.bin,
                missing_left: c.missing_left,
                score: c.score,
                left: c.left,
            })
        })
        .collect()
}

/// A node's contribution to a level's score for left sums `left`: `S(L) + S(R) − S(P)`, 0 when
/// a side has no rows (the split changes nothing for this node).
#[inline]
pub fn level_contribution(parent: [i32; 3], left: [i32; 3], rules: &NodeRules) -> f32 {
    let right = sub(parent, left);
    if left[2] > 0 && right[2] > 0 {
        let sc = |s: [i32; 3]| score(s[0], s[1], rules.lambda_q, rules.alpha_q);
        (sc(left) + sc(right)) - sc(parent)
    } else {
        0.0
    }
}

/// The per-threshold level scores of one feature with `n_bins` bins over a level's nodes
/// (`totals[j]`: node `j`'s sums, `bin(j, b)`: its bin `b`): `(scores[b] = [missing right,
/// missing left], any node has missing values)`, summed over the nodes in order, for `b` in
/// `1..n_bins − 1` (index 0 unused).
pub fn level_scores(
    n_bins: usize,
    totals: &[[i32; 3]],
    bin: impl Fn(usize, usize) -> [i32; 3],
    rules: &NodeRules,
) -> (Vec<[f32; 2]>, bool) {
    let mut scores = vec![[0.0f32; 2]; n_bins];
    let mut any_missing = false;
    for (j, parent) in totals.iter().enumerate() {
        let missing = bin(j, 0);
        any_missing |= missing[2] > 0;
        let mut left = [0i32; 3];
        for (b, s) in scores
            .iter_mut()
            .enumerate()
            .take(n_bins.saturating_sub(1))
            .skip(1)
        {
            left = add(left, bin(j, b));
            let without = level_contribution(*parent, left, rules);
            let with = if missing[2] > 0 {
                level_contribution(*parent, add(left, missing), rules)
            } else {
                without
            };
            s[0] += without;
            s[1] += with;
        }
    }
    (scores, any_missing)
}

/// The best candidate of one feature's level scores: `(bin, missing left, score)`, bins
/// increasing, missing right before left (left only when some node has missing values).
pub fn best_level_candidate(scores: &[[f32; 2]], any_missing: bool) -> Option<(u32, bool, f32)> {
    let mut best: Option<(u32, bool, f32)> = None;
    for (b, s) in scores
        .iter()
        .enumerate()
        .take(scores.len().saturating_sub(1))
        .skip(1)
    {
        for dir in [false, true] {
            if dir && !any_missing {
                continue;
            }
            let v = s[usize::from(dir)];
            if best.is_none_or(|x| v > x.2) {
                best = Some((b as u32, dir, v));
            }
        }
    }
    best
}

/// Kernel `level_search`: the best shared split of every task's level (`level[2i..2i + 2] =
/// [node, slot]` for the task's nodes), over the features of its mask row that have at least
/// two value bins.
pub fn level_search(
    bins: &BinMatrix,
    cap: usize,
    tasks: &[LevelTask],
    level: &[u32],
    masks: &[u32],
    rules: &[NodeRules],
    node_stats: &[i32],
    hist: &[i32],
) -> Vec<LevelResult> {
    let nf = bins.n_features;
    tasks
        .iter()
        .map(|task| {
            let r = &rules[task.tree as usize];
            let mask = &masks[task.mask_row as usize * nf..(task.mask_row as usize + 1) * nf];
            let pairs = &level[task.first as usize * 2..(task.first + task.count) as usize * 2];
            let mut best = LevelResult {
                feature: NONE,
                bin: 0,
                missing_dir: false,
                any_missing: false,
                score: 0.0,
            };
            for f in (0..nf).filter(|&f| mask[f] != 0) {
                let nb = bins.n_bins[f] as usize;
                if nb < 3 {
                    continue;
                }
                let totals: Vec<[i32; 3]> = pairs
                    .chunks_exact(2)
                    .map(|p| node_sums(node_stats, cap, task.tree as usize, p[0] as usize))
                    .collect();
                let (scores, any_missing) = level_scores(
                    nb,
                    &totals,
                    |j, b| hist_bin(hist, bins, pairs[2 * j + 1] as usize, f, b),
                    r,
                );
                if let Some((b, dir, s)) = best_level_candidate(&scores, any_missing)
                    && (best.feature == NONE || s > best.score)
                {
                    best = LevelResult {
                        feature: f as u32,
                        bin: b,
                        missing_dir: dir,
                        any_missing,
                        score: s,
                    };
                }
            }
            best
        })
        .collect()
}

/// Kernel `split_sums`: the left sums of each query's split (bins `1..=bin`, plus bin 0 when
/// missing values go left).
pub fn split_sums(bins: &BinMatrix, queries: &[SumQuery], hist: &[i32]) -> Vec<[i32; 3]> {
    queries
        .iter()
        .map(|q| {
            let (slot, f) = (q.slot as usize, q.feature as usize);
            let mut left = if q.missing_left {
                hist_bin(hist, bins, slot, f, 0)
            } else {
                [0; 3]
            };
            for b in 1..=q.bin as usize {
                left = add(left, hist_bin(hist, bins, slot, f, b));
            }
            left
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> NodeRules {
        NodeRules {
            lambda_q: 0.0,
            alpha_q: 0.0,
            min_hess: 1,
            min_rows: 1,
        }
    }

    #[test]
    fn the_split_found_by_hand() {
        // As the float engine's test: bins g = [0, −4, −1, 6], h = n = [0, 2, 1, 3]; the best
        // threshold is after bin 2 (scores 25/3 + 36/3).
        let b = [[0, 0, 0], [-4, 2, 2], [-1, 1, 1], [6, 3, 3]];
        let total = [1, 6, 6];
        let s = scan_feature(4, |i| b[i], total, &rules()).expect("a split");
        assert_eq!((s.bin, s.left), (2, [-5, 3, 3]));
        assert_eq!(s.score, 25.0f32 / 3.0 + 12.0);
        assert!(
            s.missing_left,
            "no missing values: the larger child (tie: left)"
        );
        let strict = NodeRules {
            min_rows: 4,
            ..rules()
        };
        assert!(scan_feature(4, |i| b[i], total, &strict).is_none());
    }

    #[test]
    fn missing_values_go_where_they_help() {
        let b = [[-5, 1, 1], [-4, 1, 1], [6, 1, 1]];
        let s = scan_feature(3, |i| b[i], [-3, 3, 3], &rules()).expect("a split");
        assert!(s.missing_left);
        assert_eq!(s.left, [-9, 2, 2]);
        let b = [[7, 1, 1], [-4, 1, 1], [6, 1, 1]];
        let s = scan_feature(3, |i| b[i], [9, 3, 3], &rules()).expect("a split");
        assert!(!s.missing_left);
    }

    #[test]
    fn ties_keep_the_first_feature() {
        let b = [[0, 0, 0], [-2, 1, 1], [2, 1, 1]];
        let scan = |_f: usize| scan_feature(3, |i| b[i], [0, 2, 2], &rules());
        assert_eq!(best_of_features([1, 3, 4], scan).expect("found").0, 1);
    }

    #[test]
    fn level_scores_sum_the_nodes_and_skip_one_sided_ones() {
        // Two nodes; node B has all its rows in bin 1 (a split changes nothing there).
        let a = [[0, 0, 0], [-2, 1, 1], [2, 1, 1], [0, 0, 0]];
        let bb = [[0, 0, 0], [3, 2, 2], [0, 0, 0], [0, 0, 0]];
        let hists = [a, bb];
        let (scores, any_missing) =
            level_scores(4, &[[0, 2, 2], [3, 2, 2]], |j, b| hists[j][b], &rules());
        assert!(!any_missing);
        // Node A after bin 1: 4 + 4 − 0; node B: one-sided, 0.
        assert_eq!(scores[1], [8.0, 8.0]);
        assert_eq!(scores[2], [0.0, 0.0]);
        assert_eq!(best_level_candidate(&scores, false), Some((1, false, 8.0)));
    }
}
