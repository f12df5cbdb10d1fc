//! Growing one classification tree, depth first, on class-count histograms (the smaller
//! child's histogram is built, the larger child's is the parent's minus it).

use tabtune_features::rng::SplitMix64;

use super::model::{ClassNode, ClassTree};
use super::params::Criterion;
use crate::gbdt::{BinMapper, Binned, partition};

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

struct Pending {
    node: usize,
    start: usize,
    end: usize,
    depth: usize,
    counts: Vec<f64>,
    hist: Option<Vec<f64>>,
}

struct Best {
    feature: usize,
    bin: usize,
    missing_left: bool,
    decrease: f64,
    left: Vec<f64>,
}

/// Grows one tree on `rows` (each with weight `weight[row]`, reordered in place).
#[allow(clippy::too_many_arguments)]
pub fn grow(
    settings: &TreeSettings,
    binned: &Binned,
    mappers: &[BinMapper],
    offsets: &Offsets,
    labels: &[u32],
    weight: &[f64],
    n_classes: usize,
    rows: &mut [u32],
    rng: &mut SplitMix64,
) -> ClassTree {
    let k = n_classes;
    let mut counts = vec![0.0; k];
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
        counts,
        hist: None,
    }];
    let all: Vec<usize> = (0..binned.n_features()).collect();
    let mut scratch = Vec::new();
    // With feature sampling (forests), only the sampled features' histograms are built, straight
    // from the columns: a few features per node cost less than all of them with subtraction.
    let sampled = settings.features_per_split < all.len();
    let mut direct = if sampled {
        vec![0.0; offsets.total * k]
    } else {
        Vec::new()
    };
    while let Some(mut p) = stack.pop() {
        let n: f64 = p.counts.iter().sum();
        let pure = p.counts.iter().filter(|&&c| c > 0.0).count() <= 1;
        let depth_ok = settings.max_depth == 0 || p.depth < settings.max_depth;
        if pure
            || !depth_ok
            || n < settings.min_samples_split
            || n < 2.0 * settings.min_samples_leaf
        {
            continue;
        }
        let mut features = all.clone();
        if sampled {
            rng.shuffle(&mut features);
            features.truncate(settings.features_per_split);
            features.sort_unstable();
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
        let Some(best) = best_split(settings, binned, offsets, view, &p.counts, k, &features)
        else {
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
        let right: Vec<f64> = p
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
            counts: best.left,
            hist: None,
        };
        let mut r = Pending {
            node: left_node + 1,
            start: mid,
            end: p.end,
            depth: p.depth + 1,
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

fn leaf(counts: &[f64]) -> ClassNode {
    let n: f64 = counts.iter().sum();
    ClassNode::Leaf {
        proba: counts
            .iter()
            .map(|c| if n > 0.0 { (c / n) as f32 } else { 0.0 })
            .collect(),
    }
}

/// Class counts per bin, `hist[(offset + bin) * k + class]`, with each feature's default bin
/// filled in from the node's class counts.
fn build(
    binned: &Binned,
    offsets: &Offsets,
    labels: &[u32],
    weight: &[f64],
    k: usize,
    rows: &[u32],
    counts: &[f64],
) -> Vec<f64> {
    let mut hist = vec![0.0; offsets.total * k];
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
                let others: f64 = (0..binned.n_bins[f])
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
    weight: &[f64],
    k: usize,
    rows: &[u32],
    features: &[usize],
    out: &mut [f64],
) {
    for &f in features {
        let region = &mut out[offsets.start[f] * k..(offsets.start[f] + binned.n_bins[f]) * k];
        region.fill(0.0);
        let column = binned.column(f);
        for &r in rows {
            region[usize::from(column[r as usize]) * k + labels[r as usize] as usize] +=
                weight[r as usize];
        }
    }
}

fn best_split(
    settings: &TreeSettings,
    binned: &Binned,
    offsets: &Offsets,
    hist: &[f64],
    counts: &[f64],
    k: usize,
    features: &[usize],
) -> Option<Best> {
    let n: f64 = counts.iter().sum();
    let parent = weighted_impurity(settings.criterion, counts);
    let mut best: Option<Best> = None;
    let mut left = vec![0.0; k];
    let mut with_missing = vec![0.0; k];
    let mut right = vec![0.0; k];
    for &f in features {
        let nb = binned.n_bins[f];
        let bin = |b: usize| &hist[(offsets.start[f] + b) * k..(offsets.start[f] + b + 1) * k];
        let missing = bin(0);
        let n_missing: f64 = missing.iter().sum();
        left.fill(0.0);
        for b in 1..nb.saturating_sub(1) {
            let counts_b = bin(b);
            let nb_rows: f64 = counts_b.iter().sum();
            if nb_rows == 0.0 {
                continue;
            }
            for (l, c) in left.iter_mut().zip(counts_b) {
                *l += c;
            }
            let dirs: &[bool] = if n_missing > 0.0 {
                &[false, true]
            } else {
                &[false]
            };
            for &missing_left in dirs {
                let l: &[f64] = if missing_left {
                    for ((m, a), b) in with_missing.iter_mut().zip(&left).zip(missing) {
                        *m = a + b;
                    }
                    &with_missing
                } else {
                    &left
                };
                let nl: f64 = l.iter().sum();
                let nr = n - nl;
                if nl < settings.min_samples_leaf || nr < settings.min_samples_leaf {
                    continue;
                }
                for ((r, a), b) in right.iter_mut().zip(counts).zip(l) {
                    *r = a - b;
                }
                let decrease = parent
                    - weighted_impurity(settings.criterion, l)
                    - weighted_impurity(settings.criterion, &right);
                if decrease > 1e-12 && best.as_ref().is_none_or(|b| decrease > b.decrease) {
                    let missing_left = if n_missing > 0.0 {
                        missing_left
                    } else {
                        nl >= nr
                    };
                    best = Some(Best {
                        feature: f,
                        bin: b,
                        missing_left,
                        decrease,
                        left: l.to_vec(),
                    });
                }
            }
        }
    }
    best
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
