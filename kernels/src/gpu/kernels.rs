//! The kernels in CubeCL. Each mirrors its CPU reference in [`crate::reference`] operation for
//! operation (see [`crate::reference::math`] for the rules that keep them bit-identical): the
//! same `f32` operations in the same order, integer sums as atomic additions (exact and
//! order-free), ties broken by the same first-wins scans.
//!
//! Indexing: one unit per work item (`ABSOLUTE_POS`), items past the end return at once.

use cubecl::prelude::*;

// ---------------------------------------------------------------------------------------------
// Shared arithmetic (mirrors `reference::math`).

/// `exp(−d)` from the table (0 beyond it and for NaN).
#[cube]
fn exp_neg(table: &Array<f32>, d: f32) -> f32 {
    let x = d * 16384.0f32;
    let mut r = 0.0f32;
    // (EXP_TABLE_LEN − 1) as f32 = 24 · 2^14.
    if x < 393_216.0f32 {
        r = table[u32::cast_from(x + 0.5f32) as usize];
    }
    r
}

/// `ln(v)` for finite `v ≥ 1`.
#[cube]
fn ln_ge1(ln_pow2: &Array<f32>, ln_mantissa: &Array<f32>, v: f32) -> f32 {
    let bits = u32::reinterpret(v);
    let e = (bits >> 23) - 127u32;
    let m = ((bits & 0x007F_FFFFu32) + 64u32) >> 7;
    ln_pow2[e as usize] + ln_mantissa[m as usize]
}

#[cube]
fn lowbias32(x0: u32) -> u32 {
    let mut x = x0;
    x ^= x >> 16;
    x *= 0x7FEB_352Du32;
    x ^= x >> 15;
    x *= 0x846C_A68Bu32;
    x ^= x >> 16;
    x
}

#[cube]
fn rounding_noise(seed: u32, round: u32, output: u32, row: u32, salt: u32) -> f32 {
    let mut x = lowbias32(seed ^ salt);
    x = lowbias32(x ^ round);
    x = lowbias32(x ^ output);
    x = lowbias32(x ^ row);
    // 2^-24, exact.
    f32::cast_from(x >> 8) * 5.960_464_5e-8f32
}

#[cube]
fn quantize(v: f32, inverse_scale: f32, noise: f32) -> i32 {
    i32::cast_from(f32::floor(v * inverse_scale + noise))
}

#[cube]
fn shrink(g: f32, alpha: f32) -> f32 {
    let mut t = 0.0f32;
    if g > alpha {
        t = g - alpha;
    } else if g < -alpha {
        t = g + alpha;
    }
    t
}

#[cube]
fn score(g: i32, h: i32, lambda: f32, alpha: f32) -> f32 {
    let t = shrink(f32::cast_from(g), alpha);
    t * t / (f32::cast_from(h) + lambda)
}

/// The bin of feature `f` in row `row` of the packed matrix.
#[cube]
fn bin_of(data: &Array<u32>, words_per_row: u32, row: u32, f: u32) -> u32 {
    let word = data[(row * words_per_row + (f >> 2)) as usize];
    (word >> ((f & 3u32) * 8u32)) & 0xFFu32
}

// Words of a `TreeRound`.
const TR_WORDS: u32 = 11;
const TR_SCALE_G: u32 = 0;
const TR_INV_G: u32 = 1;
const TR_SCALE_H: u32 = 2;
const TR_INV_H: u32 = 3;
const TR_LAMBDA_Q: u32 = 4;
const TR_ALPHA_Q: u32 = 5;
const TR_MIN_HESS: u32 = 6;
const TR_MIN_ROWS: u32 = 7;
const TR_LAMBDA: u32 = 8;
const TR_LEARNING_RATE: u32 = 9;
const TR_STOCHASTIC: u32 = 10;

#[cube]
fn tr_f32(rounds: &Array<u32>, tree: u32, word: u32) -> f32 {
    f32::reinterpret(rounds[(tree * TR_WORDS + word) as usize])
}

#[cube]
fn tr_i32(rounds: &Array<u32>, tree: u32, word: u32) -> i32 {
    i32::reinterpret(rounds[(tree * TR_WORDS + word) as usize])
}

// ---------------------------------------------------------------------------------------------
// Gradients, quantization, root sums, metric (mirror `reference::grad`).

