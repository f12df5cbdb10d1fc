//! Every kernel on wgpu (Mesa's lavapipe in CI) against its CPU reference: exactly for integers,
//! chosen splits, partitions and scores; leaf values within 1e-6.
//!
//! Without a wgpu adapter the tests say so and pass, except under `CI=true`, where a missing
//! adapter fails them (CI installs lavapipe; a silent skip would hide that the kernels never
//! ran).
#![cfg(feature = "wgpu")]

use tabtune_kernels::gpu::{Buffer, CubeElement, DeviceData, Gpu, Wgpu};
use tabtune_kernels::layout::{
    BinMatrix, LEVEL_RESULT_WORDS, LevelResult, LevelTask, NONE, NodeRules, Problem,
    SEARCH_RESULT_WORDS, SearchResult, SearchTask, SplitRecord, SumQuery, TreeRound, flatten,
    tree_round_words,
};
use tabtune_kernels::reference::{grad, hist, math, split, tree};

/// The device, or `None` (skip) when there is none outside CI.
fn device() -> Option<Gpu<Wgpu>> {
    match Gpu::wgpu() {
        Ok(g) => Some(g),
        Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true but no wgpu adapter: {e} (install mesa-vulkan-drivers)")
        }
        Err(e) => {
            eprintln!("skipped: {e}");
            None
        }
    }
}

/// A small deterministic generator (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// A fixture: members over a shared bin matrix, and their per-round state.
struct Fixture {
    p: Problem,
    bins: BinMatrix,
    active: Vec<u32>,
    in_bag: Vec<u32>,
    rounds: Vec<TreeRound>,
}

/// `n_members` members (the last inactive) over 400 rows of 7 features (2 to 41 bins, some
/// with missing values), `n_classes` classes, trees of `cap` nodes.
fn fixture(seed: u64, n_members: usize, n_classes: usize, cap: usize) -> Fixture {
    let mut rng = Rng(seed);
    let n_rows = 400;
    let n_bins: Vec<u32> = vec![2, 3, 41, 9, 17, 5, 33];
    let columns: Vec<Vec<u8>> = n_bins
        .iter()
        .enumerate()
        .map(|(f, &nb)| {
            (0..n_rows)
                .map(|_| {
                    // Features 1, 4 and 6 have missing values (bin 0).
                    if [1, 4, 6].contains(&f) && rng.below(8) == 0 {
                        0
                    } else {
                        1 + rng.below(nb as usize - 1) as u8
                    }
                })
                .collect()
        })
        .collect();
    let refs: Vec<&[u8]> = columns.iter().map(Vec::as_slice).collect();
    let bins = BinMatrix::from_columns(n_rows, &refs, &n_bins);
    let labels: Vec<u32> = (0..n_rows)
        .map(|r| ((columns[2][r] as usize / 14 + rng.below(2)) % n_classes) as u32)
        .collect();
    let mut member_of = Vec::new();
    let mut row_of = Vec::new();
    let mut row_off = vec![0u32];
    let mut valid_member_of = Vec::new();
    let mut valid_row_of = Vec::new();
    for m in 0..n_members {
        for r in 0..n_rows {
            if rng.below(5) < 3 {
                member_of.push(m as u32);
                row_of.push(r as u32);
            } else if rng.below(2) == 0 {
                valid_member_of.push(m as u32);
                valid_row_of.push(r as u32);
            }
        }
        row_off.push(member_of.len() as u32);
    }
    let n_outputs = if n_classes == 2 { 1 } else { n_classes };
    let class_weight: Vec<f32> = (0..n_members * n_classes)
        .map(|i| if i % 4 == 1 { 1.5 } else { 1.0 })
        .collect();
    let p = Problem {
        n_outputs,
        n_classes,
        cap,
        member_of,
        row_of,
        row_off,
        seed: (0..n_members).map(|m| 7 + m as u32).collect(),
        class_weight,
        valid_member_of,
        valid_row_of,
        labels,
    };
    let mut active = vec![1u32; n_members];
    active[n_members - 1] = 0;
    let in_bag: Vec<u32> = (0..p.n_entries())
        .map(|_| u32::from(rng.below(10) != 0))
        .collect();
    let rounds = (0..p.n_trees())
        .map(|t| {
            let (scale_g, inv_g) = math::pow2_scale(0.9, 12);
            let (scale_h, inv_h) = math::pow2_scale(0.3, 12);
            let lambda = [0.0f32, 1.0, 3.5][t % 3];
            let alpha = [0.0f32, 0.2][t % 2];
            TreeRound {
                scale_g,
                inv_g,
                scale_h,
                inv_h,
                lambda_q: lambda * inv_h,
                alpha_q: alpha * inv_g,
                min_hess: 1 + (t % 4) as i32 * 50,
                min_rows: 1 + (t % 5) as i32 * 4,
                lambda,
                learning_rate: [0.1f32, 0.05, 0.3][t % 3],
                stochastic: t % 2 == 0,
            }
        })
        .collect();
    Fixture {
        p,
        bins,
        active,
        in_bag,
        rounds,
    }
}

