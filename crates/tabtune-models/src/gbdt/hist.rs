//! Gradient/hessian histograms and the best split of a node.

use super::binning::Binned;

/// One row's gradient and hessian.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct GradPair {
    /// First derivative of the loss.
    pub g: f32,
    /// Second derivative of the loss.
    pub h: f32,
}

/// Sums over rows: gradient, hessian and row count.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Stats {
    /// Sum of gradients.
    pub g: f64,
    /// Sum of hessians.
    pub h: f64,
    /// Number of rows (a float so that histograms subtract uniformly).
    pub n: f64,
}

impl Stats {
    #[inline]
    fn add(&mut self, p: GradPair) {
        self.g += f64::from(p.g);
        self.h += f64::from(p.h);
        self.n += 1.0;
    }

    /// `self + other`.
    #[inline]
    #[must_use]
    pub fn plus(self, o: Stats) -> Stats {
        Stats {
            g: self.g + o.g,
            h: self.h + o.h,
            n: self.n + o.n,
        }
    }

    /// `self − other`.
    #[inline]
    #[must_use]
    pub fn minus(self, o: Stats) -> Stats {
        Stats {
            g: self.g - o.g,
            h: self.h - o.h,
            n: self.n - o.n,
        }
    }

    /// Sum over rows.
    pub fn of(rows: &[u32], grad: &[GradPair]) -> Stats {
        let mut s = Stats::default();
        for &r in rows {
            s.add(grad[r as usize]);
        }
        s
    }
}

/// Where each feature's bins start in a flat histogram.
#[derive(Clone, Debug)]
pub struct Layout {
    /// Offset of feature `f`'s bin 0.
    pub offsets: Vec<usize>,
    /// Bins per feature (the missing bin included).
    pub n_bins: Vec<usize>,
    /// Total bins.
    pub total: usize,
}

impl Layout {
    /// The layout of a binned matrix.
    pub fn new(binned: &Binned) -> Self {
        let mut offsets = Vec::with_capacity(binned.n_bins.len());
        let mut total = 0;
        for &n in &binned.n_bins {
            offsets.push(total);
            total += n;
        }
        Self {
            offsets,
            n_bins: binned.n_bins.clone(),
            total,
        }
    }
}

/// Fills `hist` (zeroed here) with the sums of `rows` over every feature: one pass over the
/// rows adding each row's slots, then every left-out default bin as the node total `total`
/// minus the feature's other bins.
pub fn build(
    hist: &mut [Stats],
    layout: &Layout,
    binned: &Binned,
    rows: &[u32],
    grad: &[GradPair],
    total: Stats,
) {
    hist.fill(Stats::default());
    add_rows(hist, 0, binned, rows, grad, |r| {
        (binned.row_start[r], binned.row_start[r + 1])
    });
    fill_defaults(hist, 0, layout, binned, 0..binned.n_features(), total);
}

/// [`build`] on two threads: the features before [`Binned::mid_feature`] on one, the rest on
/// the other. Every bin gets the same additions in the same order, so the histogram is the
/// one `build` makes, bit for bit.
pub fn build_split(
    hist: &mut [Stats],
    layout: &Layout,
    binned: &Binned,
    rows: &[u32],
    grad: &[GradPair],
    total: Stats,
) {
    let (mid, n_features) = (binned.mid_feature, binned.n_features());
    if mid == 0 || mid >= n_features {
        return build(hist, layout, binned, rows, grad, total);
    }
    let cut = layout.offsets[mid];
    let (first, second) = hist.split_at_mut(cut);
    rayon::join(
        || {
            first.fill(Stats::default());
            add_rows(first, 0, binned, rows, grad, |r| {
                (binned.row_start[r], binned.row_mid[r])
            });
            fill_defaults(first, 0, layout, binned, 0..mid, total);
        },
        || {
            second.fill(Stats::default());
            add_rows(second, cut, binned, rows, grad, |r| {
                (binned.row_mid[r], binned.row_start[r + 1])
            });
            fill_defaults(second, cut, layout, binned, mid..n_features, total);
        },
    );
}

