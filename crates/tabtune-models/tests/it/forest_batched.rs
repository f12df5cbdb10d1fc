//! The batched fit of decision trees and forests on the CPU (the kernels' references): every
//! member's model equals the engine's fit of the same parameters on the same bins, members do
//! not affect each other, and bad input is a typed error.

use ndarray::{Array2, Axis};
use tabtune_models::forest::batched::{ForestMember, fit_forests_batched};
use tabtune_models::forest::{
    ClassNode, ClassTree, Criterion, ForestKind, ForestModel, ForestParams,
};
use tabtune_models::gbdt::Labelled;
use tabtune_models::gbdt::batched::{BatchData, BatchDevice, BatchOptions};

use super::{names, three_classes};

/// A tree with its nodes renumbered in preorder (the engine grows depth first, the batch level
/// by level: the same tree, other node numbers).
pub fn canonical(tree: &ClassTree) -> Vec<ClassNode> {
    fn walk(t: &ClassTree, i: usize, out: &mut Vec<ClassNode>) {
        let at = out.len();
        out.push(t.nodes[i].clone());
        if let ClassNode::Split { left, right, .. } = t.nodes[i] {
            let l = out.len() as u32;
            walk(t, left as usize, out);
            let r = out.len() as u32;
            walk(t, right as usize, out);
            if let ClassNode::Split {
                left: nl,
                right: nr,
                ..
            } = &mut out[at]
            {
                (*nl, *nr) = (l, r);
            }
        }
    }
    let mut out = Vec::new();
    walk(tree, 0, &mut out);
    out
}

/// Asserts two forests are the same trees (up to node numbering) with the same scores.
pub fn assert_same_forest(a: &ForestModel, b: &ForestModel, what: &str) {
    assert_eq!(a.trees.len(), b.trees.len(), "{what}: trees");
    for (t, (x, y)) in a.trees.iter().zip(&b.trees).enumerate() {
        assert_eq!(canonical(x), canonical(y), "{what}: tree {t}");
    }
    assert_eq!(a.oob_accuracy, b.oob_accuracy, "{what}: OOB accuracy");
    assert_eq!(
        a.importance_split, b.importance_split,
        "{what}: splits per feature"
    );
    assert_eq!(a.params, b.params, "{what}: parameters");
}

fn settings() -> Vec<ForestParams> {
    let mut dt = ForestParams::new(ForestKind::DecisionTree);
    dt.max_bins = 63;
    let mut dt_entropy = dt.clone();
    dt_entropy.criterion = Criterion::Entropy;
    dt_entropy.max_depth = 5;
    dt_entropy.min_samples_leaf = 4;
    let mut rf = ForestParams::new(ForestKind::RandomForest);
    rf.n_trees = 6;
    rf.max_bins = 63;
    rf.seed = 9;
    let mut rf_entropy = rf.clone();
    rf_entropy.criterion = Criterion::Entropy;
    rf_entropy.max_features = 0.75;
    rf_entropy.min_samples_split = 10;
    rf_entropy.seed = 10;
    let mut rf_no_bootstrap = rf.clone();
    rf_no_bootstrap.bootstrap = false;
    rf_no_bootstrap.max_depth = 3;
    vec![dt, dt_entropy, rf, rf_entropy, rf_no_bootstrap]
}

fn cpu() -> BatchOptions {
    BatchOptions {
        device: BatchDevice::Cpu,
        memory_limit: None,
        cpu_fallback: false,
    }
}

#[test]
fn every_member_equals_the_engines_fit_and_members_do_not_interact() {
    let (x, y) = three_classes(700, 21);
    let data = BatchData::new(x.view(), &y, 3, &names(4), 63, false).expect("bins");
    let all: Vec<u32> = (0..700).collect();
    let members: Vec<ForestMember> = settings()
        .into_iter()
        .map(|params| ForestMember {
            params,
            train: all.clone(),
        })
        .collect();
    let fits = fit_forests_batched(&data, &members, &cpu()).expect("fits");
    for (m, (member, fit)) in members.iter().zip(&fits).enumerate() {
        assert_eq!(fit.device, "cpu");
        let engine = ForestModel::fit(
            &member.params.check().expect("valid"),
            &names(4),
            3,
            Labelled { x: x.view(), y: &y },
        )
        .expect("engine fits");
        assert_same_forest(&fit.model, &engine, &format!("member {m}"));
        assert_eq!(
            fit.model.predict_proba(x.view()).expect("a"),
            engine.predict_proba(x.view()).expect("b"),
            "member {m}: probabilities"
        );
        // Alone in a batch: the same model.
        let alone =
            fit_forests_batched(&data, std::slice::from_ref(member), &cpu()).expect("fits alone");
        assert_eq!(alone[0].model, fit.model, "member {m} alone");
    }
    // Trees grow until pure without limits: every training row is classified right by the
    // decision tree.
    let dt = &fits[0].model;
    let pred = dt.predict(x.view()).expect("predicts");
    let distinct_ok = pred.iter().zip(&y).filter(|(a, b)| a == b).count();
    assert!(distinct_ok as f64 / 700.0 > 0.99, "{distinct_ok}");
}

