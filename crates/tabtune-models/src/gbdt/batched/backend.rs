//! What the batched fit asks of a device, step by step, and the CPU backend.
//!
//! The CPU backend computes what the kernels' CPU references define, row by row with the same
//! functions, in parallel over members (row passes), trees (rows and histograms) and tasks
//! (searches). Instead of a node per row it keeps each leaf's rows (as the engine partitions
//! them), so a step touches only the rows of the nodes it splits or builds; its histograms add
//! only each row's non-default bins (the engine's sparse slots) and fill the default bins from
//! the node totals: integer sums, so the same histograms as the dense reference.

use rayon::prelude::*;
use tabtune_kernels::layout::{
    BinMatrix, LevelResult, LevelTask, NONE, NodeRules, Problem, SearchResult, SearchTask,
    SplitRecord, SumQuery, TreeRound,
};
use tabtune_kernels::reference::grad::{row_gradients, row_metric};
use tabtune_kernels::reference::math::{SALT_GRAD, SALT_HESS, Tables, quantize, rounding_noise};
use tabtune_kernels::reference::{hist, split, tree};

use crate::error::Result;
use crate::gbdt::binning::Binned;
use crate::gbdt::grow::partition_by;

/// One step of tree growth for every tree at once, executed in this order: apply `records`
/// and move rows to the children; build the histograms `builds` (`[tree, node, slot]`, slots
/// zeroed first); `subtracts` (`[into, minus]`: a parent's slot becomes its larger child's);
/// then the searches (`search`, `level`) and split sums (`sums`) on the histograms as they are
/// now.
#[derive(Clone, Debug, Default)]
pub(crate) struct Step {
    pub records: Vec<SplitRecord>,
    pub builds: Vec<[u32; 3]>,
    pub subtracts: Vec<[u32; 2]>,
    pub search: Vec<SearchTask>,
    pub level: Vec<LevelTask>,
    /// `[node, slot]` pairs of the level tasks.
    pub level_nodes: Vec<u32>,
    /// Feature masks, one row of `n_features` per task's `mask_row`.
    pub masks: Vec<u32>,
    pub sums: Vec<SumQuery>,
}

impl Step {
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
            && self.builds.is_empty()
            && self.search.is_empty()
            && self.level.is_empty()
            && self.sums.is_empty()
    }
}

/// The results of a step's searches and sums, in task order.
#[derive(Clone, Debug, Default)]
pub(crate) struct StepOut {
    pub search: Vec<SearchResult>,
    pub level: Vec<LevelResult>,
    pub sums: Vec<[i32; 3]>,
}

/// A device running the batched fit's kernels. The driver (`grow`) decides what to grow; the
/// backend holds the per-row state (scores, gradients, rows' nodes, histograms, tree tables).
pub(crate) trait Backend {
    /// Starts a round: members with `active[m] = 0` are skipped from now on; `in_bag` (per
    /// training entry) when some member subsamples; every tree's table cleared and every row
    /// at its root. Computes the gradients; returns per tree the largest `|g|` and `h` (bits).
    fn begin_round(&mut self, active: &[u32], in_bag: Option<&[u32]>) -> Result<Vec<u32>>;

    /// Quantizes the gradients with the trees' settings; returns every tree's root sums.
    fn quantize(&mut self, rounds: &[TreeRound], round: u32) -> Result<Vec<[i32; 3]>>;

    /// Runs a step.
    fn step(&mut self, step: &Step) -> Result<StepOut>;

    /// Ends a round: the values of the leaves `pairs` (`[tree, node]`), every row's scores
    /// updated, and per member the validation metric words (3 per member).
    fn finish_round(&mut self, pairs: &[u32]) -> Result<(Vec<f32>, Vec<u32>)>;
}

/// Splits `data` into consecutive pieces of `lengths[i]` elements.
fn pieces<T>(mut data: &mut [T], lengths: impl Iterator<Item = usize>) -> Vec<&mut [T]> {
    let mut out = Vec::new();
    for len in lengths {
        let (head, tail) = std::mem::take(&mut data).split_at_mut(len);
        out.push(head);
        data = tail;
    }
    out
}