/// Adds every row's gradient pair to the bins of its slots `slots[range(row)]` (flat
/// histogram indices; `part` holds the bins from index `base` on).
#[inline]
fn add_rows(
    part: &mut [Stats],
    base: usize,
    binned: &Binned,
    rows: &[u32],
    grad: &[GradPair],
    range: impl Fn(usize) -> (u32, u32),
) {
    for &r in rows {
        let p = grad[r as usize];
        let (g, h) = (f64::from(p.g), f64::from(p.h));
        let (start, end) = range(r as usize);
        for &slot in &binned.slots[start as usize..end as usize] {
            let s = &mut part[usize::from(slot) - base];
            s.g += g;
            s.h += h;
            s.n += 1.0;
        }
    }
}

/// Sets the left-out default bin of each of `features` to the node total minus the feature's
/// other bins (`part` holds the bins from index `base` on).
fn fill_defaults(
    part: &mut [Stats],
    base: usize,
    layout: &Layout,
    binned: &Binned,
    features: std::ops::Range<usize>,
    total: Stats,
) {
    for f in features {
        if let Some(d) = binned.default_bin[f] {
            let start = layout.offsets[f] - base;
            let bins = &mut part[start..start + layout.n_bins[f]];
            let others = bins.iter().fold(Stats::default(), |a, b| a.plus(*b));
            bins[usize::from(d)] = total.minus(others);
        }
    }
}

/// `parent −= child`: the sibling's histogram without a pass over its rows.
pub fn subtract(parent: &mut [Stats], child: &[Stats]) {
    for (p, c) in parent.iter_mut().zip(child) {
        *p = p.minus(*c);
    }
}

/// Regularisation and constraints of split search.
#[derive(Clone, Copy, Debug)]
pub struct SplitRules {
    /// L2 on leaf values.
    pub lambda: f64,
    /// L1 on leaf values.
    pub alpha: f64,
    /// Minimum gain.
    pub gamma: f64,
    /// Minimum hessian per child.
    pub min_child_weight: f64,
    /// Minimum rows per child.
    pub min_data_in_leaf: f64,
}

impl SplitRules {
    /// Soft-thresholded gradient sum (L1).
    #[inline]
    fn shrink(&self, g: f64) -> f64 {
        if g > self.alpha {
            g - self.alpha
        } else if g < -self.alpha {
            g + self.alpha
        } else {
            0.0
        }
    }

    /// The structure score of a node, `T(G)² / (H + λ)`.
    #[inline]
    pub fn score(&self, s: Stats) -> f64 {
        let t = self.shrink(s.g);
        t * t / (s.h + self.lambda)
    }

    /// The optimal leaf value, `−T(G) / (H + λ)` (before the learning rate).
    pub fn leaf_value(&self, s: Stats) -> f64 {
        if s.n == 0.0 {
            0.0
        } else {
            -self.shrink(s.g) / (s.h + self.lambda)
        }
    }

    /// The gain of splitting `parent` into `left` and `right`, minus `gamma`:
    /// `½ [score(L) + score(R) − score(P)] − γ`.
    #[inline]
    pub fn gain(&self, parent: Stats, left: Stats, right: Stats) -> f64 {
        0.5 * (self.score(left) + self.score(right) - self.score(parent)) - self.gamma
    }
}

/// A set of bins (0..=255) as a bitset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BinSet(pub [u64; 4]);

impl BinSet {
    /// Adds a bin.
    pub fn insert(&mut self, b: usize) {
        self.0[b / 64] |= 1 << (b % 64);
    }

    /// Whether the set holds a bin.
    #[inline]
    pub fn contains(&self, b: usize) -> bool {
        self.0[b / 64] & (1 << (b % 64)) != 0
    }

    /// The bins, increasing.
    pub fn bins(&self) -> Vec<usize> {
        (0..256).filter(|&b| self.contains(b)).collect()
    }
}