/// One unit per training entry: gradients and hessians of its outputs, and per tree the
/// largest `|g|` and `h` (bits, atomic maximum).
#[cube(launch)]
pub fn gradients(
    member_of: &Array<u32>,
    row_of: &Array<u32>,
    labels: &Array<u32>,
    class_weight: &Array<f32>,
    active: &Array<u32>,
    exp_table: &Array<f32>,
    scores: &Array<f32>,
    grad: &mut Array<f32>,
    hess: &mut Array<f32>,
    max_bits: &mut Array<Atomic<u32>>,
    n_outputs: u32,
    n_classes: u32,
) {
    let e = ABSOLUTE_POS;
    if e >= member_of.len() {
        terminate!();
    }
    let m = member_of[e];
    if active[m as usize] == 0u32 {
        terminate!();
    }
    let y = labels[row_of[e] as usize];
    let w = class_weight[(m * n_classes + y) as usize];
    let k = n_outputs as usize;
    let base = e * k;
    if n_outputs == 1u32 {
        let s = scores[base];
        let ex = exp_neg(exp_table, f32::abs(s));
        let one_plus = 1.0f32 + ex;
        let mut p = ex / one_plus;
        if s >= 0.0f32 {
            p = 1.0f32 / one_plus;
        }
        let mut label = 0.0f32;
        if y == 1u32 {
            label = 1.0f32;
        }
        let g = (p - label) * w;
        let h = p * (1.0f32 - p) * w;
        grad[base] = g;
        hess[base] = h;
        let tree = m as usize;
        max_bits[2 * tree].fetch_max(u32::reinterpret(f32::abs(g)));
        max_bits[2 * tree + 1].fetch_max(u32::reinterpret(f32::abs(h)));
    } else {
        let mut max = scores[base];
        for j in 1..k {
            let v = scores[base + j];
            if v > max {
                max = v;
            }
        }
        let mut sum = 0.0f32;
        for j in 0..k {
            sum += exp_neg(exp_table, max - scores[base + j]);
        }
        let c = f32::cast_from(n_outputs) / f32::cast_from(n_outputs - 1u32);
        for j in 0..k {
            let p = exp_neg(exp_table, max - scores[base + j]) / sum;
            let mut label = 0.0f32;
            if y as usize == j {
                label = 1.0f32;
            }
            let g = (p - label) * w;
            let h = c * p * (1.0f32 - p) * w;
            grad[base + j] = g;
            hess[base + j] = h;
            let tree = m as usize * k + j;
            max_bits[2 * tree].fetch_max(u32::reinterpret(f32::abs(g)));
            max_bits[2 * tree + 1].fetch_max(u32::reinterpret(f32::abs(h)));
        }
    }
}

/// One unit per training entry: its outputs' gradients and hessians quantized.
#[cube(launch)]
pub fn quantize_all(
    member_of: &Array<u32>,
    row_off: &Array<u32>,
    seed: &Array<u32>,
    active: &Array<u32>,
    rounds: &Array<u32>,
    grad: &Array<f32>,
    hess: &Array<f32>,
    gq: &mut Array<i32>,
    hq: &mut Array<i32>,
    round: u32,
    n_outputs: u32,
) {
    let e = ABSOLUTE_POS;
    if e >= member_of.len() {
        terminate!();
    }
    let m = member_of[e];
    if active[m as usize] == 0u32 {
        terminate!();
    }
    let local = e as u32 - row_off[m as usize];
    let k = n_outputs as usize;
    for j in 0..k {
        let tree = m * n_outputs + j as u32;
        let mut ng = 0.5f32;
        let mut nh = 0.5f32;
        if rounds[(tree * TR_WORDS + TR_STOCHASTIC) as usize] != 0u32 {
            let s = seed[m as usize];
            ng = rounding_noise(s, round, j as u32, local, 0x68E3_1DA4u32);
            nh = rounding_noise(s, round, j as u32, local, 0xB529_7A4Du32);
        }
        let i = e * k + j;
        gq[i] = quantize(grad[i], tr_f32(rounds, tree, TR_INV_G), ng);
        hq[i] = quantize(hess[i], tr_f32(rounds, tree, TR_INV_H), nh);
    }
}

/// One unit per training entry: its in-bag pairs added to its trees' roots.
#[cube(launch)]
pub fn root_sums(
    member_of: &Array<u32>,
    active: &Array<u32>,
    in_bag: &Array<u32>,
    gq: &Array<i32>,
    hq: &Array<i32>,
    node_stats: &mut Array<Atomic<i32>>,
    n_outputs: u32,
    cap: u32,
) {
    let e = ABSOLUTE_POS;
    if e >= member_of.len() {
        terminate!();
    }
    let m = member_of[e];
    if active[m as usize] == 0u32 || in_bag[e] == 0u32 {
        terminate!();
    }
    let k = n_outputs as usize;
    for j in 0..k {
        let root = ((m * n_outputs + j as u32) * cap * 3u32) as usize;
        node_stats[root].fetch_add(gq[e * k + j]);
        node_stats[root + 1].fetch_add(hq[e * k + j]);
        node_stats[root + 2].fetch_add(1i32);
    }
}

/// One unit per validation entry: its fixed-point log loss added to its member's 64-bit sum
/// (low word with carry into the high word) and its hit to the member's count.
#[cube(launch)]
#[allow(unused_assignments)]
pub fn metrics(
    valid_member_of: &Array<u32>,
    valid_row_of: &Array<u32>,
    labels: &Array<u32>,
    active: &Array<u32>,
    exp_table: &Array<f32>,
    ln_pow2: &Array<f32>,
    ln_mantissa: &Array<f32>,
    valid_scores: &Array<f32>,
    acc: &mut Array<Atomic<u32>>,
    n_outputs: u32,
) {
    let v = ABSOLUTE_POS;
    if v >= valid_member_of.len() {
        terminate!();
    }
    let m = valid_member_of[v] as usize;
    if active[m] == 0u32 {
        terminate!();
    }
    let y = labels[valid_row_of[v] as usize];
    let k = n_outputs as usize;
    let base = v * k;
    let mut loss = 0.0f32;
    let mut predicted = 0u32;
    if n_outputs == 1u32 {
        let s = valid_scores[base];
        let d = f32::abs(s);
        let l = ln_ge1(ln_pow2, ln_mantissa, 1.0f32 + exp_neg(exp_table, d));
        let wrong_side = (y == 1u32) != (s >= 0.0f32);
        loss = l;
        if wrong_side {
            loss = d + l;
        }
        if s > 0.0f32 {
            predicted = 1u32;
        }
    } else {
        let mut max = valid_scores[base];
        for j in 1..k {
            let s = valid_scores[base + j];
            if s > max {
                max = s;
                predicted = j as u32;
            }
        }
        let mut sum = 0.0f32;
        for j in 0..k {
            sum += exp_neg(exp_table, max - valid_scores[base + j]);
        }
        loss = (max - valid_scores[base + y as usize]) + ln_ge1(ln_pow2, ln_mantissa, sum);
    }
    // LOSS_CLIP, LOSS_FIXED_ONE.
    let mut clipped = 34.538_776f32;
    if loss < 34.538_776f32 {
        clipped = loss;
    }
    let fixed = u32::cast_from(clipped * 1_048_576.0f32 + 0.5f32);
    let old = acc[3 * m].fetch_add(fixed);
    if old > 0xFFFF_FFFFu32 - fixed {
        acc[3 * m + 1].fetch_add(1u32);
    }
    if predicted == y {
        acc[3 * m + 2].fetch_add(1u32);
    }
}

