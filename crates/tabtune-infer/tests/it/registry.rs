//! The registry with the real bundle loader (what `tabtune registry register` and the pipeline
//! pass to it): a truncated model claiming a high score, or a bundle whose tree loops, is never
//! registered and never becomes champion; the champion keeps serving.

use std::path::Path;
use std::sync::Arc;

use serde_json::Value;
use tabtune_features::io::{seal_manifest, sha256_file};
use tabtune_infer::load_bundle;
use tabtune_models::bundle::Bundle;
use tabtune_track::registry::{
    CHAMPION, Direction, LoadCheck, LocalRegistry, ModelRef, Registry, register_and_maybe_promote,
};

use crate::trained;

/// Sets `cv_accuracy_mean` of the bundle in `dir` (saved again: checksums and manifest right).
fn with_accuracy(dir: &Path, accuracy: f64) {
    let mut b = Bundle::load(dir).expect("loads");
    b.meta.metrics.insert("cv_accuracy_mean".into(), accuracy);
    b.save(dir).expect("saves");
}

/// Copies `from` to `to` with `model.json` replaced by `text`, resealed.
fn with_model(from: &Path, to: &Path, text: &[u8]) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("list") {
        let e = e.expect("entry");
        std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
    }
    std::fs::write(to.join("model.json"), text).expect("write");
    let path = to.join("bundle.json");
    let mut meta: Value =
        serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
    meta["files"]["model.json"] = sha256_file(&to.join("model.json")).expect("sha").into();
    meta["metrics"]["cv_accuracy_mean"] = 0.999.into();
    seal_manifest(&mut meta);
    std::fs::write(&path, meta.to_string()).expect("write");
}

#[test]
fn bundles_that_do_not_load_never_become_champion() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_, _, _) = trained(tmp.path(), "good", 6);
    let good = tmp.path().join("good");
    with_accuracy(&good, 0.8);
    let check: LoadCheck =
        Arc::new(|dir: &Path| load_bundle(dir).map(|_| ()).map_err(|e| e.to_string()));
    let registry = LocalRegistry::new(tmp.path().join("reg")).with_load_check(check);
    let promote = |bundle: &Path| {
        register_and_maybe_promote(
            &registry,
            "obesity",
            bundle,
            "cv_accuracy_mean",
            Direction::Maximize,
        )
    };
    promote(&good).expect("the good bundle registers");

    // Truncated model.json, checksums recomputed, claiming 0.999.
    let text = std::fs::read(good.join("model.json")).expect("read");
    let truncated = tmp.path().join("truncated");
    with_model(&good, &truncated, &text[..text.len() / 2]);
    let err = promote(&truncated).expect_err("does not load").to_string();
    assert!(
        err.contains("does not load") && err.contains("model.json"),
        "{err}"
    );

    // A tree whose node points to itself, claiming 0.999.
    let mut v: Value = serde_json::from_slice(&text).expect("json");
    let nodes = v["trees"][0][0]["nodes"].as_array_mut().expect("nodes");
    let i = nodes
        .iter()
        .position(|n| n["kind"] == "split")
        .expect("a split");
    nodes[i]["right"] = i.into();
    let looped = tmp.path().join("looped");
    with_model(&good, &looped, v.to_string().as_bytes());
    let err = promote(&looped).expect_err("does not load").to_string();
    assert!(err.contains("a second time"), "{err}");

    let model = registry.model("obesity").expect("model");
    assert_eq!(model.versions.len(), 1, "nothing else was registered");
    assert_eq!(model.aliases[CHAMPION], 1);
    let dir = registry
        .resolve(
            &ModelRef::parse("models:/obesity@champion")
                .expect("p")
                .expect("s"),
        )
        .expect("resolves");
    load_bundle(&dir).expect("the champion loads");
}
