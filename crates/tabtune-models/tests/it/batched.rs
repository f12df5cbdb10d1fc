//! Batched boosting (CPU backend): every member equals the engine trained alone with quantized
//! gradients on the same bins; early stopping and stopping per member; every bad input.

use ndarray::{Array2, Axis};
use tabtune_models::gbdt::batched::{
    BatchData, BatchDevice, BatchMember, BatchOptions, MemberEnd, MemberFit, MemberRound,
    fit_batched,
};
use tabtune_models::gbdt::{GbdtModel, GbdtParams, Growth, Labelled, Quantize, RoundEval};
use tabtune_models::metrics::Control;

use super::{names, three_classes};

/// 1200 rows of `three_classes` with missing values in feature 2, and `n_classes` classes
/// (two: class 2 merged into 1).
pub(super) fn data(n_classes: usize) -> (Array2<f32>, Vec<u32>, BatchData) {
    let (mut x, mut y) = three_classes(1200, 11);
    for i in (0..x.nrows()).step_by(9) {
        x[[i, 2]] = f32::NAN;
    }
    if n_classes == 2 {
        for c in &mut y {
            *c = (*c).min(1);
        }
    }
    let d = BatchData::new(x.view(), &y, n_classes, &names(4), 255, true).expect("bins");
    (x, y, d)
}

/// Five folds of the rows: `(train, valid)` per fold.
pub(super) fn folds(n: usize) -> Vec<(Vec<u32>, Vec<u32>)> {
    (0..5u32)
        .map(|f| {
            let (valid, train): (Vec<u32>, Vec<u32>) = (0..n as u32).partition(|r| r % 5 == f);
            (train, valid)
        })
        .collect()
}

pub(super) fn params(growth: Growth, pairs: &[(&str, &str)]) -> GbdtParams {
    let mut p = GbdtParams::new(growth);
    for (name, value) in [
        ("rounds", "12"),
        ("learning_rate", "0.3"),
        ("min_data_in_leaf", "5"),
        ("allow_missing", "true"),
        ("quantize", "nearest"),
    ]
    .iter()
    .chain(pairs)
    {
        p.set(name, value).expect("a known parameter");
    }
    p
}

/// The engine trained alone on a member's rows with the batch's bins, and its round metrics.
fn alone(
    x: &Array2<f32>,
    y: &[u32],
    d: &BatchData,
    n_classes: usize,
    m: &BatchMember,
) -> (GbdtModel, Vec<RoundEval>) {
    let rows = |r: &[u32]| r.iter().map(|&i| i as usize).collect::<Vec<_>>();
    let (tr, va) = (rows(&m.train), rows(&m.valid));
    let tx = x.select(Axis(0), &tr);
    let ty: Vec<u32> = tr.iter().map(|&i| y[i]).collect();
    let vx = x.select(Axis(0), &va);
    let vy: Vec<u32> = va.iter().map(|&i| y[i]).collect();
    let bins = d.binned(tx.view(), (!va.is_empty()).then(|| vx.view()));
    let mut evals = Vec::new();
    let model = GbdtModel::fit_binned(
        &m.params.check(n_classes).expect("valid"),
        &names(4),
        n_classes,
        Labelled {
            x: tx.view(),
            y: &ty,
        },
        (!va.is_empty()).then(|| Labelled {
            x: vx.view(),
            y: &vy,
        }),
        &mut |_, e| {
            evals.extend(e);
            Control::Continue
        },
        Some(&bins),
    )
    .expect("fits alone");
    (model, evals)
}

fn batched(d: &BatchData, members: &[BatchMember]) -> Vec<MemberFit> {
    fit_batched(d, members, &BatchOptions::default(), &mut |_| {
        Control::Continue
    })
    .expect("fits batched")
}

fn assert_same(fit: &MemberFit, model: &GbdtModel, evals: &[RoundEval], what: &str) {
    // (Not assert_eq: a failure would print every tree.)
    if fit.model != *model {
        let first = fit
            .model
            .trees
            .iter()
            .zip(&model.trees)
            .position(|(a, b)| a != b);
        panic!(
            "{what}: the batched model differs from the engine's (first differing round {first:?}; \
             rounds {} vs {}; init {:?} vs {:?})",
            fit.model.trees.len(),
            model.trees.len(),
            fit.model.init,
            model.init
        );
    }
    assert_eq!(fit.evals, evals, "{what}: round metrics");
}

