//! `tabtune data describe` and `tabtune data fetch`.

use tabtune_test::{real_data, synthetic_obesity_csv};

use crate::{dir_of, json_of, tabtune};

#[test]
fn describe_real_files_json_contract() {
    let cases = [
        ("s4e2_train.csv", 16607, 18, 0),
        ("s4e2_test.csv", 13840, 17, 0),
        ("obesity_uci.csv", 2111, 17, 24),
    ];
    for (file, rows, columns, duplicates) in cases {
        let Some(path) = real_data(file) else { return };
        let tmp = tempfile::tempdir().expect("tempdir");
        let v = json_of(
            tabtune(tmp.path())
                .args(["data", "describe", "--json", "--input"])
                .arg(&path),
            0,
        );
        assert_eq!(v["rows"], rows, "{file}");
        assert_eq!(v["columns"], columns, "{file}");
        assert_eq!(v["invalid_rows"], 0, "{file}");
        assert_eq!(v["duplicate_rows"], duplicates, "{file}");
        if file == "s4e2_test.csv" {
            assert_eq!(v["classes"], serde_json::json!({}));
        } else {
            let total: u64 = v["classes"]
                .as_object()
                .expect("classes")
                .values()
                .map(|c| c.as_u64().expect("count"))
                .sum();
            assert_eq!(total, rows as u64);
        }
    }
}

#[test]
fn describe_defaults_to_the_configs_training_file_and_prints_tables() {
    let Some(train) = real_data("s4e2_train.csv") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tabtune(tmp.path())
        .args(["data", "describe", "--data-dir"])
        .arg(dir_of(&train))
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("16607 rows, 18 columns"), "{text}");
    assert!(text.contains("Class balance (NObeyesdad)"), "{text}");
    let line = text
        .lines()
        .find(|l| l.starts_with("Obesity_Type_III"))
        .expect("class row");
    assert_eq!(
        line.split_whitespace().collect::<Vec<_>>(),
        ["Obesity_Type_III", "3237", "19.5%"]
    );
    assert!(
        text.contains("Numeric columns") && text.contains("Categorical columns"),
        "{text}"
    );
}

#[test]
fn invalid_rows_exit_2_with_file_row_and_column() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let text = synthetic_obesity_csv(5, 1)
        .replacen("Male,", "Malee,", 1)
        .replacen("Female,", "Femalee,", 1);
    let path = tmp.path().join("bad.csv");
    std::fs::write(&path, text).expect("write");
    let out = tabtune(tmp.path())
        .args(["data", "describe", "--input"])
        .arg(&path)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("2 of 5 rows are invalid"), "{stderr}");
    assert!(
        stderr.contains(&format!("{}: row 2, column Gender: value", path.display())),
        "{stderr}"
    );
    assert!(stderr.contains("--on-invalid quarantine"), "{stderr}");

    let v = json_of(
        tabtune(tmp.path())
            .args(["data", "describe", "--json", "--input"])
            .arg(&path),
        2,
    );
    assert_eq!(v["invalid_rows"], 2);
    assert_eq!(v["issues"][0]["row"], 2);
    assert_eq!(v["issues"][0]["column"], "Gender");

    let v = json_of(
        tabtune(tmp.path())
            .args([
                "data",
                "describe",
                "--json",
                "--on-invalid",
                "quarantine",
                "--input",
            ])
            .arg(&path),
        0,
    );
    assert_eq!(
        (
            v["rows"].as_u64(),
            v["valid_rows"].as_u64(),
            v["invalid_rows"].as_u64()
        ),
        (Some(5), Some(3), Some(2))
    );
    let rejects = tmp.path().join("reports/rejects/bad.rejects.csv");
    assert_eq!(v["rejects"], "reports/rejects/bad.rejects.csv");
    assert_eq!(
        std::fs::read_to_string(rejects)
            .expect("rejects")
            .lines()
            .count(),
        3
    );
}

#[test]
fn bad_files_and_configs_exit_2_naming_the_problem() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let empty = tmp.path().join("empty.csv");
    std::fs::write(&empty, "").expect("write");
    let out = tabtune(tmp.path())
        .args(["data", "describe", "--input"])
        .arg(&empty)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("empty.csv: the file is empty"));

    let missing = tmp.path().join("nope.csv");
    let out = tabtune(tmp.path())
        .args(["data", "describe", "--input"])
        .arg(&missing)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope.csv: cannot read the input file"));

    let config = tmp.path().join("c.toml");
    let text = std::fs::read_to_string(tabtune_test::default_config()).expect("config");
    std::fs::write(&config, text.replacen("[cv]\n", "[cv]\nfold = 3\n", 1)).expect("write");
    let out = assert_cmd::Command::cargo_bin("tabtune")
        .expect("bin")
        .current_dir(tmp.path())
        .args(["data", "describe", "--config"])
        .arg(&config)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("c.toml") && stderr.contains("unknown field `fold`"),
        "{stderr}"
    );

    let out = tabtune(tmp.path())
        .args(["data", "describe", "--on-invalid", "maybe"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2), "usage errors exit 2");
}

#[test]
fn fetch_verifies_present_files_and_explains_offline() {
    let Some(uci) = real_data("obesity_uci.csv") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let v = json_of(
        tabtune(tmp.path())
            .args(["data", "fetch", "--source", "uci", "--json", "--data-dir"])
            .arg(dir_of(&uci)),
        0,
    );
    assert_eq!(v["files"][0]["status"], "already present");
    assert_eq!(
        v["files"][0]["sha256"],
        "2060394fe563eefcdd81545c42435d399cd4fcfc6f12b75579db562adbefadcb"
    );

    // A source on a loopback port where nothing listens: the download fails at once.
    let config = tmp.path().join("offline.toml");
    let text = std::fs::read_to_string(tabtune_test::default_config()).expect("config");
    let text = text.replacen("https://archive.ics.uci.edu/static/public/544/estimation+of+obesity+levels+based+on+eating+habits+and+physical+condition.zip", "http://127.0.0.1:9/uci.zip", 1);
    std::fs::write(&config, text).expect("write");
    let out = assert_cmd::Command::cargo_bin("tabtune")
        .expect("bin")
        .current_dir(tmp.path())
        .args([
            "data",
            "fetch",
            "--source",
            "uci",
            "--data-dir",
            "dl",
            "--config",
        ])
        .arg(&config)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Offline?")
            && stderr.contains("obesity_uci.csv")
            && stderr.contains("2060394f"),
        "{stderr}"
    );
    assert!(!tmp.path().join("dl/obesity_uci.csv").exists());

    let out = tabtune(tmp.path())
        .args(["data", "fetch", "--source", "nope"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no source named `nope`"));
}

#[test]
fn log_lines_can_be_json_for_machines() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("t.csv");
    std::fs::write(&path, synthetic_obesity_csv(20, 4)).expect("write");
    let out = tabtune(tmp.path())
        .args([
            "--log-format",
            "json",
            "data",
            "describe",
            "--json",
            "--input",
        ])
        .arg(&path)
        .output()
        .expect("runs");
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .find(|l| l.contains("rows read"))
        .expect("a log line about the load");
    let v: serde_json::Value = serde_json::from_str(line).expect("a JSON log line");
    assert_eq!(v["level"], "INFO");
    let quiet = tabtune(tmp.path())
        .args(["-q", "data", "describe", "--input"])
        .arg(&path)
        .output()
        .expect("runs");
    assert!(
        String::from_utf8_lossy(&quiet.stderr).trim().is_empty(),
        "-q hides info lines"
    );
}
