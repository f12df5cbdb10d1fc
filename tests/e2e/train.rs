//! `tabtune train`: k-fold CV of the tree families, the JSON contract, bad parameters.

use tabtune_test::{real_data, synthetic_obesity_csv};

use crate::{dir_of, json_of, tabtune};

#[test]
fn train_each_gbdt_style_with_cv_on_the_real_data() {
    let Some(train) = real_data("s4e2_train.csv") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    for model in ["gbdt-leafwise", "gbdt-depthwise", "gbdt-oblivious"] {
        let v = json_of(
            tabtune(tmp.path())
                .args([
                    "train", "--json", "--model", model, "--folds", "3", "--seed", "7",
                ])
                .args([
                    "--param",
                    "rounds=15",
                    "--param",
                    "learning_rate=0.3",
                    "--data-dir",
                ])
                .arg(dir_of(&train)),
            0,
        );
        assert_eq!(v["model"], model);
        assert_eq!(v["folds"], 3);
        let accuracy = v["accuracy_mean"].as_f64().expect("accuracy");
        assert!(accuracy > 0.85, "{model}: {accuracy}");
        assert!(v["accuracy_std"].as_f64().expect("std") >= 0.0);
        assert!(v["logloss_mean"].as_f64().expect("logloss") < 0.5);
        assert!(v["seconds"].as_f64().expect("seconds") > 0.0);
        let importance = v["importance"].as_array().expect("importance");
        // 38 features of the training file (the default config's raw columns: 8 numeric and
        // the one-hot blocks with their unknown slots), plus the one-hot column of a level only
        // the appended UCI rows have (CALC = "Always").
        assert_eq!(importance.len(), 39, "one entry per feature");
        let top = importance[0]["feature"].as_str().expect("name");
        assert!(
            [
                "Weight",
                "Gender=Female",
                "Gender=Male",
                "Height",
                "log1p_Age"
            ]
            .contains(&top),
            "{model}: {top}"
        );
        let oof = tmp.path().join(format!("reports/oof/obesity-{model}.csv"));
        let text = std::fs::read_to_string(&oof).expect("oof written");
        assert_eq!(text.lines().count(), 16608);
        assert!(
            text.starts_with("index,row,id,fold,Insufficient_Weight,"),
            "{}",
            &text[..60]
        );
    }
}

#[test]
fn train_forests_and_single_trees_with_cv_on_the_real_data() {
    let Some(train) = real_data("s4e2_train.csv") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    for (model, params, floor) in [
        ("random-forest", ["n_trees=20", "max_depth=12"], 0.85),
        ("decision-tree", ["max_depth=8", "criterion=entropy"], 0.80),
    ] {
        let mut cmd = tabtune(tmp.path());
        cmd.args([
            "train",
            "--json",
            "--model",
            model,
            "--folds",
            "3",
            "--data-dir",
        ])
        .arg(dir_of(&train));
        for p in params {
            cmd.args(["--param", p]);
        }
        let v = json_of(&mut cmd, 0);
        let accuracy = v["accuracy_mean"].as_f64().expect("accuracy");
        assert!(accuracy > floor, "{model}: {accuracy}");
        assert_eq!(v["folds"], 3);
    }
}

#[test]
fn one_hot_free_categoricals_train_with_category_splits() {
    let Some(train) = real_data("s4e2_train.csv") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let text = std::fs::read_to_string(tabtune_test::default_config()).expect("config");
    assert!(text.contains("encode = \"one-hot\""), "test setup");
    let config = tmp.path().join("ordinal.toml");
    std::fs::write(
        &config,
        text.replacen("encode = \"one-hot\"", "encode = \"ordinal\"", 1),
    )
    .expect("write");
    for model in ["gbdt-leafwise", "gbdt-oblivious"] {
        let v = json_of(
            assert_cmd::Command::cargo_bin("tabtune")
                .expect("bin")
                .current_dir(tmp.path())
                .args(["--config"])
                .arg(&config)
                .args(["train", "--json", "--model", model, "--folds", "3"])
                .args([
                    "--param",
                    "rounds=15",
                    "--param",
                    "learning_rate=0.3",
                    "--data-dir",
                ])
                .arg(dir_of(&train)),
            0,
        );
        let accuracy = v["accuracy_mean"].as_f64().expect("accuracy");
        assert!(accuracy > 0.85, "{model}: {accuracy}");
    }
}