fn scores(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.unit() * 8.0 - 4.0).collect()
}

/// The fixture's quantized gradients (reference).
fn quantized(fx: &Fixture, rng: &mut Rng) -> (Vec<i32>, Vec<i32>) {
    let t = math::Tables::new();
    let n = fx.p.n_entries() * fx.p.n_outputs;
    let s = scores(rng, n);
    let (mut g, mut h) = (vec![0.0; n], vec![0.0; n]);
    let mut max = vec![0u32; 2 * fx.p.n_trees()];
    grad::gradients(&fx.p, &t, &fx.active, &s, &mut g, &mut h, &mut max);
    let (mut gq, mut hq) = (vec![0; n], vec![0; n]);
    grad::quantize_all(&fx.p, &fx.active, &fx.rounds, 3, &g, &h, &mut gq, &mut hq);
    (gq, hq)
}

fn up<T: CubeElement>(gpu: &Gpu<Wgpu>, data: &[T]) -> Buffer<T> {
    gpu.upload("test data", data).expect("uploads")
}

fn device_data(gpu: &Gpu<Wgpu>, fx: &Fixture) -> DeviceData {
    gpu.upload_problem(&fx.p, &fx.bins).expect("uploads")
}

#[test]
fn gradients_quantization_and_root_sums_are_exact() {
    let Some(gpu) = device() else { return };
    for n_classes in [4, 2] {
        let fx = fixture(1, 3, n_classes, 9);
        let d = device_data(&gpu, &fx);
        let t = math::Tables::new();
        let n = fx.p.n_entries() * fx.p.n_outputs;
        let s = scores(&mut Rng(5), n);
        let (mut g, mut h) = (vec![0.0f32; n], vec![0.0f32; n]);
        let mut max = vec![0u32; 2 * fx.p.n_trees()];
        grad::gradients(&fx.p, &t, &fx.active, &s, &mut g, &mut h, &mut max);
        let active = up(&gpu, &fx.active);
        let (mut dg, mut dh) = (up(&gpu, &vec![0.0f32; n]), up(&gpu, &vec![0.0f32; n]));
        let mut dmax = up(&gpu, &vec![0u32; max.len()]);
        gpu.gradients(&d, &active, &up(&gpu, &s), &mut dg, &mut dh, &mut dmax)
            .expect("runs");
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(&gpu.read(&dg).expect("reads")),
            bits(&g),
            "{n_classes}"
        );
        assert_eq!(
            bits(&gpu.read(&dh).expect("reads")),
            bits(&h),
            "{n_classes}"
        );
        assert_eq!(gpu.read(&dmax).expect("reads"), max);

        let (mut gq, mut hq) = (vec![0i32; n], vec![0i32; n]);
        grad::quantize_all(&fx.p, &fx.active, &fx.rounds, 3, &g, &h, &mut gq, &mut hq);
        assert!(gq.iter().any(|&q| q != 0) && hq.iter().any(|&q| q > 1));
        let rounds = up(&gpu, &tree_round_words(&fx.rounds));
        let (mut dgq, mut dhq) = (up(&gpu, &vec![0i32; n]), up(&gpu, &vec![0i32; n]));
        gpu.quantize(&d, &active, &rounds, 3, &dg, &dh, &mut dgq, &mut dhq)
            .expect("runs");
        assert_eq!(gpu.read(&dgq).expect("reads"), gq);
        assert_eq!(gpu.read(&dhq).expect("reads"), hq);

        let mut stats = vec![0i32; 3 * fx.p.n_trees() * fx.p.cap];
        grad::root_sums(&fx.p, &fx.active, &fx.in_bag, &gq, &hq, &mut stats);
        let mut dstats = up(&gpu, &vec![0i32; stats.len()]);
        gpu.root_sums(&d, &active, &up(&gpu, &fx.in_bag), &dgq, &dhq, &mut dstats)
            .expect("runs");
        assert_eq!(gpu.read(&dstats).expect("reads"), stats);
    }
}

