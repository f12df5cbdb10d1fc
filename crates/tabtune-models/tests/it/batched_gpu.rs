//! The batched fit on wgpu (Mesa's lavapipe in CI) against the CPU reference: the same trees
//! (integer sums, splits: exact; leaf values within 1e-6), the same per-round metrics, and
//! every bad input as a typed error.
//!
//! Without a wgpu adapter the tests say so and pass, except under `CI=true`, where a missing
//! adapter fails them.

use tabtune_models::gbdt::batched::{
    BatchData, BatchDevice, BatchMember, BatchOptions, MemberEnd, MemberFit, fit_batched,
};
use tabtune_models::gbdt::{GbdtModel, GbdtParams, Growth, Node};
use tabtune_models::metrics::Control;

use super::batched::{data, folds, params};

/// Whether a wgpu adapter exists (a panic under `CI=true` when none does).
fn have_wgpu() -> bool {
    match tabtune_kernels::gpu::Gpu::wgpu() {
        Ok(_) => true,
        Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true but no wgpu adapter: {e} (install mesa-vulkan-drivers)")
        }
        Err(e) => {
            eprintln!("skipped: {e}");
            false
        }
    }
}

fn gpu() -> BatchOptions {
    BatchOptions {
        device: BatchDevice::Wgpu,
        memory_limit: None,
        cpu_fallback: false,
    }
}

fn run(d: &BatchData, members: &[BatchMember], options: &BatchOptions) -> Vec<MemberFit> {
    fit_batched(d, members, options, &mut |_| Control::Continue).expect("fits")
}

/// Same structure exactly, leaf values within 1e-6; returns the number of leaves compared.
fn assert_close(gpu: &GbdtModel, cpu: &GbdtModel, what: &str) -> (usize, usize) {
    assert_eq!(gpu.trees.len(), cpu.trees.len(), "{what}: rounds");
    assert_eq!(gpu.init, cpu.init, "{what}: init");
    assert_eq!(gpu.importance_split, cpu.importance_split, "{what}");
    let (mut leaves, mut exact) = (0, 0);
    for (r, (a, b)) in gpu.trees.iter().zip(&cpu.trees).enumerate() {
        for (t, (ta, tb)) in a.iter().zip(b).enumerate() {
            assert_eq!(
                ta.nodes.len(),
                tb.nodes.len(),
                "{what}: round {r}, tree {t}"
            );
            for (na, nb) in ta.nodes.iter().zip(&tb.nodes) {
                match (na, nb) {
                    (Node::Leaf { value: va }, Node::Leaf { value: vb }) => {
                        assert!(
                            (va - vb).abs() <= 1e-6,
                            "{what}: round {r}, tree {t}: leaf {va} vs {vb}"
                        );
                        leaves += 1;
                        exact += usize::from(va == vb);
                    }
                    _ => assert_eq!(na, nb, "{what}: round {r}, tree {t}"),
                }
            }
        }
    }
    (leaves, exact)
}

