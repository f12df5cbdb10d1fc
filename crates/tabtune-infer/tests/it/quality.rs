//! Data quality against known values on a small hand-made case.

use std::path::Path;

use tabtune_features::io::{LoadOptions, load_table};
use tabtune_features::{Config, OnInvalid, TargetPresence};
use tabtune_infer::monitor::{ColumnSummary, data_quality};

const HEADER: &str = tabtune_test::OBESITY_HEADER;

fn row(id: u32, gender: &str, age: &str, calc: &str, label: &str) -> String {
    format!("{id},{gender},{age},1.70,70,yes,no,2,3,Sometimes,no,2,no,1,1,{calc},Walking,{label}")
}

fn write(dir: &Path, name: &str, rows: &[String]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("{HEADER}\n{}\n", rows.join("\n"))).expect("write");
    path
}

#[test]
fn quality_counts_by_hand() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config::load(&tabtune_test::default_config()).expect("config");
    let schema = &config.schema;
    // Reference: ages 20, 30, 40, 50; CALC never "Always"; every row male; labels vary.
    let reference = write(
        dir.path(),
        "ref.csv",
        &[
            row(1, "Male", "20", "no", "Normal_Weight"),
            row(2, "Male", "30", "Sometimes", "Obesity_Type_I"),
            row(3, "Male", "40", "Frequently", "Normal_Weight"),
            row(4, "Male", "50", "no", "Overweight_Level_I"),
        ],
    );
    // Current: one age below and one above the reference range (15, 60), one "Always" (a
    // schema level new to the reference), a duplicate of row 11 (ids differ), one empty Age
    // and one Age out of the schema's range (rejected rows), and one unknown CALC level.
    let current = write(
        dir.path(),
        "cur.csv",
        &[
            row(11, "Male", "15", "no", "Normal_Weight"),
            row(12, "Male", "60", "Always", "Normal_Weight"),
            row(13, "Male", "15", "no", "Normal_Weight"),
            row(14, "Male", "35", "no", "Normal_Weight"),
            row(15, "Male", "", "no", "Normal_Weight"),
            row(16, "Male", "400", "no", "Normal_Weight"),
            row(17, "Male", "33", "Daily", "Normal_Weight"),
        ],
    );
    let reference = load_table(&reference, schema, &LoadOptions::default())
        .expect("valid")
        .table;
    let loaded = load_table(
        &current,
        schema,
        &LoadOptions {
            on_invalid: OnInvalid::Quarantine,
            target: TargetPresence::Optional,
            rejects: Some(dir.path().join("rejects.csv")),
        },
    )
    .expect("loads");
    let q = data_quality(schema, &reference, &loaded.table, Some(&loaded.report));
    assert_eq!(q.rows, (4, 4));
    assert_eq!((q.current_rows_read, q.current_invalid_rows), (7, 3));
    assert_eq!(q.duplicate_rows, (0, 1));
    assert!((q.duplicate_share.1 - 0.25).abs() < 1e-12);
    let col = |name: &str| q.columns.iter().find(|c| c.column == name).expect(name);
    let age = col("Age");
    assert_eq!(age.missing, 1);
    assert!((age.missing_share - 1.0 / 7.0).abs() < 1e-12);
    assert_eq!(age.out_of_schema_range, 1);
    assert_eq!(age.reference_range, Some((20.0, 50.0)));
    // 15, 60, 15 are outside 20..50; 35 is inside.
    assert_eq!(age.out_of_reference_range, 3);
    assert!((age.out_of_reference_range_share - 0.75).abs() < 1e-12);
    match &age.current {
        Some(ColumnSummary::Numeric { stats, .. }) => {
            assert_eq!((stats.count, stats.min, stats.max), (4, 15.0, 60.0));
            assert!((stats.mean - 31.25).abs() < 1e-12);
            // sample std of 15, 60, 15, 35
            let m = 31.25f64;
            let sd = (([15.0f64, 60.0, 15.0, 35.0]
                .iter()
                .map(|v| (v - m) * (v - m))
                .sum::<f64>())
                / 3.0)
                .sqrt();
            assert!((stats.std - sd).abs() < 1e-12);
        }
        other => panic!("{other:?}"),
    }
    let calc = col("CALC");
    assert_eq!(calc.kind, "categorical");
    assert_eq!(calc.new_levels.len(), 1);
    assert_eq!(
        (calc.new_levels[0].level.as_str(), calc.new_levels[0].count),
        ("Always", 1)
    );
    assert_eq!(calc.unknown_levels.len(), 1);
    assert_eq!(calc.unknown_levels[0].level, "Daily");
    match &calc.current {
        Some(ColumnSummary::Categorical {
            count,
            distinct,
            top,
        }) => {
            assert_eq!((*count, *distinct), (4, 2));
            assert_eq!((top[0].level.as_str(), top[0].count), ("no", 3));
            assert!((top[0].share - 0.75).abs() < 1e-12);
        }
        other => panic!("{other:?}"),
    }
    // Gender is male everywhere: constant on both sides; Age is not.
    assert!(col("Gender").constant_in_reference && col("Gender").constant_in_current);
    assert!(!age.constant_in_current);
    assert!(q.constant_columns.contains(&"Gender".to_owned()));
    assert_eq!(q.columns_with_missing, ["Age"]);
    assert!(q.columns_out_of_range.contains(&"Age".to_owned()));
    assert_eq!(q.columns_with_new_levels, ["CALC"]);
    assert!(!q.issue_counts_truncated);
    let html = tabtune_infer::monitor::quality_html(&q, "toy").expect("html");
    assert!(html.contains("<svg") && html.contains("Always (1)") && html.contains("Daily (1)"));
}