#[test]
fn histograms_are_exact() {
    let Some(gpu) = device() else { return };
    let fx = fixture(2, 3, 3, 7);
    let d = device_data(&gpu, &fx);
    let mut rng = Rng(9);
    let (gq, hq) = quantized(&fx, &mut rng);
    let n = gq.len();
    // Rows spread over nodes 0..4; nodes 1 and 3 of every tree get slots, tree 2's node 1 none.
    let node_of: Vec<u32> = (0..n).map(|_| rng.below(4) as u32).collect();
    let mut build_slot = vec![NONE; fx.p.n_trees() * fx.p.cap];
    let mut triples = Vec::new();
    let mut slot = 0u32;
    for t in 0..fx.p.n_trees() {
        for node in [1u32, 3] {
            if t == 2 && node == 1 {
                continue;
            }
            triples.extend([t as u32, node, slot]);
            slot += 1;
        }
    }
    hist::set_build_slots(fx.p.cap, &triples, &mut build_slot);
    let width = fx.bins.total_bins * 3;
    let mut h = vec![0i32; slot as usize * width];
    hist::build(
        &fx.p,
        &fx.bins,
        &fx.active,
        &fx.in_bag,
        &node_of,
        &gq,
        &hq,
        &build_slot,
        &mut h,
    );
    let mut dslot = up(&gpu, &vec![NONE; build_slot.len()]);
    gpu.set_build_slots(&d, &up(&gpu, &triples), &mut dslot)
        .expect("runs");
    assert_eq!(gpu.read(&dslot).expect("reads"), build_slot);
    let mut dh = up(&gpu, &vec![7i32; h.len()]);
    let all: Vec<u32> = (0..slot).collect();
    gpu.zero_slots(&d, &up(&gpu, &all), &mut dh).expect("runs");
    gpu.build_histograms(
        &d,
        &up(&gpu, &fx.active),
        &up(&gpu, &fx.in_bag),
        &up(&gpu, &node_of),
        &up(&gpu, &gq),
        &up(&gpu, &hq),
        &dslot,
        &mut dh,
    )
    .expect("runs");
    assert_eq!(gpu.read(&dh).expect("reads"), h);
    assert!(h.iter().any(|&v| v != 0));

    // Subtraction: slot 0 −= slot 1, slot 2 −= slot 3; zeroing slot 4.
    let pairs = [0u32, 1, 2, 3];
    let mut expected = h.clone();
    hist::subtract(&pairs, fx.bins.total_bins, &mut expected);
    hist::zero_slots(&[4], fx.bins.total_bins, &mut expected);
    gpu.subtract(&d, &up(&gpu, &pairs), &mut dh).expect("runs");
    gpu.zero_slots(&d, &up(&gpu, &[4u32]), &mut dh)
        .expect("runs");
    assert_eq!(gpu.read(&dh).expect("reads"), expected);
}

