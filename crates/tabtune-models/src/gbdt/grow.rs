//! Growing one tree on binned data: leaf-wise, depth-wise and oblivious policies on the same
//! histogram machinery (the smaller child's histogram is built, the larger one's is the parent's
//! minus it).

use std::sync::atomic::{AtomicUsize, Ordering};

use tabtune_features::rng::SplitMix64;

use super::binning::{BinMapper, Binned};
use super::hist::{
    GradPair, Layout, Split, SplitRules, Stats, best_split, best_split_split, build, build_split,
    subtract,
};
use super::params::Growth;
use super::quant;
use super::tree::{Node, Tree};
use tabtune_kernels::layout::TreeRound;

/// Settings of one tree.
#[derive(Clone, Copy, Debug)]
pub struct GrowSettings {
    /// The policy.
    pub growth: Growth,
    /// Leaf budget (leaf-wise).
    pub num_leaves: usize,
    /// Depth limit; 0 = none.
    pub max_depth: usize,
    /// Shrinkage applied to leaf values.
    pub learning_rate: f64,
    /// Share of the tree's features searched at each node.
    pub colsample_bynode: f64,
    /// Split rules.
    pub rules: SplitRules,
    /// With quantized gradients: the tree's scales and quantized rules (see [`super::quant`]).
    pub quant: Option<TreeRound>,
}

/// Nodes with at least this many rows build their histogram on two threads when a thread is
/// free (below it, handing half the work over costs about what it saves).
const SPLIT_BUILD_ROWS: usize = 1024;

/// The trees of one boosting round grow side by side, one per thread; once fewer trees are left
/// than threads, a free thread would wait for the last trees. Those trees then hand half of
/// their large histogram builds and split searches to it (the results are the same either way).
pub struct Helpers {
    growing: AtomicUsize,
    threads: usize,
}

impl Helpers {
    /// For `trees` trees growing on the current rayon pool.
    pub fn new(trees: usize) -> Self {
        Self {
            growing: AtomicUsize::new(trees),
            threads: rayon::current_num_threads(),
        }
    }

    /// One tree is done.
    pub fn done(&self) {
        self.growing.fetch_sub(1, Ordering::Relaxed);
    }

    /// Whether a thread of the pool is (about to be) without a tree of its own.
    fn idle(&self) -> bool {
        self.growing.load(Ordering::Relaxed) < self.threads
    }
}

/// A grown tree and, per leaf, the range of the row partition it holds and its value.
pub struct Grown {
    /// The tree.
    pub tree: Tree,
    /// `(start, end, value)` per leaf, ranges into the `rows` given to [`Grower::grow`].
    pub leaves: Vec<(usize, usize, f32)>,
    /// Per used feature: `(feature, gain)` of every split.
    pub splits: Vec<(usize, f64)>,
}

/// The state of one tree while it grows.
struct Job<'j> {
    settings: &'j GrowSettings,
    helpers: &'j Helpers,
    rows: &'j mut [u32],
    grad: &'j [GradPair],
    features: &'j [usize],
    rng: SplitMix64,
    tree: Tree,
    splits: Vec<(usize, f64)>,
}

/// A leaf while the tree grows.
struct Open {
    node: usize,
    start: usize,
    end: usize,
    depth: usize,
    stats: Stats,
    hist: Option<Vec<Stats>>,
    best: Option<Split>,
}

/// Grows trees; keeps its buffers from one tree to the next.
pub struct Grower<'a> {
    binned: &'a Binned,
    categorical: Vec<bool>,
    mappers: &'a [BinMapper],
    layout: &'a Layout,
    pool: Vec<Vec<Stats>>,
    scratch: Vec<u32>,
}

impl<'a> Grower<'a> {
    /// A grower for one binned training set.
    pub fn new(binned: &'a Binned, mappers: &'a [BinMapper], layout: &'a Layout) -> Self {
        Self {
            binned,
            categorical: mappers.iter().map(BinMapper::is_categorical).collect(),
            mappers,
            layout,
            pool: Vec::new(),
            scratch: Vec::new(),
        }
    }

    fn buffer(&mut self) -> Vec<Stats> {
        self.pool
            .pop()
            .unwrap_or_else(|| vec![Stats::default(); self.layout.total])
    }

    fn recycle(&mut self, buffer: Option<Vec<Stats>>) {
        if let Some(b) = buffer {
            self.pool.push(b);
        }
    }