#[test]
fn fold_members_train_on_their_own_rows() {
    let (x, y) = three_classes(600, 22);
    let data = BatchData::new(x.view(), &y, 3, &names(4), 63, false).expect("bins");
    let mut p = ForestParams::new(ForestKind::RandomForest);
    p.n_trees = 4;
    p.max_bins = 63;
    let folds: Vec<Vec<u32>> = (0..3)
        .map(|k| (0..600u32).filter(|r| r % 3 != k).collect())
        .collect();
    let members: Vec<ForestMember> = folds
        .iter()
        .map(|train| ForestMember {
            params: p.clone(),
            train: train.clone(),
        })
        .collect();
    let fits = fit_forests_batched(&data, &members, &cpu()).expect("fits");
    for (k, (train, fit)) in folds.iter().zip(&fits).enumerate() {
        // The engine on the fold's rows, binned with the batch's bins (as the fold matrix).
        let rows: Vec<usize> = train.iter().map(|&r| r as usize).collect();
        let xf: Array2<f32> = x.select(Axis(0), &rows);
        let yf: Vec<u32> = rows.iter().map(|&r| y[r]).collect();
        let one = BatchData::new(xf.view(), &yf, 3, &names(4), 63, false).expect("bins");
        let own: Vec<u32> = (0..rows.len() as u32).collect();
        let alone = fit_forests_batched(
            &one,
            &[ForestMember {
                params: p.clone(),
                train: own,
            }],
            &cpu(),
        )
        .expect("fits");
        // Bins fitted on other rows may differ, so compare what is binning-free: the OOB
        // accuracy is a proper estimate and both predict the held-out third alike.
        let held: Vec<usize> = (0..600).filter(|r| r % 3 == k).collect();
        let xh: Array2<f32> = x.select(Axis(0), &held);
        let a = fit.model.predict(xh.view()).expect("a");
        let b = alone[0].model.predict(xh.view()).expect("b");
        let agree = a.iter().zip(&b).filter(|(p, q)| p == q).count() as f64 / held.len() as f64;
        assert!(agree > 0.9, "fold {k}: agreement {agree}");
        let oob = fit.model.oob_accuracy.expect("bagged");
        assert!(oob > 0.85, "fold {k}: OOB {oob}");
    }
}

#[test]
fn bad_members_and_data_are_typed_errors() {
    let (x, y) = three_classes(200, 23);
    let data = BatchData::new(x.view(), &y, 3, &names(4), 63, false).expect("bins");
    let mut p = ForestParams::new(ForestKind::RandomForest);
    p.max_bins = 63;
    p.n_trees = 2;
    let all: Vec<u32> = (0..200).collect();
    let err = |members: &[ForestMember], options: &BatchOptions| {
        fit_forests_batched(&data, members, options)
            .expect_err("bad input")
            .to_string()
    };
    let member = |params: &ForestParams, train: &[u32]| ForestMember {
        params: params.clone(),
        train: train.to_vec(),
    };
    assert!(err(&[], &cpu()).contains("at least one member"));
    let m = err(&[member(&p, &all), member(&p, &[])], &cpu());
    assert!(m.contains("member 1 has no training rows"), "{m}");
    let m = err(&[member(&p, &[0, 1, 200])], &cpu());
    assert!(m.contains("member 0: row 200 is outside"), "{m}");
    let mut zero = p.clone();
    zero.n_trees = 0;
    let m = err(&[member(&p, &all), member(&zero, &all)], &cpu());
    assert!(m.contains("member 1: n_trees"), "{m}");
    let mut bins = p.clone();
    bins.max_bins = 255;
    let m = err(&[member(&bins, &all)], &cpu());
    assert!(
        m.contains("member 0: max_bins") && m.contains("63 bins"),
        "{m}"
    );
    // Out of memory names the size; with the fallback the CPU trains instead.
    let tiny = BatchOptions {
        memory_limit: Some(1000),
        ..cpu()
    };
    let m = err(&[member(&p, &all)], &tiny);
    assert!(
        m.contains("out of device memory") && m.contains("bytes"),
        "{m}"
    );
    // Missing values: refused, as the engine refuses them.
    let mut nan = x.clone();
    nan[[4, 1]] = f32::NAN;
    let with_nan = BatchData::new(nan.view(), &y, 3, &names(4), 63, true).expect("bins");
    let m = fit_forests_batched(&with_nan, &[member(&p, &all)], &cpu())
        .expect_err("NaN")
        .to_string();
    assert!(m.contains("missing values"), "{m}");
}