/// Root histograms of every tree (slot = tree) and the node table with the roots' sums.
fn root_histograms(fx: &Fixture, seed: u64) -> (Vec<i32>, Vec<i32>) {
    let mut rng = Rng(seed);
    let (gq, hq) = quantized(fx, &mut rng);
    let n_trees = fx.p.n_trees();
    let node_of = vec![0u32; gq.len()];
    let mut build_slot = vec![NONE; n_trees * fx.p.cap];
    let triples: Vec<u32> = (0..n_trees as u32).flat_map(|t| [t, 0, t]).collect();
    hist::set_build_slots(fx.p.cap, &triples, &mut build_slot);
    let mut h = vec![0i32; n_trees * fx.bins.total_bins * 3];
    hist::build(
        &fx.p,
        &fx.bins,
        &fx.active,
        &fx.in_bag,
        &node_of,
        &gq,
        &hq,
        &build_slot,
        &mut h,
    );
    let mut stats = vec![0i32; 3 * n_trees * fx.p.cap];
    grad::root_sums(&fx.p, &fx.active, &fx.in_bag, &gq, &hq, &mut stats);
    (h, stats)
}

#[test]
fn split_search_picks_the_same_splits() {
    let Some(gpu) = device() else { return };
    for (seed, n_classes) in [(3u64, 3usize), (4, 2), (5, 5)] {
        let fx = fixture(seed, 4, n_classes, 5);
        let d = device_data(&gpu, &fx);
        let (h, stats) = root_histograms(&fx, seed + 10);
        let nf = fx.bins.n_features;
        // Mask rows: all features; every other feature; features 2..5.
        let masks: Vec<u32> = [
            vec![1u32; nf],
            (0..nf).map(|f| u32::from(f % 2 == 0)).collect(),
            (0..nf).map(|f| u32::from((2..5).contains(&f))).collect(),
        ]
        .concat();
        let n_active_trees = (fx.p.n_members() - 1) * fx.p.n_outputs;
        let tasks: Vec<SearchTask> = (0..n_active_trees as u32)
            .map(|t| SearchTask {
                tree: t,
                node: 0,
                slot: t,
                mask_row: t % 3,
            })
            .collect();
        let rules: Vec<NodeRules> = fx.rounds.iter().map(TreeRound::rules).collect();
        let expected = split::search(&fx.bins, fx.p.cap, &tasks, &masks, &rules, &stats, &h);
        assert!(expected.iter().filter(|r| r.feature != NONE).count() > tasks.len() / 2);
        let mut results = up(&gpu, &vec![0u32; tasks.len() * SEARCH_RESULT_WORDS]);
        let mut scratch = up(&gpu, &[0u32]);
        let rounds = up(&gpu, &tree_round_words(&fx.rounds));
        let dstats = up(&gpu, &stats);
        let dh = up(&gpu, &h);
        gpu.search(
            &d,
            &up(&gpu, &flatten(&tasks, SearchTask::words)),
            &up(&gpu, &masks),
            &rounds,
            &dstats,
            &dh,
            &mut scratch,
            &mut results,
        )
        .expect("runs");
        let words = gpu.read(&results).expect("reads");
        let got: Vec<SearchResult> = words
            .chunks_exact(SEARCH_RESULT_WORDS)
            .map(SearchResult::from_words)
            .collect();
        assert_eq!(got, expected, "seed {seed}");

        // Oblivious: each tree's level of one node (its root) and, for tree 0, the roots of
        // trees 0 and 1 as one level (two nodes of different sums).
        let mut level = Vec::new();
        let mut ltasks = Vec::new();
        for t in 0..n_active_trees as u32 {
            ltasks.push(LevelTask {
                tree: t,
                first: (level.len() / 2) as u32,
                count: 1,
                mask_row: t % 3,
            });
            level.extend([0u32, t]);
        }
        // Tree 0's node 1 = tree 1's root (same sums put in the node table).
        let mut stats2 = stats.clone();
        let (a, b) = (3, 3 * fx.p.cap);
        let root1: Vec<i32> = stats[b..b + 3].to_vec();
        stats2[a..a + 3].copy_from_slice(&root1);
        ltasks.push(LevelTask {
            tree: 0,
            first: (level.len() / 2) as u32,
            count: 2,
            mask_row: 0,
        });
        level.extend([0u32, 0, 1, 1]);
        let expected = split::level_search(
            &fx.bins, fx.p.cap, &ltasks, &level, &masks, &rules, &stats2, &h,
        );
        assert!(expected.iter().all(|r| r.feature != NONE));
        let mut results = up(&gpu, &vec![0u32; ltasks.len() * LEVEL_RESULT_WORDS]);
        let (mut scratch, mut candidates) = (up(&gpu, &[0.0f32]), up(&gpu, &[0u32]));
        gpu.level_search(
            &d,
            &up(&gpu, &flatten(&ltasks, LevelTask::words)),
            &up(&gpu, &level),
            &up(&gpu, &masks),
            &rounds,
            &up(&gpu, &stats2),
            &dh,
            &mut scratch,
            &mut candidates,
            &mut results,
        )
        .expect("runs");
        let got: Vec<LevelResult> = gpu
            .read(&results)
            .expect("reads")
            .chunks_exact(LEVEL_RESULT_WORDS)
            .map(LevelResult::from_words)
            .collect();
        assert_eq!(got, expected, "seed {seed}");

        // Split sums of every (tree, feature) at a middle bin, both missing directions.
        let queries: Vec<SumQuery> = (0..n_active_trees as u32)
            .flat_map(|t| {
                (0..nf as u32).map(move |f| SumQuery {
                    slot: t,
                    feature: f,
                    bin: [1u32, 1, 20, 4, 8, 2, 16][f as usize],
                    missing_left: (t + f) % 2 == 0,
                })
            })
            .collect();
        let expected = split::split_sums(&fx.bins, &queries, &h);
        let mut sums = up(&gpu, &vec![0i32; 3 * queries.len()]);
        gpu.split_sums(
            &d,
            &up(&gpu, &flatten(&queries, SumQuery::words)),
            &dh,
            &mut sums,
        )
        .expect("runs");
        let got = gpu.read(&sums).expect("reads");
        assert_eq!(got, expected.concat());
    }
}

