//! `tabtune features` and `tabtune eda` on the real data.

use tabtune_test::{real_data, synthetic_obesity_csv};

use crate::{dir_of, json_of, tabtune};

#[test]
fn features_fit_on_train_then_apply_to_test() {
    let (Some(train), Some(test)) = (real_data("s4e2_train.csv"), real_data("s4e2_test.csv"))
    else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let v = json_of(
        tabtune(tmp.path())
            .args(["features", "--json", "--data-dir"])
            .arg(dir_of(&train)),
        0,
    );
    assert_eq!(v["rows"], 16607);
    assert_eq!(v["output"], "data/features/s4e2_train.features.parquet");
    assert_eq!(v["preprocessor"], "data/features/preprocessor.json");
    let n_features = v["columns"].as_u64().expect("columns");
    assert!(
        tmp.path()
            .join("data/features/s4e2_train.features.parquet")
            .metadata()
            .expect("parquet")
            .len()
            > 10_000
    );

    let v = json_of(
        tabtune(tmp.path())
            .args([
                "features",
                "--json",
                "--apply",
                "data/features/preprocessor.json",
                "--output",
                "test.csv",
                "--input",
            ])
            .arg(&test),
        0,
    );
    assert_eq!(v["rows"], 13840);
    assert_eq!(v["columns"], n_features);
    let csv = std::fs::read_to_string(tmp.path().join("test.csv")).expect("csv");
    assert_eq!(csv.lines().count(), 13841);
    assert!(
        csv.starts_with("id,log1p_Age,Height,Weight,"),
        "{}",
        &csv[..80]
    );
}

#[test]
fn features_refuse_a_broken_preprocessor() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let train = tmp.path().join("t.csv");
    std::fs::write(&train, synthetic_obesity_csv(50, 3)).expect("write");
    std::fs::write(tmp.path().join("p.json"), "{\"format_version\": 7}").expect("write");
    let out = tabtune(tmp.path())
        .args(["features", "--apply", "p.json", "--input"])
        .arg(&train)
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("p.json: format version 7"), "{stderr}");
}

#[test]
fn eda_writes_a_self_contained_report_with_charts() {
    let Some(train) = real_data("s4e2_train.csv") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let v = json_of(
        tabtune(tmp.path())
            .args(["eda", "--json", "--data-dir"])
            .arg(dir_of(&train)),
        0,
    );
    assert_eq!(v["report"], "reports/eda-obesity.html");
    let html =
        std::fs::read_to_string(tmp.path().join("reports/eda-obesity.html")).expect("report");
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(
        html.matches("<svg").count() >= 7,
        "class balance, 5 box plots, heatmap"
    );
    for needle in [
        "Rows per class (NObeyesdad)",
        "Weight by class",
        "Pearson correlation",
        "Obesity_Type_III",
    ] {
        assert!(html.contains(needle), "report lacks {needle}");
    }
    for external in ["<script", "<link", " src=", "@import"] {
        assert!(
            !html.contains(external),
            "self-contained, but found {external}"
        );
    }
}