#[test]
fn batched_folds_equal_separate_fits_in_every_growth_policy() {
    for n_classes in [3, 2] {
        let (x, y, d) = data(n_classes);
        for growth in [Growth::DepthWise, Growth::LeafWise, Growth::Oblivious] {
            // Two trials × five folds, with every sampling and regularisation knob on.
            let trials = [
                params(
                    growth,
                    &[
                        ("subsample", "0.8"),
                        ("colsample_bytree", "0.75"),
                        ("colsample_bynode", "0.7"),
                        ("early_stopping_rounds", "4"),
                    ],
                ),
                params(
                    growth,
                    &[
                        ("lambda", "3"),
                        ("alpha", "0.5"),
                        ("gamma", "0.01"),
                        ("min_child_weight", "2"),
                        ("quantize", "stochastic"),
                        ("quant_bits", "8"),
                        (
                            "max_depth",
                            if growth == Growth::LeafWise { "4" } else { "3" },
                        ),
                        ("num_leaves", "9"),
                        (
                            "class_weights",
                            if n_classes == 2 { "1,2" } else { "1,2,1" },
                        ),
                        ("seed", "5"),
                    ],
                ),
            ];
            let members: Vec<BatchMember> = trials
                .iter()
                .flat_map(|p| {
                    folds(x.nrows())
                        .into_iter()
                        .map(move |(train, valid)| BatchMember {
                            params: p.clone(),
                            train,
                            valid,
                        })
                })
                .collect();
            let fits = batched(&d, &members);
            for (i, (m, fit)) in members.iter().zip(&fits).enumerate() {
                let (model, evals) = alone(&x, &y, &d, n_classes, m);
                assert!(model.trees.len() > 2 && model.trees[0][0].n_leaves() > 1);
                assert_same(
                    fit,
                    &model,
                    &evals,
                    &format!("{growth:?}, {n_classes} classes, member {i}"),
                );
            }
        }
    }
}

#[test]
fn a_member_alone_equals_the_same_member_in_a_batch_of_64() {
    let (x, _, d) = data(3);
    let folds = folds(x.nrows());
    for growth in [Growth::DepthWise, Growth::LeafWise, Growth::Oblivious] {
        let member = |i: usize| {
            let lr = format!("{}", 0.1 + 0.01 * (i % 7) as f64);
            let depth = format!("{}", 2 + i % 4);
            let leaves = format!("{}", 3 + i % 13);
            let (train, valid) = folds[i % 5].clone();
            BatchMember {
                params: params(
                    growth,
                    &[
                        ("rounds", "4"),
                        ("learning_rate", &lr),
                        ("max_depth", &depth),
                        ("num_leaves", &leaves),
                        ("subsample", if i.is_multiple_of(2) { "1" } else { "0.7" }),
                    ],
                ),
                train,
                valid,
            }
        };
        let all: Vec<BatchMember> = (0..64).map(member).collect();
        let batch = batched(&d, &all);
        for i in [0, 17, 63] {
            let one = batched(&d, &[member(i)]);
            assert_eq!(one[0], batch[i], "{growth:?}: member {i}");
        }
    }
}

#[test]
fn ragged_budgets_grow_to_their_own_depth_or_leaves() {
    let (x, y, d) = data(3);
    let (train, valid) = folds(x.nrows())[0].clone();
    for (growth, knob, values) in [
        (Growth::DepthWise, "max_depth", ["1", "3", "6"]),
        (Growth::Oblivious, "max_depth", ["1", "3", "6"]),
        (Growth::LeafWise, "num_leaves", ["2", "5", "24"]),
    ] {
        let members: Vec<BatchMember> = values
            .iter()
            .map(|v| BatchMember {
                params: params(growth, &[(knob, v), ("min_data_in_leaf", "2")]),
                train: train.clone(),
                valid: valid.clone(),
            })
            .collect();
        let fits = batched(&d, &members);
        for (m, fit) in members.iter().zip(&fits) {
            let (model, evals) = alone(&x, &y, &d, 3, m);
            assert_same(fit, &model, &evals, &format!("{growth:?} {knob}"));
        }
        let size = |f: &MemberFit| match growth {
            Growth::LeafWise => f.model.trees[0][0].n_leaves(),
            _ => f.model.trees[0][0].depth(),
        };
        assert!(
            size(&fits[0]) < size(&fits[1]) && size(&fits[1]) < size(&fits[2]),
            "{growth:?}: {} {} {}",
            size(&fits[0]),
            size(&fits[1]),
            size(&fits[2])
        );
    }
}

