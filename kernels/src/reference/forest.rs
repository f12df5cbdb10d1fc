//! Classification trees (decision trees, random forests) on integer class-count histograms:
//! building, split search by Gini or entropy, moving rows to children.
//!
//! A slot holds `total_bins` bins of `n_classes` counts (`i32`): bin `b` of feature `f` of slot
//! `s` is `hist[((s · total_bins + offsets[f] + b) · n_classes + class)]`. A bootstrapped row is
//! an entry per draw, so counts are the bootstrap-weighted class counts, exact and order-free.
//!
//! A split is ranked by `Q(L) + Q(R)` in `f32`, where for Gini `Q(S) = Σ_c n_c² / n` and for
//! entropy `Q(S) = Σ_c t(n_c) − t(n)` with `t(c) = c ln c` from a table built on the host
//! ([`xlogx_table`]); maximising it minimises the children's weighted impurity. Each side's sum
//! runs over the classes in order, then the two sides are added: the device does exactly these
//! operations (no product feeds a sum directly, so no fused multiply-add changes a result). Ties
//! keep the first candidate (features increasing, bins increasing, missing values right before
//! left). Whether the best split is worth making (impurity decrease `> 1e-12`) is decided by the
//! caller in `f64` from the exact counts.

use crate::layout::{
    BinMatrix, CLASS_RESULT_HEAD, ClassProblem, ClassResult, ClassRules, NONE, SearchTask,
    unpack_split,
};

use super::tree::goes_left;

/// `t(c) = c ln c` for `c` in `0..=max_count` (`t(0) = 0`), rounded to `f32`.
pub fn xlogx_table(max_count: usize) -> Vec<f32> {
    (0..=max_count)
        .map(|c| {
            let c = c as f64;
            if c > 0.0 { (c * c.ln()) as f32 } else { 0.0 }
        })
        .collect()
}

/// `Q(L) + Q(R)` of a split with left counts `left(c)` (`n_left` rows) of a node with counts
/// `total` (`n` rows).
pub fn split_score(
    left: impl Fn(usize) -> i32,
    total: &[i32],
    n_left: i32,
    n: i32,
    entropy: bool,
    table: &[f32],
) -> f32 {
    let (mut sl, mut sr) = (0.0f32, 0.0f32);
    let n_right = n - n_left;
    for (c, &t) in total.iter().enumerate() {
        let lc = left(c);
        let rc = t - lc;
        if entropy {
            sl += table[lc as usize];
            sr += table[rc as usize];
        } else {
            let (a, b) = (lc as f32, rc as f32);
            sl += a * a / n_left as f32;
            sr += b * b / n_right as f32;
        }
    }
    if entropy {
        sl -= table[n_left as usize];
        sr -= table[n_right as usize];
    }
    sl + sr
}

/// The best threshold of one feature.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClassBest {
    /// Last bin on the left.
    pub bin: u32,
    /// Missing values go left (towards the larger child when the node has none).
    pub missing_left: bool,
    /// `Q(L) + Q(R)`.
    pub score: f32,
}