// ---------------------------------------------------------------------------------------------
// Histograms (mirror `reference::hist`).

/// One unit per (training entry, output): the pair added to every feature's bin in the slot
/// of its node, when that node has one.
#[cube(launch)]
pub fn build_histograms(
    member_of: &Array<u32>,
    row_of: &Array<u32>,
    active: &Array<u32>,
    in_bag: &Array<u32>,
    node_of: &Array<u32>,
    gq: &Array<i32>,
    hq: &Array<i32>,
    build_slot: &Array<u32>,
    data: &Array<u32>,
    offsets: &Array<u32>,
    hist: &mut Array<Atomic<i32>>,
    n_outputs: u32,
    cap: u32,
    words_per_row: u32,
    total_bins: u32,
) {
    let i = ABSOLUTE_POS;
    if i >= node_of.len() {
        terminate!();
    }
    let k = n_outputs as usize;
    let e = i / k;
    let j = i % k;
    let m = member_of[e];
    if active[m as usize] == 0u32 || in_bag[e] == 0u32 {
        terminate!();
    }
    let tree = m * n_outputs + j as u32;
    let slot = build_slot[(tree * cap + node_of[i]) as usize];
    if slot == 0xFFFF_FFFFu32 {
        terminate!();
    }
    let g = gq[i];
    let h = hq[i];
    let row = row_of[e];
    let base = slot * total_bins;
    let n_features = offsets.len();
    for f in 0..n_features {
        let b = bin_of(data, words_per_row, row, f as u32);
        let at = ((base + offsets[f] + b) * 3u32) as usize;
        hist[at].fetch_add(g);
        hist[at + 1].fetch_add(h);
        hist[at + 2].fetch_add(1i32);
    }
}

/// Zeroes histogram slots: unit `i` clears word `i % width` of slot `slots[i / width]`.
#[cube(launch)]
pub fn zero_slots(slots: &Array<u32>, hist: &mut Array<i32>, width: u32) {
    let i = ABSOLUTE_POS;
    let w = width as usize;
    if i >= slots.len() * w {
        terminate!();
    }
    let slot = slots[i / w] as usize;
    hist[slot * w + i % w] = 0i32;
}

/// `slot[into] −= slot[minus]` for each pair; unit `i` does word `i % width` of pair `i / width`.
#[cube(launch)]
pub fn subtract(pairs: &Array<u32>, hist: &mut Array<i32>, width: u32) {
    let i = ABSOLUTE_POS;
    let w = width as usize;
    if i >= (pairs.len() / 2) * w {
        terminate!();
    }
    let p = i / w;
    let into = pairs[2 * p] as usize * w + i % w;
    let minus = pairs[2 * p + 1] as usize * w + i % w;
    hist[into] = hist[into] - hist[minus];
}

/// One unit per triple `[tree, node, slot]`: `build_slot[tree · cap + node] = slot`.
#[cube(launch)]
pub fn set_build_slots(triples: &Array<u32>, build_slot: &mut Array<u32>, cap: u32) {
    let i = ABSOLUTE_POS;
    if i >= triples.len() / 3 {
        terminate!();
    }
    let at = (triples[3 * i] * cap + triples[3 * i + 1]) as usize;
    let slot = triples[3 * i + 2];
    build_slot[at] = slot;
}

// ---------------------------------------------------------------------------------------------
// Split search (mirror `reference::split`).

/// Words of a per-(task, feature) candidate: valid, bin, missing left, score, g, h, n, any
/// missing (level search).
const CAND_WORDS: u32 = 8;