#[test]
fn members_stop_early_and_on_request_on_their_own() {
    let (x, y, d) = data(3);
    let folds = folds(x.nrows());
    // Member 0 overfits fast (stops early), member 1 is stopped by the callback after round 2,
    // member 2 runs all its rounds.
    let members = vec![
        BatchMember {
            params: params(
                Growth::DepthWise,
                &[
                    ("rounds", "60"),
                    ("learning_rate", "1"),
                    ("max_depth", "6"),
                    ("min_data_in_leaf", "1"),
                    ("lambda", "0"),
                    ("early_stopping_rounds", "2"),
                ],
            ),
            train: folds[0].0.clone(),
            valid: folds[0].1.clone(),
        },
        BatchMember {
            params: params(Growth::DepthWise, &[("rounds", "60")]),
            train: folds[1].0.clone(),
            valid: folds[1].1.clone(),
        },
        BatchMember {
            params: params(Growth::DepthWise, &[("rounds", "7")]),
            train: folds[2].0.clone(),
            valid: folds[2].1.clone(),
        },
    ];
    let mut seen: Vec<MemberRound> = Vec::new();
    let fits = fit_batched(&d, &members, &BatchOptions::default(), &mut |r| {
        seen.push(r);
        if r.member == 1 && r.round == 2 {
            Control::Stop
        } else {
            Control::Continue
        }
    })
    .expect("fits");
    assert_eq!(fits[0].end, MemberEnd::EarlyStopped);
    assert!(fits[0].rounds < 60 && fits[0].model.trees.len() == fits[0].rounds - 2);
    let (model, evals) = alone(&x, &y, &d, 3, &members[0]);
    assert_same(&fits[0], &model, &evals, "early-stopped member");
    assert_eq!((fits[1].end, fits[1].rounds), (MemberEnd::Stopped, 3));
    assert_eq!((fits[2].end, fits[2].rounds), (MemberEnd::Completed, 7));
    // Every member reports every round it trained, and nothing after it stopped.
    for (m, fit) in fits.iter().enumerate() {
        let rounds: Vec<usize> = seen
            .iter()
            .filter(|r| r.member == m)
            .map(|r| r.round)
            .collect();
        assert_eq!(rounds, (0..fit.rounds).collect::<Vec<_>>(), "member {m}");
        assert!(
            seen.iter()
                .filter(|r| r.member == m)
                .all(|r| r.eval.is_some())
        );
    }
}

#[test]
fn quantized_engine_learns_and_default_stays_unquantized() {
    let (x, y) = three_classes(3000, 1);
    let (xv, yv) = three_classes(1000, 2);
    for growth in [Growth::DepthWise, Growth::LeafWise, Growth::Oblivious] {
        for q in ["nearest", "stochastic"] {
            let mut p = GbdtParams::new(growth);
            p.rounds = 60;
            p.learning_rate = 0.2;
            p.set("quantize", q).expect("known");
            let m = p
                .fit(&names(4), 3, Labelled { x: x.view(), y: &y }, None)
                .expect("fits");
            let acc = super::accuracy(&m, &xv, &yv);
            assert!(acc > 0.95, "{growth:?} {q}: held-out accuracy {acc}");
            let json = serde_json::to_string(&m.params).expect("serializes");
            assert!(json.contains("\"quantize\""), "{json}");
        }
    }
    // The default writes no quantization fields (saved models unchanged).
    let json = serde_json::to_string(&GbdtParams::new(Growth::LeafWise)).expect("serializes");
    assert!(!json.contains("quant"), "{json}");
    assert_eq!(GbdtParams::new(Growth::LeafWise).quantize, Quantize::Off);
}

