//! One bundle per model family (and variants that reach every op: category-set splits,
//! ordered target statistics, every activation, normalization and embedding), exported and
//! compared with tabtune on test rows with unseen levels and on the real test file.

use tabtune_features::config::Encoding;
use tabtune_models::AnyModel;
use tabtune_models::ensemble::{EnsembleMember, EnsembleModel, Stack};
use tabtune_models::gbdt::Node;
use tabtune_train::Family;

use crate::{TOLERANCE, check_bundle, config, fit, params, save_bundle, synthetic};

/// Trains `family` with `overrides` on 700 synthetic rows, saves it as bundle `name`, exports,
/// compares.
fn family(name: &str, family: Family, encode: Encoding, overrides: &[(&str, &str)]) -> AnyModel {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(encode);
    let table = synthetic(dir.path(), "train", 700, 5, &config);
    let (pre, model) = fit(&config, &table, &params(family, overrides));
    let bundle = save_bundle(dir.path(), name, family.name(), pre, model.clone());
    let worst = check_bundle(dir.path(), &bundle, &config);
    assert!(worst <= TOLERANCE);
    model
}

#[test]
fn gbdt_leafwise_with_one_hot_inputs() {
    family(
        "gbdt-leafwise",
        Family::GbdtLeafwise,
        Encoding::OneHot,
        &[
            ("rounds", "60"),
            ("num_leaves", "15"),
            ("min_data_in_leaf", "5"),
        ],
    );
}

#[test]
fn gbdt_depthwise_with_category_set_splits() {
    let model = family(
        "gbdt-depthwise-ordinal",
        Family::GbdtDepthwise,
        Encoding::Ordinal,
        &[
            ("rounds", "40"),
            ("max_depth", "5"),
            ("min_data_in_leaf", "5"),
        ],
    );
    let AnyModel::Gbdt(m) = model else {
        panic!("a boosted model")
    };
    let category_splits = m
        .trees
        .iter()
        .flatten()
        .flat_map(|t| &t.nodes)
        .filter(|n| matches!(n, Node::Category { .. }))
        .count();
    assert!(
        category_splits > 0,
        "the test must reach category-set splits"
    );
}

#[test]
fn gbdt_oblivious_with_ordered_target_statistics() {
    let model = family(
        "gbdt-oblivious-ordinal",
        Family::GbdtOblivious,
        Encoding::Ordinal,
        &[
            ("rounds", "40"),
            ("max_depth", "4"),
            ("min_data_in_leaf", "5"),
        ],
    );
    let AnyModel::Gbdt(m) = model else {
        panic!("a boosted model")
    };
    assert!(
        !m.target_stats.is_empty(),
        "the test must reach target statistics"
    );
    // The statistics columns are split on.
    let n_inputs = m.feature_names.len() as u32;
    assert!(
        m.trees
            .iter()
            .flatten()
            .flat_map(|t| &t.nodes)
            .any(|n| matches!(n, Node::Split { feature, .. } if *feature >= n_inputs)),
        "some split reads a target-statistic column"
    );
}

#[test]
fn random_forest() {
    family(
        "random-forest",
        Family::RandomForest,
        Encoding::OneHot,
        &[("n_trees", "30"), ("max_depth", "10")],
    );
}

#[test]
fn decision_tree() {
    family(
        "decision-tree-ordinal",
        Family::DecisionTree,
        Encoding::Ordinal,
        &[],
    );
}

#[test]
fn mlp() {
    family(
        "mlp",
        Family::Mlp,
        Encoding::OneHot,
        &[("epochs", "6"), ("width", "32"), ("depth", "2")],
    );
}

#[test]
fn mlp_with_gelu_layer_norm_residual_and_periodic_embeddings() {
    family(
        "mlp-gelu-layer-residual-periodic",
        Family::Mlp,
        Encoding::OneHot,
        &[
            ("epochs", "4"),
            ("width", "24"),
            ("depth", "3"),
            ("activation", "gelu"),
            ("norm", "layer"),
            ("residual", "true"),
            ("embedding", "periodic"),
            ("n_frequencies", "6"),
            ("embedding_dim", "4"),
        ],
    );
}