/// A split of a node: for a numeric feature bins `1..=bin` go left, for a categorical one the
/// bins in `categories`; missing values go left when `missing_left`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Split {
    /// Feature index.
    pub feature: usize,
    /// Last bin on the left.
    pub bin: usize,
    /// Where missing values (bin 0) go.
    pub missing_left: bool,
    /// Gain (after `gamma`).
    pub gain: f64,
    /// Sums of the left child.
    pub left: Stats,
    /// Sums of the right child.
    pub right: Stats,
    /// For a categorical feature, the bins that go left (`bin` is then unused).
    pub categories: Option<BinSet>,
}

/// The best split of one feature, trying both directions for missing values.
pub fn best_split_of_feature(
    bins: &[Stats],
    feature: usize,
    total: Stats,
    rules: &SplitRules,
) -> Option<Split> {
    // The hot loop of training: plain sums, the parent's score and the ½ factor out of it, and
    // no `Split` built until the end.
    let missing = bins[0];
    let has_missing = missing.n > 0.0;
    // Without L1 the soft threshold is the identity (up to the sign of a zero, which squaring
    // removes): skip its sign branches, which mispredict on gradient sums of either sign.
    let l1 = rules.alpha > 0.0;
    let score = |g: f64, h: f64| {
        let t = if l1 { rules.shrink(g) } else { g };
        t * t / (h + rules.lambda)
    };
    let ok = |n: f64, h: f64| n >= rules.min_data_in_leaf && h >= rules.min_child_weight;
    let (mut best, mut best_bin, mut best_missing_left) = (f64::NEG_INFINITY, 0usize, false);
    let (mut lg, mut lh, mut ln) = (0.0f64, 0.0f64, 0.0f64);
    // A threshold after the last bin would leave the right side without value bins.
    for (b, bin) in bins
        .iter()
        .enumerate()
        .take(bins.len().saturating_sub(1))
        .skip(1)
    {
        // An empty bin gives the same split as the bin before it.
        if bin.n == 0.0 {
            continue;
        }
        lg += bin.g;
        lh += bin.h;
        ln += bin.n;
        let (rg, rh, rn) = (total.g - lg, total.h - lh, total.n - ln);
        // Row counts are exact and only shrink on the right from here on (with missing values
        // on the left, more so): no later threshold can leave enough rows there.
        if rn < rules.min_data_in_leaf {
            break;
        }
        if ok(ln, lh) && ok(rn, rh) {
            let s = score(lg, lh) + score(rg, rh);
            if s > best {
                (best, best_bin, best_missing_left) = (s, b, false);
            }
        }
        if has_missing {
            let (mg, mh, mn) = (lg + missing.g, lh + missing.h, ln + missing.n);
            let (rg, rh, rn) = (total.g - mg, total.h - mh, total.n - mn);
            if ok(mn, mh) && ok(rn, rh) {
                let s = score(mg, mh) + score(rg, rh);
                if s > best {
                    (best, best_bin, best_missing_left) = (s, b, true);
                }
            }
        }
    }
    if best_bin == 0 {
        return None;
    }
    let mut left = bins[1..=best_bin]
        .iter()
        .fold(Stats::default(), |a, b| a.plus(*b));
    if best_missing_left {
        left = left.plus(missing);
    }
    let right = total.minus(left);
    // With no missing values in training, unseen ones follow the larger child.
    let missing_left = if has_missing {
        best_missing_left
    } else {
        left.n >= right.n
    };
    let gain = 0.5 * (best - rules.score(total)) - rules.gamma;
    Some(Split {
        feature,
        bin: best_bin,
        missing_left,
        gain,
        left,
        right,
        categories: None,
    })
}

/// Smoothing of the gradient ratio that orders categories (LightGBM's `cat_smooth`).
const CAT_SMOOTH: f64 = 10.0;