#[test]
fn train_can_save_the_final_model_as_a_bundle() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("t.csv");
    std::fs::write(&path, synthetic_obesity_csv(210, 8)).expect("write");
    let v = json_of(
        tabtune(tmp.path())
            .args([
                "train",
                "--json",
                "--model",
                "gbdt-oblivious",
                "--folds",
                "3",
                "--param",
                "rounds=8",
            ])
            .args([
                "--param",
                "early_stopping_rounds=3",
                "--save",
                "checkpoints/toy",
                "--input",
            ])
            .arg(&path),
        0,
    );
    assert_eq!(v["bundle"], "checkpoints/toy");
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(tmp.path().join("checkpoints/toy/bundle.json")).expect("bundle"),
    )
    .expect("json");
    assert_eq!(meta["family"], "gbdt-oblivious");
    assert_eq!(meta["training_data"]["rows"], 210);
    assert_eq!(
        meta["training_data"]["sha256"].as_str().map(str::len),
        Some(64)
    );
    assert!(
        (meta["metrics"]["cv_accuracy_mean"]
            .as_f64()
            .expect("metric")
            - v["accuracy_mean"].as_f64().expect("cv"))
        .abs()
            < 1e-12
    );
    assert_eq!(
        meta["params"]["early_stopping_rounds"], 0,
        "the final model trains the folds' mean best rounds"
    );
    for file in ["model.json", "preprocessor.json"] {
        assert!(
            meta["files"][file].as_str().is_some_and(|s| s.len() == 64),
            "{file}"
        );
    }
}

#[test]
fn train_prints_folds_as_a_table() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("t.csv");
    std::fs::write(&path, synthetic_obesity_csv(210, 2)).expect("write");
    let out = tabtune(tmp.path())
        .args([
            "train",
            "--model",
            "gbdt-leafwise",
            "--folds",
            "3",
            "--param",
            "rounds=5",
            "--input",
        ])
        .arg(&path)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("repeat  fold  accuracy  logloss  rounds  seconds"),
        "{text}"
    );
    assert!(
        text.contains("accuracy ") && text.contains("out-of-fold predictions"),
        "{text}"
    );
}