/// The best threshold of a feature whose bins are `feature_hist` (`n_bins · k` counts, bin 0 =
/// missing values) in a node with class counts `total`: thresholds after bins `1..n_bins − 1`,
/// empty bins skipped, missing values right then (when any) left, both children with at least
/// `min_leaf` rows. `left` is scratch of `k` counts.
pub fn scan_feature(
    n_bins: usize,
    feature_hist: &[i32],
    total: &[i32],
    rules: &ClassRules,
    table: &[f32],
    left: &mut [i32],
) -> Option<ClassBest> {
    let k = total.len();
    let n: i32 = total.iter().sum();
    let missing = &feature_hist[..k];
    let n_missing: i32 = missing.iter().sum();
    left.fill(0);
    let mut n_left = 0i32;
    let mut best: Option<(ClassBest, i32)> = None;
    let mut b = 1usize;
    while b + 1 < n_bins {
        let x = &feature_hist[b * k..(b + 1) * k];
        let nx: i32 = x.iter().sum();
        if nx != 0 {
            for (l, &c) in left.iter_mut().zip(x) {
                *l += c;
            }
            n_left += nx;
            if n - n_left < rules.min_leaf {
                break;
            }
            if n_left >= rules.min_leaf {
                let s = split_score(|c| left[c], total, n_left, n, rules.entropy, table);
                if best.is_none_or(|(bb, _)| s > bb.score) {
                    let cand = ClassBest {
                        bin: b as u32,
                        missing_left: false,
                        score: s,
                    };
                    best = Some((cand, n_left));
                }
            }
            if n_missing > 0 {
                let al = n_left + n_missing;
                if al >= rules.min_leaf && n - al >= rules.min_leaf {
                    let s =
                        split_score(|c| left[c] + missing[c], total, al, n, rules.entropy, table);
                    if best.is_none_or(|(bb, _)| s > bb.score) {
                        let cand = ClassBest {
                            bin: b as u32,
                            missing_left: true,
                            score: s,
                        };
                        best = Some((cand, al));
                    }
                }
            }
        }
        b += 1;
    }
    best.map(|(mut c, nl)| {
        if n_missing == 0 {
            c.missing_left = nl >= n - nl;
        }
        c
    })
}

/// The left counts of split `(bin, missing_left)` of a feature's bins.
pub fn left_counts(feature_hist: &[i32], k: usize, bin: u32, missing_left: bool) -> Vec<i32> {
    (0..k)
        .map(|c| {
            let mut s: i32 = (1..=bin as usize).map(|b| feature_hist[b * k + c]).sum();
            if missing_left {
                s += feature_hist[c];
            }
            s
        })
        .collect()
}

/// Kernel `class_histograms`: adds every entry whose node has a slot (`build_slot[tree · cap +
/// node]`) to its class's count in the bins of its row, for the features of the slot's mask
/// (`masks[slot · n_features + f]` ≠ 0).
pub fn histograms(
    p: &ClassProblem,
    bins: &BinMatrix,
    node_of: &[u32],
    build_slot: &[u32],
    masks: &[u32],
    hist: &mut [i32],
) {
    let (k, nf) = (p.n_classes, bins.n_features);
    for (e, &node) in node_of.iter().enumerate() {
        let at = p.tree_of[e] as usize * p.cap + node as usize;
        let slot = build_slot[at];
        if slot == NONE {
            continue;
        }
        let row = p.row_of[e] as usize;
        let y = p.labels[row] as usize;
        let base = slot as usize * bins.total_bins;
        for f in 0..nf {
            if masks[slot as usize * nf + f] == 0 {
                continue;
            }
            let i = (base + (bins.offsets[f] + bins.bin(row, f)) as usize) * k + y;
            hist[i] = hist[i].wrapping_add(1);
        }
    }
}

/// Kernel `class_search`: per task (`node` unused: its counts are `counts[task · k..]`), the
/// best split over the features of its mask row, as [`ClassResult`]s.
pub fn search(
    p: &ClassProblem,
    bins: &BinMatrix,
    tasks: &[SearchTask],
    masks: &[u32],
    counts: &[i32],
    rules: &[ClassRules],
    table: &[f32],
    hist: &[i32],
) -> Vec<ClassResult> {
    let (k, nf) = (p.n_classes, bins.n_features);
    let mut left = vec![0i32; k];
    tasks
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let total = &counts[i * k..(i + 1) * k];
            let r = &rules[t.tree as usize];
            let region = |f: usize| {
                let start = (t.slot as usize * bins.total_bins + bins.offsets[f] as usize) * k;
                &hist[start..start + bins.n_bins[f] as usize * k]
            };
            let mut best: Option<(usize, ClassBest)> = None;
            for f in 0..nf {
                if masks[t.mask_row as usize * nf + f] == 0 {
                    continue;
                }
                let found = scan_feature(
                    bins.n_bins[f] as usize,
                    region(f),
                    total,
                    r,
                    table,
                    &mut left,
                );
                if let Some(c) = found
                    && best.is_none_or(|(_, b)| c.score > b.score)
                {
                    best = Some((f, c));
                }
            }
            match best {
                None => ClassResult {
                    feature: NONE,
                    bin: 0,
                    missing_left: false,
                    score: 0.0,
                    left: vec![0; k],
                },
                Some((f, c)) => ClassResult {
                    feature: f as u32,
                    bin: c.bin,
                    missing_left: c.missing_left,
                    score: c.score,
                    left: left_counts(region(f), k, c.bin, c.missing_left),
                },
            }
        })
        .collect()
}