/// One unit per (task, feature): the best threshold of that feature of the task's node
/// (`scan_feature`), into `candidates`.
#[cube(launch)]
pub fn search_features(
    tasks: &Array<u32>,
    masks: &Array<u32>,
    rounds: &Array<u32>,
    node_stats: &Array<i32>,
    hist: &Array<i32>,
    n_bins: &Array<u32>,
    offsets: &Array<u32>,
    candidates: &mut Array<u32>,
    cap: u32,
    total_bins: u32,
) {
    let i = ABSOLUTE_POS;
    let nf = n_bins.len();
    if i >= (tasks.len() / 4) * nf {
        terminate!();
    }
    let task = i / nf;
    let f = i % nf;
    let out = i * CAND_WORDS as usize;
    candidates[out] = 0u32;
    let tree = tasks[4 * task];
    let node = tasks[4 * task + 1];
    let slot = tasks[4 * task + 2];
    let mask_row = tasks[4 * task + 3];
    if masks[mask_row as usize * nf + f] == 0u32 {
        terminate!();
    }
    let lambda = tr_f32(rounds, tree, TR_LAMBDA_Q);
    let alpha = tr_f32(rounds, tree, TR_ALPHA_Q);
    let min_hess = tr_i32(rounds, tree, TR_MIN_HESS);
    let min_rows = tr_i32(rounds, tree, TR_MIN_ROWS);
    let ns = ((tree * cap + node) * 3u32) as usize;
    let tg = node_stats[ns];
    let th = node_stats[ns + 1];
    let tn = node_stats[ns + 2];
    let first = ((slot * total_bins + offsets[f]) * 3u32) as usize;
    let mg = hist[first];
    let mh = hist[first + 1];
    let mn = hist[first + 2];
    let has_missing = mn > 0i32;
    let mut best = f32::new(-1.0e38);
    let mut found = false;
    let mut best_bin = 0u32;
    let mut best_dir = false;
    let mut bg = 0i32;
    let mut bh = 0i32;
    let mut bn = 0i32;
    let mut lg = 0i32;
    let mut lh = 0i32;
    let mut ln = 0i32;
    let nb = n_bins[f];
    let mut b = 1u32;
    while b + 1u32 < nb {
        let at = first + (b * 3u32) as usize;
        let xn = hist[at + 2];
        if xn != 0i32 {
            lg += hist[at];
            lh += hist[at + 1];
            ln += xn;
            let rg = tg - lg;
            let rh = th - lh;
            let rn = tn - ln;
            if rn < min_rows {
                break;
            }
            if ln >= min_rows && lh >= min_hess && rn >= min_rows && rh >= min_hess {
                let s = score(lg, lh, lambda, alpha) + score(rg, rh, lambda, alpha);
                if !found || s > best {
                    found = true;
                    best = s;
                    best_bin = b;
                    best_dir = false;
                    bg = lg;
                    bh = lh;
                    bn = ln;
                }
            }
            if has_missing {
                let ag = lg + mg;
                let ah = lh + mh;
                let an = ln + mn;
                let cg = tg - ag;
                let ch = th - ah;
                let cn = tn - an;
                if an >= min_rows && ah >= min_hess && cn >= min_rows && ch >= min_hess {
                    let s = score(ag, ah, lambda, alpha) + score(cg, ch, lambda, alpha);
                    if !found || s > best {
                        found = true;
                        best = s;
                        best_bin = b;
                        best_dir = true;
                        bg = ag;
                        bh = ah;
                        bn = an;
                    }
                }
            }
        }
        b += 1u32;
    }
    if found {
        let mut missing_left = best_dir;
        if !has_missing {
            missing_left = bn >= tn - bn;
        }
        candidates[out] = 1u32;
        candidates[out + 1] = best_bin;
        candidates[out + 2] = u32::cast_from(missing_left);
        candidates[out + 3] = u32::reinterpret(best);
        candidates[out + 4] = u32::reinterpret(bg);
        candidates[out + 5] = u32::reinterpret(bh);
        candidates[out + 6] = u32::reinterpret(bn);
    }
}

/// One unit per task: the best of its features' candidates (the first on ties) as a
/// `SearchResult` (8 words).
#[cube(launch)]
pub fn search_reduce(candidates: &Array<u32>, results: &mut Array<u32>, n_features: u32) {
    let task = ABSOLUTE_POS;
    let nf = n_features as usize;
    if task >= results.len() / 8 {
        terminate!();
    }
    let out = task * 8;
    results[out] = 0xFFFF_FFFFu32;
    results[out + 1] = 0u32;
    results[out + 2] = 0u32;
    results[out + 3] = 0u32;
    results[out + 4] = 0u32;
    results[out + 5] = 0u32;
    results[out + 6] = 0u32;
    results[out + 7] = 0u32;
    let mut found = false;
    let mut best = 0.0f32;
    for f in 0..nf {
        let c = (task * nf + f) * CAND_WORDS as usize;
        if candidates[c] != 0u32 {
            let s = f32::reinterpret(candidates[c + 3]);
            if !found || s > best {
                found = true;
                best = s;
                results[out] = f as u32;
                results[out + 1] = candidates[c + 1];
                results[out + 2] = candidates[c + 2];
                results[out + 3] = candidates[c + 3];
                results[out + 4] = candidates[c + 4];
                results[out + 5] = candidates[c + 5];
                results[out + 6] = candidates[c + 6];
            }
        }
    }
}

#[cube]
fn level_contribution(
    pg: i32,
    ph: i32,
    pn: i32,
    lg: i32,
    lh: i32,
    ln: i32,
    lambda: f32,
    alpha: f32,
) -> f32 {
    let mut c = 0.0f32;
    if ln > 0i32 && pn - ln > 0i32 {
        c = (score(lg, lh, lambda, alpha) + score(pg - lg, ph - lh, lambda, alpha))
            - score(pg, ph, lambda, alpha);
    }
    c
}