#[test]
fn bad_batches_get_clear_typed_errors() {
    let (x, _, d) = data(3);
    let (train, valid) = folds(x.nrows())[0].clone();
    let ok = BatchMember {
        params: params(Growth::DepthWise, &[]),
        train: train.clone(),
        valid: valid.clone(),
    };
    let err = |members: Vec<BatchMember>, options: BatchOptions| {
        fit_batched(&d, &members, &options, &mut |_| Control::Continue)
            .expect_err("a bad batch")
            .to_string()
    };
    let cpu = BatchOptions {
        device: BatchDevice::Cpu,
        memory_limit: None,
        cpu_fallback: false,
    };
    assert_eq!(cpu, BatchOptions::default());
    let m = err(vec![], cpu);
    assert!(m.contains("at least one member"), "{m}");
    let empty = BatchMember {
        train: Vec::new(),
        ..ok.clone()
    };
    let m = err(vec![ok.clone(), empty], cpu);
    assert!(
        m.contains("member 1") && m.contains("no training rows"),
        "{m}"
    );
    let mut es = ok.clone();
    es.params.early_stopping_rounds = 3;
    es.valid.clear();
    let m = err(vec![es], cpu);
    assert!(m.contains("member 0") && m.contains("validation"), "{m}");
    let mut outside = ok.clone();
    outside.valid.push(99_999);
    let m = err(vec![outside], cpu);
    assert!(m.contains("99999") && m.contains("1200 rows"), "{m}");
    let mut bad = ok.clone();
    bad.params.lambda = -1.0;
    let m = err(vec![ok.clone(), bad], cpu);
    assert!(m.contains("member 1: lambda") && m.contains("-1"), "{m}");
    let mut other = ok.clone();
    other.params.growth = Growth::LeafWise;
    let m = err(vec![ok.clone(), other], cpu);
    assert!(m.contains("member 1: growth"), "{m}");
    let mut cat = ok.clone();
    cat.params.categorical = vec![3];
    let m = err(vec![cat], cpu);
    assert!(m.contains("categorical") && m.contains("one-hot"), "{m}");
    let mut bins = ok.clone();
    bins.params.max_bins = 64;
    let m = err(vec![bins], cpu);
    assert!(m.contains("max_bins") && m.contains("255"), "{m}");
    // A class weight beyond f32 makes the gradients infinite: named, not trained on.
    let mut inf = ok.clone();
    inf.params.class_weights = vec![1.0, 1e39, 1.0];
    let m = err(vec![ok.clone(), inf], cpu);
    assert!(
        m.contains("member 1") && m.contains("non-finite gradients"),
        "{m}"
    );
    // Memory: the histograms do not fit under the cap; the error names the size.
    let m = err(
        vec![ok.clone()],
        BatchOptions {
            memory_limit: Some(1000),
            ..cpu
        },
    );
    assert!(
        m.contains("out of") && m.contains("bytes") && m.contains("1000"),
        "{m}"
    );
    // A backend this build lacks.
    #[cfg(not(feature = "cuda"))]
    {
        let m = err(
            vec![ok.clone()],
            BatchOptions {
                device: BatchDevice::Cuda(0),
                ..cpu
            },
        );
        assert!(m.contains("cuda"), "{m}");
    }
    // With the CPU fallback, a device that cannot hold the batch (here: a backend this build
    // may lack, or a memory cap) gives way to the CPU, and the fits say why.
    let fits = fit_batched(
        &d,
        std::slice::from_ref(&ok),
        &BatchOptions {
            device: BatchDevice::Wgpu,
            memory_limit: Some(1000),
            cpu_fallback: true,
        },
        &mut |_| Control::Continue,
    );
    match fits {
        Ok(f) => assert!(
            f[0].device.starts_with("cpu (fallback: wgpu"),
            "{}",
            f[0].device
        ),
        // Without the wgpu feature there is no device to fall back from.
        Err(e) => assert!(e.to_string().contains("no such backend"), "{e}"),
    }
    // Data: NaN without allow_missing, labels out of range.
    let (x2, y2) = three_classes(50, 3);
    let mut xn = x2.clone();
    xn[[4, 1]] = f32::NAN;
    let e = BatchData::new(xn.view(), &y2, 3, &names(4), 255, false).expect_err("NaN");
    assert!(e.to_string().contains("row 4"), "{e}");
    let e = BatchData::new(x2.view(), &y2, 2, &names(4), 255, false).expect_err("labels");
    assert!(e.to_string().contains("label 2"), "{e}");
}