#[test]
fn splits_partitions_leaf_values_and_scores() {
    let Some(gpu) = device() else { return };
    for n_classes in [3, 2] {
        let fx = fixture(6, 3, n_classes, 7);
        let d = device_data(&gpu, &fx);
        let mut rng = Rng(11);
        let n_trees = fx.p.n_trees();
        let cap = fx.p.cap;
        // Every tree: root splits into 1, 2; node 2 splits into 3, 4 (features vary by tree).
        let mut records = Vec::new();
        for t in 0..n_trees as u32 {
            let stat = |rng: &mut Rng| {
                [
                    rng.below(2000) as i32 - 1000,
                    rng.below(900) as i32,
                    1 + rng.below(90) as i32,
                ]
            };
            records.push(SplitRecord {
                tree: t,
                node: 0,
                feature: t % 7,
                bin: 1 + t % 2,
                missing_left: t % 3 == 0,
                left: 1,
                left_stats: stat(&mut rng),
                right_stats: stat(&mut rng),
            });
            records.push(SplitRecord {
                tree: t,
                node: 2,
                feature: (t + 3) % 7,
                bin: 2,
                missing_left: t % 2 == 0,
                left: 3,
                left_stats: stat(&mut rng),
                right_stats: stat(&mut rng),
            });
        }
        let mut splits = vec![0u32; 2 * n_trees * cap];
        let mut stats = vec![0i32; 3 * n_trees * cap];
        let mut node_of = vec![0u32; fx.p.n_entries() * fx.p.n_outputs];
        let mut dsplits = up(&gpu, &splits);
        let mut dstats = up(&gpu, &stats);
        let mut dnode_of = up(&gpu, &node_of);
        let active = up(&gpu, &fx.active);
        // Two steps, each applied and partitioned, as a tree grows.
        for step in [0usize, 1] {
            let recs: Vec<SplitRecord> = records.iter().skip(step).step_by(2).copied().collect();
            tree::apply_splits(cap, &recs, &mut splits, &mut stats);
            tree::partition(&fx.p, &fx.bins, &fx.active, &splits, &mut node_of);
            let words = up(&gpu, &flatten(&recs, SplitRecord::words));
            gpu.apply_splits(&d, &words, &mut dsplits, &mut dstats)
                .expect("runs");
            gpu.partition(&d, &active, &dsplits, &mut dnode_of)
                .expect("runs");
            assert_eq!(gpu.read(&dsplits).expect("reads"), splits);
            assert_eq!(gpu.read(&dstats).expect("reads"), stats);
            assert_eq!(gpu.read(&dnode_of).expect("reads"), node_of, "step {step}");
        }
        assert!(node_of.contains(&4) && node_of.contains(&1));

        // Leaf values of the three leaves of every tree.
        let pairs: Vec<u32> = (0..n_trees as u32)
            .flat_map(|t| [t, 1, t, 3, t, 4])
            .collect();
        let mut values = vec![0.0f32; n_trees * cap];
        tree::leaf_values(cap, &pairs, &fx.rounds, &stats, &mut values);
        let rounds = up(&gpu, &tree_round_words(&fx.rounds));
        let mut dvalues = up(&gpu, &vec![0.0f32; values.len()]);
        gpu.leaf_values(&d, &up(&gpu, &pairs), &rounds, &dstats, &mut dvalues)
            .expect("runs");
        let got = gpu.read(&dvalues).expect("reads");
        let exact = got.iter().zip(&values).filter(|(a, b)| a == b).count();
        for (a, b) in got.iter().zip(&values) {
            assert!((a - b).abs() <= 1e-6, "leaf value {a} vs {b}");
        }
        eprintln!("leaf values: {exact} of {} bit-identical", values.len());
        assert!(values.iter().any(|&v| v != 0.0));

        // Score updates (training rows by their leaves, validation rows by walking).
        let k = fx.p.n_outputs;
        let mut s = scores(&mut rng, fx.p.n_entries() * k);
        let mut vs = scores(&mut rng, fx.p.n_valid() * k);
        let mut ds = up(&gpu, &s);
        let mut dvs = up(&gpu, &vs);
        tree::update_scores(&fx.p, &fx.active, &node_of, &values, &mut s);
        tree::update_valid(&fx.p, &fx.bins, &fx.active, &splits, &values, &mut vs);
        let dvalues = up(&gpu, &values);
        gpu.update_scores(&d, &active, &dnode_of, &dvalues, &mut ds)
            .expect("runs");
        gpu.update_valid(&d, &active, &dsplits, &dvalues, &mut dvs)
            .expect("runs");
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&gpu.read(&ds).expect("reads")), bits(&s));
        assert_eq!(bits(&gpu.read(&dvs).expect("reads")), bits(&vs));

        // The validation metric.
        let t = math::Tables::new();
        let mut acc = vec![0u32; 3 * fx.p.n_members()];
        grad::metrics(&fx.p, &t, &fx.active, &vs, &mut acc);
        let mut dacc = up(&gpu, &vec![0u32; acc.len()]);
        gpu.metrics(&d, &active, &dvs, &mut dacc).expect("runs");
        assert_eq!(gpu.read(&dacc).expect("reads"), acc);
        assert!(acc[2] > 0 && acc[0] > 0);
    }
}

