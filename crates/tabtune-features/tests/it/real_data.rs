//! The three real files (TABTUNE_DATA_DIR): row counts, quirks, the whole pipeline.

use tabtune_features::io::{LoadOptions, load_table};
use tabtune_features::{KFold, Preprocessor, PreprocessorSpec, TargetPresence};
use tabtune_test::real_data;

use crate::config;

#[test]
fn training_file_loads_clean() {
    let Some(path) = real_data("s4e2_train.csv") else {
        return;
    };
    let loaded = load_table(&path, &config().schema, &LoadOptions::default()).expect("valid");
    let r = &loaded.report;
    assert_eq!(
        (r.rows_read, r.valid_rows, r.invalid_rows),
        (16607, 16607, 0)
    );
    assert!(r.blank_lines.is_empty());
    let t = &loaded.table;
    assert_eq!(t.ids.as_ref().map(Vec::len), Some(16607));
    let counts = tabtune_features::stats::class_balance(t, &config().schema).expect("labelled");
    let expected = [2018, 2466, 1942, 2018, 2328, 2598, 3237];
    assert_eq!(counts.iter().map(|c| c.1).collect::<Vec<_>>(), expected);
}

#[test]
fn test_file_loads_without_target() {
    let Some(path) = real_data("s4e2_test.csv") else {
        return;
    };
    let options = LoadOptions {
        target: TargetPresence::Optional,
        ..LoadOptions::default()
    };
    let loaded = load_table(&path, &config().schema, &options).expect("valid");
    assert_eq!(loaded.report.rows_read, 13840);
    assert!(loaded.table.target.is_none());
    assert_eq!(
        loaded
            .table
            .ids
            .as_ref()
            .and_then(|i| i.first())
            .map(String::as_str),
        Some("20758")
    );
}

#[test]
fn uci_file_with_crlf_trailing_blank_line_and_duplicates() {
    let Some(path) = real_data("obesity_uci.csv") else {
        return;
    };
    let loaded = load_table(&path, &config().schema, &LoadOptions::default()).expect("valid");
    let r = &loaded.report;
    assert_eq!(r.rows_read, 2111);
    assert_eq!(
        r.blank_lines,
        vec![2113],
        "the one trailing empty line is reported, not a row"
    );
    assert_eq!(r.duplicate_rows, 24);
    assert!(loaded.table.ids.is_none(), "the UCI file has no id column");
    assert_eq!(*loaded.table.rows.last().expect("rows"), 2112);
}

#[test]
fn whole_pipeline_on_real_files_round_trips() {
    let (Some(train), Some(test)) = (real_data("s4e2_train.csv"), real_data("s4e2_test.csv"))
    else {
        return;
    };
    let config = config();
    let train = load_table(&train, &config.schema, &LoadOptions::default())
        .expect("train")
        .table;
    let options = LoadOptions {
        target: TargetPresence::Optional,
        ..LoadOptions::default()
    };
    let test = load_table(&test, &config.schema, &options)
        .expect("test")
        .table;
    let p = PreprocessorSpec::from_config(&config)
        .fit(&train)
        .expect("fits");
    let m = p.transform(&test).expect("applies");
    assert_eq!(m.values.nrows(), 13840);
    assert!(m.values.iter().all(|v| v.is_finite()));
    // CALC = Always occurs only in the test file (2 rows): they land in the unknown slot.
    let unknown = m
        .names
        .iter()
        .position(|n| n == "CALC=<unknown>")
        .expect("slot");
    assert_eq!(
        m.values
            .column(unknown)
            .iter()
            .filter(|&&v| v == 1.0)
            .count(),
        2
    );
    let reloaded =
        Preprocessor::from_json(&p.to_json(), std::path::Path::new("mem.json")).expect("reloads");
    let again = reloaded.transform(&test).expect("applies");
    assert!(
        m.values
            .iter()
            .zip(again.values.iter())
            .all(|(a, b)| a.to_bits() == b.to_bits())
    );
    let folds = KFold {
        folds: 5,
        repeats: 1,
        seed: 42,
        stratify: true,
    }
    .split(train.target.as_ref().expect("labels"), 7)
    .expect("splits");
    let sizes: Vec<usize> = folds.iter().map(|f| f.valid.len()).collect();
    assert!(sizes.iter().all(|&s| s == 3321 || s == 3322), "{sizes:?}");
}
