//! Integration tests of the tree family: exact small cases, learning, determinism, the saved
//! format, and every bad input.

mod crafted;

use ndarray::{Array2, array};
use tabtune_features::rng::SplitMix64;
use tabtune_models::gbdt::{GbdtModel, GbdtParams, Growth, Labelled, Node};
use tabtune_models::metrics::Control;

mod batched;
#[cfg(feature = "wgpu")]
mod batched_gpu;
mod forest_batched;

const GROWTHS: [Growth; 3] = [Growth::LeafWise, Growth::DepthWise, Growth::Oblivious];

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("f{i}")).collect()
}

/// Three classes in a 4-feature space: the class depends on f0 and f1; f2, f3 are noise.
fn three_classes(n: usize, seed: u64) -> (Array2<f32>, Vec<u32>) {
    let mut rng = SplitMix64::new(seed);
    let mut u = move || (rng.next_u64() >> 11) as f32 / (1u64 << 53) as f32;
    let mut x = Array2::<f32>::zeros((n, 4));
    let mut y = Vec::with_capacity(n);
    for i in 0..n {
        let (a, b) = (u() * 4.0 - 2.0, u() * 4.0 - 2.0);
        x[[i, 0]] = a;
        x[[i, 1]] = b;
        x[[i, 2]] = u();
        x[[i, 3]] = if u() < 0.5 { 0.0 } else { 1.0 };
        y.push(if a + 0.5 * b > 0.8 {
            2
        } else {
            u32::from(a - b < -0.5)
        });
    }
    (x, y)
}

fn accuracy(model: &GbdtModel, x: &Array2<f32>, y: &[u32]) -> f64 {
    let pred = model.predict(x.view()).expect("predicts");
    pred.iter().zip(y).filter(|(a, b)| a == b).count() as f64 / y.len() as f64
}

#[test]
fn every_growth_policy_learns() {
    let (x, y) = three_classes(3000, 1);
    let (xv, yv) = three_classes(1000, 2);
    for growth in GROWTHS {
        let mut p = GbdtParams::new(growth);
        p.rounds = 100;
        p.learning_rate = 0.2;
        let m = p
            .fit(&names(4), 3, Labelled { x: x.view(), y: &y }, None)
            .expect("fits");
        let acc = accuracy(&m, &xv, &yv);
        assert!(acc > 0.95, "{growth:?}: held-out accuracy {acc}");
        for round in &m.trees {
            for tree in round {
                match growth {
                    Growth::LeafWise => assert!(tree.n_leaves() <= 31),
                    Growth::DepthWise | Growth::Oblivious => assert!(tree.depth() <= 6),
                }
            }
        }
        // The noise features matter far less than the signal ones.
        let gain = &m.importance_gain;
        assert!(
            gain[0] > 5.0 * gain[2] && gain[1] > 5.0 * gain[3],
            "{growth:?}: {gain:?}"
        );
    }
}

#[test]
fn a_depth_one_tree_is_the_best_stump() {
    // Binary labels; one round, learning rate 1, no regularisation: the tree is the stump with
    // the largest gain, which an exhaustive search over thresholds finds too.
    let x = array![
        [1.0f32, 5.0],
        [2.0, 3.0],
        [3.0, 4.0],
        [4.0, 1.0],
        [5.0, 2.0],
        [6.0, 6.0]
    ];
    let y = vec![0, 0, 1, 0, 1, 1];
    let mut p = GbdtParams::new(Growth::DepthWise);
    p.rounds = 1;
    p.max_depth = 1;
    p.learning_rate = 1.0;
    p.lambda = 0.0;
    p.min_data_in_leaf = 1;
    p.min_child_weight = 0.0;
    let m = p
        .fit(&names(2), 2, Labelled { x: x.view(), y: &y }, None)
        .expect("fits");
    let tree = &m.trees[0][0];
    let Node::Split {
        feature, threshold, ..
    } = tree.nodes[0]
    else {
        panic!("root must split")
    };
    // Exhaustive search: gradients at the prior (p = 0.5) are p − y, hessians p(1 − p).
    let (g, h): (Vec<f64>, Vec<f64>) = y.iter().map(|&c| (0.5 - f64::from(c), 0.25)).unzip();
    let score = |gs: f64, hs: f64| gs * gs / hs;
    let mut best = (f64::NEG_INFINITY, 0usize, 0.0f32);
    for f in 0..2 {
        let mut values: Vec<f32> = x.column(f).to_vec();
        values.sort_by(f32::total_cmp);
        for w in values.windows(2) {
            let t = f32::midpoint(w[0], w[1]);
            let (mut gl, mut hl, mut gr, mut hr) = (0.0, 0.0, 0.0, 0.0);
            for i in 0..6 {
                if x[[i, f]] <= t {
                    gl += g[i];
                    hl += h[i];
                } else {
                    gr += g[i];
                    hr += h[i];
                }
            }
            let gain = score(gl, hl) + score(gr, hr);
            if gain > best.0 + 1e-12 {
                best = (gain, f, t);
            }
        }
    }
    assert_eq!(feature as usize, best.1);
    assert!(
        (threshold - best.2).abs() < 1e-6,
        "{threshold} vs {}",
        best.2
    );
    // Leaf values are the Newton steps −G/H.
    let Node::Leaf { value } = tree.nodes[1] else {
        panic!("left leaf")
    };
    let left: Vec<usize> = (0..6).filter(|&i| x[[i, best.1]] <= best.2).collect();
    let (gl, hl) = left
        .iter()
        .fold((0.0, 0.0), |(a, b), &i| (a + g[i], b + h[i]));
    assert!((f64::from(value) + gl / hl).abs() < 1e-6);
}

