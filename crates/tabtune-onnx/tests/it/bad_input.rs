//! Bundles that cannot be exported: modified ones (refused as `tabtune predict` refuses them)
//! and ones with a part that has no ONNX form (a typed error naming the family or the
//! preprocessing step); in every case nothing is written.

use std::path::{Path, PathBuf};

use tabtune_features::config::Encoding;
use tabtune_models::AnyModel;
use tabtune_models::bundle::Bundle;
use tabtune_models::ensemble::{EnsembleMember, EnsembleModel};
use tabtune_models::gbdt::Node;
use tabtune_onnx::{
    OnnxError, OnnxOptions, Part, TritonOptions, export_onnx, export_onnx_dir, write_triton,
};
use tabtune_train::Family;

use crate::{config, fit, params, save_bundle, synthetic};

/// A small leaf-wise bundle under `dir/name`.
fn small_bundle(dir: &Path, name: &str, family: Family) -> PathBuf {
    let config = config(Encoding::OneHot);
    let table = synthetic(dir, "train", 210, 3, &config);
    let overrides: &[(&str, &str)] = match family {
        Family::Mlp => &[("epochs", "2"), ("width", "8")],
        _ => &[("rounds", "5"), ("num_leaves", "7")],
    };
    let (pre, model) = fit(&config, &table, &params(family, overrides));
    save_bundle(dir, name, family.name(), pre, model)
}

/// What the CLI will do: export, then write `out` and a Triton folder under `repo`.
fn export_and_write(bundle: &Path, out: &Path, repo: &Path) -> Result<(), OnnxError> {
    let model = export_onnx_dir(bundle, &OnnxOptions::default())?;
    model.write(out)?;
    write_triton(&model, repo, &TritonOptions::default())?;
    Ok(())
}

/// Runs [`export_and_write`], expecting an error, and checks that nothing was written.
fn refused(dir: &Path, bundle: &Path) -> OnnxError {
    let out = dir.join("refused.onnx");
    let repo = dir.join("repo");
    let e = export_and_write(bundle, &out, &repo).expect_err("the export fails");
    assert!(!out.exists(), "no model file after a failed export");
    assert!(!repo.exists(), "no Triton folder after a failed export");
    assert!(e.is_bad_input(), "{e}");
    e
}

#[test]
fn a_modified_bundle_is_refused_as_predict_refuses_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    for file in ["preprocessor.json", "model.json", "bundle.json"] {
        let bundle = small_bundle(
            dir.path(),
            &format!("tampered-{file}"),
            Family::GbdtLeafwise,
        );
        let path = bundle.join(file);
        let mut text = std::fs::read_to_string(&path).expect("read");
        text = if file == "bundle.json" {
            // Claim another checksum for the model file.
            text.replacen("\"model.json\": \"", "\"model.json\": \"0", 1)
        } else {
            text.replacen('1', "2", 1)
        };
        std::fs::write(&path, text).expect("write");
        let predict = tabtune_infer::load_bundle(&bundle).expect_err("predict refuses it");
        let e = refused(dir.path(), &bundle);
        assert!(matches!(e, OnnxError::Bundle(_)), "{e:?}");
        assert_eq!(
            e.to_string(),
            predict.to_string(),
            "the same message as predict"
        );
        assert!(e.to_string().contains("refusing it"), "{e}");
    }
}

#[test]
fn a_preprocessing_step_without_its_inputs_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = small_bundle(dir.path(), "source", Family::GbdtLeafwise);
    let mut bundle = Bundle::load(&source).expect("loads");
    // The engineered features lose the column holding the height.
    bundle.preprocessor.inputs.height = None;
    let path = dir.path().join("no-height");
    bundle.save(&path).expect("saves");
    let e = refused(dir.path(), &path);
    match &e {
        OnnxError::Unsupported {
            part: Part::Step { step },
            reason,
        } => {
            assert_eq!(step, "engineered feature BMI");
            assert_eq!(reason, "features.inputs.height is not set");
        }
        other => panic!("expected an unsupported step, got {other:?}"),
    }
    assert_eq!(
        e.to_string(),
        "preprocessing step `engineered feature BMI` cannot be expressed in ONNX: \
         features.inputs.height is not set"
    );
    // tabtune cannot compute it either.
    let predictor = tabtune_infer::load_bundle(&path).expect("loads");
    let table = synthetic(dir.path(), "rows", 20, 4, &config(Encoding::OneHot));
    let p = predictor
        .predict(&table)
        .expect_err("no height")
        .to_string();
    assert!(p.contains("features.inputs.height is not set"), "{p}");
}

/// A tree of the first round whose root points past the end of its nodes.
fn break_a_tree(model: &mut AnyModel) {
    let AnyModel::Gbdt(m) = model else {
        panic!("a boosted model")
    };
    let tree = &mut m.trees[0][2];
    let n = tree.nodes.len() as u32;
    match &mut tree.nodes[0] {
        Node::Split { right, .. } | Node::Category { right, .. } => *right = n + 5,
        Node::Leaf { .. } => panic!("the root splits"),
    }
}

