//! Inputs that tabtune treats specially: categorical levels training never saw (the one-hot
//! unknown slot, ordinal −1 and the learned missing direction of category splits) and missing
//! numeric values (NaN through the preprocessing, then the learned missing direction).

use tabtune_features::config::Encoding;
use tabtune_features::{ColumnValues, PreprocessorSpec, Table};
use tabtune_models::AnyModel;
use tabtune_models::gbdt::{GbdtModel, GbdtParams, Growth, Labelled, Node};
use tabtune_train::Family;

use crate::{
    TOLERANCE, compare_table, config, export, fit, ort, params, save_bundle, set_level, synthetic,
    write_csv,
};

/// Every row of `table` with CALC = `Always`, a schema level the synthetic training rows never
/// hold.
fn all_always(dir: &std::path::Path, config: &tabtune_features::Config) -> Table {
    let mut table = synthetic(dir, "unseen", 80, 21, config);
    set_level(&mut table, "CALC", "Always", 0..80);
    table
}

#[test]
fn unseen_levels_take_the_one_hot_unknown_slot_as_in_tabtune() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(Encoding::OneHot);
    let train = synthetic(dir.path(), "train", 700, 5, &config);
    let (pre, model) = fit(
        &config,
        &train,
        &params(
            Family::GbdtLeafwise,
            &[("rounds", "40"), ("num_leaves", "15")],
        ),
    );
    assert!(
        pre.feature_names().iter().any(|n| n == "CALC=<unknown>")
            && !pre.feature_names().iter().any(|n| n == "CALC=Always"),
        "training never saw CALC = Always"
    );
    let table = all_always(dir.path(), &config);
    // In tabtune every row has its CALC in the unknown slot.
    let m = pre.transform(&table).expect("transforms");
    let slot = m
        .names
        .iter()
        .position(|n| n == "CALC=<unknown>")
        .expect("slot");
    assert!(m.values.column(slot).iter().all(|v| *v == 1.0));
    let bundle = save_bundle(dir.path(), "one-hot", "gbdt-leafwise", pre, model);
    let onnx = export(&bundle, dir.path());
    let csv = dir.path().join("always.csv");
    write_csv(&table, &csv);
    assert!(compare_table(&bundle, &onnx, &table, &csv) <= TOLERANCE);
    // A string outside the schema (tabtune's loader refuses it) takes the same slot in ONNX.
    let text = std::fs::read_to_string(&csv).expect("read");
    let other = dir.path().join("other.csv");
    std::fs::write(&other, text.replace(",Always,", ",not a level,")).expect("write");
    assert_eq!(
        ort(&onnx, &other, None).rows,
        ort(&onnx, &csv, None).rows,
        "every unknown string is the unknown slot"
    );
}

#[test]
fn unseen_levels_take_the_ordinal_code_minus_one_and_the_missing_direction() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(Encoding::Ordinal);
    let mut train = synthetic(dir.path(), "train", 700, 5, &config);
    // CALC tells the class apart on most rows (no, Sometimes, Frequently by class), so the
    // trees split it by category sets.
    let classes = train.target.clone().expect("labels");
    for level in 0..3 {
        let rows = (0..700).filter(|&r| r % 4 != 0 && classes[r] % 3 == level as u32);
        set_level(
            &mut train,
            "CALC",
            ["no", "Sometimes", "Frequently"][level],
            rows,
        );
    }
    let (pre, model) = fit(
        &config,
        &train,
        &params(
            Family::GbdtDepthwise,
            &[
                ("rounds", "40"),
                ("max_depth", "5"),
                ("min_data_in_leaf", "5"),
            ],
        ),
    );
    let table = all_always(dir.path(), &config);
    let m = pre.transform(&table).expect("transforms");
    let calc = m.names.iter().position(|n| n == "CALC").expect("CALC");
    assert!(m.values.column(calc).iter().all(|v| *v == -1.0));
    let AnyModel::Gbdt(g) = &model else {
        panic!("a boosted model")
    };
    assert!(
        g.trees
            .iter()
            .flatten()
            .flat_map(|t| &t.nodes)
            .any(|n| matches!(
                n,
                Node::Category { feature, .. } if *feature as usize == calc
            )),
        "some tree splits CALC by category sets, so the unknown code meets a set split"
    );
    let bundle = save_bundle(dir.path(), "ordinal", "gbdt-depthwise", pre, model);
    let onnx = export(&bundle, dir.path());
    let csv = dir.path().join("always.csv");
    write_csv(&table, &csv);
    assert!(compare_table(&bundle, &onnx, &table, &csv) <= TOLERANCE);
}