/// One unit per (level task, feature): the level scores of every threshold summed over the
/// level's nodes in order (into `scratch`, `2 · max_bins` floats per unit), then the feature's
/// best candidate into `candidates`.
#[cube(launch)]
pub fn level_features(
    tasks: &Array<u32>,
    level: &Array<u32>,
    masks: &Array<u32>,
    rounds: &Array<u32>,
    node_stats: &Array<i32>,
    hist: &Array<i32>,
    n_bins: &Array<u32>,
    offsets: &Array<u32>,
    scratch: &mut Array<f32>,
    candidates: &mut Array<u32>,
    cap: u32,
    total_bins: u32,
    max_bins: u32,
) {
    let i = ABSOLUTE_POS;
    let nf = n_bins.len();
    if i >= (tasks.len() / 4) * nf {
        terminate!();
    }
    let task = i / nf;
    let f = i % nf;
    let out = i * CAND_WORDS as usize;
    candidates[out] = 0u32;
    let tree = tasks[4 * task];
    let first = tasks[4 * task + 1];
    let count = tasks[4 * task + 2];
    let mask_row = tasks[4 * task + 3];
    let nb = n_bins[f];
    if masks[mask_row as usize * nf + f] == 0u32 || nb < 3u32 {
        terminate!();
    }
    let lambda = tr_f32(rounds, tree, TR_LAMBDA_Q);
    let alpha = tr_f32(rounds, tree, TR_ALPHA_Q);
    let s0 = i * 2 * max_bins as usize;
    let mut b = 0u32;
    while b < nb {
        scratch[s0 + 2 * b as usize] = 0.0f32;
        scratch[s0 + 2 * b as usize + 1] = 0.0f32;
        b += 1u32;
    }
    let mut any_missing = false;
    for jj in 0..count {
        let node = level[(2u32 * (first + jj)) as usize];
        let slot = level[(2u32 * (first + jj) + 1u32) as usize];
        let ns = ((tree * cap + node) * 3u32) as usize;
        let pg = node_stats[ns];
        let ph = node_stats[ns + 1];
        let pn = node_stats[ns + 2];
        let h0 = ((slot * total_bins + offsets[f]) * 3u32) as usize;
        let mg = hist[h0];
        let mh = hist[h0 + 1];
        let mn = hist[h0 + 2];
        if mn > 0i32 {
            any_missing = true;
        }
        let mut lg = 0i32;
        let mut lh = 0i32;
        let mut ln = 0i32;
        let mut bb = 1u32;
        while bb + 1u32 < nb {
            let at = h0 + (bb * 3u32) as usize;
            lg += hist[at];
            lh += hist[at + 1];
            ln += hist[at + 2];
            let without = level_contribution(pg, ph, pn, lg, lh, ln, lambda, alpha);
            let mut with = without;
            if mn > 0i32 {
                with = level_contribution(pg, ph, pn, lg + mg, lh + mh, ln + mn, lambda, alpha);
            }
            let at_s = s0 + 2 * bb as usize;
            scratch[at_s] = scratch[at_s] + without;
            scratch[at_s + 1] = scratch[at_s + 1] + with;
            bb += 1u32;
        }
    }
    let mut found = false;
    let mut best = 0.0f32;
    let mut best_bin = 0u32;
    let mut best_dir = 0u32;
    let mut bb = 1u32;
    while bb + 1u32 < nb {
        let at_s = s0 + 2 * bb as usize;
        let v0 = scratch[at_s];
        if !found || v0 > best {
            found = true;
            best = v0;
            best_bin = bb;
            best_dir = 0u32;
        }
        if any_missing {
            let v1 = scratch[at_s + 1];
            if v1 > best {
                best = v1;
                best_bin = bb;
                best_dir = 1u32;
            }
        }
        bb += 1u32;
    }
    candidates[out] = 1u32;
    candidates[out + 1] = best_bin;
    candidates[out + 2] = best_dir;
    candidates[out + 3] = u32::reinterpret(best);
    candidates[out + 7] = u32::cast_from(any_missing);
}

/// One unit per level task: the best of its features' candidates as a `LevelResult`
/// (8 words).
#[cube(launch)]
pub fn level_reduce(candidates: &Array<u32>, results: &mut Array<u32>, n_features: u32) {
    let task = ABSOLUTE_POS;
    let nf = n_features as usize;
    if task >= results.len() / 8 {
        terminate!();
    }
    let out = task * 8;
    results[out] = 0xFFFF_FFFFu32;
    results[out + 1] = 0u32;
    results[out + 2] = 0u32;
    results[out + 3] = 0u32;
    results[out + 4] = 0u32;
    results[out + 5] = 0u32;
    results[out + 6] = 0u32;
    results[out + 7] = 0u32;
    let mut found = false;
    let mut best = 0.0f32;
    for f in 0..nf {
        let c = (task * nf + f) * CAND_WORDS as usize;
        if candidates[c] != 0u32 {
            let s = f32::reinterpret(candidates[c + 3]);
            if !found || s > best {
                found = true;
                best = s;
                results[out] = f as u32;
                results[out + 1] = candidates[c + 1];
                results[out + 2] = candidates[c + 2];
                results[out + 3] = candidates[c + 7];
                results[out + 4] = candidates[c + 3];
            }
        }
    }
}