/// One tree's rows grouped by node: a permutation of the member's rows and each node's range
/// in it (leaves only: a split node's range passes to its children).
#[derive(Default)]
struct TreeRows {
    perm: Vec<u32>,
    ranges: Vec<[u32; 2]>,
    scratch: Vec<u32>,
}

impl TreeRows {
    /// All `n` rows at the root of a tree of `cap` nodes.
    fn reset(&mut self, n: usize, cap: usize) {
        self.perm.clear();
        self.perm.extend(0..n as u32);
        self.ranges.clear();
        self.ranges.resize(cap, [0, 0]);
        self.ranges[0] = [0, n as u32];
    }

    /// The rows at `node` (empty unless it is a leaf with rows).
    fn of(&self, node: usize) -> &[u32] {
        let [s, e] = self.ranges[node];
        &self.perm[s as usize..e as usize]
    }

    /// Splits `node`'s rows between `left` and `left + 1` (stable).
    fn split(&mut self, node: usize, left: usize, goes_left: impl Fn(u32) -> bool) {
        let [s, e] = std::mem::take(&mut self.ranges[node]);
        let n_left = partition_by(
            &mut self.perm[s as usize..e as usize],
            &mut self.scratch,
            goes_left,
        );
        let mid = s + n_left as u32;
        self.ranges[left] = [s, mid];
        self.ranges[left + 1] = [mid, e];
    }
}

/// Tasks per parallel search chunk.
const SEARCH_CHUNK: usize = 4;

/// The CPU backend.
pub(crate) struct CpuBackend {
    p: Problem,
    bins: BinMatrix,
    binned: Binned,
    tables: Tables,
    /// Per member: its first validation entry; one more at the end.
    valid_off: Vec<usize>,
    slots_per_tree: usize,
    active: Vec<u32>,
    in_bag: Vec<u32>,
    scores: Vec<f32>,
    valid_scores: Vec<f32>,
    grad: Vec<f32>,
    hess: Vec<f32>,
    /// Per tree: its rows' quantized `[g, h]` (member-local order).
    gh: Vec<Vec<[i32; 2]>>,
    /// Per tree: its rows (member-local entries) grouped by node, as the engine partitions them.
    rows: Vec<TreeRows>,
    splits: Vec<u32>,
    node_stats: Vec<i32>,
    build_slot: Vec<u32>,
    values: Vec<f32>,
    hist: Vec<i32>,
    rounds: Vec<TreeRound>,
}

impl CpuBackend {
    /// A backend for `p` on `bins` (`binned`: the same bins with sparse row slots), with
    /// `slots_per_tree` histogram slots per tree (tree `t` owns slots `t · slots_per_tree..`);
    /// `scores` and `valid_scores` hold every entry's initial raw scores.
    pub fn new(
        p: Problem,
        bins: BinMatrix,
        binned: Binned,
        slots_per_tree: usize,
        scores: Vec<f32>,
        valid_scores: Vec<f32>,
    ) -> Self {
        let n = p.n_entries() * p.n_outputs;
        let nodes = p.n_trees() * p.cap;
        let mut valid_off = vec![0usize; p.n_members() + 1];
        for &m in &p.valid_member_of {
            valid_off[m as usize + 1] += 1;
        }
        for m in 0..p.n_members() {
            valid_off[m + 1] += valid_off[m];
        }
        Self {
            tables: Tables::new(),
            valid_off,
            slots_per_tree,
            active: vec![0; p.n_members()],
            in_bag: vec![1; p.n_entries()],
            scores,
            valid_scores,
            grad: vec![0.0; n],
            hess: vec![0.0; n],
            gh: vec![Vec::new(); p.n_trees()],
            rows: (0..p.n_trees()).map(|_| TreeRows::default()).collect(),
            splits: vec![0; 2 * nodes],
            node_stats: vec![0; 3 * nodes],
            build_slot: vec![NONE; nodes],
            values: vec![0.0; nodes],
            hist: vec![0; p.n_trees() * slots_per_tree * bins.total_bins * 3],
            rounds: Vec::new(),
            p,
            bins,
            binned,
        }
    }