#[test]
fn bad_inputs_are_typed_errors() {
    let Some(gpu) = device() else { return };
    let fx = fixture(8, 2, 3, 5);
    let d = device_data(&gpu, &fx);
    let short = up(&gpu, &[1u32]);
    let n = fx.p.n_entries() * fx.p.n_outputs;
    let s = up(&gpu, &vec![0.0f32; n]);
    let (mut g, mut h) = (up(&gpu, &vec![0.0f32; n]), up(&gpu, &vec![0.0f32; n]));
    let mut max = up(&gpu, &vec![0u32; 2 * fx.p.n_trees()]);
    let e = gpu
        .gradients(&d, &short, &s, &mut g, &mut h, &mut max)
        .expect_err("wrong length");
    assert!(e.to_string().contains("active"), "{e}");
    // A memory cap: the next buffer does not fit, and the error names its size.
    let capped = Gpu::wgpu().expect("a device").with_memory_limit(1 << 20);
    let before = capped.allocated();
    let e = capped
        .zeros::<i32>("the histograms", 1 << 19)
        .expect_err("over the cap");
    let m = e.to_string();
    assert!(
        m.contains("the histograms") && m.contains("2097152 bytes") && m.contains("1048576"),
        "{m}"
    );
    assert_eq!(capped.allocated(), before);
    let mut bad = fx.p.clone();
    bad.row_of[0] = 10_000;
    let e = gpu
        .upload_problem(&bad, &fx.bins)
        .err()
        .expect("a row outside the matrix");
    assert!(e.to_string().contains("10000"), "{e}");
}

