//! `export_onnx`: a bundle as one ONNX model (preprocessing, model, decision layer, outputs and
//! metadata), and writing it.

use std::collections::BTreeMap;
use std::path::Path;

use sha2::{Digest, Sha256};
use tabtune_models::AnyModel;
use tabtune_models::bundle::{BUNDLE_FILE, Bundle};
use tabtune_models::ensemble::STACK_CLIP;

use crate::error::{OnnxError, Part, Result};
use crate::graph::{Builder, ML};
use crate::neural::neural;
use crate::preprocess::{self, BATCH, InputColumn};
use crate::proto::{Attr, DataType, Dim, Model, ValueInfo};
use crate::trees::{Who, forest, gbdt};

/// The ai.onnx opset of the graph (ONNX 1.12; onnxruntime ≥ 1.12, Triton ≥ 22.07).
pub const OPSET: i64 = 17;
/// The ai.onnx.ml opset of the graph (tree ensembles with double thresholds, label encoders).
pub const ML_OPSET: i64 = 3;
/// Output: the predicted class name per row, string `[N]`.
pub const CLASS_OUTPUT: &str = "class";
/// Output: the class probabilities per row, float `[N, n_classes]`, columns in class order.
pub const PROBABILITIES_OUTPUT: &str = "probabilities";
/// Protobuf's limit for one serialized message (a self-contained ONNX file).
const PROTOBUF_LIMIT: usize = i32::MAX as usize;

/// How to export.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OnnxOptions {
    /// The graph's name (and the Triton model's); default: the bundle's name.
    pub name: Option<String>,
    /// The sha256 of the bundle's `bundle.json`, recorded in the metadata; default: the sha256
    /// of `bundle.json` as `Bundle::save` writes it for this bundle's metadata (the same value
    /// for a bundle read back unmodified). [`export_onnx_dir`] reads the file itself.
    pub bundle_sha256: Option<String>,
}

/// What the exported model records about itself (also in the file's `metadata_props`).
#[derive(Clone, Debug, PartialEq)]
pub struct OnnxMetadata {
    /// The graph's name.
    pub name: String,
    /// The bundle's model family (`gbdt-leafwise`, `mlp`, `ensemble`, ...).
    pub family: String,
    /// The tabtune version that wrote the bundle.
    pub tabtune_version: String,
    /// The tabtune version that exported it.
    pub exporter_version: String,
    /// The git commit the bundle's tabtune was built from.
    pub git_commit: String,
    /// sha256 of the bundle's `bundle.json` (which holds the sha256 of every other file).
    pub bundle_sha256: String,
    /// Class names, in the order of the probability columns.
    pub classes: Vec<String>,
    /// The bundle's metrics (cross-validation accuracy, log loss, ...).
    pub metrics: BTreeMap<String, f64>,
    /// The graph inputs: the schema's feature columns, in schema order.
    pub inputs: Vec<InputColumn>,
    /// ai.onnx opset.
    pub opset: i64,
    /// ai.onnx.ml opset.
    pub ml_opset: i64,
}

/// An exported model: the serialized ONNX `ModelProto` and what it records.
#[derive(Clone, Debug, PartialEq)]
pub struct OnnxModel {
    /// The `.onnx` file's bytes.
    pub bytes: Vec<u8>,
    /// Its metadata.
    pub metadata: OnnxMetadata,
}

impl OnnxModel {
    /// Writes the model to `path` atomically (a temporary file renamed over `path` once it is
    /// complete; nothing is left behind on failure).
    pub fn write(&self, path: &Path) -> Result<()> {
        tabtune_features::io::write_bytes_atomic(path, &self.bytes)
            .map_err(|e| OnnxError::io(path, e))
    }
}

/// Reads the bundle at `dir` as `tabtune predict` does (every checksum verified: a modified
/// bundle is refused with the same error) and exports it, recording the sha256 of its
/// `bundle.json`.
pub fn export_onnx_dir(dir: &Path, options: &OnnxOptions) -> Result<OnnxModel> {
    let bundle = Bundle::load(dir)?;
    let meta_path = dir.join(BUNDLE_FILE);
    let sha =
        tabtune_features::io::sha256_file(&meta_path).map_err(|e| OnnxError::io(&meta_path, e))?;
    let options = OnnxOptions {
        bundle_sha256: Some(options.bundle_sha256.clone().unwrap_or(sha)),
        ..options.clone()
    };
    export_onnx(&bundle, &options)
}