    /// Per member: the length of its per-entry, per-output region.
    fn member_lengths(&self) -> impl Iterator<Item = usize> + '_ {
        let k = self.p.n_outputs;
        self.p
            .row_off
            .windows(2)
            .map(move |w| (w[1] - w[0]) as usize * k)
    }

    /// Builds the histograms `builds` of one tree into its slots `chunk`: each in-bag row's
    /// non-default bins, then every default bin as the node's total minus the other bins.
    fn build_tree(&self, tree: usize, builds: &[[u32; 3]], chunk: &mut [i32]) {
        let (p, k) = (&self.p, self.p.n_outputs);
        let m = tree / k;
        let width = self.bins.total_bins * 3;
        let first = (tree * self.slots_per_tree) as u32;
        for b in builds {
            let at = (b[2] - first) as usize * width;
            chunk[at..at + width].fill(0);
        }
        let b = &self.binned;
        let start = p.row_off[m] as usize;
        let n_bins = self.bins.total_bins;
        let (cells, _) = chunk.as_chunks_mut::<3>();
        for bld in builds {
            let slot = &mut cells[(bld[2] - first) as usize * n_bins..][..n_bins];
            let gh = &self.gh[tree];
            for &local in self.rows[tree].of(bld[1] as usize) {
                let e = start + local as usize;
                if self.in_bag[e] == 0 {
                    continue;
                }
                let [g, h] = gh[local as usize];
                let r = p.row_of[e] as usize;
                for &s in &b.slots[b.row_start[r] as usize..b.row_start[r + 1] as usize] {
                    let cell = &mut slot[usize::from(s)];
                    cell[0] = cell[0].wrapping_add(g);
                    cell[1] = cell[1].wrapping_add(h);
                    cell[2] = cell[2].wrapping_add(1);
                }
            }
        }
        for bld in builds {
            let base = (bld[2] - first) as usize * width;
            let total = split::node_sums(&self.node_stats, p.cap, tree, bld[1] as usize);
            for (f, d) in b.default_bin.iter().enumerate() {
                let Some(d) = d else { continue };
                let start = base + self.bins.offsets[f] as usize * 3;
                let nb = self.bins.n_bins[f] as usize;
                let mut others = [0i32; 3];
                for bin in (0..nb).filter(|&x| x != usize::from(*d)) {
                    for c in 0..3 {
                        others[c] = others[c].wrapping_add(chunk[start + bin * 3 + c]);
                    }
                }
                for c in 0..3 {
                    chunk[start + usize::from(*d) * 3 + c] = total[c].wrapping_sub(others[c]);
                }
            }
        }
    }
}

impl Backend for CpuBackend {
    fn begin_round(&mut self, active: &[u32], in_bag: Option<&[u32]>) -> Result<Vec<u32>> {
        self.active.copy_from_slice(active);
        match in_bag {
            Some(b) => self.in_bag.copy_from_slice(b),
            None => self.in_bag.fill(1),
        }
        let active = &self.active;
        self.splits.fill(0);
        self.node_stats.fill(0);
        let (p, k, t) = (&self.p, self.p.n_outputs, &self.tables);
        let cap = p.cap;
        self.rows
            .par_iter_mut()
            .enumerate()
            .for_each(|(tree, rows)| {
                let m = tree / k;
                if active[m] != 0 {
                    rows.reset((p.row_off[m + 1] - p.row_off[m]) as usize, cap);
                }
            });
        let lengths: Vec<usize> = self.member_lengths().collect();
        let scores = pieces(&mut self.scores, lengths.iter().copied());
        let grad = pieces(&mut self.grad, lengths.iter().copied());
        let hess = pieces(&mut self.hess, lengths.iter().copied());
        let maxima: Vec<Vec<u32>> = scores
            .into_par_iter()
            .zip(grad)
            .zip(hess)
            .enumerate()
            .map(|(m, ((s, g), h))| {
                let mut max = vec![0u32; 2 * k];
                if active[m] == 0 {
                    return max;
                }
                let first = p.row_off[m] as usize;
                for (i, ((s, g), h)) in s
                    .chunks_exact(k)
                    .zip(g.chunks_exact_mut(k))
                    .zip(h.chunks_exact_mut(k))
                    .enumerate()
                {
                    let y = p.labels[p.row_of[first + i] as usize];
                    let w = p.class_weight[m * p.n_classes + y as usize];
                    row_gradients(t, s, y, w, g, h);
                    for o in 0..k {
                        max[2 * o] = max[2 * o].max(g[o].abs().to_bits());
                        max[2 * o + 1] = max[2 * o + 1].max(h[o].abs().to_bits());
                    }
                }
                max
            })
            .collect();
        Ok(maxima.concat())
    }

