//! The batched algorithm: every active member's trees grow together, one step at a time
//! (depth-wise and oblivious trees a level per step, leaf-wise trees one split per step), with
//! the engine's decisions, random draws and node numbering, so each member's trees are the
//! ones the engine grows alone with quantized gradients.

use tabtune_features::rng::SplitMix64;
use tabtune_kernels::layout::{
    LevelTask, NONE, SearchResult, SearchTask, SplitRecord, SumQuery, TreeRound,
};

use super::backend::{Backend, Step};
use crate::error::{ModelError, Result};
use crate::gbdt::binning::BinMapper;
use crate::gbdt::grow::sample;
use crate::gbdt::hist::SplitRules;
use crate::gbdt::params::{GbdtValid, Growth};
use crate::gbdt::quant;
use crate::gbdt::tree::{Node, Tree};

/// A split found for a node, in quantized sums.
#[derive(Clone, Copy, Debug)]
struct Found {
    feature: usize,
    bin: usize,
    missing_left: bool,
    gain: f64,
    left: [i32; 3],
    right: [i32; 3],
}

/// What the driver knows of a node.
#[derive(Clone, Debug)]
struct NodeInfo {
    stats: [i32; 3],
    depth: usize,
    slot: Option<u32>,
    best: Option<Found>,
}

/// One tree while it grows.
pub(crate) struct TreeGrowth<'p> {
    /// Tree index (`member · K + output`).
    pub tree: usize,
    params: &'p GbdtValid,
    round: TreeRound,
    rules: SplitRules,
    rng: SplitMix64,
    features: Vec<usize>,
    nodes: Vec<Node>,
    info: Vec<NodeInfo>,
    free: Vec<u32>,
    /// Per split: `(feature, gain)` for the importances.
    pub splits: Vec<(usize, f64)>,
    open: Vec<usize>,
    level: Vec<usize>,
    n_leaves: usize,
    done: bool,
}