/// The best split of a categorical feature: its non-empty categories sorted by
/// `G / (H + cat_smooth)`, then the best prefix of that order goes left (the optimal partition
/// for a convex loss, found in linear time, as in LightGBM).
pub fn best_categorical_split(
    bins: &[Stats],
    feature: usize,
    total: Stats,
    rules: &SplitRules,
) -> Option<Split> {
    let mut order: Vec<usize> = (1..bins.len()).filter(|&b| bins[b].n > 0.0).collect();
    if order.len() < 2 {
        return None;
    }
    order.sort_by(|&a, &b| {
        let ra = bins[a].g / (bins[a].h + CAT_SMOOTH);
        let rb = bins[b].g / (bins[b].h + CAT_SMOOTH);
        ra.total_cmp(&rb).then(a.cmp(&b))
    });
    let missing = bins[0];
    let ok = |s: Stats| s.n >= rules.min_data_in_leaf && s.h >= rules.min_child_weight;
    let mut best: Option<(f64, usize, bool)> = None;
    let mut left = Stats::default();
    for (j, &b) in order.iter().enumerate().take(order.len() - 1) {
        left = left.plus(bins[b]);
        let dirs: &[bool] = if missing.n > 0.0 {
            &[false, true]
        } else {
            &[false]
        };
        for &missing_left in dirs {
            let l = if missing_left {
                left.plus(missing)
            } else {
                left
            };
            let r = total.minus(l);
            if ok(l) && ok(r) {
                let s = rules.score(l) + rules.score(r);
                if best.is_none_or(|(g, _, _)| s > g) {
                    best = Some((s, j, missing_left));
                }
            }
        }
    }
    let (score, j, missing_left) = best?;
    let mut set = BinSet::default();
    let mut left = Stats::default();
    for &b in &order[..=j] {
        set.insert(b);
        left = left.plus(bins[b]);
    }
    if missing_left {
        left = left.plus(missing);
    }
    let right = total.minus(left);
    let missing_left = if missing.n > 0.0 {
        missing_left
    } else {
        left.n >= right.n
    };
    let gain = 0.5 * (score - rules.score(total)) - rules.gamma;
    Some(Split {
        feature,
        bin: 0,
        missing_left,
        gain,
        left,
        right,
        categories: Some(set),
    })
}

/// The best split over `features` of a node with histogram `hist`, if any has positive gain.
/// `categorical[f]` marks the categorical features.
pub fn best_split(
    hist: &[Stats],
    layout: &Layout,
    features: &[usize],
    categorical: &[bool],
    total: Stats,
    rules: &SplitRules,
) -> Option<Split> {
    let mut best: Option<Split> = None;
    for &f in features {
        let bins = &hist[layout.offsets[f]..layout.offsets[f] + layout.n_bins[f]];
        let found = if categorical[f] {
            best_categorical_split(bins, f, total, rules)
        } else {
            best_split_of_feature(bins, f, total, rules)
        };
        if let Some(s) = found
            && s.gain > 0.0
            && best.is_none_or(|b| s.gain > b.gain)
        {
            best = Some(s);
        }
    }
    best
}