/// The sha256 of `bundle.json` as `Bundle::save` writes it for this metadata (the manifest
/// sealed with its own checksum, keys in the canonical order).
fn meta_sha256(bundle: &Bundle) -> String {
    let mut meta = bundle.meta.clone();
    meta.manifest_sha256 = None;
    let mut value = serde_json::to_value(&meta).expect("metadata always serializes");
    tabtune_features::io::seal_manifest(&mut value);
    let json = serde_json::to_vec_pretty(&value).expect("metadata always serializes");
    Sha256::digest(&json)
        .iter()
        .fold(String::with_capacity(64), |mut s, b| {
            use std::fmt::Write as _;
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The whole bundle as one ONNX model: raw record columns in, [`CLASS_OUTPUT`] and
/// [`PROBABILITIES_OUTPUT`] out. A part that has no ONNX form is an
/// [`OnnxError::Unsupported`] naming the family or preprocessing step.
pub fn export_onnx(bundle: &Bundle, options: &OnnxOptions) -> Result<OnnxModel> {
    let classes = &bundle.meta.classes;
    if classes.len() < 2 {
        return Err(bundle_err(format!(
            "{} class(es); a classifier has at least 2",
            classes.len()
        )));
    }
    if bundle.preprocessor.labels.classes != *classes {
        return Err(bundle_err(
            "bundle.json's classes differ from the preprocessor's".into(),
        ));
    }
    if bundle.model.feature_names() != bundle.preprocessor.feature_names() {
        return Err(bundle_err(
            "the model's features do not match the preprocessor's output".into(),
        ));
    }
    let mut g = Builder::default();
    let (inputs, raw, features) = preprocess::build(&mut g, &bundle.preprocessor)?;
    let family = bundle.meta.family.as_str();
    let proba = model_proba(
        &mut g,
        &bundle.model,
        &raw,
        &features,
        family,
        None,
        classes.len(),
    )?;
    // The decision: the first most probable class (ArgMax keeps the first of equal values, as
    // tabtune's argmax does), taken on the double probabilities.
    let label = g.node(
        "ArgMax",
        &[&proba],
        vec![("axis", Attr::Int(1)), ("keepdims", Attr::Int(0))],
        "label",
    );
    let class = g.node_in(
        ML,
        "LabelEncoder",
        &[&label],
        vec![
            (
                "keys_int64s",
                Attr::Ints((0..classes.len() as i64).collect()),
            ),
            ("values_strings", Attr::Strings(classes.clone())),
            ("default_string", Attr::String(String::new())),
        ],
        "class_name",
    );
    let probabilities = g.cast(&proba, DataType::Float, "probabilities_float");
    g.output(
        &class,
        ValueInfo {
            name: CLASS_OUTPUT.into(),
            elem_type: DataType::String,
            shape: vec![Dim::Named(BATCH.into())],
            doc: "the most probable class".into(),
        },
    );
    g.output(
        &probabilities,
        ValueInfo {
            name: PROBABILITIES_OUTPUT.into(),
            elem_type: DataType::Float,
            shape: vec![Dim::Named(BATCH.into()), Dim::Fixed(classes.len() as i64)],
            doc: format!("class probabilities, in the order {}", classes.join(", ")),
        },
    );
    let name = options
        .name
        .clone()
        .unwrap_or_else(|| bundle.meta.name.clone());
    let metadata = OnnxMetadata {
        name: name.clone(),
        family: family.to_owned(),
        tabtune_version: bundle.meta.tabtune_version.clone(),
        exporter_version: env!("CARGO_PKG_VERSION").to_owned(),
        git_commit: bundle.meta.git_commit.clone(),
        bundle_sha256: options
            .bundle_sha256
            .clone()
            .unwrap_or_else(|| meta_sha256(bundle)),
        classes: classes.clone(),
        metrics: bundle.meta.metrics.clone(),
        inputs,
        opset: OPSET,
        ml_opset: ML_OPSET,
    };
    let doc = format!(
        "tabtune bundle `{}` ({family}): raw record columns in (numbers as double, categorical \
         columns as strings, each [N, 1]), `{CLASS_OUTPUT}` and `{PROBABILITIES_OUTPUT}` out",
        bundle.meta.name
    );
    let model = Model {
        opsets: vec![(String::new(), OPSET), (ML.to_owned(), ML_OPSET)],
        producer_name: "tabtune".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        domain: "ai.tabtune".into(),
        version: 1,
        doc: doc.clone(),
        graph: g.finish(&name, &doc),
        metadata: metadata_props(&metadata),
    };
    let bytes = model.encode();
    check_size(bytes.len(), PROTOBUF_LIMIT)?;
    Ok(OnnxModel { bytes, metadata })
}

fn bundle_err(reason: String) -> OnnxError {
    OnnxError::Unsupported {
        part: Part::Bundle,
        reason,
    }
}

/// Refuses an encoded model over `limit` bytes.
fn check_size(bytes: usize, limit: usize) -> Result<()> {
    if bytes > limit {
        return Err(OnnxError::TooLarge { bytes, limit });
    }
    Ok(())
}

/// The metadata as `metadata_props` (what onnxruntime's `custom_metadata_map` shows).
fn metadata_props(m: &OnnxMetadata) -> Vec<(String, String)> {
    let inputs: Vec<serde_json::Value> = m
        .inputs
        .iter()
        .map(|c| {
            serde_json::json!({
                "name": c.name,
                "type": if c.categorical { "string" } else { "double" },
            })
        })
        .collect();
    vec![
        ("name".into(), m.name.clone()),
        ("family".into(), m.family.clone()),
        ("tabtune_version".into(), m.tabtune_version.clone()),
        ("exporter_version".into(), m.exporter_version.clone()),
        ("git_commit".into(), m.git_commit.clone()),
        ("bundle_sha256".into(), m.bundle_sha256.clone()),
        (
            "classes".into(),
            serde_json::to_string(&m.classes).expect("strings serialize"),
        ),
        (
            "metrics".into(),
            serde_json::to_string(&m.metrics).expect("numbers serialize"),
        ),
        (
            "inputs".into(),
            serde_json::to_string(&inputs).expect("values serialize"),
        ),
        (
            "outputs".into(),
            format!("{CLASS_OUTPUT}: string [N]; {PROBABILITIES_OUTPUT}: float [N, classes]"),
        ),
    ]
}

/// The class probabilities (double `[N, n_classes]`) of any model on the float features.
fn model_proba(
    g: &mut Builder,
    model: &AnyModel,
    raw: &preprocess::RawInputs,
    features: &str,
    family: &str,
    member: Option<&str>,
    n_classes: usize,
) -> Result<String> {
    let who = Who { family, member };
    let (proba, classes) = match model {
        AnyModel::Gbdt(m) => (gbdt(g, m, features, &who)?, m.n_classes),
        AnyModel::Forest(m) => (forest(g, m, features, &who)?, m.n_classes),
        AnyModel::Neural(m) => (neural(g, m, features, &who)?, m.n_classes),
        AnyModel::Ensemble(e) => {
            if e.class_weights.len() != n_classes {
                return Err(who.err(format!(
                    "{} class weights for {n_classes} classes",
                    e.class_weights.len()
                )));
            }
            if let Some(w) = e
                .class_weights
                .iter()
                .chain(e.members.iter().map(|m| &m.weight))
                .find(|w| !(w.is_finite() && **w > 0.0))
            {
                return Err(who.err(format!("weight {w}, expected a finite number > 0")));
            }
            // Each group's probabilities: its members (each on its own preprocessing, if it
            // has one) averaged with their weights, renormalised within the group.
            let n_groups = e.n_groups();
            let mut groups: Vec<Option<String>> = vec![None; n_groups];
            let mut totals = vec![0.0; n_groups];
            for (i, m) in e.members.iter().enumerate() {
                let label = format!("member {i} ({})", m.label);
                let kind = member_family(&m.model);
                let own = match e.member_preprocessor(i) {
                    Some(pre) => Some(
                        preprocess::features(g, raw, pre)
                            .map_err(|err| who.err(format!("{label}'s preprocessing: {err}")))?,
                    ),
                    None => None,
                };
                let f = own.as_deref().unwrap_or(features);
                let p = model_proba(g, &m.model, raw, f, &kind, Some(&label), n_classes)?;
                let weight = g.f64(m.weight);
                let weighted = g.mul(&p, &weight, &format!("member{i}.weighted"));
                let gi = e.member_group(i);
                totals[gi] += m.weight;
                groups[gi] = Some(match groups[gi].take() {
                    None => weighted,
                    Some(s) => g.add(&s, &weighted, "group.sum"),
                });
            }
            let sum = match e.stack() {
                None => groups
                    .into_iter()
                    .flatten()
                    .reduce(|a, b| g.add(&a, &b, "ensemble.sum")),
                Some(stack) => {
                    // The stacker: softmax([log max(p_g / total_g, clip) ...] · W + b).
                    let mut logs = Vec::with_capacity(n_groups);
                    for (gi, (sum, total)) in groups.into_iter().zip(&totals).enumerate() {
                        let sum =
                            sum.ok_or_else(|| who.err(format!("group {gi} has no members")))?;
                        let scale = g.f64(1.0 / total);
                        let mean = g.mul(&sum, &scale, &format!("group{gi}.mean"));
                        let clip = g.f64(STACK_CLIP);
                        let clipped = g.binary("Max", &mean, &clip, &format!("group{gi}.clipped"));
                        logs.push(g.unary("Log", &clipped, &format!("group{gi}.log")));
                    }
                    if stack.weights.len() != n_groups * n_classes * n_classes
                        || stack.bias.len() != n_classes
                    {
                        return Err(who.err(format!(
                            "a stacker of {} weights and {} biases for {n_groups} groups of {n_classes} classes",
                            stack.weights.len(),
                            stack.bias.len()
                        )));
                    }
                    let x = g.concat(&logs, 1, "stack.inputs");
                    let w = g.f64_tensor(
                        "stack.weights",
                        &[n_groups * n_classes, n_classes],
                        stack.weights.clone(),
                    );
                    let b = g.f64_tensor("stack.bias", &[n_classes], stack.bias.clone());
                    let logits = g.matmul(&x, &w, "stack.matmul");
                    let logits = g.add(&logits, &b, "stack.logits");
                    Some(g.softmax(&logits, 1, "stack.proba"))
                }
            };
            let sum = sum.ok_or_else(|| who.err("the ensemble has no members"))?;
            // Times the class weights, renormalised where the sum is positive.
            let weights = g.f64_tensor("class_weights", &[n_classes], e.class_weights.clone());
            let weighted = g.mul(&sum, &weights, "ensemble.class_weighted");
            let total = g.reduce_sum(&weighted, &[1], true, "ensemble.total");
            let zero = g.f64(0.0);
            let positive = g.binary("Greater", &total, &zero, "ensemble.positive");
            let normalised = g.div(&weighted, &total, "ensemble.normalised");
            (
                g.where_(&positive, &normalised, &weighted, "ensemble_proba"),
                n_classes,
            )
        }
    };
    if classes != n_classes {
        return Err(who.err(format!(
            "the model predicts {classes} classes, the bundle has {n_classes}"
        )));
    }
    Ok(proba)
}

/// An ensemble member's family, from its model (members carry no family name of their own).
fn member_family(model: &AnyModel) -> String {
    match model {
        AnyModel::Gbdt(m) => format!("gbdt-{}", growth_name(m.params.growth)),
        AnyModel::Forest(m) => match m.params.kind {
            tabtune_models::forest::ForestKind::RandomForest => "random-forest".into(),
            tabtune_models::forest::ForestKind::DecisionTree => "decision-tree".into(),
        },
        AnyModel::Neural(m) => match m.params.kind {
            tabtune_models::nn::NetKind::Mlp => "mlp".into(),
            tabtune_models::nn::NetKind::Tabm => "tabm".into(),
        },
        AnyModel::Ensemble(_) => "ensemble".into(),
    }
}

fn growth_name(growth: tabtune_models::gbdt::Growth) -> &'static str {
    match growth {
        tabtune_models::gbdt::Growth::LeafWise => "leafwise",
        tabtune_models::gbdt::Growth::DepthWise => "depthwise",
        tabtune_models::gbdt::Growth::Oblivious => "oblivious",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exported_models_cross_threads() {
        fn check<T: Send + Sync>() {}
        check::<OnnxModel>();
        check::<OnnxError>();
    }

    #[test]
    fn models_over_the_protobuf_limit_are_refused_with_their_size() {
        assert!(check_size(100, 100).is_ok());
        let e = check_size(101, 100).expect_err("too large");
        assert!(matches!(
            e,
            OnnxError::TooLarge {
                bytes: 101,
                limit: 100
            }
        ));
        assert!(e.to_string().contains("101 bytes"), "{e}");
        assert!(e.is_bad_input());
    }

    #[test]
    fn errors_name_the_family_member_or_step() {
        let e = OnnxError::family("mlp", Some("member 2 (nn#3)"), "tensor `x` is missing");
        assert_eq!(
            e.to_string(),
            "model family `mlp` (ensemble member 2 (nn#3)) cannot be expressed in ONNX: tensor \
             `x` is missing"
        );
        let e = OnnxError::step(
            "engineered feature BMI",
            "features.inputs.height is not set",
        );
        assert_eq!(
            e.to_string(),
            "preprocessing step `engineered feature BMI` cannot be expressed in ONNX: \
             features.inputs.height is not set"
        );
    }
}
