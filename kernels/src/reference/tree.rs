//! Trees as tables: applying splits, moving rows to children, leaf values, score updates.
//!
//! A tree's split table holds two words per node: [`pack_split`](crate::layout::pack_split)
//! (0: a leaf) and the left child's node (the right child follows it).

use super::math::leaf_value;
use crate::layout::{BinMatrix, Problem, SplitRecord, TreeRound, unpack_split};

/// Kernel `apply_splits`: writes each record's split into the split table and its children's
/// sums into the node table.
pub fn apply_splits(cap: usize, records: &[SplitRecord], splits: &mut [u32], stats: &mut [i32]) {
    for r in records {
        let w = r.words();
        let at = r.tree as usize * cap + r.node as usize;
        splits[2 * at] = w[2];
        splits[2 * at + 1] = r.left;
        let left = r.tree as usize * cap + r.left as usize;
        stats[3 * left..3 * left + 3].copy_from_slice(&r.left_stats);
        stats[3 * left + 3..3 * left + 6].copy_from_slice(&r.right_stats);
    }
}

/// Which child a row with bin `b` takes at split `(bin, missing_left)`: `true` = left.
#[inline]
pub fn goes_left(b: u32, bin: u32, missing_left: bool) -> bool {
    if b == 0 { missing_left } else { b <= bin }
}

/// Kernel `partition`: every entry of an active member whose node (in the tree of an output)
/// has been split moves to the child its row's bin picks. Out-of-bag rows move too (their
/// scores follow the tree).
pub fn partition(
    p: &Problem,
    bins: &BinMatrix,
    active: &[u32],
    splits: &[u32],
    node_of: &mut [u32],
) {
    let k = p.n_outputs;
    for e in 0..p.n_entries() {
        let m = p.member_of[e] as usize;
        if active[m] == 0 {
            continue;
        }
        let row = p.row_of[e] as usize;
        for j in 0..k {
            let tree = m * k + j;
            let node = node_of[e * k + j] as usize;
            let at = tree * p.cap + node;
            if let Some((f, bin, missing_left)) = unpack_split(splits[2 * at]) {
                let left = splits[2 * at + 1];
                let b = bins.bin(row, f as usize);
                node_of[e * k + j] = if goes_left(b, bin, missing_left) {
                    left
                } else {
                    left + 1
                };
            }
        }
    }
}

/// Kernel `leaf_values`: the value of each listed node (`pairs[2i] = tree, pairs[2i + 1] =
/// node`) from its sums and its tree's round settings, into `values[tree · cap + node]`.
pub fn leaf_values(
    cap: usize,
    pairs: &[u32],
    rounds: &[TreeRound],
    stats: &[i32],
    values: &mut [f32],
) {
    for pair in pairs.chunks_exact(2) {
        let (tree, node) = (pair[0] as usize, pair[1] as usize);
        let at = tree * cap + node;
        let r = &rounds[tree];
        values[at] = leaf_value(
            stats[3 * at],
            stats[3 * at + 1],
            r.scale_g,
            r.scale_h,
            r.lambda,
            r.alpha_q,
            r.learning_rate,
        );
    }
}

/// Kernel `update_scores`: every entry of an active member adds the value of its leaf, per
/// output, to its raw score.
pub fn update_scores(
    p: &Problem,
    active: &[u32],
    node_of: &[u32],
    values: &[f32],
    scores: &mut [f32],
) {
    let k = p.n_outputs;
    for e in 0..p.n_entries() {
        let m = p.member_of[e] as usize;
        if active[m] == 0 {
            continue;
        }
        for j in 0..k {
            let tree = m * k + j;
            scores[e * k + j] += values[tree * p.cap + node_of[e * k + j] as usize];
        }
    }
}

/// The leaf a row of the bin matrix reaches in a tree (walking the split table from the root).
pub fn walk(bins: &BinMatrix, cap: usize, splits: &[u32], tree: usize, row: usize) -> usize {
    let mut node = 0usize;
    for _ in 0..cap {
        let at = tree * cap + node;
        match unpack_split(splits[2 * at]) {
            Some((f, bin, missing_left)) => {
                let left = splits[2 * at + 1] as usize;
                node = if goes_left(bins.bin(row, f as usize), bin, missing_left) {
                    left
                } else {
                    left + 1
                };
            }
            None => break,
        }
    }
    node
}

/// Kernel `update_valid`: every validation entry of an active member walks its member's trees
/// and adds the leaf values to its raw scores.
pub fn update_valid(
    p: &Problem,
    bins: &BinMatrix,
    active: &[u32],
    splits: &[u32],
    values: &[f32],
    valid_scores: &mut [f32],
) {
    let k = p.n_outputs;
    for v in 0..p.n_valid() {
        let m = p.valid_member_of[v] as usize;
        if active[m] == 0 {
            continue;
        }
        let row = p.valid_row_of[v] as usize;
        for j in 0..k {
            let tree = m * k + j;
            let leaf = walk(bins, p.cap, splits, tree, row);
            valid_scores[v * k + j] += values[tree * p.cap + leaf];
        }
    }
}