/// One unit per query `[slot, feature, bin, missing_left]`: the left sums of that split.
#[cube(launch)]
pub fn split_sums(
    queries: &Array<u32>,
    hist: &Array<i32>,
    offsets: &Array<u32>,
    sums: &mut Array<i32>,
    total_bins: u32,
) {
    let q = ABSOLUTE_POS;
    if q >= queries.len() / 4 {
        terminate!();
    }
    let slot = queries[4 * q];
    let f = queries[4 * q + 1];
    let bin = queries[4 * q + 2];
    let h0 = ((slot * total_bins + offsets[f as usize]) * 3u32) as usize;
    let mut g = 0i32;
    let mut h = 0i32;
    let mut n = 0i32;
    if queries[4 * q + 3] != 0u32 {
        g = hist[h0];
        h = hist[h0 + 1];
        n = hist[h0 + 2];
    }
    let mut b = 1u32;
    while b <= bin {
        let at = h0 + (b * 3u32) as usize;
        g += hist[at];
        h += hist[at + 1];
        n += hist[at + 2];
        b += 1u32;
    }
    sums[3 * q] = g;
    sums[3 * q + 1] = h;
    sums[3 * q + 2] = n;
}

// ---------------------------------------------------------------------------------------------
// Trees (mirror `reference::tree`).

/// One unit per `SplitRecord` (12 words): the split into the split table, the children's sums
/// into the node table.
#[cube(launch)]
pub fn apply_splits(
    records: &Array<u32>,
    splits: &mut Array<u32>,
    node_stats: &mut Array<i32>,
    cap: u32,
) {
    let r = ABSOLUTE_POS;
    if r >= records.len() / 12 {
        terminate!();
    }
    let w = r * 12;
    let tree = records[w];
    let at = (tree * cap + records[w + 1]) as usize;
    splits[2 * at] = records[w + 2];
    splits[2 * at + 1] = records[w + 3];
    let left = ((tree * cap + records[w + 3]) * 3u32) as usize;
    for c in 0..6usize {
        node_stats[left + c] = i32::reinterpret(records[w + 4 + c]);
    }
}

#[cube]
fn child(splits: &Array<u32>, at: usize, b: u32) -> u32 {
    let word = splits[2 * at];
    let bin = (word >> 16) & 0xFFu32;
    let missing_left = (word >> 24) & 1u32;
    let mut left = b <= bin;
    if b == 0u32 {
        left = missing_left != 0u32;
    }
    let mut next = splits[2 * at + 1] + 1u32;
    if left {
        next = splits[2 * at + 1];
    }
    next
}

/// One unit per (training entry, output): moves the entry to a child when its node was split.
/// (Not named `partition`: that is a reserved word of WGSL, and wgpu then runs nothing.)
#[cube(launch)]
pub fn partition_rows(
    member_of: &Array<u32>,
    row_of: &Array<u32>,
    active: &Array<u32>,
    splits: &Array<u32>,
    data: &Array<u32>,
    node_of: &mut Array<u32>,
    n_outputs: u32,
    cap: u32,
    words_per_row: u32,
) {
    let i = ABSOLUTE_POS;
    if i >= node_of.len() {
        terminate!();
    }
    let k = n_outputs as usize;
    let e = i / k;
    let j = i % k;
    let m = member_of[e];
    if active[m as usize] == 0u32 {
        terminate!();
    }
    let tree = m * n_outputs + j as u32;
    let at = (tree * cap + node_of[i]) as usize;
    let word = splits[2 * at];
    if (word >> 31) != 0u32 {
        let b = bin_of(data, words_per_row, row_of[e], word & 0xFFFFu32);
        node_of[i] = child(splits, at, b);
    }
}

/// One unit per pair `[tree, node]`: the node's leaf value.
#[cube(launch)]
pub fn leaf_values(
    pairs: &Array<u32>,
    rounds: &Array<u32>,
    node_stats: &Array<i32>,
    values: &mut Array<f32>,
    cap: u32,
) {
    let i = ABSOLUTE_POS;
    if i >= pairs.len() / 2 {
        terminate!();
    }
    let tree = pairs[2 * i];
    let at = (tree * cap + pairs[2 * i + 1]) as usize;
    let g = node_stats[3 * at];
    let h = node_stats[3 * at + 1];
    let numerator = shrink(f32::cast_from(g), tr_f32(rounds, tree, TR_ALPHA_Q))
        * tr_f32(rounds, tree, TR_SCALE_G);
    let denominator =
        f32::cast_from(h) * tr_f32(rounds, tree, TR_SCALE_H) + tr_f32(rounds, tree, TR_LAMBDA);
    let mut v = 0.0f32;
    if denominator > 0.0f32 {
        v = -(numerator / denominator) * tr_f32(rounds, tree, TR_LEARNING_RATE);
    }
    values[at] = v;
}

/// One unit per (training entry, output): its leaf's value added to its raw score.
#[cube(launch)]
pub fn update_scores(
    member_of: &Array<u32>,
    active: &Array<u32>,
    node_of: &Array<u32>,
    values: &Array<f32>,
    scores: &mut Array<f32>,
    n_outputs: u32,
    cap: u32,
) {
    let i = ABSOLUTE_POS;
    if i >= node_of.len() {
        terminate!();
    }
    let k = n_outputs as usize;
    let m = member_of[i / k];
    if active[m as usize] == 0u32 {
        terminate!();
    }
    let tree = m * n_outputs + (i % k) as u32;
    scores[i] = scores[i] + values[(tree * cap + node_of[i]) as usize];
}

