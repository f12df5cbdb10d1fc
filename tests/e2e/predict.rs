//! `tabtune predict`: bundles from `tabtune train --save`, Kaggle submissions, tampering.

use tabtune_test::{real_data, synthetic_obesity_csv};

use crate::{dir_of, json_of, tabtune};

#[test]
fn train_save_then_predict_the_test_file_as_a_submission() {
    let (Some(train), Some(_test)) = (real_data("s4e2_train.csv"), real_data("s4e2_test.csv"))
    else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    json_of(
        tabtune(tmp.path())
            .args([
                "train",
                "--json",
                "--model",
                "gbdt-leafwise",
                "--folds",
                "2",
                "--param",
                "rounds=10",
            ])
            .args(["--save", "checkpoints/lw", "--data-dir"])
            .arg(dir_of(&train)),
        0,
    );
    // Without --input, predict reads the config's test file.
    let v = json_of(
        tabtune(tmp.path())
            .args([
                "predict",
                "--json",
                "--model",
                "checkpoints/lw",
                "--submission",
                "--output",
                "submission.csv",
                "--data-dir",
            ])
            .arg(dir_of(&train)),
        0,
    );
    assert_eq!(v["rows"], 13840);
    let text = std::fs::read_to_string(tmp.path().join("submission.csv")).expect("submission");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 13841);
    assert_eq!(lines[0], "id,NObeyesdad");
    assert!(lines[1].starts_with("20758,"), "{}", lines[1]);
    let classes = [
        "Insufficient_Weight",
        "Normal_Weight",
        "Overweight_Level_I",
        "Overweight_Level_II",
        "Obesity_Type_I",
        "Obesity_Type_II",
        "Obesity_Type_III",
    ];
    assert!(
        lines[1..]
            .iter()
            .all(|l| classes.contains(&l.split_once(',').expect("two fields").1))
    );

    // The UCI file has no id: full predictions with probabilities; --submission is refused.
    let uci = dir_of(&train).join("obesity_uci.csv");
    let v = json_of(
        tabtune(tmp.path())
            .args(["predict", "--json", "--model", "checkpoints/lw", "--input"])
            .arg(&uci),
        0,
    );
    assert_eq!(v["rows"], 2111);
    let out = tmp.path().join(v["output"].as_str().expect("output"));
    let head = std::fs::read_to_string(out).expect("predictions");
    assert!(
        head.starts_with("row,predicted,Insufficient_Weight,"),
        "{}",
        &head[..60]
    );
    let out = tabtune(tmp.path())
        .args([
            "predict",
            "--model",
            "checkpoints/lw",
            "--submission",
            "--input",
        ])
        .arg(&uci)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--submission needs the id column `id`"));
}

#[test]
fn predict_refuses_a_tampered_bundle_naming_the_checksum() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("t.csv");
    std::fs::write(&path, synthetic_obesity_csv(140, 6)).expect("write");
    json_of(
        tabtune(tmp.path())
            .args([
                "train",
                "--json",
                "--model",
                "random-forest",
                "--folds",
                "2",
                "--param",
                "n_trees=5",
                "--save",
                "b",
                "--input",
            ])
            .arg(&path),
        0,
    );
    // Predictions of the bundle equal the ones the trainer's model makes on the same rows.
    let v = json_of(
        tabtune(tmp.path())
            .args([
                "predict", "--json", "--model", "b", "--output", "p.csv", "--input",
            ])
            .arg(&path),
        0,
    );
    assert_eq!(v["rows"], 140);
    let pre = std::fs::read_to_string(tmp.path().join("b/preprocessor.json")).expect("pre");
    std::fs::write(
        tmp.path().join("b/preprocessor.json"),
        pre.replacen("\"rows\": 140", "\"rows\": 141", 1),
    )
    .expect("tamper");
    let out = tabtune(tmp.path())
        .args(["predict", "--model", "b", "--input"])
        .arg(&path)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("preprocessor.json: sha256") && stderr.contains("refusing"),
        "{stderr}"
    );
    let out = tabtune(tmp.path())
        .args(["predict", "--model", "nowhere", "--input"])
        .arg(&path)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn monitor_compares_the_uci_file_with_the_training_data() {
    let Some(train) = real_data("s4e2_train.csv") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    json_of(
        tabtune(tmp.path())
            .args([
                "train",
                "--json",
                "--model",
                "gbdt-depthwise",
                "--folds",
                "2",
                "--param",
                "rounds=10",
                "--save",
                "m",
                "--data-dir",
            ])
            .arg(dir_of(&train)),
        0,
    );
    let v = json_of(
        tabtune(tmp.path())
            .args(["monitor", "--json", "--model", "m", "--data-dir"])
            .arg(dir_of(&train)),
        0,
    );
    assert_eq!(v["dataset_drift"], false);
    let share = v["drift_share"].as_f64().expect("share");
    assert!((0.0..0.5).contains(&share), "{share}");
    assert!(v["drifted_columns"].is_array());
    assert_eq!(v["columns"].as_array().map(Vec::len), Some(16));
    let accuracy = v["performance"]["accuracy"]
        .as_f64()
        .expect("the UCI file has labels");
    assert!(accuracy > 0.5, "{accuracy}");
    assert_eq!(
        v["performance"]["confusion"].as_array().map(Vec::len),
        Some(7)
    );
    let report = tmp.path().join(v["report"].as_str().expect("report"));
    assert!(
        std::fs::read_to_string(report)
            .expect("html")
            .contains("tabtune drift: m")
    );
}