    /// Grows a tree on `rows` (reordered in place: each leaf's rows end up contiguous) with
    /// gradients `grad` (indexed by row), splitting on `features`. `seed` drives per-node
    /// feature sampling; `helpers` tells when to share work with a free thread.
    pub fn grow(
        &mut self,
        settings: &GrowSettings,
        rows: &mut [u32],
        grad: &[GradPair],
        features: &[usize],
        seed: u64,
        helpers: &Helpers,
    ) -> Grown {
        let stats = Stats::of(rows, grad);
        let mut root = Open {
            node: 0,
            start: 0,
            end: rows.len(),
            depth: 0,
            stats,
            hist: None,
            best: None,
        };
        let mut job = Job {
            settings,
            helpers,
            rows,
            grad,
            features,
            rng: SplitMix64::new(seed),
            tree: Tree {
                nodes: vec![leaf(settings, stats)],
            },
            splits: Vec::new(),
        };
        if can_split(settings, &root) {
            let mut hist = self.buffer();
            let build = pick_build(helpers, job.rows.len());
            build(&mut hist, self.layout, self.binned, job.rows, grad, stats);
            root.hist = Some(hist);
        }
        let done = match settings.growth {
            Growth::Oblivious => self.grow_oblivious(&mut job, root),
            Growth::LeafWise => {
                root.best = self.best_for(&mut job, &root);
                self.grow_leafwise(&mut job, vec![root])
            }
            Growth::DepthWise => {
                root.best = self.best_for(&mut job, &root);
                self.grow_depthwise(&mut job, vec![root])
            }
        };
        let mut leaves = Vec::with_capacity(done.len());
        for o in done {
            let Node::Leaf { value } = job.tree.nodes[o.node] else {
                unreachable!("open nodes are leaves")
            };
            leaves.push((o.start, o.end, value));
            self.recycle(o.hist);
        }
        Grown {
            tree: job.tree,
            leaves,
            splits: job.splits,
        }
    }

    /// The best split of an open leaf over a per-node sample of the tree's features.
    fn best_for(&self, job: &mut Job<'_>, o: &Open) -> Option<Split> {
        let node_features = sample(job.features, job.settings.colsample_bynode, &mut job.rng);
        let hist = o.hist.as_ref()?;
        if let Some(tr) = &job.settings.quant {
            return quant::best_split(
                hist,
                self.layout,
                &node_features,
                o.stats,
                tr,
                &job.settings.rules,
            );
        }
        let search = if job.helpers.idle() && node_features.len() > 1 {
            best_split_split
        } else {
            best_split
        };
        search(
            hist,
            self.layout,
            &node_features,
            &self.categorical,
            o.stats,
            &job.settings.rules,
        )
    }