/// [`best_split`] on two threads, each searching half of `features`; the same split (the
/// first feature of the largest gain wins ties, as in `best_split`).
pub fn best_split_split(
    hist: &[Stats],
    layout: &Layout,
    features: &[usize],
    categorical: &[bool],
    total: Stats,
    rules: &SplitRules,
) -> Option<Split> {
    let (first, second) = features.split_at(features.len() / 2);
    let (a, b) = rayon::join(
        || best_split(hist, layout, first, categorical, total, rules),
        || best_split(hist, layout, second, categorical, total, rules),
    );
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.gain > a.gain { b } else { a }),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> SplitRules {
        SplitRules {
            lambda: 0.0,
            alpha: 0.0,
            gamma: 0.0,
            min_child_weight: 0.0,
            min_data_in_leaf: 1.0,
        }
    }

    fn stat(g: f64, h: f64, n: f64) -> Stats {
        Stats { g, h, n }
    }

    #[test]
    fn split_found_by_hand() {
        // Bins: missing empty; bin 1: g=-4 (2 rows), bin 2: g=-1 (1 row), bin 3: g=+6 (3 rows);
        // hessian 1 per row, λ = 0. Scores: after bin 1: 16/2 + 25/4 − 1/6 = 14.083;
        // after bin 2: 25/3 + 36/3 − 1/6 = 20.167 (best); gain = ½ · 20.167 = 10.083.
        let bins = [
            stat(0.0, 0.0, 0.0),
            stat(-4.0, 2.0, 2.0),
            stat(-1.0, 1.0, 1.0),
            stat(6.0, 3.0, 3.0),
        ];
        let total = bins.iter().fold(Stats::default(), |a, b| a.plus(*b));
        let s = best_split_of_feature(&bins, 0, total, &rules()).expect("a split");
        assert_eq!(s.bin, 2);
        assert!((s.gain - 0.5 * (25.0 / 3.0 + 12.0 - 1.0 / 6.0)).abs() < 1e-12);
        assert_eq!((s.left.n, s.right.n), (3.0, 3.0));
    }

    #[test]
    fn missing_values_go_where_they_help() {
        // Missing rows have g=-5, like bin 1: they belong on the left.
        let bins = [
            stat(-5.0, 1.0, 1.0),
            stat(-4.0, 1.0, 1.0),
            stat(6.0, 1.0, 1.0),
        ];
        let total = bins.iter().fold(Stats::default(), |a, b| a.plus(*b));
        let s = best_split_of_feature(&bins, 0, total, &rules()).expect("a split");
        assert!(s.missing_left);
        assert_eq!(s.left.n, 2.0);
        let bins = [
            stat(7.0, 1.0, 1.0),
            stat(-4.0, 1.0, 1.0),
            stat(6.0, 1.0, 1.0),
        ];
        let total = bins.iter().fold(Stats::default(), |a, b| a.plus(*b));
        assert!(
            !best_split_of_feature(&bins, 0, total, &rules())
                .expect("split")
                .missing_left
        );
    }

    #[test]
    fn constraints_and_regularisation() {
        let bins = [
            stat(0.0, 0.0, 0.0),
            stat(-4.0, 2.0, 2.0),
            stat(4.0, 2.0, 2.0),
        ];
        let total = bins.iter().fold(Stats::default(), |a, b| a.plus(*b));
        let strict = SplitRules {
            min_data_in_leaf: 3.0,
            ..rules()
        };
        assert!(best_split_of_feature(&bins, 0, total, &strict).is_none());
        let gamma = SplitRules {
            gamma: 100.0,
            ..rules()
        };
        assert!(
            best_split(
                &bins,
                &Layout {
                    offsets: vec![0],
                    n_bins: vec![3],
                    total: 3
                },
                &[0],
                &[false],
                total,
                &gamma
            )
            .is_none()
        );
        let l1 = SplitRules {
            alpha: 1.0,
            lambda: 1.0,
            ..rules()
        };
        // T(-4) = -3, leaf = 3 / (2 + 1) = 1.
        assert!((l1.leaf_value(stat(-4.0, 2.0, 2.0)) - 1.0).abs() < 1e-12);
        assert!(l1.leaf_value(stat(0.5, 2.0, 2.0)).abs() < 1e-12);
    }

    #[test]
    fn categorical_split_groups_categories_by_gradient() {
        // Categories 1 and 3 pull down (g < 0), 2 and 4 up: the best partition is {1, 3} | {2, 4}.
        let bins = [
            stat(0.0, 0.0, 0.0),
            stat(-5.0, 2.0, 2.0),
            stat(4.0, 2.0, 2.0),
            stat(-6.0, 2.0, 2.0),
            stat(5.0, 2.0, 2.0),
        ];
        let total = bins.iter().fold(Stats::default(), |a, b| a.plus(*b));
        let s = best_categorical_split(&bins, 0, total, &rules()).expect("a split");
        let set = s.categories.expect("a category set");
        assert_eq!(set.bins(), vec![1, 3]);
        assert_eq!((s.left.g, s.right.g), (-11.0, 9.0));
        // No ordered threshold can do this: numeric search on the same bins gains less.
        let numeric = best_split_of_feature(&bins, 0, total, &rules()).expect("numeric");
        assert!(s.gain > numeric.gain);
    }

    #[test]
    fn subtraction_equals_building_the_sibling() {
        let values: Vec<f32> = (0..40).map(|i| (i % 7) as f32).collect();
        let mapper = super::super::binning::BinMapper::fit(&values, 255);
        let x = ndarray::Array2::from_shape_vec((40, 1), values).expect("shape");
        let binned = Binned::new(x.view(), &[mapper]);
        let layout = Layout::new(&binned);
        let grad: Vec<GradPair> = (0..40)
            .map(|i| GradPair {
                g: i as f32 * 0.5 - 7.0,
                h: 1.0 + (i % 3) as f32,
            })
            .collect();
        let all: Vec<u32> = (0..40).collect();
        let (left, right): (Vec<u32>, Vec<u32>) = all.iter().partition(|&&r| r % 3 == 0);
        let mut parent = vec![Stats::default(); layout.total];
        build(
            &mut parent,
            &layout,
            &binned,
            &all,
            &grad,
            Stats::of(&all, &grad),
        );
        let mut l = vec![Stats::default(); layout.total];
        build(
            &mut l,
            &layout,
            &binned,
            &left,
            &grad,
            Stats::of(&left, &grad),
        );
        let mut r = vec![Stats::default(); layout.total];
        build(
            &mut r,
            &layout,
            &binned,
            &right,
            &grad,
            Stats::of(&right, &grad),
        );
        subtract(&mut parent, &l);
        for (a, b) in parent.iter().zip(&r) {
            assert!((a.g - b.g).abs() < 1e-9 && (a.h - b.h).abs() < 1e-9 && a.n == b.n);
        }
    }

    #[test]
    fn two_thread_builds_and_searches_equal_the_single_ones() {
        use super::super::binning::BinMapper;
        // Many-valued, one-hot-like and constant features, so both slot groups and default
        // bins are exercised.
        let n = 500usize;
        let mut values = Vec::with_capacity(n * 5);
        for r in 0..n {
            values.extend([
                (r * 7 % 101) as f32,
                f32::from(u8::from(r % 9 == 0)),
                (r % 4) as f32,
                1.0,
                (r * 13 % 57) as f32 / 7.0,
            ]);
        }
        let x = ndarray::Array2::from_shape_vec((n, 5), values).expect("shape");
        let mappers: Vec<BinMapper> = (0..5)
            .map(|f| BinMapper::fit(&x.column(f).to_vec(), 64))
            .collect();
        let binned = Binned::new(x.view(), &mappers);
        assert!(
            (1..5).contains(&binned.mid_feature),
            "{}",
            binned.mid_feature
        );
        let layout = Layout::new(&binned);
        let grad: Vec<GradPair> = (0..n)
            .map(|i| GradPair {
                g: ((i * 31 % 17) as f32 - 8.0) / 3.0,
                h: 0.5 + (i % 5) as f32 / 4.0,
            })
            .collect();
        let rows: Vec<u32> = (0..n as u32).filter(|r| r % 7 != 3).collect();
        let total = Stats::of(&rows, &grad);
        let mut one = vec![Stats::default(); layout.total];
        let mut two = vec![
            Stats {
                g: 9.0,
                h: 9.0,
                n: 9.0
            };
            layout.total
        ];
        build(&mut one, &layout, &binned, &rows, &grad, total);
        build_split(&mut two, &layout, &binned, &rows, &grad, total);
        assert_eq!(one, two);
        let features: Vec<usize> = (0..5).collect();
        let categorical = [false; 5];
        for rules in [
            rules(),
            SplitRules {
                lambda: 1.0,
                alpha: 0.5,
                ..rules()
            },
        ] {
            let a = best_split(&one, &layout, &features, &categorical, total, &rules);
            let b = best_split_split(&one, &layout, &features, &categorical, total, &rules);
            assert!(a.is_some());
            assert_eq!(a, b);
        }
    }
}