#[test]
fn same_seed_same_model_including_sampling() {
    let (x, y) = three_classes(800, 3);
    for growth in GROWTHS {
        let mut p = GbdtParams::new(growth);
        p.rounds = 20;
        p.subsample = 0.7;
        p.colsample_bytree = 0.75;
        p.colsample_bynode = 0.5;
        p.threads = 2;
        let a = p
            .fit(&names(4), 3, Labelled { x: x.view(), y: &y }, None)
            .expect("a");
        let b = p
            .fit(&names(4), 3, Labelled { x: x.view(), y: &y }, None)
            .expect("b");
        assert_eq!(a, b, "{growth:?}");
        p.seed += 1;
        let c = p
            .fit(&names(4), 3, Labelled { x: x.view(), y: &y }, None)
            .expect("c");
        assert_ne!(
            a.trees, c.trees,
            "{growth:?}: another seed samples differently"
        );
    }
}

#[test]
fn save_and_load_give_identical_predictions() {
    let (x, y) = three_classes(600, 4);
    let dir = tempfile::tempdir().expect("tempdir");
    for growth in GROWTHS {
        let mut p = GbdtParams::new(growth);
        p.rounds = 15;
        let m = p
            .fit(&names(4), 3, Labelled { x: x.view(), y: &y }, None)
            .expect("fits");
        let path = dir.path().join(format!("{growth:?}.json"));
        m.save(&path).expect("saves");
        let back = GbdtModel::load(&path).expect("loads");
        assert_eq!(back, m);
        let (a, b) = (
            m.predict_proba(x.view()).expect("a"),
            back.predict_proba(x.view()).expect("b"),
        );
        assert!(
            a.iter()
                .zip(b.iter())
                .all(|(p, q)| p.to_bits() == q.to_bits())
        );
        let row: Vec<f32> = x.row(7).to_vec();
        let single = m.predict_proba_row(&row).expect("row");
        assert!(
            single
                .iter()
                .zip(a.row(7))
                .all(|(p, q)| (p - q).abs() < 1e-12)
        );
    }
    let path = dir.path().join("bad.json");
    std::fs::write(&path, r#"{"format": "tabtune-gbdt", "format_version": 9}"#).expect("write");
    let m = GbdtModel::load(&path).expect_err("version").to_string();
    assert!(
        m.contains("bad.json") && m.contains("format version 9"),
        "{m}"
    );
    std::fs::write(&path, r#"{"format": "other"}"#).expect("write");
    assert!(
        GbdtModel::load(&path)
            .expect_err("format")
            .to_string()
            .contains("not a tabtune-gbdt model")
    );
}

#[test]
fn binary_objective_and_early_stopping() {
    let (x, y3) = three_classes(2000, 5);
    let y: Vec<u32> = y3.iter().map(|&c| u32::from(c == 2)).collect();
    let (xv, yv3) = three_classes(500, 6);
    let yv: Vec<u32> = yv3.iter().map(|&c| u32::from(c == 2)).collect();
    let mut p = GbdtParams::new(Growth::LeafWise);
    p.rounds = 2000;
    p.learning_rate = 0.3;
    p.early_stopping_rounds = 10;
    let m = p
        .fit(
            &names(4),
            2,
            Labelled { x: x.view(), y: &y },
            Some(Labelled {
                x: xv.view(),
                y: &yv,
            }),
        )
        .expect("fits");
    assert_eq!(m.trees[0].len(), 1, "binary models have one output");
    assert!(m.trees.len() < 2000, "stopped early at {}", m.trees.len());
    let best = m.valid_loss.iter().copied().fold(f64::INFINITY, f64::min);
    assert!(
        (m.valid_loss[m.trees.len() - 1] - best).abs() < 1e-12,
        "kept the best round"
    );
    assert!(accuracy(&m, &xv, &yv) > 0.95);
}

#[test]
fn the_round_callback_can_stop_training() {
    let (x, y) = three_classes(300, 7);
    let p = GbdtParams::new(Growth::DepthWise).check(3).expect("valid");
    let mut seen = Vec::new();
    let m = GbdtModel::fit(
        &p,
        &names(4),
        3,
        Labelled { x: x.view(), y: &y },
        None,
        &mut |round, _| {
            seen.push(round);
            if round == 4 {
                Control::Stop
            } else {
                Control::Continue
            }
        },
    )
    .expect("fits");
    assert_eq!(seen, vec![0, 1, 2, 3, 4]);
    assert_eq!(m.trees.len(), 5);
}

#[test]
fn bad_inputs_get_clear_errors() {
    let (x, y) = three_classes(100, 8);
    let p = GbdtParams::new(Growth::LeafWise);
    let fit = |x: &Array2<f32>, y: &[u32], n_classes: usize| {
        p.fit(
            &names(x.ncols()),
            n_classes,
            Labelled { x: x.view(), y },
            None,
        )
        .expect_err("bad input")
        .to_string()
    };
    let mut nan = x.clone();
    nan[[3, 1]] = f32::NAN;
    assert!(fit(&nan, &y, 3).contains("NaN at row 3, feature 1"));
    let mut inf = x.clone();
    inf[[5, 2]] = f32::INFINITY;
    assert!(fit(&inf, &y, 3).contains("inf at row 5, feature 2"));
    let mut bad_label = y.clone();
    bad_label[9] = 7;
    assert!(fit(&x, &bad_label, 3).contains("label 7 at row 9 is not a class"));
    let only_two: Vec<u32> = y.iter().map(|&c| c.min(1)).collect();
    assert!(fit(&x, &only_two, 3).contains("class 2 has no training rows"));
    let empty = Array2::<f32>::zeros((0, 4));
    assert!(fit(&empty, &[], 3).contains("zero rows"));
    let mut bad = GbdtParams::new(Growth::LeafWise);
    bad.learning_rate = -0.1;
    let m = bad
        .fit(&names(4), 3, Labelled { x: x.view(), y: &y }, None)
        .expect_err("lr")
        .to_string();
    assert!(m.contains("`learning_rate` = -0.1"), "{m}");
    bad = GbdtParams::new(Growth::LeafWise);
    bad.num_leaves = 1;
    assert!(
        bad.fit(&names(4), 3, Labelled { x: x.view(), y: &y }, None)
            .expect_err("leaves")
            .to_string()
            .contains("`num_leaves`")
    );
    // NaN is a missing value when asked for, with a learned direction.
    let mut missing = x.clone();
    for i in (0..100).step_by(4) {
        missing[[i, 0]] = f32::NAN;
    }
    let mut allow = GbdtParams::new(Growth::LeafWise);
    allow.allow_missing = true;
    allow.rounds = 10;
    let m = allow
        .fit(
            &names(4),
            3,
            Labelled {
                x: missing.view(),
                y: &y,
            },
            None,
        )
        .expect("missing allowed");
    assert!(m.predict(missing.view()).is_ok());
    let model_err = m
        .predict(Array2::<f32>::zeros((2, 3)).view())
        .expect_err("shape")
        .to_string();
    assert!(model_err.contains("expects 4 features, the data has 3"));
}

mod forest {
    use ndarray::array;
    use tabtune_models::forest::{ClassNode, Criterion, ForestKind, ForestModel, ForestParams};
    use tabtune_models::gbdt::Labelled;

    use super::{accuracy_of, names, three_classes};

    #[test]
    fn a_decision_tree_finds_the_split_by_hand() {
        // Classes switch between x = 3 and x = 4: the split is at the midpoint 3.5, with a Gini
        // decrease of n·gini = 6 · 0.5 = 3 and two pure leaves.
        let x = array![
            [1.0f32, 9.0],
            [2.0, 1.0],
            [3.0, 8.0],
            [4.0, 2.0],
            [5.0, 7.0],
            [6.0, 3.0]
        ];
        let y = vec![0, 0, 0, 1, 1, 1];
        for criterion in [Criterion::Gini, Criterion::Entropy] {
            let mut p = ForestParams::new(ForestKind::DecisionTree);
            p.criterion = criterion;
            let m = ForestModel::fit(
                &p.check().expect("valid"),
                &names(2),
                2,
                Labelled { x: x.view(), y: &y },
            )
            .expect("fits");
            let tree = &m.trees[0];
            let ClassNode::Split {
                feature,
                threshold,
                decrease,
                ..
            } = tree.nodes[0]
            else {
                panic!("root splits")
            };
            assert_eq!((feature, threshold), (0, 3.5));
            let expected = if criterion == Criterion::Gini {
                3.0
            } else {
                6.0 * 2f32.ln()
            };
            assert!(
                (decrease - expected).abs() < 1e-5,
                "{criterion:?}: {decrease}"
            );
            assert_eq!(tree.n_leaves(), 2);
            assert_eq!(m.predict(x.view()).expect("predicts"), y);
        }
    }

    #[test]
    fn a_random_forest_learns_reports_oob_and_round_trips() {
        let (x, y) = three_classes(1500, 11);
        let (xv, yv) = three_classes(500, 12);
        let mut p = ForestParams::new(ForestKind::RandomForest);
        p.n_trees = 60;
        p.threads = 2;
        let valid = p.check().expect("valid");
        let m =
            ForestModel::fit(&valid, &names(4), 3, Labelled { x: x.view(), y: &y }).expect("fits");
        let oob = m.oob_accuracy.expect("bootstrapped");
        let held_out = accuracy_of(&m.predict(xv.view()).expect("predicts"), &yv);
        assert!(
            oob > 0.9 && held_out > 0.9,
            "oob {oob}, held out {held_out}"
        );
        assert!(
            (oob - held_out).abs() < 0.05,
            "the OOB score estimates held-out accuracy"
        );
        let again =
            ForestModel::fit(&valid, &names(4), 3, Labelled { x: x.view(), y: &y }).expect("fits");
        assert_eq!(again, m, "same seed, same forest");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("rf.json");
        m.save(&path).expect("saves");
        let back = ForestModel::load(&path).expect("loads");
        let (a, b) = (
            m.predict_proba(xv.view()).expect("a"),
            back.predict_proba(xv.view()).expect("b"),
        );
        assert!(
            a.iter()
                .zip(b.iter())
                .all(|(p, q)| p.to_bits() == q.to_bits())
        );
        assert!(
            m.importance_gain[0] > m.importance_gain[2],
            "signal beats noise"
        );
    }

    #[test]
    fn forest_parameters_are_checked() {
        let mut p = ForestParams::new(ForestKind::DecisionTree);
        p.n_trees = 3;
        assert!(
            p.check()
                .expect_err("one tree")
                .to_string()
                .contains("`n_trees`")
        );
        let mut p = ForestParams::new(ForestKind::RandomForest);
        assert!(
            p.set("criterion", "mse")
                .expect_err("criterion")
                .to_string()
                .contains("gini or entropy")
        );
        p.min_samples_split = 1;
        assert!(
            p.check()
                .expect_err("split")
                .to_string()
                .contains("`min_samples_split`")
        );
        let x = ndarray::Array2::<f32>::zeros((0, 2));
        let err = ForestModel::fit(
            &ForestParams::new(ForestKind::DecisionTree)
                .check()
                .expect("ok"),
            &names(2),
            2,
            Labelled {
                x: x.view(),
                y: &[],
            },
        )
        .expect_err("empty")
        .to_string();
        assert!(err.contains("zero rows"), "{err}");
    }
}

fn accuracy_of(pred: &[u32], y: &[u32]) -> f64 {
    pred.iter().zip(y).filter(|(a, b)| a == b).count() as f64 / y.len() as f64
}

mod categorical {
    use ndarray::Array2;
    use tabtune_models::gbdt::{GbdtModel, GbdtParams, Growth, Labelled, Node};

    use super::names;

    /// Column 0 holds level codes 0..8 (−1 = unknown); the class is 1 exactly for codes
    /// {1, 4, 6}, which no single threshold on the code separates. Column 1 is noise.
    fn data(n: usize) -> (Array2<f32>, Vec<u32>) {
        let mut x = Array2::<f32>::zeros((n, 2));
        let mut y = Vec::with_capacity(n);
        for i in 0..n {
            let code = (i * 7 % 9) as f32;
            x[[i, 0]] = code;
            x[[i, 1]] = (i % 13) as f32;
            y.push(u32::from([1.0, 4.0, 6.0].contains(&code)));
        }
        (x, y)
    }

    fn params(growth: Growth) -> GbdtParams {
        let mut p = GbdtParams::new(growth);
        p.rounds = 30;
        p.learning_rate = 0.3;
        p.min_data_in_leaf = 5;
        p.categorical = vec![0];
        p
    }

    #[test]
    fn one_category_split_separates_an_interleaved_set() {
        let (x, y) = data(900);
        let mut p = params(Growth::DepthWise);
        p.max_depth = 1;
        let m = p
            .fit(&names(2), 2, Labelled { x: x.view(), y: &y }, None)
            .expect("fits");
        let Node::Category {
            feature,
            left_values,
            ..
        } = &m.trees[0][0].nodes[0]
        else {
            panic!(
                "the root splits on the category set: {:?}",
                m.trees[0][0].nodes[0]
            );
        };
        assert_eq!(*feature, 0);
        let set: Vec<f32> = left_values.clone();
        assert!(
            set == vec![1.0, 4.0, 6.0] || set == vec![0.0, 2.0, 3.0, 5.0, 7.0, 8.0],
            "{set:?}"
        );
        let pred = m.predict(x.view()).expect("predicts");
        assert_eq!(pred, y, "depth-1 trees on the category set are exact");
        // Unseen and unknown codes follow the learned directions without error.
        let odd = ndarray::array![[42.0f32, 1.0], [-1.0, 2.0]];
        assert_eq!(m.predict(odd.view()).expect("predicts").len(), 2);
    }

    #[test]
    fn oblivious_trees_use_ordered_target_statistics() {
        let (x, y) = data(900);
        let m = params(Growth::Oblivious)
            .fit(&names(2), 2, Labelled { x: x.view(), y: &y }, None)
            .expect("fits");
        assert_eq!(m.target_stats.len(), 1);
        assert_eq!(m.target_stats[0].levels.len(), 9);
        let acc = m
            .predict(x.view())
            .expect("predicts")
            .iter()
            .zip(&y)
            .filter(|(a, b)| a == b)
            .count();
        assert_eq!(acc, y.len(), "the statistic separates the classes");
        assert!(
            m.importance_gain[0] > 0.0 && m.importance_gain.len() == 2,
            "importance folds back"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.json");
        m.save(&path).expect("saves");
        let back = GbdtModel::load(&path).expect("loads");
        assert_eq!(
            back.predict_proba(x.view()).expect("a"),
            m.predict_proba(x.view()).expect("b")
        );
    }

    #[test]
    fn categorical_indices_are_checked() {
        let (x, y) = data(60);
        let mut p = params(Growth::LeafWise);
        p.categorical = vec![5];
        let m = p
            .fit(&names(2), 2, Labelled { x: x.view(), y: &y }, None)
            .expect_err("index")
            .to_string();
        assert!(m.contains("`categorical` = 5"), "{m}");
    }
}

#[test]
fn class_weights_shift_predictions_towards_the_heavier_class() {
    let (x, y) = three_classes(1200, 21);
    let share_of_1 = |weights: Vec<f64>| {
        let mut p = GbdtParams::new(Growth::LeafWise);
        p.rounds = 20;
        p.class_weights = weights;
        let m = p
            .fit(&names(4), 3, Labelled { x: x.view(), y: &y }, None)
            .expect("fits");
        let proba = m.predict_proba(x.view()).expect("predicts");
        proba.column(1).sum() / x.nrows() as f64
    };
    let plain = share_of_1(vec![1.0, 1.0, 1.0]);
    let heavy = share_of_1(vec![1.0, 10.0, 1.0]);
    assert!(
        heavy > plain + 0.02,
        "weighting class 1 raises its mean probability: {plain} -> {heavy}"
    );
}

mod bundle {
    use tabtune_features::io::{LoadOptions, load_table};
    use tabtune_features::{Config, PreprocessorSpec};
    use tabtune_models::AnyModel;
    use tabtune_models::bundle::{Bundle, BundleMeta, TrainingData};
    use tabtune_models::gbdt::{GbdtParams, Growth, Labelled};

    fn bundle(dir: &std::path::Path) -> (Bundle, ndarray::Array2<f32>) {
        let path = dir.join("train.csv");
        std::fs::write(&path, tabtune_test::synthetic_obesity_csv(140, 5)).expect("write");
        let config = Config::load(&tabtune_test::engineered_config(dir)).expect("config");
        let table = load_table(&path, &config.schema, &LoadOptions::default())
            .expect("valid")
            .table;
        let pre = PreprocessorSpec::from_config(&config)
            .fit(&table)
            .expect("fits");
        let m = pre.transform(&table).expect("transforms");
        let mut p = GbdtParams::new(Growth::LeafWise);
        p.rounds = 5;
        let y = m.target.clone().expect("labels");
        let model = p
            .fit(
                &m.names,
                7,
                Labelled {
                    x: m.values.view(),
                    y: &y,
                },
                None,
            )
            .expect("fits");
        let data = TrainingData {
            file: "train.csv".into(),
            sha256: "0".repeat(64),
            rows: 140,
        };
        let mut meta = BundleMeta::new(
            "toy",
            "gbdt-leafwise",
            &pre,
            serde_json::json!({"rounds": 5}),
            data,
        );
        meta.metrics.insert("cv_accuracy_mean".into(), 0.5);
        (
            Bundle {
                meta,
                model: AnyModel::Gbdt(model),
                preprocessor: pre,
            },
            m.values,
        )
    }

    #[test]
    fn bundles_round_trip_and_refuse_tampering() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (b, x) = bundle(dir.path());
        let out = dir.path().join("checkpoints/toy");
        b.save(&out).expect("saves");
        let back = Bundle::load(&out).expect("loads");
        assert_eq!(back.model, b.model);
        assert_eq!(back.preprocessor, b.preprocessor);
        assert_eq!(back.meta.files.len(), 2);
        assert_eq!(back.meta.classes.len(), 7);
        assert!(!back.meta.git_commit.is_empty());
        let (p, q) = (
            b.model.predict_proba(x.view()).expect("a"),
            back.model.predict_proba(x.view()).expect("b"),
        );
        assert_eq!(p, q);
        // Saving again replaces the bundle whole, leaving nothing else behind.
        b.save(&out).expect("saves again");
        let siblings: Vec<_> = std::fs::read_dir(out.parent().expect("parent"))
            .expect("list")
            .collect();
        assert_eq!(siblings.len(), 1);

        let model = out.join("model.json");
        let mut bytes = std::fs::read(&model).expect("read");
        let at = bytes.iter().position(|&c| c == b'5').expect("a digit");
        bytes[at] = b'6';
        std::fs::write(&model, bytes).expect("tamper");
        let m = Bundle::load(&out).expect_err("tampered").to_string();
        assert!(
            m.contains("model.json") && m.contains("does not match") && m.contains("refusing"),
            "{m}"
        );

        b.save(&out).expect("saves");
        let meta = out.join("bundle.json");
        let text = std::fs::read_to_string(&meta).expect("read");
        std::fs::write(
            &meta,
            text.replacen("\"format_version\": 1", "\"format_version\": 2", 1),
        )
        .expect("edit");
        let m = Bundle::load(&out).expect_err("version").to_string();
        assert!(
            m.contains("bundle.json") && m.contains("format version 2"),
            "{m}"
        );
        let m = Bundle::load(&dir.path().join("nowhere"))
            .expect_err("missing")
            .to_string();
        assert!(m.contains("bundle.json: cannot read"), "{m}");
    }

    /// A second GBDT on the same features (other growth, other rounds).
    fn second(b: &Bundle, x: &ndarray::Array2<f32>) -> AnyModel {
        let y: Vec<u32> = b
            .model
            .predict_proba(x.view())
            .expect("predicts")
            .rows()
            .into_iter()
            .map(|r| {
                r.iter()
                    .enumerate()
                    .max_by(|a, b| a.1.total_cmp(b.1))
                    .map_or(0, |(i, _)| i as u32)
            })
            .collect();
        let mut p = GbdtParams::new(Growth::Oblivious);
        p.rounds = 3;
        AnyModel::Gbdt(
            p.fit(
                b.model.feature_names(),
                7,
                Labelled { x: x.view(), y: &y },
                None,
            )
            .expect("fits"),
        )
    }

    #[test]
    fn ensemble_bundles_blend_their_members_round_trip_and_refuse_bad_members() {
        use tabtune_models::ensemble::{EnsembleMember, EnsembleModel};
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut b, x) = bundle(dir.path());
        let a = b.model.clone();
        let c = second(&b, &x);
        let class_weights = vec![1.0, 2.0, 0.5, 1.0, 1.0, 1.5, 1.0];
        let member = |model: &AnyModel, weight: f64, label: &str| EnsembleMember {
            model: model.clone(),
            weight,
            label: label.into(),
        };
        let ens = EnsembleModel::new(
            vec![member(&a, 0.7, "a"), member(&c, 0.3, "c")],
            class_weights.clone(),
        )
        .expect("valid");
        // The blend by hand: 0.7 pa + 0.3 pc, times the class weights, renormalised.
        let (pa, pc) = (
            a.predict_proba(x.view()).expect("a"),
            c.predict_proba(x.view()).expect("c"),
        );
        let got = ens.predict_proba(x.view()).expect("blend");
        for r in 0..x.nrows() {
            let raw: Vec<f64> = (0..7)
                .map(|k| (0.7 * pa[[r, k]] + 0.3 * pc[[r, k]]) * class_weights[k])
                .collect();
            let s: f64 = raw.iter().sum();
            for k in 0..7 {
                assert!(
                    (got[[r, k]] - raw[k] / s).abs() < 1e-12,
                    "row {r} class {k}"
                );
            }
        }
        // As a bundle: every member file is checksummed, and it loads back identical.
        b.model = AnyModel::Ensemble(ens);
        b.meta.family = "ensemble".into();
        let out = dir.path().join("checkpoints/ens");
        b.save(&out).expect("saves");
        let back = Bundle::load(&out).expect("loads");
        assert_eq!(back.model, b.model);
        assert!(back.meta.files.contains_key("member-0.json"));
        assert!(back.meta.files.contains_key("member-1.json"));
        assert_eq!(back.model.predict_proba(x.view()).expect("back"), got);
        // A tampered member is refused by name.
        let member_file = out.join("member-1.json");
        let mut bytes = std::fs::read(&member_file).expect("read");
        let at = bytes.iter().position(|&ch| ch == b'3').expect("a digit");
        bytes[at] = b'4';
        std::fs::write(&member_file, bytes).expect("tamper");
        let m = Bundle::load(&out).expect_err("tampered").to_string();
        assert!(m.contains("member-1.json"), "{m}");

        // Bad ensembles name the problem.
        let err = |members: Vec<EnsembleMember>, w: Vec<f64>| {
            EnsembleModel::new(members, w)
                .expect_err("must be refused")
                .to_string()
        };
        assert!(err(vec![], vec![1.0; 7]).contains("at least one member"));
        assert!(err(vec![member(&a, 0.5, "a")], vec![1.0; 7]).contains("add up to 0.5"));
        assert!(
            err(
                vec![member(&a, 1.5, "a"), member(&c, -0.5, "c")],
                vec![1.0; 7]
            )
            .contains("weight -0.5")
        );
        let mut w = vec![1.0; 7];
        w[3] = 0.0;
        assert!(err(vec![member(&a, 1.0, "a")], w).contains("class weight 3"));
        let nested = AnyModel::Ensemble(
            EnsembleModel::new(vec![member(&a, 1.0, "a")], vec![1.0; 7]).expect("valid"),
        );
        assert!(err(vec![member(&nested, 1.0, "n")], vec![1.0; 7]).contains("itself an ensemble"));
    }

    #[test]
    fn fold_ensembles_read_raw_rows_through_each_members_preprocessing_and_stack() {
        use tabtune_models::ensemble::{EnsembleMember, EnsembleModel, STACK_CLIP, Stack};
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("train.csv");
        std::fs::write(&path, tabtune_test::synthetic_obesity_csv(200, 7)).expect("write");
        let config = Config::load(&tabtune_test::engineered_config(dir.path())).expect("config");
        let table = load_table(&path, &config.schema, &LoadOptions::default())
            .expect("valid")
            .table;
        let spec = PreprocessorSpec::from_config(&config);
        // Two "folds": each model and preprocessor fitted on its own half of the rows.
        let halves = [(0..100).collect::<Vec<_>>(), (100..200).collect::<Vec<_>>()];
        let mut members = Vec::new();
        let mut pres = Vec::new();
        for (i, rows) in halves.iter().enumerate() {
            let part = table.select_rows(rows);
            let pre = spec.fit(&part).expect("fits");
            let m = pre.transform(&part).expect("transforms");
            let mut p = GbdtParams::new(Growth::LeafWise);
            p.rounds = 4 + i;
            let y = m.target.clone().expect("labels");
            let model = p
                .fit(
                    &m.names,
                    7,
                    Labelled {
                        x: m.values.view(),
                        y: &y,
                    },
                    None,
                )
                .expect("fits");
            members.push(EnsembleMember {
                model: AnyModel::Gbdt(model),
                weight: 0.5,
                label: format!("trial#1 fold {i}"),
            });
            pres.push(Some(pre));
        }
        let shared = spec.fit(&table).expect("fits");
        let by_hand: Vec<ndarray::Array2<f64>> = members
            .iter()
            .zip(&pres)
            .map(|(m, p)| {
                let x = p
                    .as_ref()
                    .expect("own")
                    .transform(&table)
                    .expect("transforms");
                m.model.predict_proba(x.values.view()).expect("predicts")
            })
            .collect();
        let folds = EnsembleModel::new(members.clone(), vec![1.0; 7])
            .expect("valid")
            .with_folds(pres.clone(), vec![0, 0])
            .expect("one trial, two folds");
        let got = folds.predict_table(&table, &shared).expect("predicts");
        for r in 0..table.n_rows() {
            for k in 0..7 {
                let want = 0.5 * by_hand[0][[r, k]] + 0.5 * by_hand[1][[r, k]];
                assert!((got[[r, k]] - want).abs() < 1e-12, "row {r} class {k}");
            }
        }
        // Members may read different features when each has its own preprocessing (a trial
        // whose folds saw a level the others did not); without it they may not.
        let mut narrow = pres[1].clone().expect("own");
        narrow.keep = Some(narrow.feature_names()[..10].to_vec());
        let part = table.select_rows(&halves[1]);
        let m = narrow.transform(&part).expect("transforms");
        let y = m.target.clone().expect("labels");
        let model = GbdtParams::new(Growth::LeafWise)
            .fit(
                &m.names,
                7,
                Labelled {
                    x: m.values.view(),
                    y: &y,
                },
                None,
            )
            .expect("fits");
        let mixed = vec![
            members[0].clone(),
            EnsembleMember {
                model: AnyModel::Gbdt(model),
                weight: 0.5,
                label: "trial#2 fold 0".into(),
            },
        ];
        let e = EnsembleModel::new(mixed.clone(), vec![1.0; 7]).expect_err("other features");
        assert!(e.to_string().contains("reads other features"), "{e}");
        let ok = EnsembleModel::from_parts(
            mixed,
            vec![1.0; 7],
            vec![pres[0].clone(), Some(narrow)],
            vec![0, 1],
        )
        .expect("each member reads its own features");
        assert_eq!(
            ok.predict_table(&table, &shared).expect("predicts").nrows(),
            table.n_rows()
        );

        // Without the raw rows it cannot predict.
        let x = shared.transform(&table).expect("transforms");
        let e = folds
            .predict_proba(x.values.view())
            .expect_err("needs raw rows");
        assert!(e.to_string().contains("raw rows"), "{e}");

        // Stacked: two groups (one fold each), logits = [log p0 | log p1] W + b.
        let mut weights = vec![0.0; 2 * 7 * 7];
        for c in 0..7 {
            weights[c * 7 + c] = 0.8; // group 0, class c -> logit c
            weights[(7 + c) * 7 + c] = 0.4; // group 1
        }
        let bias: Vec<f64> = (0..7).map(|c| 0.01 * f64::from(c)).collect();
        let stacked = EnsembleModel::new(members.clone(), vec![1.0; 7])
            .expect("valid")
            .with_folds(pres.clone(), vec![0, 1])
            .expect("two trials")
            .with_stack(Stack {
                weights: weights.clone(),
                bias: bias.clone(),
            })
            .expect("a valid stacker");
        let got = stacked.predict_table(&table, &shared).expect("predicts");
        for r in 0..table.n_rows() {
            let logits: Vec<f64> = (0..7)
                .map(|c| {
                    bias[c]
                        + 0.8 * by_hand[0][[r, c]].max(STACK_CLIP).ln()
                        + 0.4 * by_hand[1][[r, c]].max(STACK_CLIP).ln()
                })
                .collect();
            let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
            let s: f64 = e.iter().sum();
            for k in 0..7 {
                assert!((got[[r, k]] - e[k] / s).abs() < 1e-12, "row {r} class {k}");
            }
        }
        // As a bundle: member preprocessors are files of their own, checksummed; the bundle
        // predicts raw rows the same way after a round trip.
        let (mut b, _) = bundle(dir.path());
        b.preprocessor = shared.clone();
        b.model = AnyModel::Ensemble(stacked);
        b.meta.family = "ensemble".into();
        let out = dir.path().join("checkpoints/folds");
        b.save(&out).expect("saves");
        let back = Bundle::load(&out).expect("loads");
        assert!(back.meta.files.contains_key("member-1.preprocessor.json"));
        assert_eq!(back.predict_proba(&table).expect("predicts"), got);

        // Bad shapes are refused, naming the problem.
        let e = EnsembleModel::new(members.clone(), vec![1.0; 7])
            .expect("valid")
            .with_folds(pres.clone(), vec![1, 1])
            .expect_err("groups from 0");
        assert!(e.to_string().contains("group 1"), "{e}");
        let e = EnsembleModel::new(members, vec![1.0; 7])
            .expect("valid")
            .with_stack(Stack {
                weights: vec![0.0; 3],
                bias: vec![0.0; 7],
            })
            .expect_err("wrong size");
        assert!(e.to_string().contains("3 weights"), "{e}");
    }
}