#[test]
fn mlp_with_silu_batch_norm_and_piecewise_embeddings() {
    family(
        "mlp-silu-batch-piecewise",
        Family::Mlp,
        Encoding::Ordinal,
        &[
            ("epochs", "4"),
            ("width", "24"),
            ("depth", "2"),
            ("activation", "silu"),
            ("norm", "batch"),
            ("embedding", "piecewise"),
            ("n_bins", "8"),
            ("embedding_dim", "4"),
        ],
    );
}

#[test]
fn tabm_with_piecewise_embeddings() {
    family(
        "tabm-piecewise",
        Family::Tabm,
        Encoding::OneHot,
        &[
            ("epochs", "4"),
            ("width", "32"),
            ("depth", "2"),
            ("k", "4"),
            ("n_bins", "8"),
            ("embedding_dim", "4"),
        ],
    );
}

#[test]
fn tabm_with_batch_norm_periodic_embeddings_and_residual() {
    family(
        "tabm-gelu-batch-residual-periodic",
        Family::Tabm,
        Encoding::OneHot,
        &[
            ("epochs", "4"),
            ("width", "24"),
            ("depth", "3"),
            ("k", "3"),
            ("norm", "batch"),
            ("residual", "true"),
            ("activation", "gelu"),
            ("embedding", "periodic"),
            ("n_frequencies", "4"),
            ("embedding_dim", "4"),
        ],
    );
}

#[test]
fn decision_layer_ensemble_with_member_and_class_weights() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(Encoding::OneHot);
    let table = synthetic(dir.path(), "train", 700, 5, &config);
    let members = [
        (
            params(
                Family::GbdtLeafwise,
                &[("rounds", "30"), ("num_leaves", "7")],
            ),
            0.5,
        ),
        (params(Family::RandomForest, &[("n_trees", "15")]), 0.3),
        (
            params(Family::Mlp, &[("epochs", "4"), ("width", "16")]),
            0.2,
        ),
    ];
    let mut pre = None;
    let mut fitted = Vec::new();
    for (i, (p, weight)) in members.into_iter().enumerate() {
        // The same spec on the same rows: every member's preprocessor is the same.
        let (pr, model) = fit(&config, &table, &p);
        if let Some(first) = &pre {
            assert_eq!(first, &pr);
        }
        pre = Some(pr);
        fitted.push(EnsembleMember {
            model,
            weight,
            label: format!("study#{i}"),
        });
    }
    let class_weights = vec![1.0, 1.3, 0.8, 1.1, 0.9, 1.2, 0.7];
    let ensemble = EnsembleModel::new(fitted, class_weights).expect("a valid ensemble");
    let bundle = save_bundle(
        dir.path(),
        "ensemble",
        "ensemble",
        pre.expect("members"),
        AnyModel::Ensemble(ensemble),
    );
    assert!(check_bundle(dir.path(), &bundle, &config) <= TOLERANCE);
}