    /// Leaf-wise growth: split the open leaf with the largest gain until `num_leaves`.
    fn grow_leafwise(&mut self, job: &mut Job<'_>, mut open: Vec<Open>) -> Vec<Open> {
        let mut n_leaves = 1;
        while n_leaves < job.settings.num_leaves {
            let pick = open
                .iter()
                .enumerate()
                .filter_map(|(i, o)| o.best.map(|b| (i, b.gain)))
                .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)));
            let Some((i, _)) = pick else { break };
            let parent = open.swap_remove(i);
            n_leaves += 1;
            // The split that fills the leaf budget: its children are never split, so they need
            // neither histograms nor best splits.
            let (l, r) = self.split(job, parent, n_leaves == job.settings.num_leaves);
            open.push(l);
            open.push(r);
        }
        open
    }

    /// Depth-wise growth: split every leaf with a positive gain, level by level.
    fn grow_depthwise(&mut self, job: &mut Job<'_>, mut level: Vec<Open>) -> Vec<Open> {
        let mut done = Vec::new();
        while !level.is_empty() {
            let mut next = Vec::new();
            for o in level {
                if o.best.is_some() {
                    let (l, r) = self.split(job, o, false);
                    next.push(l);
                    next.push(r);
                } else {
                    done.push(o);
                }
            }
            level = next;
        }
        done
    }

    /// Splits an open leaf on its best split; returns the two children, with histograms and
    /// best splits where they may split further (never when `final_leaves`: the tree is done).
    fn split(&mut self, job: &mut Job<'_>, mut parent: Open, final_leaves: bool) -> (Open, Open) {
        let split = parent.best.expect("only leaves with a split are split");
        let (mut left, mut right) = self.apply_split(job, &parent, &split);
        if !final_leaves && (can_split(job.settings, &left) || can_split(job.settings, &right)) {
            let parent_hist = parent
                .hist
                .take()
                .expect("a splittable leaf has a histogram");
            self.child_histograms(job, parent_hist, &mut left, &mut right);
            for child in [&mut left, &mut right] {
                if can_split(job.settings, child) {
                    child.best = self.best_for(job, child);
                }
                if child.best.is_none() {
                    let h = child.hist.take();
                    self.recycle(h);
                }
            }
        } else {
            let h = parent.hist.take();
            self.recycle(h);
        }
        (left, right)
    }

    /// The children's histograms: the smaller child's is built from its rows, the larger one's
    /// is the parent's minus it (reusing the parent's buffer).
    fn child_histograms(
        &mut self,
        job: &Job<'_>,
        mut parent_hist: Vec<Stats>,
        left: &mut Open,
        right: &mut Open,
    ) {
        let (small, large) = if left.end - left.start <= right.end - right.start {
            (left, right)
        } else {
            (right, left)
        };
        let mut small_hist = self.buffer();
        let small_rows = &job.rows[small.start..small.end];
        let build = pick_build(job.helpers, small_rows.len());
        build(
            &mut small_hist,
            self.layout,
            self.binned,
            small_rows,
            job.grad,
            small.stats,
        );
        subtract(&mut parent_hist, &small_hist);
        small.hist = Some(small_hist);
        large.hist = Some(parent_hist);
    }

    /// Partitions the parent's rows and turns its node into a split with two leaf children.
    fn apply_split(&mut self, job: &mut Job<'_>, parent: &Open, split: &Split) -> (Open, Open) {
        let column = self.binned.column(split.feature);
        let n_left = partition(
            &mut job.rows[parent.start..parent.end],
            &mut self.scratch,
            column,
            |b| match &split.categories {
                Some(set) => set.contains(b),
                None => b <= split.bin,
            },
            split.missing_left,
        );
        let mid = parent.start + n_left;
        let tree = &mut job.tree;
        let left_node = tree.nodes.len();
        tree.nodes.push(leaf(job.settings, split.left));
        tree.nodes.push(leaf(job.settings, split.right));
        let (feature, left, right) = (split.feature as u32, left_node as u32, left_node as u32 + 1);
        let mapper = &self.mappers[split.feature];
        tree.nodes[parent.node] = match &split.categories {
            Some(set) => Node::Category {
                feature,
                left_values: set.bins().into_iter().map(|b| mapper.category(b)).collect(),
                left_bins: *set,
                missing_left: split.missing_left,
                left,
                right,
                gain: split.gain as f32,
            },
            None => Node::Split {
                feature,
                threshold: mapper.threshold(split.bin),
                bin: split.bin as u8,
                missing_left: split.missing_left,
                left,
                right,
                gain: split.gain as f32,
            },
        };
        job.splits.push((split.feature, split.gain));
        let depth = parent.depth + 1;
        let open = |node, start, end, stats| Open {
            node,
            start,
            end,
            depth,
            stats,
            hist: None,
            best: None,
        };
        (
            open(left_node, parent.start, mid, split.left),
            open(left_node + 1, mid, parent.end, split.right),
        )
    }

    /// Oblivious (symmetric) growth: one split per level, chosen by the summed gain over all
    /// leaves of the level, applied to every leaf.
    fn grow_oblivious(&mut self, job: &mut Job<'_>, root: Open) -> Vec<Open> {
        let max_depth = job.settings.max_depth;
        let mut level = vec![root];
        for depth in 0..max_depth {
            if level.iter().any(|o| o.hist.is_none()) {
                break;
            }
            let node_features = sample(job.features, job.settings.colsample_bynode, &mut job.rng);
            let found = match &job.settings.quant {
                Some(tr) => {
                    let nodes: Vec<(Stats, &[Stats])> = level
                        .iter()
                        .map(|o| (o.stats, o.hist.as_deref().expect("checked above")))
                        .collect();
                    quant::best_shared_split(
                        &nodes,
                        self.layout,
                        &node_features,
                        &self.categorical,
                        tr,
                        &job.settings.rules,
                    )
                }
                None => self.best_shared_split(job.settings, &level, &node_features),
            };
            let Some((feature, bin, missing_left, gain)) = found else {
                break;
            };
            let mut next = Vec::with_capacity(level.len() * 2);
            let last = depth + 1 == max_depth;
            for mut o in level {
                let bins = {
                    let hist = o.hist.as_ref().expect("checked above");
                    let off = self.layout.offsets[feature];
                    hist[off..off + self.layout.n_bins[feature]].to_vec()
                };
                let mut left_stats = bins[1..=bin]
                    .iter()
                    .fold(Stats::default(), |a, b| a.plus(*b));
                if missing_left {
                    left_stats = left_stats.plus(bins[0]);
                }
                let right = o.stats.minus(left_stats);
                let split = Split {
                    feature,
                    bin,
                    missing_left,
                    gain,
                    left: left_stats,
                    right,
                    categories: None,
                };
                let (mut l, mut r) = self.apply_split(job, &o, &split);
                if last {
                    let h = o.hist.take();
                    self.recycle(h);
                } else {
                    let parent_hist = o.hist.take().expect("checked above");
                    self.child_histograms(job, parent_hist, &mut l, &mut r);
                }
                next.push(l);
                next.push(r);
            }
            // Only the first split of a level counts once in the importances.
            let n = next.len() / 2;
            job.splits.truncate(job.splits.len() + 1 - n);
            level = next;
        }
        level
    }

    /// The `(feature, bin, missing_left, summed gain)` maximising the gain summed over `level`.
    fn best_shared_split(
        &self,
        settings: &GrowSettings,
        level: &[Open],
        features: &[usize],
    ) -> Option<(usize, usize, bool, f64)> {
        let rules = &settings.rules;
        let mut best: Option<(usize, usize, bool, f64)> = None;
        for &f in features {
            // Categorical features enter oblivious trees as ordered target statistics.
            if self.categorical[f] {
                continue;
            }
            let off = self.layout.offsets[f];
            let nb = self.layout.n_bins[f];
            if nb < 3 {
                continue;
            }
            // gains[b][dir]: summed over leaves.
            let mut gains = vec![[0.0f64; 2]; nb];
            let mut any_missing = false;
            let mut left_rows = vec![0.0f64; nb];
            let mut all_rows = 0.0;
            for o in level {
                let hist = o.hist.as_ref().expect("levels keep histograms");
                let bins = &hist[off..off + nb];
                let missing = bins[0];
                any_missing |= missing.n > 0.0;
                all_rows += o.stats.n;
                // ½ and γ are the same for every candidate: compare raw score sums, and reuse
                // a leaf's contribution across its empty bins (same split for this leaf).
                let parent = rules.score(o.stats);
                let contribution = |l: Stats| {
                    let r = o.stats.minus(l);
                    // A side without rows changes nothing for this leaf.
                    if l.n > 0.0 && r.n > 0.0 {
                        0.5 * (rules.score(l) + rules.score(r) - parent)
                    } else {
                        0.0
                    }
                };
                let mut left = Stats::default();
                let mut last = [0.0f64; 2];
                for b in 1..nb - 1 {
                    if bins[b].n > 0.0 || b == 1 {
                        left = left.plus(bins[b]);
                        let without = contribution(left);
                        let with = if missing.n > 0.0 {
                            contribution(left.plus(missing))
                        } else {
                            without
                        };
                        last = [without, with];
                    }
                    left_rows[b] += left.n;
                    gains[b][0] += last[0];
                    gains[b][1] += last[1];
                }
            }
            for b in 1..nb - 1 {
                let dirs: &[usize] = if any_missing { &[0, 1] } else { &[0] };
                for &dir in dirs {
                    // The level's split counts γ once, as a split of an ordinary tree does.
                    let gain = gains[b][dir] - rules.gamma;
                    if gain > 0.0 && best.is_none_or(|x| gain > x.3) {
                        let missing_left = if any_missing {
                            dir == 1
                        } else {
                            left_rows[b] * 2.0 >= all_rows
                        };
                        best = Some((f, b, missing_left, gain));
                    }
                }
            }
        }
        best
    }
}