fn sub(a: [i32; 3], b: [i32; 3]) -> [i32; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

impl<'p> TreeGrowth<'p> {
    /// A tree of `params` with its round settings, root sums, features (its column sample),
    /// the seed of its per-node draws and its histogram slots.
    pub fn new(
        tree: usize,
        params: &'p GbdtValid,
        round: TreeRound,
        root: [i32; 3],
        features: Vec<usize>,
        node_seed: u64,
        slots: std::ops::Range<u32>,
    ) -> Self {
        Self {
            tree,
            params,
            round,
            rules: SplitRules {
                lambda: params.lambda,
                alpha: params.alpha,
                gamma: params.gamma,
                min_child_weight: params.min_child_weight,
                min_data_in_leaf: params.min_data_in_leaf as f64,
            },
            rng: SplitMix64::new(node_seed),
            features,
            nodes: vec![Node::Leaf { value: 0.0 }],
            info: vec![NodeInfo {
                stats: root,
                depth: 0,
                slot: None,
                best: None,
            }],
            free: slots.rev().collect(),
            splits: Vec::new(),
            open: Vec::new(),
            level: Vec::new(),
            n_leaves: 1,
            done: false,
        }
    }

    fn t(&self) -> u32 {
        self.tree as u32
    }

    /// The engine's `can_split`: depth left and rows for two children.
    fn can_split(&self, node: usize) -> bool {
        let p = self.params;
        let i = &self.info[node];
        let depth_ok = p.max_depth == 0 || i.depth < p.max_depth;
        depth_ok && f64::from(i.stats[2]) >= 2.0 * (p.min_data_in_leaf as f64).max(1.0)
    }

    fn alloc(&mut self) -> Result<u32> {
        self.free.pop().ok_or_else(|| {
            ModelError::Data(format!(
                "tree {}: more histogram slots needed than budgeted (internal limit)",
                self.tree
            ))
        })
    }

    fn release(&mut self, node: usize) {
        if let Some(s) = self.info[node].slot.take() {
            self.free.push(s);
        }
    }

    /// The node-level feature sample (one draw of the tree's generator) as a mask row.
    fn mask(&mut self, step: &mut Step, n_features: usize) -> u32 {
        let chosen = sample(&self.features, self.params.colsample_bynode, &mut self.rng);
        let row = (step.masks.len() / n_features) as u32;
        let start = step.masks.len();
        step.masks.resize(start + n_features, 0);
        for f in chosen {
            step.masks[start + f] = 1;
        }
        row
    }

    fn search(&mut self, step: &mut Step, node: usize, n_features: usize, pending: &mut Pending) {
        let mask_row = self.mask(step, n_features);
        step.search.push(SearchTask {
            tree: self.t(),
            node: node as u32,
            slot: self.info[node]
                .slot
                .expect("a searched node has a histogram"),
            mask_row,
        });
        pending.push((self.tree, node));
    }

    /// The root step: for depth-wise and leaf-wise trees the root's node sample is drawn (the
    /// engine draws it whether or not the root can split), then its histogram is built and
    /// searched when it can split; oblivious roots only get their histogram.
    fn start(&mut self, step: &mut Step, n_features: usize, pending: &mut Pending) -> Result<()> {
        let growth = self.params.growth;
        let splittable = self.can_split(0);
        if splittable {
            let slot = self.alloc()?;
            self.info[0].slot = Some(slot);
            step.builds.push([self.t(), 0, slot]);
        }
        match growth {
            Growth::Oblivious => self.level = vec![0],
            Growth::DepthWise | Growth::LeafWise => {
                if splittable {
                    self.search(step, 0, n_features, pending);
                } else {
                    self.mask(step, n_features);
                }
                self.level = vec![0];
                self.open = vec![0];
            }
        }
        Ok(())
    }

    /// Records a search result for `node`: the split when its gain is positive.
    fn found(&mut self, node: usize, r: &SearchResult) {
        if r.feature == NONE {
            return;
        }
        let total = self.info[node].stats;
        let right = sub(total, r.left);
        let gain = quant::gain(&self.round, &self.rules, total, r.left, right);
        if gain > 0.0 {
            self.info[node].best = Some(Found {
                feature: r.feature as usize,
                bin: r.bin as usize,
                missing_left: r.missing_left,
                gain,
                left: r.left,
                right,
            });
        }
    }

    /// Turns leaf `node` into a split with two new leaf children; returns them.
    fn split(
        &mut self,
        step: &mut Step,
        node: usize,
        f: &Found,
        mappers: &[BinMapper],
    ) -> (usize, usize) {
        let left = self.nodes.len();
        let depth = self.info[node].depth + 1;
        for stats in [f.left, f.right] {
            self.nodes.push(Node::Leaf { value: 0.0 });
            self.info.push(NodeInfo {
                stats,
                depth,
                slot: None,
                best: None,
            });
        }
        self.nodes[node] = Node::Split {
            feature: f.feature as u32,
            threshold: mappers[f.feature].threshold(f.bin),
            bin: f.bin as u8,
            missing_left: f.missing_left,
            left: left as u32,
            right: left as u32 + 1,
            gain: f.gain as f32,
        };
        step.records.push(SplitRecord {
            tree: self.t(),
            node: node as u32,
            feature: f.feature as u32,
            bin: f.bin as u32,
            missing_left: f.missing_left,
            left: left as u32,
            left_stats: f.left,
            right_stats: f.right,
        });
        (left, left + 1)
    }

    /// The children's histograms: the smaller child's built, the parent's slot becomes the
    /// larger child's.
    fn child_histograms(
        &mut self,
        step: &mut Step,
        parent_slot: u32,
        l: usize,
        r: usize,
    ) -> Result<()> {
        let (small, large) = if self.info[l].stats[2] <= self.info[r].stats[2] {
            (l, r)
        } else {
            (r, l)
        };
        let slot = self.alloc()?;
        step.builds.push([self.t(), small as u32, slot]);
        step.subtracts.push([parent_slot, slot]);
        self.info[small].slot = Some(slot);
        self.info[large].slot = Some(parent_slot);
        Ok(())
    }

    /// Splits `node` on its best split and prepares its children (histograms and searches
    /// where they may split further; none when `final_leaves`), as the engine's `split`.
    fn split_node(
        &mut self,
        step: &mut Step,
        node: usize,
        final_leaves: bool,
        mappers: &[BinMapper],
        pending: &mut Pending,
    ) -> Result<(usize, usize)> {
        let f = self.info[node]
            .best
            .take()
            .expect("only nodes with a split");
        self.splits.push((f.feature, f.gain));
        let (l, r) = self.split(step, node, &f, mappers);
        let parent_slot = self.info[node].slot.take();
        if !final_leaves && (self.can_split(l) || self.can_split(r)) {
            let ps = parent_slot.expect("a splittable node has a histogram");
            self.child_histograms(step, ps, l, r)?;
            for c in [l, r] {
                if self.can_split(c) {
                    self.search(step, c, mappers.len(), pending);
                }
            }
        } else if let Some(s) = parent_slot {
            self.free.push(s);
        }
        Ok((l, r))
    }

    /// Depth-wise: splits every node of the level that has a split.
    fn depthwise_step(
        &mut self,
        step: &mut Step,
        mappers: &[BinMapper],
        pending: &mut Pending,
    ) -> Result<()> {
        let mut next = Vec::new();
        for node in std::mem::take(&mut self.level) {
            if self.info[node].best.is_some() {
                let (l, r) = self.split_node(step, node, false, mappers, pending)?;
                next.push(l);
                next.push(r);
            } else {
                self.release(node);
            }
        }
        self.done = next.is_empty();
        self.level = next;
        Ok(())
    }

    /// Leaf-wise: splits the open leaf of the largest gain (the first on ties).
    fn leafwise_step(
        &mut self,
        step: &mut Step,
        mappers: &[BinMapper],
        pending: &mut Pending,
    ) -> Result<()> {
        if self.n_leaves >= self.params.num_leaves {
            self.done = true;
            return Ok(());
        }
        let pick = self
            .open
            .iter()
            .enumerate()
            .filter_map(|(i, &o)| self.info[o].best.map(|b| (i, b.gain)))
            .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)));
        let Some((i, _)) = pick else {
            self.done = true;
            return Ok(());
        };
        let parent = self.open.swap_remove(i);
        self.n_leaves += 1;
        let last = self.n_leaves == self.params.num_leaves;
        let (l, r) = self.split_node(step, parent, last, mappers, pending)?;
        self.open.push(l);
        self.open.push(r);
        Ok(())
    }

    /// Frees the histograms of nodes that will not be split.
    fn release_unsplittable(&mut self) {
        let nodes: Vec<usize> = match self.params.growth {
            Growth::LeafWise => self.open.clone(),
            _ => self.level.clone(),
        };
        for n in nodes {
            if self.info[n].best.is_none() {
                self.release(n);
            }
        }
    }

    /// Oblivious: the level's search task (its node sample drawn), unless the tree is done.
    fn level_search(&mut self, step: &mut Step, n_features: usize) -> bool {
        if self.done
            || self.info[self.level[0]].depth >= self.params.max_depth
            || self.level.iter().any(|&n| self.info[n].slot.is_none())
        {
            self.finish_level();
            return false;
        }
        let mask_row = self.mask(step, n_features);
        let first = (step.level_nodes.len() / 2) as u32;
        for &n in &self.level {
            step.level_nodes.push(n as u32);
            step.level_nodes
                .push(self.info[n].slot.expect("checked above"));
        }
        step.level.push(LevelTask {
            tree: self.t(),
            first,
            count: self.level.len() as u32,
            mask_row,
        });
        true
    }

    fn finish_level(&mut self) {
        self.done = true;
        for n in self.level.clone() {
            self.release(n);
        }
    }

    /// Oblivious: the level's sum queries for the shared split found.
    fn level_sums(&self, step: &mut Step, r: &tabtune_kernels::layout::LevelResult) {
        for &n in &self.level {
            step.sums.push(SumQuery {
                slot: self.info[n].slot.expect("level nodes have histograms"),
                feature: r.feature,
                bin: r.bin,
                missing_left: r.missing_dir && r.any_missing,
            });
        }
    }

    /// Oblivious: applies the level's shared split to every node (children histograms unless
    /// the level is the last), given the nodes' left sums.
    fn level_split(
        &mut self,
        step: &mut Step,
        r: &tabtune_kernels::layout::LevelResult,
        lefts: &[[i32; 3]],
        mappers: &[BinMapper],
    ) -> Result<()> {
        let totals: Vec<[i32; 3]> = self.level.iter().map(|&n| self.info[n].stats).collect();
        let (missing_left, gain) = quant::shared_gain(
            &totals,
            lefts,
            r.missing_dir,
            r.any_missing,
            &self.round,
            &self.rules,
        );
        if gain <= 0.0 {
            self.finish_level();
            return Ok(());
        }
        let last = self.info[self.level[0]].depth + 1 == self.params.max_depth;
        let mut next = Vec::with_capacity(2 * self.level.len());
        for (j, node) in std::mem::take(&mut self.level).into_iter().enumerate() {
            let f = Found {
                feature: r.feature as usize,
                bin: r.bin as usize,
                missing_left,
                gain,
                left: lefts[j],
                right: sub(totals[j], lefts[j]),
            };
            let (l, rr) = self.split(step, node, &f, mappers);
            let ps = self.info[node]
                .slot
                .take()
                .expect("level nodes have histograms");
            if last {
                self.free.push(ps);
            } else {
                self.child_histograms(step, ps, l, rr)?;
            }
            next.push(l);
            next.push(rr);
        }
        // The level counts once in the importances.
        self.splits.push((r.feature as usize, gain));
        self.level = next;
        if last {
            self.done = true;
        }
        Ok(())
    }

    /// The leaves as `[tree, node]` pairs.
    pub fn leaf_pairs(&self, out: &mut Vec<u32>) {
        for (i, n) in self.nodes.iter().enumerate() {
            if matches!(n, Node::Leaf { .. }) {
                out.push(self.t());
                out.push(i as u32);
            }
        }
    }

    /// The finished tree with leaf values (in [`Self::leaf_pairs`] order).
    pub fn into_tree(self, values: &mut impl Iterator<Item = f32>) -> (Tree, Vec<(usize, f64)>) {
        let mut nodes = self.nodes;
        for n in &mut nodes {
            if let Node::Leaf { value } = n {
                *value = values.next().expect("one value per leaf");
            }
        }
        (Tree { nodes }, self.splits)
    }
}