/// One unit per (validation entry, output): walks the tree and adds the leaf's value.
#[cube(launch)]
pub fn update_valid(
    valid_member_of: &Array<u32>,
    valid_row_of: &Array<u32>,
    active: &Array<u32>,
    splits: &Array<u32>,
    values: &Array<f32>,
    data: &Array<u32>,
    valid_scores: &mut Array<f32>,
    n_outputs: u32,
    cap: u32,
    words_per_row: u32,
) {
    let i = ABSOLUTE_POS;
    if i >= valid_scores.len() {
        terminate!();
    }
    let k = n_outputs as usize;
    let v = i / k;
    let m = valid_member_of[v];
    if active[m as usize] == 0u32 {
        terminate!();
    }
    let tree = m * n_outputs + (i % k) as u32;
    let row = valid_row_of[v];
    let mut node = 0u32;
    let mut steps = 0u32;
    while steps < cap {
        let at = (tree * cap + node) as usize;
        let word = splits[2 * at];
        if (word >> 31) == 0u32 {
            break;
        }
        let b = bin_of(data, words_per_row, row, word & 0xFFFFu32);
        node = child(splits, at, b);
        steps += 1u32;
    }
    valid_scores[i] = valid_scores[i] + values[(tree * cap + node) as usize];
}

/// Sets every word of a buffer to `value`.
#[cube(launch)]
pub fn fill(out: &mut Array<u32>, value: u32) {
    let i = ABSOLUTE_POS;
    if i >= out.len() {
        terminate!();
    }
    out[i] = value;
}

// ---------------------------------------------------------------------------------------------
// Classification trees (mirror `reference::forest`).

/// One unit per entry: its class's count added to the bins of its row in its node's slot, for
/// the features of the slot's mask row.
#[cube(launch)]
pub fn class_histograms(
    tree_of: &Array<u32>,
    row_of: &Array<u32>,
    labels: &Array<u32>,
    node_of: &Array<u32>,
    build_slot: &Array<u32>,
    masks: &Array<u32>,
    data: &Array<u32>,
    offsets: &Array<u32>,
    hist: &mut Array<Atomic<i32>>,
    n_classes: u32,
    cap: u32,
    words_per_row: u32,
    total_bins: u32,
) {
    let i = ABSOLUTE_POS;
    if i >= node_of.len() {
        terminate!();
    }
    let slot = build_slot[(tree_of[i] * cap + node_of[i]) as usize];
    if slot == 0xFFFF_FFFFu32 {
        terminate!();
    }
    let row = row_of[i];
    let y = labels[row as usize];
    let nf = offsets.len();
    for f in 0..nf {
        if masks[slot as usize * nf + f] != 0u32 {
            let b = bin_of(data, words_per_row, row, f as u32);
            let at = ((slot * total_bins + offsets[f] + b) * n_classes + y) as usize;
            hist[at].fetch_add(1i32);
        }
    }
}

/// `Q(L) + Q(R)` of a split (mirrors `reference::forest::split_score`): left counts are
/// `left[l0 + c]`, plus the missing bin `hist[m0 + c]` when `with_missing`.
#[cube]
fn class_score(
    left: &Array<i32>,
    hist: &Array<i32>,
    counts: &Array<i32>,
    table: &Array<f32>,
    l0: usize,
    m0: usize,
    c0: usize,
    with_missing: bool,
    n_left: i32,
    n: i32,
    n_classes: u32,
    entropy: bool,
) -> f32 {
    let mut sl = 0.0f32;
    let mut sr = 0.0f32;
    let n_right = n - n_left;
    for c in 0..n_classes as usize {
        let mut lc = left[l0 + c];
        if with_missing {
            lc += hist[m0 + c];
        }
        let rc = counts[c0 + c] - lc;
        if entropy {
            sl += table[u32::cast_from(lc) as usize];
            sr += table[u32::cast_from(rc) as usize];
        } else {
            let a = f32::cast_from(lc);
            let b = f32::cast_from(rc);
            sl += a * a / f32::cast_from(n_left);
            sr += b * b / f32::cast_from(n_right);
        }
    }
    if entropy {
        sl -= table[u32::cast_from(n_left) as usize];
        sr -= table[u32::cast_from(n_right) as usize];
    }
    sl + sr
}

/// Words of a class candidate: valid, bin, missing left, score.
const CLASS_CAND_WORDS: u32 = 4;