#[test]
fn bad_models_and_parameters_exit_2_naming_them() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("t.csv");
    std::fs::write(&path, synthetic_obesity_csv(70, 3)).expect("write");
    let run = |args: &[&str]| {
        let out = tabtune(tmp.path())
            .arg("train")
            .args(args)
            .arg("--input")
            .arg(&path)
            .output()
            .expect("runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(&["--model", "xgboost"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("unknown model `xgboost`"), "{err}");
    let (code, err) = run(&["--model", "gbdt-leafwise", "--param", "learning_rate=-0.1"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("`learning_rate` = -0.1"), "{err}");
    let (code, err) = run(&["--model", "gbdt-leafwise", "--param", "num_leaves=1"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("`num_leaves`"), "{err}");
    let (code, err) = run(&["--model", "gbdt-leafwise", "--param", "rounds"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("expected NAME=VALUE"), "{err}");
    // 70 rows, 10 per class: 11 folds leave some class with fewer rows than folds.
    let (code, err) = run(&["--model", "gbdt-leafwise", "--folds", "11"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("has only 10 rows"), "{err}");
    // Every tree family takes --device: a bad one, or a GPU backend this build lacks, exits 2
    // naming it.
    let (code, err) = run(&["--model", "gbdt-depthwise", "--device", "tpu"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("tpu") && err.contains("cuda:N"), "{err}");
    for (device, feature, built) in [
        ("cuda:0", "cuda", cfg!(feature = "cuda")),
        ("wgpu", "wgpu", cfg!(feature = "wgpu")),
    ] {
        if !built {
            let (code, err) = run(&["--model", "gbdt-oblivious", "--device", device]);
            assert_eq!(code, Some(2), "{err}");
            assert!(
                err.contains(&format!("--device {device}")) && err.contains(feature),
                "{err}"
            );
        }
    }
    if !cfg!(feature = "cuda") {
        for model in ["decision-tree", "random-forest"] {
            let (code, err) = run(&["--model", model, "--device", "cuda:0", "--folds", "2"]);
            assert_eq!(code, Some(2), "{model}: {err}");
            assert!(
                err.contains("--device cuda:0") && err.contains("cuda"),
                "{err}"
            );
        }
    }
    let (code, err) = run(&[
        "--model",
        "decision-tree",
        "--device",
        "cpu",
        "--folds",
        "2",
    ]);
    assert_eq!(code, Some(0), "the decision tree on the CPU: {err}");
}

#[test]
fn neural_train_writes_each_folds_best_epoch_checkpoint() {
    use tabtune_models::nn::NeuralModel;

    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("t.csv");
    std::fs::write(&path, synthetic_obesity_csv(210, 4)).expect("write");
    let v = json_of(
        tabtune(tmp.path())
            .args([
                "train", "--json", "--model", "mlp", "--device", "cpu", "--folds", "2",
            ])
            .args(["--param", "epochs=6", "--param", "width=16"])
            .args(["--param", "embedding=piecewise", "--param", "n_bins=8"])
            .args(["--param", "norm=batch", "--input"])
            .arg(&path),
        0,
    );
    let dir = tmp.path().join("checkpoints/obesity-mlp-cv");
    assert_eq!(v["checkpoints"], "checkpoints/obesity-mlp-cv");
    let folds = v["fold_results"].as_array().expect("folds");
    assert_eq!(folds.len(), 2);
    for (i, fold) in folds.iter().enumerate() {
        let file = dir.join(format!("fold-0-{i}.safetensors"));
        let (model, info) = NeuralModel::load_checkpoint(&file).expect("a whole checkpoint");
        // The fold's best epoch, with the validation scores the report shows for it.
        assert_eq!(Some(info.epoch as u64), fold["rounds"].as_u64(), "fold {i}");
        assert_eq!(model.best_epoch, info.epoch);
        let logloss = fold["logloss"].as_f64().expect("logloss");
        assert!((info.valid_logloss.expect("validated") - logloss).abs() < 1e-12);
        assert_eq!(model.params.n_bins, 8);
        assert!(model.tensors.iter().any(|t| t.name == "embedding.edges"));
    }
    let names: Vec<_> = std::fs::read_dir(&dir)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names.len(),
        2,
        "only the checkpoints, no temporary files: {names:?}"
    );

    // A checkpoint that cannot be written (its folder is a file) fails the run, naming it.
    std::fs::write(tmp.path().join("blocked"), "a file").expect("write");
    let out = tabtune(tmp.path())
        .args(["train", "--model", "mlp", "--device", "cpu", "--folds", "2"])
        .args(["--param", "epochs=2", "--param", "width=8"])
        .args(["--checkpoint-dir", "blocked", "--input"])
        .arg(&path)
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("checkpoint") && err.contains("blocked"),
        "{err}"
    );

    // Bad embedding settings exit 2, naming the parameter.
    for (param, named) in [
        ("n_bins=0", "`n_bins`"),
        ("n_bins=lots", "`n_bins` = lots"),
        ("embedding=spline", "`embedding` = spline"),
        ("norm=group", "`norm` = group"),
    ] {
        let out = tabtune(tmp.path())
            .args([
                "train", "--model", "tabm", "--device", "cpu", "--param", param,
            ])
            .arg("--input")
            .arg(&path)
            .output()
            .expect("runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{param}: {err}");
        assert!(err.contains(named), "{param}: {err}");
    }
}