/// Nodes awaiting a search result, `(tree index in the round's list, node)`.
type Pending = Vec<(usize, usize)>;

/// Grows every tree of a round (all with one growth policy) on `backend`.
pub(crate) fn grow_trees(
    backend: &mut dyn Backend,
    trees: &mut [TreeGrowth<'_>],
    growth: Growth,
    mappers: &[BinMapper],
) -> Result<()> {
    let nf = mappers.len();
    // Trees are addressed by their position in `trees` in pending lists.
    let index: std::collections::HashMap<usize, usize> =
        trees.iter().enumerate().map(|(i, t)| (t.tree, i)).collect();
    let mut step = Step::default();
    let mut pending = Pending::new();
    for t in trees.iter_mut() {
        t.start(&mut step, nf, &mut pending)?;
    }
    match growth {
        Growth::DepthWise | Growth::LeafWise => loop {
            let out = backend.step(&step)?;
            deliver(trees, &index, &pending, &out.search);
            for t in trees.iter_mut() {
                t.release_unsplittable();
            }
            step = Step::default();
            pending.clear();
            for t in trees.iter_mut().filter(|t| !t.done) {
                if growth == Growth::DepthWise {
                    t.depthwise_step(&mut step, mappers, &mut pending)?;
                } else {
                    t.leafwise_step(&mut step, mappers, &mut pending)?;
                }
            }
            if step.is_empty() {
                return Ok(());
            }
        },
        Growth::Oblivious => loop {
            let mut searching = Vec::new();
            for (i, t) in trees.iter_mut().enumerate() {
                if t.level_search(&mut step, nf) {
                    searching.push(i);
                }
            }
            if step.is_empty() {
                return Ok(());
            }
            let out = backend.step(&step)?;
            let mut sums = Step::default();
            let mut found = Vec::new();
            for (&i, r) in searching.iter().zip(&out.level) {
                if r.feature == NONE {
                    trees[i].finish_level();
                } else {
                    trees[i].level_sums(&mut sums, r);
                    found.push((i, *r));
                }
            }
            step = Step::default();
            if found.is_empty() {
                continue;
            }
            let lefts = backend.step(&sums)?.sums;
            let mut at = 0;
            for (i, r) in found {
                let n = trees[i].level.len();
                trees[i].level_split(&mut step, &r, &lefts[at..at + n], mappers)?;
                at += n;
            }
        },
    }
}

fn deliver(
    trees: &mut [TreeGrowth<'_>],
    index: &std::collections::HashMap<usize, usize>,
    pending: &Pending,
    results: &[SearchResult],
) {
    for (&(tree, node), r) in pending.iter().zip(results) {
        trees[index[&tree]].found(node, r);
    }
}