    fn quantize(&mut self, rounds: &[TreeRound], round: u32) -> Result<Vec<[i32; 3]>> {
        self.rounds = rounds.to_vec();
        let (p, k) = (&self.p, self.p.n_outputs);
        let (grad, hess, active, in_bag) = (&self.grad, &self.hess, &self.active, &self.in_bag);
        let roots: Vec<Vec<[i32; 3]>> = self
            .gh
            .par_chunks_mut(k)
            .enumerate()
            .map(|(m, gh)| {
                let mut sums = vec![[0i32; 3]; k];
                if active[m] == 0 {
                    return sums;
                }
                let first = p.row_off[m] as usize;
                let n = p.row_off[m + 1] as usize - first;
                for (o, (gh, sums)) in gh.iter_mut().zip(&mut sums).enumerate() {
                    let tr = &rounds[m * k + o];
                    gh.resize(n, [0; 2]);
                    for (local, pair) in gh.iter_mut().enumerate() {
                        let e = first + local;
                        let (ng, nh) = if tr.stochastic {
                            let s = p.seed[m];
                            (
                                rounding_noise(s, round, o as u32, local as u32, SALT_GRAD),
                                rounding_noise(s, round, o as u32, local as u32, SALT_HESS),
                            )
                        } else {
                            (0.5, 0.5)
                        };
                        let g = quantize(grad[e * k + o], tr.inv_g, ng);
                        let h = quantize(hess[e * k + o], tr.inv_h, nh);
                        *pair = [g, h];
                        if in_bag[e] != 0 {
                            sums[0] = sums[0].wrapping_add(g);
                            sums[1] = sums[1].wrapping_add(h);
                            sums[2] = sums[2].wrapping_add(1);
                        }
                    }
                }
                sums
            })
            .collect();
        let roots = roots.concat();
        for (t, r) in roots.iter().enumerate() {
            let at = 3 * t * p.cap;
            self.node_stats[at..at + 3].copy_from_slice(r);
        }
        Ok(roots)
    }