#[test]
fn fold_ensemble_with_own_preprocessing_and_a_stacker() {
    // Two trials shipped as their fold models (each fold fitted on its own rows, so each has
    // its own preprocessor), combined by a stacker, with class weights: what `tabtune run`'s
    // decision layer ships with final = "folds".
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(Encoding::OneHot);
    let table = synthetic(dir.path(), "train", 700, 5, &config);
    let n = table.n_rows();
    let trials = [
        params(
            Family::GbdtLeafwise,
            &[("rounds", "20"), ("num_leaves", "7")],
        ),
        params(Family::Mlp, &[("epochs", "3"), ("width", "16")]),
    ];
    let mut members = Vec::new();
    let mut own = Vec::new();
    let mut groups = Vec::new();
    let mut shared = None;
    for (t, p) in trials.iter().enumerate() {
        for fold in 0..3 {
            let rows: Vec<usize> = (0..n).filter(|r| r % 3 != fold).collect();
            let (pre, model) = fit(&config, &table.select_rows(&rows), p);
            shared.get_or_insert_with(|| pre.clone());
            members.push(EnsembleMember {
                model,
                weight: 1.0 / 6.0,
                label: format!("study#{t} fold {fold}"),
            });
            own.push(Some(pre));
            groups.push(t);
        }
    }
    let k = 7;
    let mut weights = vec![0.0; 2 * k * k];
    for g in 0..2 {
        for c in 0..k {
            for j in 0..k {
                // The geometric mean plus a little cross-class mixing.
                weights[(g * k + c) * k + j] = if c == j {
                    0.6 - 0.2 * g as f64
                } else {
                    0.01 * (c + 2 * j) as f64 / k as f64
                };
            }
        }
    }
    let stack = Stack {
        weights,
        bias: (0..k).map(|c| 0.05 * c as f64 - 0.1).collect(),
    };
    let ensemble = EnsembleModel::new(members, vec![1.0, 1.2, 0.9, 1.0, 1.1, 0.8, 1.0])
        .and_then(|e| e.with_folds(own, groups))
        .and_then(|e| e.with_stack(stack))
        .expect("a valid stacked fold ensemble");
    let bundle = save_bundle(
        dir.path(),
        "stacked-folds",
        "ensemble",
        shared.expect("members"),
        AnyModel::Ensemble(ensemble),
    );
    assert!(check_bundle(dir.path(), &bundle, &config) <= TOLERANCE);
}

#[test]
fn binary_gbdt_uses_the_logistic_function() {
    // Two classes: the schema's target levels cut to two, the labels folded onto them.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = config(Encoding::Ordinal);
    let target = config
        .schema
        .columns
        .iter_mut()
        .find(|c| c.name == "NObeyesdad")
        .expect("the target column");
    target.kind = tabtune_features::ColumnKind::Categorical {
        levels: vec!["lighter".into(), "heavier".into()],
    };
    let mut table = synthetic(
        dir.path(),
        "train",
        700,
        5,
        &crate::config(Encoding::Ordinal),
    );
    let y = table.target.as_mut().expect("labels");
    for v in y.iter_mut() {
        *v = u32::from(*v >= 3);
    }
    let (pre, model) = fit(
        &config,
        &table,
        &params(
            Family::GbdtLeafwise,
            &[("rounds", "30"), ("num_leaves", "7")],
        ),
    );
    let AnyModel::Gbdt(m) = &model else {
        panic!("a boosted model")
    };
    assert_eq!(m.n_outputs(), 1, "a binary model has one raw score");
    let bundle = save_bundle(dir.path(), "binary", "gbdt-leafwise", pre, model);
    let onnx = crate::export(&bundle, dir.path());
    // Test rows with the seven-class file's feature columns (the target is not read).
    let (test, csv) = crate::test_rows(dir.path(), &crate::config(Encoding::Ordinal));
    assert!(crate::compare_table(&bundle, &onnx, &test, &csv) <= TOLERANCE);
}

#[test]
fn models_trained_on_the_real_training_file() {
    // Thresholds at the real data's values (many repeated ones: heights, whole levels) and
    // category sets learned from the real levels.
    let Some(train) = tabtune_test::real_data("s4e2_train.csv") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, family, encode, overrides) in [
        (
            "real-gbdt-leafwise",
            Family::GbdtLeafwise,
            Encoding::OneHot,
            &[("rounds", "100"), ("learning_rate", "0.1")][..],
        ),
        (
            "real-gbdt-depthwise-ordinal",
            Family::GbdtDepthwise,
            Encoding::Ordinal,
            &[("rounds", "60"), ("learning_rate", "0.1")][..],
        ),
    ] {
        let config = config(encode);
        let table = tabtune_features::io::load_table(
            &train,
            &config.schema,
            &tabtune_features::io::LoadOptions::default(),
        )
        .expect("the real training file is valid")
        .table;
        let (pre, model) = fit(&config, &table, &params(family, overrides));
        let bundle = save_bundle(dir.path(), name, family.name(), pre, model);
        assert!(check_bundle(dir.path(), &bundle, &config) <= TOLERANCE);
    }
}