/// Sets numeric column `column` to NaN on `rows`.
fn set_missing(table: &mut Table, column: &str, rows: impl Iterator<Item = usize>) {
    let col = table
        .columns
        .iter_mut()
        .find(|c| c.name == column)
        .expect("a schema column");
    let ColumnValues::Numeric(values) = &mut col.values else {
        panic!("{column} is numeric");
    };
    for r in rows {
        values[r] = f64::NAN;
    }
}

/// Missing Weight, FAF and Age on some rows of `table` (each alone and together).
fn with_missing(mut table: Table) -> Table {
    let n = table.n_rows();
    set_missing(&mut table, "Weight", (0..n).filter(|r| r % 5 == 0));
    set_missing(
        &mut table,
        "FAF",
        (0..n).filter(|r| r % 7 == 1 || r % 35 == 0),
    );
    set_missing(
        &mut table,
        "Age",
        (0..n).filter(|r| r % 9 == 2 || r % 45 == 0),
    );
    table
}

#[test]
fn missing_numeric_values_follow_the_learned_direction() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(Encoding::Ordinal);
    let clean = synthetic(dir.path(), "train", 900, 5, &config);
    // The preprocessor is fitted on complete rows; the model learns from rows with gaps.
    let pre = PreprocessorSpec::from_config(&config)
        .fit(&clean)
        .expect("fits");
    let m = pre
        .transform(&with_missing(clean.clone()))
        .expect("transforms");
    let y = m.target.clone().expect("labels");
    let mut p = GbdtParams::new(Growth::LeafWise);
    for (k, v) in [
        ("rounds", "40"),
        ("num_leaves", "15"),
        ("min_data_in_leaf", "5"),
    ] {
        p.set(k, v).expect("known");
    }
    p.allow_missing = true;
    p.categorical.clone_from(&m.categorical);
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
    // Missing values reach splits that send them left and splits that send them right.
    let mut test = with_missing(synthetic(dir.path(), "test", 300, 17, &config));
    set_level(&mut test, "CALC", "Always", (0..300).step_by(13));
    let tm = pre.transform(&test).expect("transforms");
    let nan_rows: Vec<usize> = (0..test.n_rows())
        .filter(|&r| tm.values.row(r).iter().any(|v| v.is_nan()))
        .collect();
    assert!(
        nan_rows.len() > 80,
        "{} rows with missing features",
        nan_rows.len()
    );
    let flipped = flip_missing(&model);
    let before = model.predict_proba(tm.values.view()).expect("predicts");
    let after = flipped.predict_proba(tm.values.view()).expect("predicts");
    let moved = nan_rows
        .iter()
        .filter(|&&r| (0..7).any(|c| (before[[r, c]] - after[[r, c]]).abs() > 1e-3))
        .count();
    assert!(
        moved * 2 > nan_rows.len(),
        "the learned directions decide most rows with missing values ({moved} of {})",
        nan_rows.len()
    );
    let bundle = save_bundle(
        dir.path(),
        "missing",
        "gbdt-leafwise",
        pre.clone(),
        AnyModel::Gbdt(model),
    );
    let onnx = export(&bundle, dir.path());
    let csv = dir.path().join("missing.csv");
    write_csv(&test, &csv);
    assert!(std::fs::read_to_string(&csv).expect("csv").contains("NaN"));
    assert!(compare_table(&bundle, &onnx, &test, &csv) <= TOLERANCE);

    // A random forest (trained on complete rows) sends missing values its own way too.
    let (fpre, forest) = fit(
        &config,
        &clean,
        &params(
            Family::RandomForest,
            &[("n_trees", "20"), ("max_depth", "8")],
        ),
    );
    assert_eq!(fpre, pre);
    let bundle = save_bundle(dir.path(), "missing-forest", "random-forest", fpre, forest);
    let onnx = export(&bundle, dir.path());
    assert!(compare_table(&bundle, &onnx, &test, &csv) <= TOLERANCE);
}

/// `model` with every split's missing direction reversed.
fn flip_missing(model: &GbdtModel) -> GbdtModel {
    let mut m = model.clone();
    for tree in m.trees.iter_mut().flatten() {
        for node in &mut tree.nodes {
            match node {
                Node::Split { missing_left, .. } | Node::Category { missing_left, .. } => {
                    *missing_left = !*missing_left;
                }
                Node::Leaf { .. } => {}
            }
        }
    }
    m
}
