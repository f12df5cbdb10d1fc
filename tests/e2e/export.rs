//! `tabtune export --model ... --format onnx|triton`: a bundle from `tabtune train --save` as
//! one ONNX file that onnxruntime runs to `tabtune predict`'s answers, as a Triton entry that
//! Triton's own config schema reads, and the requests it refuses without writing anything.

use std::path::{Path, PathBuf};
use std::process::Command;

use tabtune_test::synthetic_obesity_csv;

use crate::{json_of, tabtune};

/// `train.csv` (synthetic, 280 rows) and a small leaf-wise bundle `checkpoints/lw` in `dir`.
fn small_bundle(dir: &Path) -> PathBuf {
    std::fs::write(dir.join("train.csv"), synthetic_obesity_csv(280, 7)).expect("write");
    json_of(
        tabtune(dir).args([
            "train",
            "--json",
            "--model",
            "gbdt-leafwise",
            "--folds",
            "2",
            "--param",
            "rounds=8",
            "--input",
            "train.csv",
            "--save",
            "checkpoints/lw",
        ]),
        0,
    );
    dir.join("checkpoints/lw")
}

/// onnxruntime's (class, probabilities) per row of `input`, through the tabtune-onnx tests'
/// runner (which also checks the model with `onnx.checker` and parses a Triton config).
fn onnxruntime(dir: &Path, model: &Path, input: &Path, triton: Option<&Path>) -> Vec<Vec<String>> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tabtune-onnx/tests/it/ort_run.py");
    let out = dir.join("ort.csv");
    let mut cmd = Command::new(tabtune_test::python_env("onnx"));
    cmd.arg(script)
        .arg(model)
        .arg(input)
        .arg(&out)
        .arg(dir.join("meta.json"));
    if let Some(config) = triton {
        cmd.arg(config);
    }
    let status = cmd.status().expect("python runs");
    assert!(status.success(), "onnxruntime on {}", model.display());
    csv_rows(&out)
}

fn csv_rows(path: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(path)
        .expect("csv")
        .lines()
        .map(|l| l.split(',').map(str::to_owned).collect())
        .collect()
}

#[test]
fn an_exported_onnx_model_answers_as_predict_does_and_triton_reads_its_entry() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let bundle = small_bundle(tmp.path());
    let input = tmp.path().join("train.csv");
    json_of(
        tabtune(tmp.path()).args([
            "predict",
            "--json",
            "--model",
            "checkpoints/lw",
            "--input",
            "train.csv",
            "--output",
            "predicted.csv",
        ]),
        0,
    );
    // id,row,predicted,<class probabilities (6 decimals)...>
    let predicted = csv_rows(&tmp.path().join("predicted.csv"));
    let k = predicted[0]
        .iter()
        .position(|c| c == "predicted")
        .expect("a predicted column");
    let classes = predicted[0][k + 1..].to_vec();

    let v = json_of(
        tabtune(tmp.path()).args([
            "export",
            "--json",
            "--model",
            "checkpoints/lw",
            "--format",
            "onnx",
        ]),
        0,
    );
    assert_eq!(v["format"], "onnx");
    assert_eq!(v["family"], "gbdt-leafwise");
    assert_eq!(v["classes"], serde_json::json!(classes));
    let sha = tabtune_features::io::sha256_file(&bundle.join("bundle.json")).expect("sha");
    assert_eq!(v["bundle_sha256"], sha.as_str());
    let onnx = tmp.path().join(v["output"].as_str().expect("output"));
    assert!(
        onnx.starts_with(tmp.path().join("checkpoints")),
        "{}",
        onnx.display()
    );
    assert_eq!(std::fs::metadata(&onnx).expect("written").len(), v["bytes"]);

    let ort = onnxruntime(tmp.path(), &onnx, &input, None);
    assert_eq!(ort.len() + 1, predicted.len());
    for (o, p) in ort.iter().zip(&predicted[1..]) {
        assert_eq!(o[0], p[k], "row {}: class", p[0]);
        for (a, b) in o[1..].iter().zip(&p[k + 1..]) {
            let (a, b): (f64, f64) = (a.parse().expect("p"), b.parse().expect("p"));
            assert!((a - b).abs() <= 1e-5, "row {}: {a} vs {b}", p[0]);
        }
    }

    let v = json_of(
        tabtune(tmp.path()).args([
            "export",
            "--json",
            "--model",
            "checkpoints/lw",
            "--format",
            "triton",
            "--output",
            "repo",
        ]),
        0,
    );
    let entry = tmp.path().join(v["output"].as_str().expect("output"));
    assert_eq!(entry.parent(), Some(tmp.path().join("repo").as_path()));
    let model = entry.join("1/model.onnx");
    assert_eq!(
        std::fs::read(&model).expect("model"),
        std::fs::read(&onnx).expect("onnx")
    );
    let labels = std::fs::read_to_string(entry.join("labels.txt")).expect("labels");
    assert_eq!(labels.lines().collect::<Vec<_>>(), classes);
    let ort = onnxruntime(
        tmp.path(),
        &model,
        &input,
        Some(&entry.join("config.pbtxt")),
    );
    assert_eq!(ort.len() + 1, predicted.len());
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("meta.json")).expect("meta"))
            .expect("json");
    assert_eq!(meta["triton"]["platform"], "onnxruntime_onnx", "{meta}");
}

#[test]
fn export_refuses_what_it_cannot_write_and_leaves_nothing_behind() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let bundle = small_bundle(tmp.path());
    // A modified bundle is refused as `predict` refuses it.
    let tampered = tmp.path().join("checkpoints/tampered");
    std::fs::create_dir_all(&tampered).expect("mkdir");
    for entry in std::fs::read_dir(&bundle).expect("bundle") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), tampered.join(entry.file_name())).expect("copy");
    }
    let model = tampered.join("model.json");
    let text = std::fs::read_to_string(&model).expect("model");
    std::fs::write(&model, text.replacen("0.", "1.", 1)).expect("write");

    let cases: &[(&[&str], &str)] = &[
        (&["--model", "checkpoints/lw"], "--format"),
        (
            &["--model", "checkpoints/lw", "--format", "bundle"],
            "--format",
        ),
        (&["--model", "missing", "--format", "onnx"], "missing"),
        (
            &["--model", "checkpoints/tampered", "--format", "onnx"],
            "model.json",
        ),
        (
            &["--model", "checkpoints/tampered", "--format", "triton"],
            "model.json",
        ),
        (&["--model", "models:/", "--format", "onnx"], "models:/"),
    ];
    for (args, needle) in cases {
        let v = json_of(
            tabtune(tmp.path())
                .args(["export", "--json", "--output", "out/x"])
                .args(*args),
            2,
        );
        let e = v["error"].as_str().expect("error");
        assert!(e.contains(needle), "{args:?}: {e}");
        assert!(!tmp.path().join("out").exists(), "{args:?} wrote something");
    }
    // Neither --study nor --model, or both: clap's usage error (exit 2).
    for args in [
        &["export"][..],
        &["export", "--study", "s", "--model", "checkpoints/lw"][..],
    ] {
        let out = tabtune(tmp.path()).args(args).output().expect("runs");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("--study"), "{args:?}: {stderr}");
    }
}
