//! Fit on train, apply anywhere; the preprocessor's JSON round trip is bit-identical.

use tabtune_features::io::{LoadOptions, load_table, write_matrix};
use tabtune_features::{KFold, Preprocessor, PreprocessorSpec, TargetPresence};
use tabtune_test::synthetic_obesity_csv;

use crate::{config, write_file};

fn fitted() -> (tempfile::TempDir, Preprocessor, tabtune_features::Table) {
    let (dir, path) = write_file(synthetic_obesity_csv(200, 11), "train.csv");
    let config = config();
    let table = load_table(&path, &config.schema, &LoadOptions::default())
        .expect("valid")
        .table;
    let p = PreprocessorSpec::from_config(&config)
        .fit(&table)
        .expect("fits");
    (dir, p, table)
}

#[test]
fn output_columns_follow_the_config() {
    let (_dir, p, table) = fitted();
    let m = p.transform(&table).expect("transforms");
    assert_eq!(m.values.nrows(), 200);
    assert_eq!(m.names.len(), m.values.ncols());
    // 8 numeric (Age as log1p_Age), 12 engineered, 1 bin, one-hot blocks with unknown slots.
    assert_eq!(
        &m.names[..3],
        ["Age", "Height", "Weight"].map(|n| if n == "Age" {
            "log1p_Age".to_owned()
        } else {
            n.to_owned()
        })
    );
    assert!(m.names.contains(&"BMI".to_owned()) && m.names.contains(&"HH".to_owned()));
    assert!(m.names.contains(&"Age_bin".to_owned()));
    assert!(m.names.contains(&"CALC=<unknown>".to_owned()));
    assert!(
        !m.names.contains(&"CALC=Always".to_owned()),
        "synthetic training data has no Always"
    );
    // Scaled columns have mean 0 and population std 1 on the training rows.
    let bmi = m.names.iter().position(|n| n == "BMI").expect("BMI");
    let col = m.values.column(bmi);
    let mean = col.iter().map(|&v| f64::from(v)).sum::<f64>() / 200.0;
    let var = col
        .iter()
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>()
        / 200.0;
    assert!(
        mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-4,
        "mean {mean}, var {var}"
    );
    // Flags stay 0/1, bins are 0..3.
    let hh = m.names.iter().position(|n| n == "HH").expect("HH");
    assert!(m.values.column(hh).iter().all(|&v| v == 0.0 || v == 1.0));
    let bin = m.names.iter().position(|n| n == "Age_bin").expect("bin");
    assert!(
        m.values
            .column(bin)
            .iter()
            .all(|&v| (0.0..=3.0).contains(&v))
    );
    // Rounded ordinals are whole numbers in range, then scaled: FCVC has 3 distinct values.
    let fcvc = m.names.iter().position(|n| n == "FCVC").expect("FCVC");
    let mut distinct: Vec<u32> = m.values.column(fcvc).iter().map(|v| v.to_bits()).collect();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), 3);
}

#[test]
fn a_reloaded_preprocessor_gives_bit_identical_output() {
    let (dir, p, table) = fitted();
    let path = dir.path().join("pre/preprocessor.json");
    p.save(&path).expect("saves");
    let reloaded = Preprocessor::load(&path).expect("loads");
    assert_eq!(reloaded, p);
    let a = p.transform(&table).expect("a");
    let b = reloaded.transform(&table).expect("b");
    let bits = |m: &tabtune_features::FeatureMatrix| {
        m.values.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    };
    assert_eq!(bits(&a), bits(&b));
}

#[test]
fn unseen_levels_go_to_the_unknown_slot_on_new_data() {
    let (_dir, p, _) = fitted();
    let text = synthetic_obesity_csv(3, 12).replacen(",Sometimes,Public", ",Always,Public", 1);
    let text = text.replace("Sometimes,", "Always,");
    let (_d, path) = write_file(&text, "test.csv");
    let options = LoadOptions {
        target: TargetPresence::Optional,
        ..LoadOptions::default()
    };
    let table = load_table(&path, &config().schema, &options)
        .expect("valid")
        .table;
    let m = p.transform(&table).expect("applies");
    let unknown = m
        .names
        .iter()
        .position(|n| n == "CALC=<unknown>")
        .expect("slot");
    let calc_always = table
        .categorical("CALC")
        .expect("CALC")
        .1
        .iter()
        .filter(|&&c| c == 3)
        .count();
    let ones = m
        .values
        .column(unknown)
        .iter()
        .filter(|&&v| v == 1.0)
        .count();
    assert_eq!(ones, calc_always);
}

