//! Exported models run by onnxruntime (the `onnx` venv, `scripts/requirements-onnx.txt`) and
//! compared with tabtune's own predictions (`tabtune_infer::Predictor` on the same bundle):
//! probabilities within 1e-5 and the same class on every row, for every family, the decision
//! layer's ensemble, unseen categories and missing values; bad bundles; the Triton layout.

mod bad_input;
mod families;
mod inputs;
mod triton;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use tabtune_features::config::Encoding;
use tabtune_features::io::{LoadOptions, load_table};
use tabtune_features::{
    ColumnValues, Config, Preprocessor, PreprocessorSpec, Table, TargetPresence,
};
use tabtune_infer::load_bundle;
use tabtune_models::AnyModel;
use tabtune_models::bundle::{Bundle, BundleMeta, TrainingData};
use tabtune_onnx::{OnnxOptions, export_onnx_dir};
use tabtune_train::{Family, ModelParams};

/// The tolerance on every probability.
pub(crate) const TOLERANCE: f64 = 1e-5;

/// The default config with every feature step on (`tabtune_test::engineered_config`) and the
/// given categorical encoding.
pub(crate) fn config(encode: Encoding) -> Config {
    let mut c = Config::from_toml(
        &tabtune_test::engineered_config_text(),
        std::path::Path::new("obesity-engineered.toml"),
    )
    .expect("the engineered config loads");
    c.transforms.encode = encode;
    c
}

/// `n` synthetic rows (seed `seed`) written to `dir/name.csv` and loaded.
pub(crate) fn synthetic(dir: &Path, name: &str, n: usize, seed: u64, config: &Config) -> Table {
    let path = dir.join(format!("{name}.csv"));
    std::fs::write(&path, tabtune_test::synthetic_obesity_csv(n, seed)).expect("write");
    load_table(&path, &config.schema, &LoadOptions::default())
        .expect("synthetic rows are valid")
        .table
}

/// Parameters of `family` with `overrides`.
pub(crate) fn params(family: Family, overrides: &[(&str, &str)]) -> ModelParams {
    let overrides: Vec<(String, String)> = overrides
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    family.params(&overrides).expect("valid parameters")
}

/// Fits the preprocessor and a model of `params` on `table`.
pub(crate) fn fit(
    config: &Config,
    table: &Table,
    params: &ModelParams,
) -> (Preprocessor, AnyModel) {
    tabtune_train::fit_all(table, &PreprocessorSpec::from_config(config), params)
        .expect("the model trains")
}

/// Saves `model` with `pre` as bundle `dir/name` (family `family`) and returns its folder.
pub(crate) fn save_bundle(
    dir: &Path,
    name: &str,
    family: &str,
    pre: Preprocessor,
    model: AnyModel,
) -> PathBuf {
    let data = TrainingData {
        file: "train.csv".into(),
        sha256: "0".repeat(64),
        rows: pre.fitted_on.rows,
    };
    let mut meta = BundleMeta::new(name, family, &pre, serde_json::json!({}), data);
    meta.metrics.insert("cv_accuracy_mean".into(), 0.875);
    meta.metrics.insert("cv_logloss_mean".into(), 0.41);
    let out = dir.join(name);
    Bundle {
        meta,
        model,
        preprocessor: pre,
    }
    .save(&out)
    .expect("the bundle saves");
    out
}

/// Writes the schema's feature columns of `table` as CSV (numbers in Rust's shortest
/// round-trip form, NaN as `NaN`).
pub(crate) fn write_csv(table: &Table, path: &Path) {
    let mut out = String::new();
    let names: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
    out.push_str(&names.join(","));
    out.push('\n');
    for r in 0..table.n_rows() {
        let cells: Vec<String> = table
            .columns
            .iter()
            .map(|c| match &c.values {
                ColumnValues::Numeric(v) => format!("{}", v[r]),
                ColumnValues::Categorical { levels, codes } => levels[codes[r] as usize].clone(),
            })
            .collect();
        let _ = writeln!(out, "{}", cells.join(","));
    }
    std::fs::write(path, out).expect("write csv");
}

/// Sets categorical column `column` to `level` on the rows `rows`.
pub(crate) fn set_level(
    table: &mut Table,
    column: &str,
    level: &str,
    rows: impl Iterator<Item = usize>,
) {
    let col = table
        .columns
        .iter_mut()
        .find(|c| c.name == column)
        .expect("a schema column");
    let ColumnValues::Categorical { levels, codes } = &mut col.values else {
        panic!("{column} is categorical");
    };
    let code = levels
        .iter()
        .position(|l| l == level)
        .expect("a schema level") as u32;
    for r in rows {
        codes[r] = code;
    }
}

/// What onnxruntime predicted: per row the class and the probabilities; and what it read off
/// the model (metadata, inputs, outputs; the parsed Triton config when one was given).
pub(crate) struct OrtRun {
    pub rows: Vec<(String, Vec<f64>)>,
    pub meta: serde_json::Value,
}