/// A histogram builder: [`build`] or [`build_split`].
type Build = fn(&mut [Stats], &Layout, &Binned, &[u32], &[GradPair], Stats);

/// How to build the histogram of a node with `rows` rows: on two threads when it is large and
/// a thread is free.
fn pick_build(helpers: &Helpers, rows: usize) -> Build {
    if rows >= SPLIT_BUILD_ROWS && helpers.idle() {
        build_split
    } else {
        build
    }
}

fn leaf(settings: &GrowSettings, stats: Stats) -> Node {
    let value = match &settings.quant {
        Some(tr) => quant::leaf_value(tr, stats),
        None => (settings.learning_rate * settings.rules.leaf_value(stats)) as f32,
    };
    Node::Leaf { value }
}

/// Whether a leaf may still be split: enough rows for two children, depth left.
fn can_split(settings: &GrowSettings, o: &Open) -> bool {
    let depth_ok = settings.max_depth == 0 || o.depth < settings.max_depth;
    depth_ok && o.stats.n >= 2.0 * settings.rules.min_data_in_leaf.max(1.0)
}

/// Stable partition of `rows` by a split (`goes_left(bin)` for non-missing bins); returns the
/// number of rows going left.
pub(crate) fn partition(
    rows: &mut [u32],
    scratch: &mut Vec<u32>,
    column: &[u8],
    goes_left: impl Fn(usize) -> bool,
    missing_left: bool,
) -> usize {
    partition_by(rows, scratch, |r| {
        let b = column[r as usize];
        if b == 0 {
            missing_left
        } else {
            goes_left(usize::from(b))
        }
    })
}