    fn step(&mut self, step: &Step) -> Result<StepOut> {
        let cap = self.p.cap;
        let k = self.p.n_outputs;
        if !step.records.is_empty() {
            tree::apply_splits(cap, &step.records, &mut self.splits, &mut self.node_stats);
            let mut per_tree: Vec<Vec<&SplitRecord>> = vec![Vec::new(); self.p.n_trees()];
            for r in &step.records {
                per_tree[r.tree as usize].push(r);
            }
            let (p, binned) = (&self.p, &self.binned);
            self.rows
                .par_iter_mut()
                .zip(per_tree.par_iter())
                .enumerate()
                .filter(|(_, (_, records))| !records.is_empty())
                .for_each(|(tree, (rows, records))| {
                    let first = p.row_off[tree / k] as usize;
                    for r in records {
                        let column = binned.column(r.feature as usize);
                        rows.split(r.node as usize, r.left as usize, |l| {
                            let b = u32::from(column[p.row_of[first + l as usize] as usize]);
                            tree::goes_left(b, r.bin, r.missing_left)
                        });
                    }
                });
        }
        if !step.builds.is_empty() {
            let triples: Vec<u32> = step.builds.concat();
            hist::set_build_slots(cap, &triples, &mut self.build_slot);
            let n_trees = self.p.n_trees();
            let mut per_tree: Vec<Vec<[u32; 3]>> = vec![Vec::new(); n_trees];
            for b in &step.builds {
                per_tree[b[0] as usize].push(*b);
            }
            let width = self.slots_per_tree * self.bins.total_bins * 3;
            let mut hist = std::mem::take(&mut self.hist);
            hist.par_chunks_mut(width)
                .zip(per_tree.par_iter())
                .enumerate()
                .filter(|(_, (_, builds))| !builds.is_empty())
                .for_each(|(t, (chunk, builds))| self.build_tree(t, builds, chunk));
            self.hist = hist;
            let clear: Vec<u32> = step
                .builds
                .iter()
                .flat_map(|b| [b[0], b[1], NONE])
                .collect();
            hist::set_build_slots(cap, &clear, &mut self.build_slot);
        }
        if !step.subtracts.is_empty() {
            hist::subtract(
                &step.subtracts.concat(),
                self.bins.total_bins,
                &mut self.hist,
            );
        }
        let rules: Vec<NodeRules> = self.rounds.iter().map(TreeRound::rules).collect();
        let (bins, stats, h) = (&self.bins, &self.node_stats, &self.hist);
        let search: Vec<SearchResult> = step
            .search
            .par_chunks(SEARCH_CHUNK)
            .flat_map_iter(|tasks| split::search(bins, cap, tasks, &step.masks, &rules, stats, h))
            .collect();
        let level: Vec<LevelResult> = step
            .level
            .par_iter()
            .flat_map_iter(|task| {
                split::level_search(
                    bins,
                    cap,
                    std::slice::from_ref(task),
                    &step.level_nodes,
                    &step.masks,
                    &rules,
                    stats,
                    h,
                )
            })
            .collect();
        Ok(StepOut {
            search,
            level,
            sums: split::split_sums(bins, &step.sums, h),
        })
    }

    fn finish_round(&mut self, pairs: &[u32]) -> Result<(Vec<f32>, Vec<u32>)> {
        let (cap, k) = (self.p.cap, self.p.n_outputs);
        tree::leaf_values(cap, pairs, &self.rounds, &self.node_stats, &mut self.values);
        let lengths: Vec<usize> = self.member_lengths().collect();
        let (active, values, tree_rows) = (&self.active, &self.values, &self.rows);
        pieces(&mut self.scores, lengths.into_iter())
            .into_par_iter()
            .enumerate()
            .filter(|(m, _)| active[*m] != 0)
            .for_each(|(m, scores)| {
                for o in 0..k {
                    let tree = m * k + o;
                    for node in 0..cap {
                        let v = values[tree * cap + node];
                        for &l in tree_rows[tree].of(node) {
                            scores[l as usize * k + o] += v;
                        }
                    }
                }
            });
        let valid_lengths: Vec<usize> = self
            .valid_off
            .windows(2)
            .map(|w| (w[1] - w[0]) * k)
            .collect();
        let (p, bins, splits, tables, valid_off) = (
            &self.p,
            &self.bins,
            &self.splits,
            &self.tables,
            &self.valid_off,
        );
        let acc: Vec<[u32; 3]> = pieces(&mut self.valid_scores, valid_lengths.into_iter())
            .into_par_iter()
            .enumerate()
            .map(|(m, scores)| {
                if active[m] == 0 {
                    return [0; 3];
                }
                let (mut loss, mut hits) = (0u64, 0u32);
                for (i, row) in scores.chunks_exact_mut(k).enumerate() {
                    let r = p.valid_row_of[valid_off[m] + i] as usize;
                    for (o, s) in row.iter_mut().enumerate() {
                        let tree = m * k + o;
                        *s += values[tree * cap + tree::walk(bins, cap, splits, tree, r)];
                    }
                    let (l, hit) = row_metric(tables, row, p.labels[r]);
                    loss += u64::from(l);
                    hits += u32::from(hit);
                }
                [loss as u32, (loss >> 32) as u32, hits]
            })
            .collect();
        let values = pairs
            .chunks_exact(2)
            .map(|pair| self.values[pair[0] as usize * cap + pair[1] as usize])
            .collect();
        Ok((values, acc.concat()))
    }
}
