//! Growing one classification tree, depth first, on integer class-count histograms (the
//! smaller child's histogram is built, the larger child's is the parent's minus it).
//!
//! Splits are chosen exactly as the batched fit chooses them on a device
//! ([`tabtune_kernels::reference::forest`]: the same integer counts, the same `f32` score, the
//! same tie-breaking), and each node's feature draw depends only on its tree and its path from
//! the root ([`child_key`]), not on the order nodes are grown in: growing depth first here or
//! level by level in a batch gives the same tree.

use tabtune_features::rng::SplitMix64;
use tabtune_kernels::layout::ClassRules;
use tabtune_kernels::reference::forest::{left_counts, scan_feature};

use super::model::{ClassNode, ClassTree};
use super::params::Criterion;
use crate::gbdt::{BinMapper, Binned, partition};

/// The key of a tree's root node (`tree_seed`: the tree's seed).
pub fn root_key(tree_seed: u64) -> u64 {
    SplitMix64::new(tree_seed ^ 0x243F_6A88_85A3_08D3).next_u64()
}

/// The key of a child of the node with key `parent`.
pub fn child_key(parent: u64, left: bool) -> u64 {
    let side: u64 = if left {
        0x9E37_79B9_7F4A_7C15
    } else {
        0xC2B2_AE3D_27D4_EB4F
    };
    SplitMix64::new(parent ^ side).next_u64()
}

/// The features tried at the node with key `key`: `k` of `n` drawn from the key (all of them,
/// in order, when `k ≥ n`), increasing.
pub fn node_features(key: u64, n: usize, k: usize) -> Vec<usize> {
    let mut features: Vec<usize> = (0..n).collect();
    if k < n {
        SplitMix64::new(key).shuffle(&mut features);
        features.truncate(k);
        features.sort_unstable();
    }
    features
}

/// What one tree is grown with.
pub struct TreeSettings {
    /// Impurity.
    pub criterion: Criterion,
    /// Depth limit; 0 = none.
    pub max_depth: usize,
    /// Minimum (weighted) rows to split.
    pub min_samples_split: f64,
    /// Minimum (weighted) rows per leaf.
    pub min_samples_leaf: f64,
    /// Features tried per split.
    pub features_per_split: usize,
}

/// Offsets of each feature's bins in a flat histogram (in bins, not counts).
pub struct Offsets {
    /// Start of feature `f`.
    pub start: Vec<usize>,
    /// Total bins.
    pub total: usize,
}

impl Offsets {
    /// Offsets of a binned matrix.
    pub fn new(binned: &Binned) -> Self {
        let mut start = Vec::with_capacity(binned.n_bins.len());
        let mut total = 0;
        for &n in &binned.n_bins {
            start.push(total);
            total += n;
        }
        Self { start, total }
    }
}

/// `n · impurity` of class counts summing to `n`: for Gini `n − Σc²/n`, for entropy
/// `n ln n − Σ c ln c` (both 0 for a pure node).
pub fn weighted_impurity(criterion: Criterion, counts: &[f64]) -> f64 {
    let n: f64 = counts.iter().sum();
    if n <= 0.0 {
        return 0.0;
    }
    match criterion {
        Criterion::Gini => n - counts.iter().map(|c| c * c).sum::<f64>() / n,
        Criterion::Entropy => {
            n * n.ln()
                - counts
                    .iter()
                    .filter(|&&c| c > 0.0)
                    .map(|c| c * c.ln())
                    .sum::<f64>()
        }
    }
}

/// Impurity decrease of splitting `counts` into `left` and the rest, in `f64` from the exact
/// counts (what decides whether a found split is made, and what importance adds up).
pub fn decrease(criterion: Criterion, counts: &[i32], left: &[i32]) -> f64 {
    let parent: Vec<f64> = counts.iter().map(|&c| f64::from(c)).collect();
    let l: Vec<f64> = left.iter().map(|&c| f64::from(c)).collect();
    let r: Vec<f64> = counts
        .iter()
        .zip(left)
        .map(|(&a, &b)| f64::from(a - b))
        .collect();
    weighted_impurity(criterion, &parent)
        - weighted_impurity(criterion, &l)
        - weighted_impurity(criterion, &r)
}

/// Whether a node with `counts` at `depth` may be split at all.
pub fn splittable(settings: &TreeSettings, counts: &[i32], depth: usize) -> bool {
    let n: i32 = counts.iter().sum();
    let pure = counts.iter().filter(|&&c| c > 0).count() <= 1;
    let depth_ok = settings.max_depth == 0 || depth < settings.max_depth;
    !pure
        && depth_ok
        && f64::from(n) >= settings.min_samples_split
        && f64::from(n) >= 2.0 * settings.min_samples_leaf
}

