//! The file itself: metadata as onnxruntime reads it, inputs and outputs, opsets; the Triton
//! layout, with config.pbtxt parsed by Triton's own ModelConfig schema.

use tabtune_features::config::Encoding;
use tabtune_features::io::sha256_file;
use tabtune_models::bundle::Bundle;
use tabtune_onnx::{
    OnnxOptions, TritonOptions, export_onnx, export_onnx_dir, triton_model_name, write_triton,
};
use tabtune_train::Family;

use crate::{compare_table, config, fit, ort, params, save_bundle, synthetic, test_rows};

#[test]
fn metadata_inputs_outputs_and_the_triton_layout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(Encoding::OneHot);
    let table = synthetic(dir.path(), "train", 400, 8, &config);
    let (pre, model) = fit(
        &config,
        &table,
        &params(
            Family::GbdtLeafwise,
            &[("rounds", "20"), ("num_leaves", "7")],
        ),
    );
    let bundle_dir = save_bundle(dir.path(), "obesity champion", "gbdt-leafwise", pre, model);
    let exported = export_onnx_dir(&bundle_dir, &OnnxOptions::default()).expect("exports");
    let sha = sha256_file(&bundle_dir.join("bundle.json")).expect("sha");
    assert_eq!(exported.metadata.bundle_sha256, sha);
    // In memory, the sha256 is that of the bundle.json `Bundle::save` writes: the same file.
    let bundle = Bundle::load(&bundle_dir).expect("loads");
    let in_memory = export_onnx(&bundle, &OnnxOptions::default()).expect("exports");
    assert_eq!(in_memory, exported);

    let repo = dir.path().join("models");
    let folder = write_triton(&exported, &repo, &TritonOptions::default()).expect("writes");
    assert_eq!(folder, repo.join("obesity_champion"));
    assert_eq!(triton_model_name("obesity champion"), "obesity_champion");
    let onnx = folder.join("1/model.onnx");
    assert_eq!(std::fs::read(&onnx).expect("model"), exported.bytes);
    let labels = std::fs::read_to_string(folder.join("labels.txt")).expect("labels");
    assert_eq!(labels.lines().collect::<Vec<_>>(), bundle.meta.classes);

    let (test, csv) = test_rows(dir.path(), &config);
    let run = ort(&onnx, &csv, Some(&folder.join("config.pbtxt")));
    let meta = &run.meta;
    let custom = &meta["custom"];
    assert_eq!(custom["bundle_sha256"], sha.as_str());
    assert_eq!(
        custom["tabtune_version"],
        bundle.meta.tabtune_version.as_str()
    );
    assert_eq!(custom["exporter_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(custom["family"], "gbdt-leafwise");
    let classes: Vec<String> =
        serde_json::from_str(custom["classes"].as_str().expect("text")).expect("json");
    assert_eq!(classes, bundle.meta.classes);
    let metrics: serde_json::Value =
        serde_json::from_str(custom["metrics"].as_str().expect("text")).expect("json");
    assert_eq!(metrics["cv_accuracy_mean"], 0.875);
    assert_eq!(meta["producer"], "tabtune");
    assert_eq!(meta["graph_name"], "obesity champion");
    assert_eq!(meta["ir_version"], 8);
    assert_eq!(meta["opsets"], serde_json::json!({"": 17, "ai.onnx.ml": 3}));
    // Inputs: the schema's feature columns in schema order, numbers double, levels strings.
    let inputs = meta["inputs"].as_array().expect("inputs");
    let schema: Vec<_> = bundle.meta.schema.feature_columns().collect();
    assert_eq!(inputs.len(), schema.len());
    for (i, spec) in inputs.iter().zip(&schema) {
        assert_eq!(i["name"], spec.name.as_str());
        let ty = if spec.is_numeric() {
            "tensor(double)"
        } else {
            "tensor(string)"
        };
        assert_eq!(i["type"], ty, "{}", spec.name);
        assert_eq!(i["shape"], serde_json::json!(["N", 1]));
    }
    let outputs = meta["outputs"].as_array().expect("outputs");
    assert_eq!(outputs[0]["name"], "class");
    assert_eq!(outputs[0]["type"], "tensor(string)");
    assert_eq!(outputs[0]["shape"], serde_json::json!(["N"]));
    assert_eq!(outputs[1]["name"], "probabilities");
    assert_eq!(outputs[1]["type"], "tensor(float)");
    assert_eq!(outputs[1]["shape"], serde_json::json!(["N", 7]));
    assert_eq!(
        meta["output_shapes"]["probabilities"],
        serde_json::json!([300, 7])
    );
    // Triton's ModelConfig parses the config, and it declares what the model has.
    let triton = &meta["triton"];
    assert_eq!(triton["name"], "obesity_champion");
    assert_eq!(triton["platform"], "onnxruntime_onnx");
    assert_eq!(triton["max_batch_size"], 1024);
    let t_inputs = triton["input"].as_array().expect("inputs");
    for (t, i) in t_inputs.iter().zip(inputs) {
        assert_eq!(t["name"], i["name"]);
        let ty = if i["type"] == "tensor(double)" {
            "TYPE_FP64"
        } else {
            "TYPE_STRING"
        };
        assert_eq!(t["data_type"], ty);
        assert_eq!(t["dims"], serde_json::json!(["1"]));
    }
    let t_outputs = triton["output"].as_array().expect("outputs");
    assert_eq!(t_outputs[0]["name"], "class");
    assert_eq!(t_outputs[0]["data_type"], "TYPE_STRING");
    assert_eq!(t_outputs[1]["name"], "probabilities");
    assert_eq!(t_outputs[1]["dims"], serde_json::json!(["7"]));
    assert_eq!(t_outputs[1]["label_filename"], "labels.txt");
    assert_eq!(
        triton["parameters"]["tabtune_bundle_sha256"]["string_value"],
        sha.as_str()
    );
    // The layout's model predicts as tabtune does.
    assert!(compare_table(&bundle_dir, &onnx, &test, &csv) <= crate::TOLERANCE);

    // Writing again replaces the folder whole (a stray file in the old one is gone).
    std::fs::write(folder.join("stray.txt"), "old").expect("write");
    let again = write_triton(
        &exported,
        &repo,
        &TritonOptions {
            max_batch_size: 64,
            version: 3,
        },
    )
    .expect("writes");
    assert!(!again.join("stray.txt").exists());
    assert!(!again.join("1").exists() && again.join("3/model.onnx").is_file());
    let names: Vec<_> = std::fs::read_dir(&repo)
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(
        names,
        vec![std::ffi::OsString::from("obesity_champion")],
        "no leftovers"
    );
}