#[test]
fn incompatible_or_edited_preprocessors_are_refused() {
    let (dir, p, _) = fitted();
    let path = dir.path().join("p.json");
    let text = p
        .to_json()
        .replacen("\"format_version\": 1", "\"format_version\": 99", 1);
    std::fs::write(&path, text).expect("write");
    let m = Preprocessor::load(&path).expect_err("version").to_string();
    assert!(
        m.contains("p.json") && m.contains("format version 99"),
        "{m}"
    );
    let text = p.to_json().replacen("\"log1p_Age\",", "\"log_Age\",", 1);
    std::fs::write(&path, text).expect("write");
    let m = Preprocessor::load(&path).expect_err("edited").to_string();
    assert!(m.contains("do not match"), "{m}");
    std::fs::write(&path, "{").expect("write");
    assert!(
        Preprocessor::load(&path)
            .expect_err("json")
            .to_string()
            .contains("not valid JSON")
    );
}

#[test]
fn engineered_tables_write_as_csv_and_parquet_atomically() {
    let (dir, p, table) = fitted();
    let m = p.transform(&table).expect("transforms");
    let csv = dir.path().join("out/t.csv");
    write_matrix(&csv, &m, "id", "NObeyesdad").expect("csv");
    let text = std::fs::read_to_string(&csv).expect("read");
    let header = text.lines().next().expect("header");
    assert!(
        header.starts_with("id,log1p_Age,") && header.ends_with(",NObeyesdad"),
        "{header}"
    );
    assert_eq!(text.lines().count(), 201);
    // Every value reads back to the same f32.
    let second: Vec<&str> = text.lines().nth(1).expect("row").split(',').collect();
    for (j, cell) in second[1..second.len() - 1].iter().enumerate() {
        assert_eq!(
            cell.parse::<f32>().expect("number").to_bits(),
            m.values[[0, j]].to_bits()
        );
    }
    let err = write_matrix(&dir.path().join("t.xlsx"), &m, "id", "y").expect_err("format");
    assert!(
        err.to_string()
            .contains("expected a file name ending in .csv or .parquet")
    );
}

#[test]
fn stratified_folds_from_config_cover_every_row_once() {
    let (_dir, _, table) = fitted();
    let c = config().cv;
    let k = KFold {
        folds: c.folds,
        repeats: 2,
        seed: c.seed,
        stratify: c.stratify,
    };
    let labels = table.target.as_ref().expect("labels");
    let folds = k.split(labels, 7).expect("splits");
    assert_eq!(folds.len(), 10);
    let mut count = vec![0; labels.len()];
    for f in folds.iter().filter(|f| f.repeat == 1) {
        for &i in &f.valid {
            count[i] += 1;
        }
    }
    assert!(count.iter().all(|&c| c == 1));
}

#[test]
fn a_feature_subset_keeps_those_columns_in_output_order_and_round_trips() {
    let (dir, full, table) = fitted();
    let all = full.transform(&table).expect("transforms");
    let spec = PreprocessorSpec::from_config(&config()).with_features(vec![
        "BMI".into(),
        "log1p_Age".into(),
        "CALC=<unknown>".into(),
    ]);
    let p = spec.fit(&table).expect("fits");
    assert_eq!(p.n_features(), 3);
    let m = p.transform(&table).expect("transforms");
    // Output order, not the order asked in.
    assert_eq!(m.names, ["log1p_Age", "BMI", "CALC=<unknown>"]);
    for (j, name) in m.names.iter().enumerate() {
        let i = all
            .names
            .iter()
            .position(|n| n == name)
            .expect("in the full output");
        assert_eq!(m.values.column(j), all.values.column(i), "{name}");
    }
    // The subset travels with the preprocessor.
    let path = dir.path().join("pre.json");
    p.save(&path).expect("saves");
    let back = Preprocessor::load(&path).expect("loads");
    assert_eq!(back, p);
    assert_eq!(back.transform(&table).expect("transforms").values, m.values);
    // Without a subset the JSON has no `keep` key (older files read the same).
    assert!(!full.to_json().contains("\"keep\""));
    let edited = p
        .to_json()
        .replace("\"log1p_Age\",\n    \"BMI\"", "\"BMI\",\n    \"log1p_Age\"");
    assert_ne!(edited, p.to_json(), "the edit applies");
    std::fs::write(&path, edited).expect("write");
    let e = Preprocessor::load(&path)
        .expect_err("reordered")
        .to_string();
    assert!(e.contains("output order"), "{e}");
}

#[test]
fn bad_feature_subsets_are_named() {
    let (_dir, _p, table) = fitted();
    let fit = |names: &[&str]| {
        PreprocessorSpec::from_config(&config())
            .with_features(names.iter().map(|n| (*n).to_owned()).collect())
            .fit(&table)
            .expect_err("refused")
            .to_string()
    };
    let e = fit(&["BMI", "Bmi"]);
    assert!(
        e.contains("`Bmi` is not a feature") && e.contains("BMI"),
        "{e}"
    );
    assert!(fit(&["BMI", "BMI"]).contains("listed twice"));
    assert!(fit(&[]).contains("empty"));
}