/// The split rules of the kernels for `settings`.
pub fn rules(settings: &TreeSettings) -> ClassRules {
    ClassRules {
        min_leaf: settings.min_samples_leaf as i32,
        entropy: settings.criterion == Criterion::Entropy,
    }
}

struct Pending {
    node: usize,
    start: usize,
    end: usize,
    depth: usize,
    key: u64,
    counts: Vec<i32>,
    hist: Option<Vec<i32>>,
}

struct Best {
    feature: usize,
    bin: usize,
    missing_left: bool,
    decrease: f64,
    left: Vec<i32>,
}

/// Grows one tree on `rows` (each drawn `weight[row]` times, reordered in place); `key` is
/// the root's key ([`root_key`]) and `table` the entropy table
/// ([`xlogx_table`](tabtune_kernels::reference::forest::xlogx_table)) of at least the tree's
/// weighted rows.
#[allow(clippy::too_many_arguments)]
pub fn grow(
    settings: &TreeSettings,
    binned: &Binned,
    mappers: &[BinMapper],
    offsets: &Offsets,
    labels: &[u32],
    weight: &[i32],
    n_classes: usize,
    rows: &mut [u32],
    key: u64,
    table: &[f32],
) -> ClassTree {
    let k = n_classes;
    let mut counts = vec![0i32; k];
    for &r in rows.iter() {
        counts[labels[r as usize] as usize] += weight[r as usize];
    }
    let mut tree = ClassTree {
        nodes: vec![leaf(&counts)],
    };
    let mut stack = vec![Pending {
        node: 0,
        start: 0,
        end: rows.len(),
        depth: 0,
        key,
        counts,
        hist: None,
    }];
    let n_features = binned.n_features();
    let mut scratch = Vec::new();
    // With feature sampling (forests), only the sampled features' histograms are built, straight
    // from the columns: a few features per node cost less than all of them with subtraction.
    let sampled = settings.features_per_split < n_features;
    let mut direct = if sampled {
        vec![0i32; offsets.total * k]
    } else {
        Vec::new()
    };
    let rules = rules(settings);
    while let Some(mut p) = stack.pop() {
        if !splittable(settings, &p.counts, p.depth) {
            continue;
        }
        let features = node_features(p.key, n_features, settings.features_per_split);
        if sampled {
            let rows = &rows[p.start..p.end];
            build_columns(
                binned,
                offsets,
                labels,
                weight,
                k,
                rows,
                &features,
                &mut direct,
            );
        }
        let hist = if sampled {
            None
        } else {
            Some(match p.hist.take() {
                Some(h) => h,
                None => build(
                    binned,
                    offsets,
                    labels,
                    weight,
                    k,
                    &rows[p.start..p.end],
                    &p.counts,
                ),
            })
        };
        let view = hist.as_deref().unwrap_or(&direct);
        let Some(best) = best_split(
            settings, rules, table, binned, offsets, view, &p.counts, k, &features,
        ) else {
            continue;
        };
        let column = binned.column(best.feature);
        let n_left = partition(
            &mut rows[p.start..p.end],
            &mut scratch,
            column,
            |b| b <= best.bin,
            best.missing_left,
        );
        let mid = p.start + n_left;
        let right: Vec<i32> = p
            .counts
            .iter()
            .zip(&best.left)
            .map(|(a, b)| a - b)
            .collect();
        let left_node = tree.nodes.len();
        tree.nodes.push(leaf(&best.left));
        tree.nodes.push(leaf(&right));
        tree.nodes[p.node] = ClassNode::Split {
            feature: best.feature as u32,
            threshold: mappers[best.feature].threshold(best.bin),
            bin: best.bin as u8,
            missing_left: best.missing_left,
            left: left_node as u32,
            right: left_node as u32 + 1,
            decrease: best.decrease as f32,
        };
        let mut l = Pending {
            node: left_node,
            start: p.start,
            end: mid,
            depth: p.depth + 1,
            key: child_key(p.key, true),
            counts: best.left,
            hist: None,
        };
        let mut r = Pending {
            node: left_node + 1,
            start: mid,
            end: p.end,
            depth: p.depth + 1,
            key: child_key(p.key, false),
            counts: right,
            hist: None,
        };
        if let Some(mut large_hist) = hist {
            // The smaller child's histogram is built; the larger one's is the parent's minus it.
            let (small, large) = if l.end - l.start <= r.end - r.start {
                (&mut l, &mut r)
            } else {
                (&mut r, &mut l)
            };
            let small_rows = &rows[small.start..small.end];
            let small_hist = build(
                binned,
                offsets,
                labels,
                weight,
                k,
                small_rows,
                &small.counts,
            );
            for (a, b) in large_hist.iter_mut().zip(&small_hist) {
                *a -= b;
            }
            small.hist = Some(small_hist);
            large.hist = Some(large_hist);
        }
        stack.push(r);
        stack.push(l);
    }
    tree
}