/// Classification-tree kernels: histograms of class counts (exact), the best split of every
/// task by Gini and by entropy with leaf minimums (same feature, bin, direction, `f32` score
/// and left counts), applied splits and moved entries: all equal to the references.
#[test]
fn class_kernels_equal_the_reference() {
    use tabtune_kernels::layout::{ClassProblem, ClassResult, ClassRules, pack_split};
    use tabtune_kernels::reference::forest;
    let Some(gpu) = device() else { return };
    for (seed, n_classes) in [(11u64, 7usize), (12, 2), (13, 3)] {
        let fx = fixture(seed, 2, n_classes, 8);
        let mut rng = Rng(seed * 31);
        let n_trees = 5;
        let cap = 16;
        // Entries: every tree draws rows with repeats (a bootstrap), each at a node 0..4.
        let (mut tree_of, mut row_of) = (Vec::new(), Vec::new());
        for t in 0..n_trees {
            for _ in 0..300 {
                tree_of.push(t as u32);
                row_of.push(rng.below(fx.bins.n_rows) as u32);
            }
        }
        let p = ClassProblem {
            n_classes,
            cap,
            tree_of,
            row_of,
            labels: fx.p.labels.clone(),
        };
        let node_of: Vec<u32> = (0..p.n_entries()).map(|_| rng.below(4) as u32).collect();
        let nf = fx.bins.n_features;
        // Slots for nodes 0..3 of every tree but node 3 of tree 1 (its entries add nowhere).
        let mut builds = Vec::new();
        for t in 0..n_trees as u32 {
            for node in 0..4u32 {
                if (t, node) != (1, 3) {
                    builds.push([t, node, builds.len() as u32]);
                }
            }
        }
        let n_slots = builds.len();
        let masks: Vec<u32> = (0..n_slots * nf)
            .map(|i| u32::from(i % nf == 2 || rng.below(3) != 0))
            .collect();
        let width = fx.bins.total_bins * n_classes;
        let mut build_slot = vec![NONE; n_trees * cap];
        forest::set_build_slots(cap, &builds, &mut build_slot);
        let mut want_hist = vec![0i32; n_slots * width];
        forest::histograms(&p, &fx.bins, &node_of, &build_slot, &masks, &mut want_hist);
        let d = gpu.upload_class_problem(&p, &fx.bins).expect("uploads");
        let node_buf = up(&gpu, &node_of);
        let mut slot_buf = up(&gpu, &vec![NONE; n_trees * cap]);
        let triples: Vec<u32> = builds.iter().flatten().copied().collect();
        gpu.class_set_build_slots(&d, &up(&gpu, &triples), &mut slot_buf)
            .expect("runs");
        let mask_buf = up(&gpu, &masks);
        let mut hist = up(&gpu, &vec![7i32; n_slots * width]);
        let all: Vec<u32> = (0..n_slots as u32).collect();
        gpu.class_zero_slots(&d, &up(&gpu, &all), &mut hist)
            .expect("runs");
        gpu.class_histograms(&d, &node_buf, &slot_buf, &mask_buf, &mut hist)
            .expect("runs");
        assert_eq!(gpu.read(&hist).expect("reads"), want_hist, "histograms");
        // Each task's class counts: its node's entries.
        let mut node_counts = vec![0i32; n_trees * cap * n_classes];
        for e in 0..p.n_entries() {
            let at = p.tree_of[e] as usize * cap + node_of[e] as usize;
            node_counts[at * n_classes + p.labels[p.row_of[e] as usize] as usize] += 1;
        }
        let tasks: Vec<SearchTask> = builds
            .iter()
            .map(|b| SearchTask {
                tree: b[0],
                node: b[1],
                slot: b[2],
                mask_row: b[2],
            })
            .collect();
        let counts: Vec<i32> = builds
            .iter()
            .flat_map(|b| {
                let at = (b[0] as usize * cap + b[1] as usize) * n_classes;
                node_counts[at..at + n_classes].to_vec()
            })
            .collect();
        let rules: Vec<ClassRules> = (0..n_trees)
            .map(|t| ClassRules {
                min_leaf: [1, 1, 5, 20, 1][t],
                entropy: t % 2 == 1,
            })
            .collect();
        let table = forest::xlogx_table(300);
        let want = forest::search(
            &p, &fx.bins, &tasks, &masks, &counts, &rules, &table, &want_hist,
        );
        assert!(
            want.iter().filter(|r| r.feature != NONE).count() >= tasks.len() / 2,
            "most tasks find a split"
        );
        let rule_words: Vec<u32> = rules.iter().flat_map(ClassRules::words).collect();
        let mut scratch = (up(&gpu, &[0i32]), up(&gpu, &[0u32]));
        let mut results = up(&gpu, &vec![0u32; tasks.len() * (4 + n_classes)]);
        gpu.class_search(
            &d,
            &up(&gpu, &flatten(&tasks, SearchTask::words)),
            &mask_buf,
            &up(&gpu, &counts),
            &up(&gpu, &rule_words),
            &up(&gpu, &table),
            &hist,
            &mut scratch,
            &mut results,
        )
        .expect("runs");
        let got = ClassResult::from_words(&gpu.read(&results).expect("reads"), n_classes);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(
                (g.feature, g.bin, g.missing_left, g.score.to_bits(), &g.left),
                (w.feature, w.bin, w.missing_left, w.score.to_bits(), &w.left),
                "task {i} (seed {seed})"
            );
        }
        // Apply five found splits (children at nodes 4 + 2i) and move the entries.
        let records: Vec<[u32; 4]> = tasks
            .iter()
            .zip(&want)
            .filter(|(_, r)| r.feature != NONE)
            .take(5)
            .enumerate()
            .map(|(i, (t, r))| {
                let packed = pack_split(r.feature, r.bin, r.missing_left);
                [t.tree, t.node, packed, 4 + 2 * i as u32]
            })
            .collect();
        let mut want_splits = vec![0u32; 2 * n_trees * cap];
        forest::apply(cap, &records, &mut want_splits);
        let mut want_nodes = node_of.clone();
        forest::partition(&p, &fx.bins, &want_splits, &mut want_nodes);
        assert_ne!(want_nodes, node_of, "some entries move");
        let mut splits = up(&gpu, &vec![0u32; 2 * n_trees * cap]);
        let words: Vec<u32> = records.iter().flatten().copied().collect();
        gpu.class_apply(&d, &up(&gpu, &words), &mut splits)
            .expect("runs");
        let mut nodes = up(&gpu, &node_of);
        gpu.class_partition(&d, &splits, &mut nodes).expect("runs");
        assert_eq!(
            gpu.read(&splits).expect("reads"),
            want_splits,
            "split tables"
        );
        assert_eq!(
            gpu.read(&nodes).expect("reads"),
            want_nodes,
            "moved entries"
        );
    }
}