/// Stable partition of `rows` by `goes_left(row)`; returns the number of rows going left.
/// `scratch` is scratch space.
pub(crate) fn partition_by(
    rows: &mut [u32],
    scratch: &mut Vec<u32>,
    goes_left: impl Fn(u32) -> bool,
) -> usize {
    scratch.clear();
    scratch.resize(rows.len(), 0);
    // Branch-free: every row is written to both sides and only the cursor of its side moves,
    // so the side (random for a good split) costs no misprediction. `w <= i`: the write never
    // overtakes the read.
    let (mut w, mut s) = (0, 0);
    for i in 0..rows.len() {
        let r = rows[i];
        let left = goes_left(r);
        rows[w] = r;
        scratch[s] = r;
        w += usize::from(left);
        s += usize::from(!left);
    }
    rows[w..].copy_from_slice(&scratch[..s]);
    w
}

/// A sorted random subset of `share` of `features` (at least one), or all of them.
pub fn sample(features: &[usize], share: f64, rng: &mut SplitMix64) -> Vec<usize> {
    if share >= 1.0 || features.len() <= 1 {
        return features.to_vec();
    }
    let k = ((features.len() as f64 * share).round() as usize).clamp(1, features.len());
    let mut chosen = features.to_vec();
    rng.shuffle(&mut chosen);
    chosen.truncate(k);
    chosen.sort_unstable();
    chosen
}

#[cfg(test)]
mod tests {
    use super::super::hist::GradPair;
    use super::*;

    #[test]
    fn leaf_wise_trees_fill_the_budget_and_leaf_ranges_match_walks() {
        let n = 400u32;
        let values: Vec<f32> = (0..n)
            .flat_map(|r| [(r % 37) as f32, (r * 11 % 29) as f32])
            .collect();
        let x = ndarray::Array2::from_shape_vec((n as usize, 2), values).expect("shape");
        let mappers: Vec<BinMapper> = (0..2)
            .map(|f| BinMapper::fit(&x.column(f).to_vec(), 255))
            .collect();
        let binned = Binned::new(x.view(), &mappers);
        let layout = Layout::new(&binned);
        // Gradients that many thresholds of both features separate.
        let grad: Vec<GradPair> = (0..n)
            .map(|r| GradPair {
                g: ((r % 37 * 3 + r * 11 % 29) % 7) as f32 - 3.0,
                h: 1.0,
            })
            .collect();
        let mut grower = Grower::new(&binned, &mappers, &layout);
        for num_leaves in [2, 3, 7, 16] {
            let settings = GrowSettings {
                growth: Growth::LeafWise,
                num_leaves,
                max_depth: 0,
                learning_rate: 0.1,
                colsample_bynode: 1.0,
                rules: SplitRules {
                    lambda: 1.0,
                    alpha: 0.0,
                    gamma: 0.0,
                    min_child_weight: 0.0,
                    min_data_in_leaf: 5.0,
                },
                quant: None,
            };
            let mut rows: Vec<u32> = (0..n).collect();
            let grown = grower.grow(&settings, &mut rows, &grad, &[0, 1], 7, &Helpers::new(1));
            // The last split (its children get no histograms) still makes two proper leaves.
            assert_eq!(grown.tree.n_leaves(), num_leaves);
            assert_eq!(grown.leaves.len(), num_leaves);
            let mut covered = 0;
            for &(start, end, value) in &grown.leaves {
                covered += end - start;
                for &r in &rows[start..end] {
                    let walked = grown.tree.predict_binned(|f| binned.column(f)[r as usize]);
                    assert_eq!(walked, value, "row {r}, {num_leaves} leaves");
                }
            }
            assert_eq!(covered, n as usize);
        }
    }
}