/// A leaf holding the class shares of `counts`.
pub fn leaf(counts: &[i32]) -> ClassNode {
    let n: f64 = counts.iter().map(|&c| f64::from(c)).sum();
    ClassNode::Leaf {
        proba: counts
            .iter()
            .map(|&c| {
                if n > 0.0 {
                    (f64::from(c) / n) as f32
                } else {
                    0.0
                }
            })
            .collect(),
    }
}

/// Class counts per bin, `hist[(offset + bin) * k + class]`, with each feature's default bin
/// filled in from the node's class counts.
fn build(
    binned: &Binned,
    offsets: &Offsets,
    labels: &[u32],
    weight: &[i32],
    k: usize,
    rows: &[u32],
    counts: &[i32],
) -> Vec<i32> {
    let mut hist = vec![0i32; offsets.total * k];
    for &r in rows {
        let (y, w) = (labels[r as usize] as usize, weight[r as usize]);
        let (start, end) = (
            binned.row_start[r as usize] as usize,
            binned.row_start[r as usize + 1] as usize,
        );
        for &slot in &binned.slots[start..end] {
            hist[usize::from(slot) * k + y] += w;
        }
    }
    for (f, default) in binned.default_bin.iter().enumerate() {
        if let Some(d) = default {
            let off = offsets.start[f];
            for c in 0..k {
                let others: i32 = (0..binned.n_bins[f])
                    .filter(|&b| b != usize::from(*d))
                    .map(|b| hist[(off + b) * k + c])
                    .sum();
                hist[(off + usize::from(*d)) * k + c] = counts[c] - others;
            }
        }
    }
    hist
}

/// Class counts per bin for `features` only, read from the columns into `out` (whose other
/// features' regions are left as they are).
#[allow(clippy::too_many_arguments)]
fn build_columns(
    binned: &Binned,
    offsets: &Offsets,
    labels: &[u32],
    weight: &[i32],
    k: usize,
    rows: &[u32],
    features: &[usize],
    out: &mut [i32],
) {
    for &f in features {
        let region = &mut out[offsets.start[f] * k..(offsets.start[f] + binned.n_bins[f]) * k];
        region.fill(0);
        let column = binned.column(f);
        for &r in rows {
            region[usize::from(column[r as usize]) * k + labels[r as usize] as usize] +=
                weight[r as usize];
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn best_split(
    settings: &TreeSettings,
    rules: ClassRules,
    table: &[f32],
    binned: &Binned,
    offsets: &Offsets,
    hist: &[i32],
    counts: &[i32],
    k: usize,
    features: &[usize],
) -> Option<Best> {
    let mut left = vec![0i32; k];
    let region = |f: usize| &hist[offsets.start[f] * k..(offsets.start[f] + binned.n_bins[f]) * k];
    let mut best: Option<(usize, tabtune_kernels::reference::forest::ClassBest)> = None;
    for &f in features {
        let found = scan_feature(
            binned.n_bins[f],
            region(f),
            counts,
            &rules,
            table,
            &mut left,
        );
        if let Some(c) = found
            && best.is_none_or(|(_, b)| c.score > b.score)
        {
            best = Some((f, c));
        }
    }
    let (f, c) = best?;
    let left = left_counts(region(f), k, c.bin, c.missing_left);
    let decrease = decrease(settings.criterion, counts, &left);
    (decrease > 1e-12).then_some(Best {
        feature: f,
        bin: c.bin as usize,
        missing_left: c.missing_left,
        decrease,
        left,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn impurities_by_hand() {
        // Gini of (3, 1): 1 − (9 + 1)/16 = 0.375; times n = 1.5.
        assert!((weighted_impurity(Criterion::Gini, &[3.0, 1.0]) - 1.5).abs() < 1e-12);
        // Entropy of (2, 2): ln 2; times n = 4 ln 2.
        assert!(
            (weighted_impurity(Criterion::Entropy, &[2.0, 2.0]) - 4.0 * 2f64.ln()).abs() < 1e-12
        );
        assert_eq!(weighted_impurity(Criterion::Gini, &[5.0, 0.0]), 0.0);
    }
}