/// One unit per (task, feature): the best threshold of that feature of the task's node
/// (`reference::forest::scan_feature`), into `candidates`; `left` is scratch of `n_classes`
/// counts per unit.
#[cube(launch)]
pub fn class_search_features(
    tasks: &Array<u32>,
    masks: &Array<u32>,
    counts: &Array<i32>,
    rules: &Array<u32>,
    table: &Array<f32>,
    hist: &Array<i32>,
    n_bins: &Array<u32>,
    offsets: &Array<u32>,
    left: &mut Array<i32>,
    candidates: &mut Array<u32>,
    total_bins: u32,
    n_classes: u32,
) {
    let i = ABSOLUTE_POS;
    let nf = n_bins.len();
    if i >= (tasks.len() / 4) * nf {
        terminate!();
    }
    let task = i / nf;
    let f = i % nf;
    let out = i * CLASS_CAND_WORDS as usize;
    candidates[out] = 0u32;
    let tree = tasks[4 * task];
    let slot = tasks[4 * task + 2];
    let mask_row = tasks[4 * task + 3];
    if masks[mask_row as usize * nf + f] == 0u32 {
        terminate!();
    }
    let min_leaf = i32::reinterpret(rules[(2u32 * tree) as usize]);
    let entropy = rules[(2u32 * tree + 1u32) as usize] != 0u32;
    let k = n_classes as usize;
    let c0 = task * k;
    let l0 = i * k;
    let m0 = ((slot * total_bins + offsets[f]) * n_classes) as usize;
    let mut n = 0i32;
    let mut n_missing = 0i32;
    for c in 0..k {
        n += counts[c0 + c];
        n_missing += hist[m0 + c];
        left[l0 + c] = 0i32;
    }
    let nb = n_bins[f];
    let mut n_left = 0i32;
    let mut found = false;
    let mut best = 0.0f32;
    let mut best_bin = 0u32;
    let mut best_dir = false;
    let mut best_n_left = 0i32;
    let mut b = 1u32;
    while b + 1u32 < nb {
        let at = m0 + (b * n_classes) as usize;
        let mut nx = 0i32;
        for c in 0..k {
            nx += hist[at + c];
        }
        if nx != 0i32 {
            for c in 0..k {
                left[l0 + c] += hist[at + c];
            }
            n_left += nx;
            if n - n_left < min_leaf {
                break;
            }
            if n_left >= min_leaf {
                let s = class_score(
                    left, hist, counts, table, l0, m0, c0, false, n_left, n, n_classes, entropy,
                );
                if !found || s > best {
                    found = true;
                    best = s;
                    best_bin = b;
                    best_dir = false;
                    best_n_left = n_left;
                }
            }
            if n_missing > 0i32 {
                let al = n_left + n_missing;
                if al >= min_leaf && n - al >= min_leaf {
                    let s = class_score(
                        left, hist, counts, table, l0, m0, c0, true, al, n, n_classes, entropy,
                    );
                    if !found || s > best {
                        found = true;
                        best = s;
                        best_bin = b;
                        best_dir = true;
                        best_n_left = al;
                    }
                }
            }
        }
        b += 1u32;
    }
    if found {
        let mut missing_left = best_dir;
        if n_missing == 0i32 {
            missing_left = best_n_left >= n - best_n_left;
        }
        candidates[out] = 1u32;
        candidates[out + 1] = best_bin;
        candidates[out + 2] = u32::cast_from(missing_left);
        candidates[out + 3] = u32::reinterpret(best);
    }
}

/// One unit per task: the best of its features' candidates (the first on ties) and its left
/// counts, as `4 + n_classes` words (`reference::forest::result_words`).
#[cube(launch)]
pub fn class_search_reduce(
    tasks: &Array<u32>,
    candidates: &Array<u32>,
    hist: &Array<i32>,
    offsets: &Array<u32>,
    results: &mut Array<u32>,
    total_bins: u32,
    n_classes: u32,
) {
    let task = ABSOLUTE_POS;
    let nf = offsets.len();
    let k = n_classes as usize;
    let w = 4 + k;
    if task >= results.len() / w {
        terminate!();
    }
    let out = task * w;
    results[out] = 0xFFFF_FFFFu32;
    results[out + 1] = 0u32;
    results[out + 2] = 0u32;
    results[out + 3] = 0u32;
    for c in 0..k {
        results[out + 4 + c] = 0u32;
    }
    let mut found = false;
    let mut best = 0.0f32;
    let mut best_f = 0u32;
    for f in 0..nf {
        let c = (task * nf + f) * CLASS_CAND_WORDS as usize;
        if candidates[c] != 0u32 {
            let s = f32::reinterpret(candidates[c + 3]);
            if !found || s > best {
                found = true;
                best = s;
                best_f = f as u32;
            }
        }
    }
    if found {
        let c = (task * nf + best_f as usize) * CLASS_CAND_WORDS as usize;
        let bin = candidates[c + 1];
        let missing_left = candidates[c + 2];
        results[out] = best_f;
        results[out + 1] = bin;
        results[out + 2] = missing_left;
        results[out + 3] = candidates[c + 3];
        let slot = tasks[4 * task + 2];
        let m0 = ((slot * total_bins + offsets[best_f as usize]) * n_classes) as usize;
        for cc in 0..k {
            let mut s = 0i32;
            let mut b = 1u32;
            while b <= bin {
                s += hist[m0 + (b * n_classes) as usize + cc];
                b += 1u32;
            }
            if missing_left != 0u32 {
                s += hist[m0 + cc];
            }
            results[out + 4 + cc] = u32::reinterpret(s);
        }
    }
}

/// One unit per record `[tree, node, packed split, left child]`: into the split table.
#[cube(launch)]
pub fn class_apply(records: &Array<u32>, splits: &mut Array<u32>, cap: u32) {
    let r = ABSOLUTE_POS;
    if r >= records.len() / 4 {
        terminate!();
    }
    let at = (records[4 * r] * cap + records[4 * r + 1]) as usize;
    splits[2 * at] = records[4 * r + 2];
    splits[2 * at + 1] = records[4 * r + 3];
}

/// One unit per entry: moves it to a child when its node was split.
#[cube(launch)]
pub fn class_partition(
    tree_of: &Array<u32>,
    row_of: &Array<u32>,
    splits: &Array<u32>,
    data: &Array<u32>,
    node_of: &mut Array<u32>,
    cap: u32,
    words_per_row: u32,
) {
    let i = ABSOLUTE_POS;
    if i >= node_of.len() {
        terminate!();
    }
    let at = (tree_of[i] * cap + node_of[i]) as usize;
    let word = splits[2 * at];
    if (word >> 31) != 0u32 {
        let b = bin_of(data, words_per_row, row_of[i], word & 0xFFFFu32);
        node_of[i] = child(splits, at, b);
    }
}