#[test]
fn a_tree_that_is_not_a_tree_is_named_with_its_family_round_and_node() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = small_bundle(dir.path(), "source", Family::GbdtLeafwise);
    let mut bundle = Bundle::load(&source).expect("loads");
    break_a_tree(&mut bundle.model);
    let path = dir.path().join("broken-tree");
    bundle.save(&path).expect("saves");
    // Saved, the loader refuses it first, as `predict` does, naming the node.
    let e = refused(dir.path(), &path);
    assert!(
        matches!(&e, OnnxError::Bundle(_)) && e.to_string().contains("node 0 has child"),
        "{e:?}"
    );
    // In memory, the exporter's own check names the family, round and node.
    let e = export_onnx(&bundle, &OnnxOptions::default()).expect_err("a broken tree");
    let OnnxError::Unsupported {
        part: Part::Family { family, member },
        reason,
    } = &e
    else {
        panic!("expected an unsupported family, got {e:?}");
    };
    assert_eq!(
        (family.as_str(), member.as_deref()),
        ("gbdt-leafwise", None)
    );
    assert!(
        reason.starts_with("tree 2 of round 0 node 0 points to node"),
        "{reason}"
    );
    assert!(
        e.to_string()
            .starts_with("model family `gbdt-leafwise` cannot be expressed"),
        "{e}"
    );
}

#[test]
fn an_ensemble_member_that_cannot_be_expressed_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good =
        Bundle::load(&small_bundle(dir.path(), "good", Family::GbdtLeafwise)).expect("loads");
    let mut broken = good.model.clone();
    break_a_tree(&mut broken);
    let ensemble = EnsembleModel::new(
        vec![
            EnsembleMember {
                model: good.model.clone(),
                weight: 0.6,
                label: "obesity-gbdt#4".into(),
            },
            EnsembleMember {
                model: broken,
                weight: 0.4,
                label: "obesity-gbdt#9".into(),
            },
        ],
        vec![1.0; 7],
    )
    .expect("valid weights");
    let bundle = Bundle {
        model: AnyModel::Ensemble(ensemble),
        ..good
    };
    let e = export_onnx(&bundle, &OnnxOptions::default()).expect_err("member 1 is broken");
    assert!(
        e.to_string().starts_with(
            "model family `gbdt-leafwise` (ensemble member 1 (obesity-gbdt#9)) cannot be \
             expressed in ONNX: tree 2 of round 0"
        ),
        "{e}"
    );
}

#[test]
fn a_neural_model_with_a_misshapen_tensor_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut bundle = Bundle::load(&small_bundle(dir.path(), "nn", Family::Mlp)).expect("loads");
    let AnyModel::Neural(m) = &mut bundle.model else {
        panic!("a neural model")
    };
    let t = m
        .tensors
        .iter_mut()
        .find(|t| t.name == "layers.0.weight")
        .expect("the first layer");
    t.dims = [t.dims[1], t.dims[0]];
    let e = export_onnx(&bundle, &OnnxOptions::default()).expect_err("misshapen");
    assert!(
        e.to_string().starts_with(
            "model family `mlp` cannot be expressed in ONNX: tensor `layers.0.weight` is"
        ),
        "{e}"
    );
    assert!(e.is_bad_input());
}

#[test]
fn classes_that_disagree_with_the_preprocessor_are_a_bundle_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut bundle =
        Bundle::load(&small_bundle(dir.path(), "classes", Family::GbdtLeafwise)).expect("loads");
    bundle.meta.classes.swap(0, 1);
    let e = export_onnx(&bundle, &OnnxOptions::default()).expect_err("classes differ");
    assert!(
        matches!(
            &e,
            OnnxError::Unsupported {
                part: Part::Bundle,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "the bundle cannot be expressed in ONNX: bundle.json's classes differ from the \
         preprocessor's"
    );
}

#[test]
fn unwritable_destinations_are_io_errors_naming_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bundle = small_bundle(dir.path(), "ok", Family::GbdtLeafwise);
    let model = export_onnx_dir(&bundle, &OnnxOptions::default()).expect("exports");
    // A file where a folder is needed.
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").expect("write");
    let e = model
        .write(&file.join("model.onnx"))
        .expect_err("not a folder");
    assert!(
        matches!(e, OnnxError::Io { .. }) && !e.is_bad_input(),
        "{e:?}"
    );
    assert!(e.to_string().contains("a-file"), "{e}");
    let e = write_triton(&model, &file, &TritonOptions::default()).expect_err("not a folder");
    assert!(matches!(e, OnnxError::Io { .. }), "{e:?}");
    assert!(e.to_string().contains("a-file"), "{e}");
    assert_eq!(
        std::fs::read_to_string(&file).expect("read"),
        "x",
        "left as it was"
    );
}