#[test]
fn wgpu_batches_equal_the_cpu_reference_in_every_growth_policy() {
    if !have_wgpu() {
        return;
    }
    for n_classes in [3, 2] {
        let (x, _, d) = data(n_classes);
        for growth in [Growth::DepthWise, Growth::LeafWise, Growth::Oblivious] {
            let trials = [
                params(
                    growth,
                    &[
                        ("rounds", "6"),
                        ("subsample", "0.8"),
                        ("colsample_bynode", "0.7"),
                        ("early_stopping_rounds", "3"),
                    ],
                ),
                params(
                    growth,
                    &[
                        ("rounds", "6"),
                        ("lambda", "2"),
                        ("alpha", "0.3"),
                        ("quantize", "stochastic"),
                        ("max_depth", "3"),
                        ("num_leaves", "7"),
                        ("colsample_bytree", "0.75"),
                    ],
                ),
            ];
            let members: Vec<BatchMember> = trials
                .iter()
                .flat_map(|p| {
                    folds(x.nrows())
                        .into_iter()
                        .take(3)
                        .map(move |(train, valid)| BatchMember {
                            params: p.clone(),
                            train,
                            valid,
                        })
                })
                .collect();
            let cpu = run(&d, &members, &BatchOptions::default());
            let gpu = run(&d, &members, &gpu());
            let (mut leaves, mut exact) = (0, 0);
            for (i, (g, c)) in gpu.iter().zip(&cpu).enumerate() {
                let what = format!("{growth:?}, {n_classes} classes, member {i}");
                let (l, e) = assert_close(&g.model, &c.model, &what);
                leaves += l;
                exact += e;
                assert_eq!(g.evals.len(), c.evals.len(), "{what}");
                for (a, b) in g.evals.iter().zip(&c.evals) {
                    assert!(
                        (a.logloss - b.logloss).abs() < 1e-6 && a.accuracy == b.accuracy,
                        "{what}: {a:?} vs {b:?}"
                    );
                }
                assert_eq!((g.end, g.rounds), (c.end, c.rounds), "{what}");
            }
            eprintln!(
                "{growth:?}, {n_classes} classes: {exact} of {leaves} leaf values bit-identical"
            );
        }
    }
}

#[test]
fn wgpu_member_alone_equals_the_member_in_a_batch_of_64() {
    if !have_wgpu() {
        return;
    }
    let (x, _, d) = data(3);
    let folds = folds(x.nrows());
    let member = |i: usize| {
        let depth = format!("{}", 1 + i % 6);
        let lr = format!("{}", 0.05 + 0.01 * (i % 9) as f64);
        let (train, valid) = folds[i % 5].clone();
        BatchMember {
            params: params(
                Growth::DepthWise,
                &[
                    ("rounds", "3"),
                    ("max_depth", &depth),
                    ("learning_rate", &lr),
                ],
            ),
            train,
            valid,
        }
    };
    let all: Vec<BatchMember> = (0..64).map(member).collect();
    let batch = run(&d, &all, &gpu());
    for i in [0, 29, 63] {
        let one = run(&d, &[member(i)], &gpu());
        assert_close(&one[0].model, &batch[i].model, &format!("member {i}"));
        assert_eq!(one[0].evals, batch[i].evals, "member {i}");
    }
    // Ragged depths: every member's trees as deep as its own limit allows, no deeper.
    for (i, fit) in batch.iter().enumerate().take(6) {
        assert!(fit.model.trees[0][0].depth() <= 1 + i % 6, "member {i}");
    }
}

#[test]
fn wgpu_members_stop_early_on_their_own() {
    if !have_wgpu() {
        return;
    }
    let (x, _, d) = data(3);
    let folds = folds(x.nrows());
    let members = vec![
        BatchMember {
            params: params(
                Growth::LeafWise,
                &[
                    ("rounds", "40"),
                    ("learning_rate", "1"),
                    ("num_leaves", "40"),
                    ("min_data_in_leaf", "1"),
                    ("lambda", "0"),
                    ("early_stopping_rounds", "2"),
                ],
            ),
            train: folds[0].0.clone(),
            valid: folds[0].1.clone(),
        },
        BatchMember {
            params: params(Growth::LeafWise, &[("rounds", "9")]),
            train: folds[1].0.clone(),
            valid: folds[1].1.clone(),
        },
    ];
    let gpu = run(&d, &members, &gpu());
    let cpu = run(&d, &members, &BatchOptions::default());
    assert_eq!(gpu[0].end, MemberEnd::EarlyStopped);
    assert!(gpu[0].rounds < 40);
    assert_eq!((gpu[1].end, gpu[1].rounds), (MemberEnd::Completed, 9));
    for (i, (g, c)) in gpu.iter().zip(&cpu).enumerate() {
        assert_close(&g.model, &c.model, &format!("member {i}"));
        assert_eq!((g.end, g.rounds), (c.end, c.rounds));
    }
}

