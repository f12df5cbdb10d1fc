//! Exports a bundle folder to ONNX (and optionally a Triton model repository) with this crate
//! alone, as `tabtune export --model DIR --format onnx|triton` does:
//!
//! ```sh
//! cargo run --release -p tabtune-onnx --example export -- BUNDLE_DIR OUT.onnx [--triton REPO]
//! ```
//!
//! Prints the model's metadata as one JSON object. Exit code 2 for a bundle that is modified
//! or has a part without an ONNX form (nothing is written then), 1 for other failures.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use tabtune_onnx::{OnnxError, OnnxOptions, TritonOptions, export_onnx_dir, write_triton};

fn run(bundle: &Path, out: &Path, triton: Option<&Path>) -> Result<(), OnnxError> {
    let model = export_onnx_dir(bundle, &OnnxOptions::default())?;
    model.write(out)?;
    let folder = match triton {
        Some(repo) => Some(write_triton(&model, repo, &TritonOptions::default())?),
        None => None,
    };
    let m = &model.metadata;
    println!(
        "{}",
        serde_json::json!({
            "onnx": out,
            "bytes": model.bytes.len(),
            "triton": folder,
            "name": m.name,
            "family": m.family,
            "classes": m.classes,
            "bundle_sha256": m.bundle_sha256,
            "opset": m.opset,
            "ml_opset": m.ml_opset,
        })
    );
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (bundle, out, triton) = match args.as_slice() {
        [b, o] => (PathBuf::from(b), PathBuf::from(o), None),
        [b, o, flag, r] if flag == "--triton" => {
            (PathBuf::from(b), PathBuf::from(o), Some(PathBuf::from(r)))
        }
        _ => {
            eprintln!("usage: export BUNDLE_DIR OUT.onnx [--triton REPO]");
            return ExitCode::from(2);
        }
    };
    match run(&bundle, &out, triton.as_deref()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(if e.is_bad_input() { 2 } else { 1 })
        }
    }
}
