//! Integer gradient histograms: building, zeroing, subtracting.
//!
//! A slot holds `total_bins` bins of `[g, h, n]` (`i32`, two's complement). Additions wrap, so
//! a sum is the same whatever the order of its terms (and exact whenever the true sum fits in
//! an `i32`, which the quantization scales guarantee).

use crate::layout::{BinMatrix, NONE, Problem};

/// Kernel `build_histograms`: adds every in-bag entry of an active member, for every output
/// whose tree has a histogram slot for the entry's node (`build_slot[tree · cap + node]`), to
/// the bins of its row in that slot.
pub fn build(
    p: &Problem,
    bins: &BinMatrix,
    active: &[u32],
    in_bag: &[u32],
    node_of: &[u32],
    gq: &[i32],
    hq: &[i32],
    build_slot: &[u32],
    hist: &mut [i32],
) {
    let k = p.n_outputs;
    for e in 0..p.n_entries() {
        let m = p.member_of[e] as usize;
        if active[m] == 0 || in_bag[e] == 0 {
            continue;
        }
        let row = p.row_of[e] as usize;
        for j in 0..k {
            let tree = m * k + j;
            let node = node_of[e * k + j] as usize;
            let slot = build_slot[tree * p.cap + node];
            if slot == NONE {
                continue;
            }
            let (g, h) = (gq[e * k + j], hq[e * k + j]);
            let base = slot as usize * bins.total_bins;
            for f in 0..bins.n_features {
                let i = (base + (bins.offsets[f] + bins.bin(row, f)) as usize) * 3;
                hist[i] = hist[i].wrapping_add(g);
                hist[i + 1] = hist[i + 1].wrapping_add(h);
                hist[i + 2] = hist[i + 2].wrapping_add(1);
            }
        }
    }
}

/// Kernel `zero_slots`: clears the listed slots.
pub fn zero_slots(slots: &[u32], total_bins: usize, hist: &mut [i32]) {
    for &s in slots {
        let start = s as usize * total_bins * 3;
        hist[start..start + total_bins * 3].fill(0);
    }
}

/// Kernel `subtract_histograms`: for every pair `[into, minus]`, `slot[into] −= slot[minus]` (a
/// parent's histogram becomes its larger child's).
pub fn subtract(pairs: &[u32], total_bins: usize, hist: &mut [i32]) {
    let width = total_bins * 3;
    for pair in pairs.chunks_exact(2) {
        let (into, minus) = (pair[0] as usize * width, pair[1] as usize * width);
        for i in 0..width {
            hist[into + i] = hist[into + i].wrapping_sub(hist[minus + i]);
        }
    }
}

/// Kernel `set_build_slots`: `build_slot[tree · cap + node] = slot` for every triple
/// `[tree, node, slot]` (the slot [`NONE`] clears it).
pub fn set_build_slots(cap: usize, triples: &[u32], build_slot: &mut [u32]) {
    for t in triples.chunks_exact(3) {
        build_slot[t[0] as usize * cap + t[1] as usize] = t[2];
    }
}