#[test]
fn wgpu_bad_input_is_a_typed_error() {
    if !have_wgpu() {
        return;
    }
    let (x, _, d) = data(3);
    let (train, valid) = folds(x.nrows())[0].clone();
    let ok = BatchMember {
        params: params(Growth::DepthWise, &[("rounds", "2")]),
        train,
        valid,
    };
    let err = |members: Vec<BatchMember>, options: BatchOptions| {
        fit_batched(&d, &members, &options, &mut |_| Control::Continue).expect_err("a bad batch")
    };
    // Device memory: the cap is below what the batch needs; the error names the buffer and
    // its size.
    let e = err(
        vec![ok.clone()],
        BatchOptions {
            memory_limit: Some(200_000),
            ..gpu()
        },
    );
    let m = e.to_string();
    assert!(
        m.contains("out of device memory") && m.contains("bytes") && m.contains("200000"),
        "{m}"
    );
    assert!(!e.is_bad_input());
    // Infinite gradients (a class weight beyond f32), an empty fold, invalid parameters.
    let mut inf = ok.clone();
    inf.params.class_weights = vec![1.0, 1.0, 1e39];
    let m = err(vec![ok.clone(), inf], gpu()).to_string();
    assert!(
        m.contains("member 1") && m.contains("non-finite gradients"),
        "{m}"
    );
    let empty = BatchMember {
        train: Vec::new(),
        ..ok.clone()
    };
    let m = err(vec![empty], gpu()).to_string();
    assert!(m.contains("member 0 has no training rows"), "{m}");
    let mut bad = ok.clone();
    bad.params = GbdtParams {
        subsample: 0.0,
        ..bad.params
    };
    let m = err(vec![bad], gpu()).to_string();
    assert!(m.contains("member 0: subsample"), "{m}");
}

/// Decision trees and forests (Gini, entropy, bootstrap, feature sampling, leaf and depth
/// limits) grown on wgpu: the same models as the CPU reference, node for node; out of memory
/// under `auto` falls back to the CPU and says so.
#[test]
fn wgpu_forests_equal_the_cpu_reference() {
    use tabtune_models::forest::batched::{ForestMember, fit_forests_batched};
    use tabtune_models::forest::{Criterion, ForestKind, ForestParams};
    if !have_wgpu() {
        return;
    }
    let (x, y) = super::three_classes(500, 31);
    let d = BatchData::new(x.view(), &y, 3, &super::names(4), 63, false).expect("bins");
    let mut members = Vec::new();
    for (i, kind) in [
        ForestKind::DecisionTree,
        ForestKind::DecisionTree,
        ForestKind::RandomForest,
        ForestKind::RandomForest,
    ]
    .into_iter()
    .enumerate()
    {
        let mut p = ForestParams::new(kind);
        p.max_bins = 63;
        p.seed = i as u64;
        if kind == ForestKind::RandomForest {
            p.n_trees = 5;
        }
        if i % 2 == 1 {
            p.criterion = Criterion::Entropy;
            p.min_samples_leaf = 3;
            p.max_depth = 6;
        }
        members.push(ForestMember {
            params: p,
            train: (0..500u32).filter(|r| r % 5 != i as u32).collect(),
        });
    }
    let cpu = BatchOptions {
        device: BatchDevice::Cpu,
        ..gpu()
    };
    let want = fit_forests_batched(&d, &members, &cpu).expect("cpu");
    let got = fit_forests_batched(&d, &members, &gpu()).expect("wgpu");
    for (m, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g.device, "wgpu");
        assert_eq!(g.model, w.model, "member {m}");
        assert!(
            g.model.trees.iter().all(|t| t.n_leaves() > 2),
            "member {m} grew"
        );
    }
    let small = BatchOptions {
        memory_limit: Some(1000),
        cpu_fallback: true,
        ..gpu()
    };
    let fell = fit_forests_batched(&d, &members[..1], &small).expect("falls back");
    assert!(
        fell[0]
            .device
            .starts_with("cpu (fallback: wgpu: out of device memory"),
        "{}",
        fell[0].device
    );
    assert_eq!(fell[0].model, want[0].model);
}