/// Words of results as the device writes them (`CLASS_RESULT_HEAD + k` per task).
pub fn result_words(results: &[ClassResult]) -> Vec<u32> {
    let mut out = Vec::with_capacity(results.len() * (CLASS_RESULT_HEAD + 8));
    for r in results {
        out.extend([
            r.feature,
            r.bin,
            u32::from(r.missing_left),
            r.score.to_bits(),
        ]);
        out.extend(r.left.iter().map(|&c| c as u32));
    }
    out
}

/// Kernel `class_apply`: records `[tree, node, packed split, left child]` into the split table
/// (two words per node, as for boosting).
pub fn apply(cap: usize, records: &[[u32; 4]], splits: &mut [u32]) {
    for r in records {
        let at = r[0] as usize * cap + r[1] as usize;
        splits[2 * at] = r[2];
        splits[2 * at + 1] = r[3];
    }
}

/// Kernel `class_partition`: every entry whose node has been split moves to the child its
/// row's bin picks.
pub fn partition(p: &ClassProblem, bins: &BinMatrix, splits: &[u32], node_of: &mut [u32]) {
    for (e, node) in node_of.iter_mut().enumerate() {
        let at = p.tree_of[e] as usize * p.cap + *node as usize;
        if let Some((f, bin, missing_left)) = unpack_split(splits[2 * at]) {
            let left = splits[2 * at + 1];
            let b = bins.bin(p.row_of[e] as usize, f as usize);
            *node = if goes_left(b, bin, missing_left) {
                left
            } else {
                left + 1
            };
        }
    }
}

/// Kernel `set_build_slots` for classification trees: `build_slot[tree · cap + node] = slot`
/// per triple.
pub fn set_build_slots(cap: usize, triples: &[[u32; 3]], build_slot: &mut [u32]) {
    for t in triples {
        build_slot[t[0] as usize * cap + t[1] as usize] = t[2];
    }
}

/// Kernel `zero_slots` for classification histograms (`width = total_bins · n_classes`).
pub fn zero_slots(slots: &[u32], width: usize, hist: &mut [i32]) {
    for &s in slots {
        hist[s as usize * width..(s as usize + 1) * width].fill(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_by_hand() {
        let table = xlogx_table(8);
        // Gini: left (3, 1), right (0, 4): 10/4 + 16/4 = 6.5.
        let s = split_score(|c| [3, 1][c], &[3, 5], 4, 8, false, &table);
        assert_eq!(s, 6.5);
        // Entropy of a pure split is the best possible: Q = 0 on both sides.
        let s = split_score(|c| [4, 0][c], &[4, 4], 4, 8, true, &table);
        assert!(s.abs() < 1e-6, "{s}");
    }

    #[test]
    fn scan_finds_the_separating_threshold() {
        // Feature of 4 bins (0 = missing): bin 1 all class 0, bin 2 all class 1, bin 3 empty.
        let k = 2;
        let hist = [0, 0, 5, 0, 0, 5, 0, 0];
        let rules = ClassRules {
            min_leaf: 1,
            entropy: false,
        };
        let mut left = vec![0; k];
        let best = scan_feature(4, &hist, &[5, 5], &rules, &xlogx_table(10), &mut left).unwrap();
        assert_eq!((best.bin, best.missing_left), (1, true));
        assert_eq!(left_counts(&hist, k, best.bin, false), vec![5, 0]);
        // A leaf minimum of 6 leaves no threshold.
        let strict = ClassRules {
            min_leaf: 6,
            entropy: false,
        };
        assert!(scan_feature(4, &hist, &[5, 5], &strict, &xlogx_table(10), &mut left).is_none());
    }
}