/// Runs `model` on `input` (CSV with a column per graph input) in onnxruntime.
pub(crate) fn ort(model: &Path, input: &Path, triton_config: Option<&Path>) -> OrtRun {
    let python = tabtune_test::python_env("onnx");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/ort_run.py");
    let dir = tempfile::tempdir().expect("tempdir");
    let output = dir.path().join("out.csv");
    let meta = dir.path().join("meta.json");
    let mut cmd = Command::new(&python);
    cmd.arg(&script)
        .arg(model)
        .arg(input)
        .arg(&output)
        .arg(&meta);
    if let Some(c) = triton_config {
        cmd.arg(c);
    }
    let out = cmd.output().expect("python runs");
    assert!(
        out.status.success(),
        "onnxruntime failed on {}:\n{}",
        model.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&output).expect("the output csv");
    let rows = text
        .lines()
        .map(|line| {
            let mut cells = line.split(',');
            let class = cells.next().expect("a class").to_owned();
            let p = cells
                .map(|c| c.parse::<f64>().expect("a probability"))
                .collect();
            (class, p)
        })
        .collect();
    let meta = serde_json::from_slice(&std::fs::read(&meta).expect("meta")).expect("json");
    OrtRun { rows, meta }
}

/// Exports the bundle at `bundle` into `dir/<bundle name>.onnx`.
pub(crate) fn export(bundle: &Path, dir: &Path) -> PathBuf {
    let model = export_onnx_dir(bundle, &OnnxOptions::default()).expect("the bundle exports");
    let path = dir.join(format!(
        "{}.onnx",
        bundle.file_name().expect("a folder").to_string_lossy()
    ));
    model.write(&path).expect("written");
    path
}

/// The largest difference between onnxruntime's and tabtune's probabilities of `table`
/// (written to `csv` for onnxruntime), after checking that every row gets the same class and
/// every probability is within [`TOLERANCE`].
pub(crate) fn compare_table(bundle: &Path, onnx: &Path, table: &Table, csv: &Path) -> f64 {
    let predictor = load_bundle(bundle).expect("the bundle loads");
    let want = predictor.predict(table).expect("tabtune predicts");
    let got = ort(onnx, csv, None).rows;
    let classes = predictor.classes();
    let name = bundle.file_name().expect("a folder").to_string_lossy();
    assert_eq!(
        got.len(),
        table.n_rows(),
        "{name}: one output row per input row"
    );
    let mut worst = 0.0f64;
    for (i, (class, p)) in got.iter().enumerate() {
        let row = want.proba.row(i);
        assert_eq!(p.len(), row.len(), "{name}: row {i} probabilities");
        for (a, b) in p.iter().zip(row.iter()) {
            worst = worst.max((a - b).abs());
        }
        let want_class = &classes[want.labels[i] as usize];
        assert_eq!(
            class, want_class,
            "{name}: row {i}: onnxruntime says {class}, tabtune {want_class} ({p:?} vs {row})"
        );
    }
    assert!(
        worst <= TOLERANCE,
        "{name}: onnxruntime's probabilities differ from tabtune's by up to {worst:e}"
    );
    eprintln!(
        "{name}: {} rows from {}, classes agree, max |p_onnx - p_tabtune| = {worst:.2e}",
        table.n_rows(),
        csv.file_name().expect("a file").to_string_lossy()
    );
    worst
}

/// [`compare_table`] on a data file, loaded and validated as `tabtune predict` loads it.
pub(crate) fn compare_file(bundle: &Path, onnx: &Path, csv: &Path) -> f64 {
    let predictor = load_bundle(bundle).expect("the bundle loads");
    let options = LoadOptions {
        target: TargetPresence::Optional,
        ..LoadOptions::default()
    };
    let table = predictor.load(csv, &options).expect("valid rows").table;
    compare_table(bundle, onnx, &table, csv)
}

/// Test rows for a bundle: synthetic rows with levels training never saw (`CALC` and `CAEC`
/// = `Always`, which the synthetic training rows never hold) on some of them, written as CSV.
pub(crate) fn test_rows(dir: &Path, config: &Config) -> (Table, PathBuf) {
    let mut table = synthetic(dir, "test-source", 300, 11, config);
    set_level(&mut table, "CALC", "Always", (0..300).step_by(7));
    set_level(&mut table, "CAEC", "Always", (0..300).step_by(11));
    let path = dir.join("test-rows.csv");
    write_csv(&table, &path);
    (table, path)
}

/// Exports `bundle` and compares it with tabtune on the synthetic test rows and, where
/// `TABTUNE_DATA_DIR` has it (always under `CI=true`), on every row of `s4e2_test.csv`.
pub(crate) fn check_bundle(dir: &Path, bundle: &Path, config: &Config) -> f64 {
    let onnx = export(bundle, dir);
    let (table, csv) = test_rows(dir, config);
    let mut worst = compare_table(bundle, &onnx, &table, &csv);
    if let Some(real) = tabtune_test::real_data("s4e2_test.csv") {
        worst = worst.max(compare_file(bundle, &onnx, &real));
    }
    worst
}
