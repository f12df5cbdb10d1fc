//! Crafted bundles: real bundles of every family, built here, then damaged on purpose: each
//! structural flaw named in issue 17 by hand, and a seeded fuzz over thousands of random
//! structural corruptions. A damaged bundle must be refused with a message naming the file, or,
//! when what was changed leaves a valid bundle, load and predict proper probabilities; never a
//! panic, a hang, or an accepted bundle that breaks the invariants checked here independently.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tabtune_features::io::{LoadOptions, load_table, seal_manifest, sha256_file};
use tabtune_features::rng::SplitMix64;
use tabtune_features::{Config, PreprocessorSpec, Table};
use tabtune_models::AnyModel;
use tabtune_models::bundle::{Bundle, BundleMeta, TrainingData};
use tabtune_models::ensemble::{EnsembleMember, EnsembleModel};
use tabtune_models::forest::{ClassNode, ForestKind, ForestParams};
use tabtune_models::gbdt::{GbdtParams, Growth, Labelled, Node};
use tabtune_models::nn::{NamedTensor, NetKind, NetShape, NeuralModel, NeuralParams};

/// The families the fuzz corrupts, each saved as a bundle folder under `root`.
const FAMILIES: [&str; 9] = [
    "gbdt-leafwise",
    "gbdt-depthwise-ordinal",
    "gbdt-oblivious-ordinal",
    "random-forest",
    "decision-tree",
    "mlp",
    "tabm",
    "ensemble",
    "gbdt-binary",
];

/// A config with one-hot (default) or ordinal categorical encoding.
fn config(dir: &Path, ordinal: bool) -> Config {
    let text = tabtune_test::engineered_config_text();
    let text = if ordinal {
        text.replace("encode = \"one-hot\"", "encode = \"ordinal\"")
    } else {
        text
    };
    let path = dir.join(if ordinal {
        "ordinal.toml"
    } else {
        "onehot.toml"
    });
    std::fs::write(&path, text).expect("write config");
    Config::load(&path).expect("valid config")
}

fn table(dir: &Path, config: &Config, rows: usize, seed: u64) -> Table {
    let path = dir.join(format!("data-{rows}-{seed}.csv"));
    std::fs::write(&path, tabtune_test::synthetic_obesity_csv(rows, seed)).expect("write");
    load_table(&path, &config.schema, &LoadOptions::default())
        .expect("valid")
        .table
}

fn meta(name: &str, family: &str, pre: &tabtune_features::Preprocessor) -> BundleMeta {
    let mut meta = BundleMeta::new(
        name,
        family,
        pre,
        serde_json::json!({}),
        TrainingData {
            file: "train.csv".into(),
            sha256: "0".repeat(64),
            rows: 210,
        },
    );
    meta.metrics.insert("cv_accuracy_mean".into(), 0.5);
    meta
}

fn neural(kind: NetKind, names: &[String], n_classes: usize) -> AnyModel {
    let mut params = NeuralParams::new(kind);
    params.width = 16;
    params.depth = 2;
    let shape = NetShape::new(&params, names.len(), n_classes);
    let values = shape.init_member(16, params.frequency_scale, 5);
    let tensors = shape
        .layout()
        .into_iter()
        .zip(values)
        .map(|(s, values)| NamedTensor {
            name: s.name,
            dims: s.dims,
            values,
        })
        .collect();
    AnyModel::Neural(NeuralModel {
        params,
        feature_names: names.to_vec(),
        n_classes,
        best_epoch: 1,
        tensors,
    })
}

/// Builds and saves one bundle of `family` under `root/family`; returns the folder.
fn build(root: &Path, family: &str) -> PathBuf {
    let ordinal = family.contains("ordinal");
    let config = config(root, ordinal);
    let train = table(root, &config, 210, 3);
    let pre = PreprocessorSpec::from_config(&config)
        .fit(&train)
        .expect("fits");
    let m = pre.transform(&train).expect("transforms");
    let mut y = m.target.clone().expect("labels");
    let mut classes = 7;
    let mut pre = pre;
    if family == "gbdt-binary" {
        // Two classes: the schema's target keeps its first two levels.
        y = y.iter().map(|&l| u32::from(l >= 3)).collect();
        classes = 2;
        let mut schema = pre.schema.clone();
        for c in &mut schema.columns {
            if c.name == schema.target
                && let tabtune_features::ColumnKind::Categorical { levels } = &mut c.kind
            {
                levels.truncate(2);
            }
        }
        pre.schema = schema;
        pre.labels.classes.truncate(2);
    }
    let train_set = Labelled {
        x: m.values.view(),
        y: &y,
    };
    let gbdt = |growth: Growth| {
        let mut p = GbdtParams::new(growth);
        p.rounds = 4;
        p.max_depth = if growth == Growth::LeafWise { 0 } else { 3 };
        p.num_leaves = 6;
        p.categorical.clone_from(&m.categorical);
        AnyModel::Gbdt(p.fit(&m.names, classes, train_set, None).expect("fits"))
    };
    let forest = |kind: ForestKind| {
        let mut p = ForestParams::new(kind);
        p.n_trees = if kind == ForestKind::DecisionTree {
            1
        } else {
            4
        };
        p.max_depth = 4;
        AnyModel::Forest(
            tabtune_models::forest::ForestModel::fit(
                &p.check().expect("valid"),
                &m.names,
                classes,
                train_set,
            )
            .expect("fits"),
        )
    };
    let model = match family {
        "gbdt-leafwise" | "gbdt-binary" => gbdt(Growth::LeafWise),
        "gbdt-depthwise-ordinal" => gbdt(Growth::DepthWise),
        "gbdt-oblivious-ordinal" => gbdt(Growth::Oblivious),
        "random-forest" => forest(ForestKind::RandomForest),
        "decision-tree" => forest(ForestKind::DecisionTree),
        "mlp" => neural(NetKind::Mlp, &m.names, classes),
        "tabm" => neural(NetKind::Tabm, &m.names, classes),
        "ensemble" => AnyModel::Ensemble(
            EnsembleModel::new(
                vec![
                    EnsembleMember {
                        model: gbdt(Growth::LeafWise),
                        weight: 0.5,
                        label: "gbdt".into(),
                    },
                    EnsembleMember {
                        model: forest(ForestKind::RandomForest),
                        weight: 0.25,
                        label: "forest".into(),
                    },
                    EnsembleMember {
                        model: neural(NetKind::Mlp, &m.names, classes),
                        weight: 0.25,
                        label: "mlp".into(),
                    },
                ],
                vec![1.0; classes],
            )
            .expect("valid ensemble"),
        ),
        other => panic!("unknown family {other}"),
    };
    let dir = root.join(family);
    Bundle {
        meta: meta(family, family, &pre),
        model,
        preprocessor: pre,
    }
    .save(&dir)
    .expect("saves");
    Bundle::load(&dir).expect("the intact bundle loads");
    dir
}

/// Recomputes every listed file's sha256 and the manifest checksum, so that only the structural
/// checks stand between a corrupted file and prediction.
fn reseal(dir: &Path) {
    let path = dir.join("bundle.json");
    let Ok(mut meta) = serde_json::from_slice::<Value>(&std::fs::read(&path).expect("read")) else {
        return;
    };
    if let Some(Value::Object(files)) = meta.get_mut("files") {
        for (name, sha) in files.iter_mut() {
            if let Ok(actual) = sha256_file(&dir.join(name)) {
                *sha = Value::String(actual);
            }
        }
    }
    seal_manifest(&mut meta);
    std::fs::write(&path, serde_json::to_vec_pretty(&meta).expect("json")).expect("write");
}

fn copy_dir(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("list") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
    }
}

/// Edits `file` (JSON) of the bundle in `dir` with `edit`, then reseals the bundle.
fn edit_json(dir: &Path, file: &str, edit: impl FnOnce(&mut Value)) {
    let path = dir.join(file);
    let mut value: Value =
        serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
    edit(&mut value);
    std::fs::write(&path, serde_json::to_vec(&value).expect("json")).expect("write");
    reseal(dir);
}

/// Probabilities of the synthetic rows through the loaded bundle, or the error.
fn predict(bundle: &Bundle, rows: &Table) -> Result<ndarray::Array2<f64>, String> {
    let m = bundle
        .preprocessor
        .transform(rows)
        .map_err(|e| e.to_string())?;
    bundle
        .model
        .predict_proba(m.values.view())
        .map_err(|e| e.to_string())
}

/// Whether nodes `0..n` (children from `children`) form a tree from the root 0, walked
/// independently of the crate's checks.
fn tree_ok(n: usize, children: impl Fn(usize) -> Option<(usize, usize)>) -> bool {
    if n == 0 {
        return false;
    }
    let mut visits = vec![0u32; n];
    let mut stack = vec![0usize];
    while let Some(i) = stack.pop() {
        if i >= n {
            return false;
        }
        visits[i] += 1;
        if visits[i] > 1 {
            return false;
        }
        if let Some((l, r)) = children(i) {
            stack.push(l);
            stack.push(r);
        }
    }
    true
}

/// Independent checks of an accepted bundle: consistent classes and features, every tree a
/// proper tree (walked with a step budget), probabilities of the right shape that are shares.
fn invariants(bundle: &Bundle, proba: Option<&ndarray::Array2<f64>>) -> Result<(), String> {
    let n_classes = bundle.meta.classes.len();
    if n_classes < 2 {
        return Err(format!("{n_classes} classes accepted"));
    }
    if bundle.preprocessor.labels.classes != bundle.meta.classes {
        return Err("the preprocessor's classes differ from bundle.json's".into());
    }
    if bundle.model.feature_names() != bundle.preprocessor.feature_names() {
        return Err("model and preprocessor features differ".into());
    }
    let mut models = vec![&bundle.model];
    if let AnyModel::Ensemble(e) = &bundle.model {
        models = e.members.iter().map(|m| &m.model).collect();
    }
    for model in models {
        match model {
            AnyModel::Gbdt(g) => {
                let width = g.feature_names.len()
                    + g.target_stats
                        .iter()
                        .map(|s| s.classes.len())
                        .sum::<usize>();
                for t in g.trees.iter().flatten() {
                    let ok = tree_ok(t.nodes.len(), |i| match &t.nodes[i] {
                        Node::Split {
                            left,
                            right,
                            feature,
                            ..
                        }
                        | Node::Category {
                            left,
                            right,
                            feature,
                            ..
                        } => {
                            if *feature as usize >= width {
                                Some((usize::MAX, usize::MAX))
                            } else {
                                Some((*left as usize, *right as usize))
                            }
                        }
                        Node::Leaf { .. } => None,
                    });
                    if !ok {
                        return Err("a GBDT tree with a bad index or a cycle".into());
                    }
                }
                if g.n_classes != n_classes {
                    return Err("GBDT classes differ".into());
                }
            }
            AnyModel::Forest(f) => {
                for t in &f.trees {
                    let ok = tree_ok(t.nodes.len(), |i| match &t.nodes[i] {
                        ClassNode::Split {
                            left,
                            right,
                            feature,
                            ..
                        } => {
                            if *feature as usize >= f.feature_names.len() {
                                Some((usize::MAX, usize::MAX))
                            } else {
                                Some((*left as usize, *right as usize))
                            }
                        }
                        ClassNode::Leaf { .. } => None,
                    });
                    if !ok {
                        return Err("a forest tree with a bad index or a cycle".into());
                    }
                }
                if f.n_classes != n_classes || f.trees.is_empty() {
                    return Err("forest classes differ or no trees".into());
                }
            }
            AnyModel::Neural(n) => {
                if n.n_classes != n_classes {
                    return Err("neural classes differ".into());
                }
                let layout = n.shape().layout();
                if layout.len() != n.tensors.len()
                    || layout
                        .iter()
                        .zip(&n.tensors)
                        .any(|(s, t)| s.dims != t.dims || t.values.len() != s.dims[0] * s.dims[1])
                {
                    return Err("neural tensors do not match the layout".into());
                }
            }
            AnyModel::Ensemble(_) => return Err("a nested ensemble was accepted".into()),
        }
    }
    if let Some(p) = proba {
        if p.ncols() != n_classes {
            return Err(format!(
                "{} probability columns for {n_classes} classes",
                p.ncols()
            ));
        }
        for row in p.rows() {
            let sum: f64 = row.sum();
            if row
                .iter()
                .any(|v| !v.is_finite() || *v < -1e-9 || *v > 1.0 + 1e-9)
                || (sum - 1.0).abs() > 1e-6
            {
                return Err(format!("a row of probabilities {row:?}"));
            }
        }
    }
    Ok(())
}

/// Every base bundle, built once per test process.
struct Bases {
    _tmp: tempfile::TempDir,
    dirs: Vec<PathBuf>,
    rows: Table,
    root: PathBuf,
}

fn bases() -> Bases {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().to_owned();
    let dirs = FAMILIES.iter().map(|f| build(&root, f)).collect();
    let config = config(&root, false);
    let rows = table(&root, &config, 60, 11);
    Bases {
        _tmp: tmp,
        dirs,
        rows,
        root,
    }
}

type Edit = Box<dyn Fn(&mut Value)>;

fn load_err(dir: &Path) -> String {
    match Bundle::load(dir) {
        Ok(_) => panic!("{} was accepted", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn every_flaw_of_issue_17_is_refused_by_name() {
    let b = bases();
    let case = b.root.join("case");
    let leafwise = &b.dirs[0];
    let first_split = |v: &mut Value| -> Option<usize> {
        v["trees"][0][0]["nodes"]
            .as_array()?
            .iter()
            .position(|n| n["kind"] == "split" || n["kind"] == "category")
    };
    let model_cases: Vec<(&str, Edit, &str)> = vec![
        (
            "feature index 9999",
            Box::new(move |v: &mut Value| {
                let i = first_split(v).expect("a split");
                v["trees"][0][0]["nodes"][i]["feature"] = 9999.into();
            }),
            "splits on feature 9999",
        ),
        (
            "child out of range",
            Box::new(move |v: &mut Value| {
                let i = first_split(v).expect("a split");
                v["trees"][0][0]["nodes"][i]["right"] = 100_000.into();
            }),
            "has child 100000",
        ),
        (
            "self loop",
            Box::new(move |v: &mut Value| {
                let i = first_split(v).expect("a split");
                v["trees"][0][0]["nodes"][i]["left"] = i.into();
            }),
            "a second time",
        ),
        (
            "no nodes",
            Box::new(|v: &mut Value| v["trees"][0][0]["nodes"] = serde_json::json!([])),
            "has no nodes",
        ),
        (
            "one class",
            Box::new(|v: &mut Value| {
                v["n_classes"] = 1.into();
            }),
            "1 class(es)",
        ),
    ];
    for (what, edit, want) in model_cases {
        copy_dir(leafwise, &case);
        edit_json(&case, "model.json", edit);
        let m = load_err(&case);
        assert!(
            m.contains("model.json") && m.contains(want),
            "{what}: {m} (wanted {want})"
        );
    }
    // `classes: []` in bundle.json, and classes that disagree with the model.
    copy_dir(leafwise, &case);
    edit_json(&case, "bundle.json", |v| {
        v["classes"] = serde_json::json!([]);
    });
    let m = load_err(&case);
    assert!(
        m.contains("bundle.json") && m.contains("0 class(es)"),
        "{m}"
    );
    copy_dir(&b.dirs[8], &case);
    edit_json(&case, "model.json", |v| {
        v["n_classes"] = 3.into();
        v["init"] = serde_json::json!([0.0, 0.0, 0.0]);
        let round = v["trees"][0][0].clone();
        for r in v["trees"].as_array_mut().expect("rounds") {
            *r = serde_json::json!([round.clone(), round.clone(), round.clone()]);
        }
    });
    let m = load_err(&case);
    assert!(
        m.contains("predicts 3 classes") && m.contains("lists 2"),
        "{m}"
    );
    // A tree in a forest and a member of an ensemble: the same checks.
    copy_dir(&b.dirs[3], &case);
    edit_json(&case, "model.json", |v| {
        v["trees"][1]["nodes"][0]["left"] = 0.into();
    });
    let m = load_err(&case);
    assert!(m.contains("tree 1") && m.contains("a second time"), "{m}");
    copy_dir(&b.dirs[7], &case);
    edit_json(&case, "member-1.json", |v| {
        v["trees"][0]["nodes"][0]["feature"] = 9999.into();
    });
    let m = load_err(&case);
    assert!(
        m.contains("member-1.json") && m.contains("feature 9999"),
        "{m}"
    );
    // An ensemble member that is itself an ensemble naming the model file: no recursion.
    copy_dir(&b.dirs[7], &case);
    let model = std::fs::read(case.join("model.json")).expect("read");
    std::fs::write(case.join("member-0.json"), &model).expect("write");
    reseal(&case);
    let m = load_err(&case);
    assert!(m.contains("itself an ensemble"), "{m}");
    copy_dir(&b.dirs[7], &case);
    edit_json(&case, "model.json", |v| {
        v["members"][0]["file"] = "model.json".into();
    });
    let m = load_err(&case);
    assert!(m.contains("expected `member-0.json`"), "{m}");
    // Neural: a tensor of the wrong shape, a weights file elsewhere, a huge declared width.
    copy_dir(&b.dirs[5], &case);
    edit_json(&case, "model.json", |v| v["params"]["width"] = 17.into());
    let m = load_err(&case);
    assert!(
        m.contains("model.safetensors") && m.contains("expected F32"),
        "{m}"
    );
    copy_dir(&b.dirs[5], &case);
    edit_json(&case, "model.json", |v| {
        v["weights"] = "../../etc/passwd".into();
    });
    let m = load_err(&case);
    assert!(m.contains("expected `model.safetensors`"), "{m}");
    copy_dir(&b.dirs[5], &case);
    edit_json(&case, "model.json", |v| {
        v["params"]["depth"] = 1_000_000_000.into();
    });
    let m = load_err(&case);
    // Refused by the parameter check (documented maximum 64) before any tensor is read.
    assert!(
        m.contains("`depth` = 1000000000") && m.contains("1..=64"),
        "{m}"
    );
    // The preprocessor: a step on a column that is not in the schema.
    copy_dir(leafwise, &case);
    edit_json(&case, "preprocessor.json", |v| {
        v["numeric"][0]["column"] = "Nope".into();
    });
    let m = load_err(&case);
    assert!(
        m.contains("preprocessor.json") && m.contains("numeric steps"),
        "{m}"
    );
}

#[test]
fn an_edited_manifest_is_refused_and_an_old_one_loads() {
    let b = bases();
    let case = b.root.join("case");
    copy_dir(&b.dirs[0], &case);
    // Steering promotion: a better CV accuracy typed into bundle.json.
    let path = case.join("bundle.json");
    let text = std::fs::read_to_string(&path).expect("read");
    let edited = text.replacen(
        "\"cv_accuracy_mean\": 0.5",
        "\"cv_accuracy_mean\": 0.999",
        1,
    );
    assert_ne!(text, edited);
    std::fs::write(&path, edited).expect("write");
    let m = load_err(&case);
    assert!(
        m.contains("bundle.json") && m.contains("manifest_sha256") && m.contains("edited"),
        "{m}"
    );
    // A bundle written before manifests had a checksum: still loads (a warning is logged).
    copy_dir(&b.dirs[0], &case);
    let mut meta: Value = serde_json::from_str(&text).expect("json");
    meta.as_object_mut()
        .expect("object")
        .remove("manifest_sha256");
    std::fs::write(&path, serde_json::to_vec_pretty(&meta).expect("json")).expect("write");
    let old = Bundle::load(&case).expect("an old bundle loads");
    assert_eq!(old.meta.manifest_sha256, None);
    let fresh = Bundle::load(&b.dirs[0]).expect("loads");
    assert!(fresh.meta.manifest_sha256.is_some());
    // A listed file that is a symbolic link is refused, even with the right checksum.
    #[cfg(unix)]
    {
        let outside = b.root.join("outside.json");
        std::fs::copy(case.join("preprocessor.json"), &outside).expect("copy");
        std::fs::remove_file(case.join("preprocessor.json")).expect("rm");
        std::os::unix::fs::symlink(&outside, case.join("preprocessor.json")).expect("link");
        let m = load_err(&case);
        assert!(
            m.contains("preprocessor.json") && m.contains("symbolic link"),
            "{m}"
        );
    }
}

#[test]
fn saving_never_replaces_what_is_not_a_bundle() {
    let b = bases();
    let bundle = Bundle::load(&b.dirs[0]).expect("loads");
    // A folder with other content (`--output ~`) is left alone.
    let home = b.root.join("home");
    std::fs::create_dir_all(home.join("docs")).expect("mkdir");
    std::fs::write(home.join("docs/thesis.tex"), "years of work").expect("write");
    let m = bundle.save(&home).expect_err("not a bundle").to_string();
    assert!(m.contains("not a tabtune bundle"), "{m}");
    assert!(home.join("docs/thesis.tex").is_file());
    // A file is left alone.
    let file = b.root.join("notes.txt");
    std::fs::write(&file, "keep").expect("write");
    let m = bundle.save(&file).expect_err("a file").to_string();
    assert!(m.contains("not a folder"), "{m}");
    assert_eq!(std::fs::read_to_string(&file).expect("read"), "keep");
    // A link to a bundle folder: the folder is replaced, the link stays.
    #[cfg(unix)]
    {
        let target = b.root.join("real-bundle");
        bundle.save(&target).expect("saves");
        let link = b.root.join("latest");
        std::os::unix::fs::symlink(&target, &link).expect("link");
        bundle.save(&link).expect("saves through the link");
        assert!(
            std::fs::symlink_metadata(&link)
                .expect("meta")
                .file_type()
                .is_symlink()
        );
        Bundle::load(&link).expect("loads through the link");
    }
    // An empty folder is fine.
    let empty = b.root.join("empty");
    std::fs::create_dir_all(&empty).expect("mkdir");
    bundle.save(&empty).expect("saves into an empty folder");
}

// --- the fuzz ---------------------------------------------------------------------------

/// A JSON path: object keys and array indices.
#[derive(Clone, Debug)]
enum Step {
    Key(String),
    Index(usize),
}

fn paths(v: &Value, here: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    out.push(here.clone());
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                here.push(Step::Key(k.clone()));
                paths(child, here, out);
                here.pop();
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                here.push(Step::Index(i));
                paths(child, here, out);
                here.pop();
            }
        }
        _ => {}
    }
}

fn at<'a>(v: &'a mut Value, path: &[Step]) -> Option<&'a mut Value> {
    let mut v = v;
    for s in path {
        v = match s {
            Step::Key(k) => v.get_mut(k)?,
            Step::Index(i) => v.get_mut(*i)?,
        };
    }
    Some(v)
}

/// One random structural corruption of `v`; returns what it did.
fn mutate(v: &mut Value, rng: &mut SplitMix64) -> String {
    let mut all = Vec::new();
    paths(v, &mut Vec::new(), &mut all);
    // Prefer the fields prediction indexes with: child and feature indices, counts, lists.
    let keys = [
        "left",
        "right",
        "feature",
        "n_classes",
        "classes",
        "nodes",
        "init",
        "trees",
        "members",
        "file",
        "weights",
        "depth",
        "width",
        "k",
        "class_weights",
        "levels",
        "counts",
        "seen",
        "numeric",
        "categorical",
        "output",
        "keep",
        "target",
        "columns",
        "feature_names",
        "left_values",
        "tensors",
        "weight",
        "value",
        "proba",
        "prior",
        "edges",
        "std",
    ];
    let interesting: Vec<&Vec<Step>> = all
        .iter()
        .filter(|p| matches!(p.last(), Some(Step::Key(k)) if keys.contains(&k.as_str())))
        .collect();
    let path = if !interesting.is_empty() && rng.below(4) != 0 {
        interesting[rng.below(interesting.len())].clone()
    } else {
        all[rng.below(all.len())].clone()
    };
    // Sibling index of a node (for self loops): the last Index step before `left`/`right`.
    let own_index = path.iter().rev().find_map(|s| match s {
        Step::Index(i) => Some(*i),
        Step::Key(_) => None,
    });
    let Some(target) = at(v, &path) else {
        return "nothing".into();
    };
    let choice = rng.below(14);
    let what = format!("{path:?} #{choice}");
    match choice {
        0 => *target = Value::from(own_index.unwrap_or(0)),
        1 => *target = Value::from(9999),
        2 => *target = Value::from(u32::MAX),
        3 => *target = Value::from(-1),
        4 => *target = Value::from(0),
        5 => *target = serde_json::json!([]),
        6 => *target = Value::Null,
        7 => *target = Value::from("x"),
        8 => *target = Value::from(1e308),
        9 => {
            if let Value::Array(items) = target
                && !items.is_empty()
            {
                let n = rng.below(items.len());
                items.truncate(n);
            } else {
                *target = Value::from(1);
            }
        }
        10 => {
            if let Value::Array(items) = target
                && !items.is_empty()
            {
                let i = rng.below(items.len());
                let copy = items[i].clone();
                items.push(copy);
            } else {
                *target = Value::from(2);
            }
        }
        11 => {
            if let Value::Array(items) = target
                && items.len() > 1
            {
                let (i, j) = (rng.below(items.len()), rng.below(items.len()));
                items.swap(i, j);
            } else {
                *target = Value::from(own_index.map_or(1, |i| i + 1));
            }
        }
        12 => {
            if let Value::Object(map) = target
                && !map.is_empty()
            {
                let key = map
                    .keys()
                    .nth(rng.below(map.len()))
                    .cloned()
                    .unwrap_or_default();
                map.remove(&key);
            } else {
                *target = serde_json::json!({});
            }
        }
        _ => {
            if let Some(n) = target.as_f64() {
                *target = Value::from(n * 1e6 + 1.0);
            } else {
                *target = Value::from(7);
            }
        }
    }
    what
}

/// What happened to one case.
enum Outcome {
    Refused(String),
    Accepted,
    Broken(String),
}

fn run_case(base: &Path, case: &Path, rows: &Table, seed: u64) -> (String, Outcome) {
    let mut rng = SplitMix64::new(seed);
    copy_dir(base, case);
    let files: Vec<String> = {
        let mut f: Vec<String> = std::fs::read_dir(case)
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        f.sort();
        f
    };
    let file = files[rng.below(files.len())].clone();
    let mut what = format!("{file}: ");
    let path = case.join(&file);
    if file.ends_with(".safetensors") {
        // Damage the weights: a byte of the header or data, or a truncated file.
        let mut bytes = std::fs::read(&path).expect("read");
        match rng.below(3) {
            0 => {
                let n = rng.below(bytes.len());
                bytes.truncate(n);
                what.push_str(&format!("truncated to {n}"));
            }
            _ => {
                let header = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
                let i = if rng.below(2) == 0 {
                    8 + rng.below(header.min(bytes.len() - 8).max(1))
                } else {
                    rng.below(bytes.len())
                };
                bytes[i] = rng.below(256) as u8;
                what.push_str(&format!("byte {i}"));
            }
        }
        std::fs::write(&path, bytes).expect("write");
    } else {
        let Ok(mut value) = serde_json::from_slice::<Value>(&std::fs::read(&path).expect("read"))
        else {
            return (what, Outcome::Broken("base file is not JSON".into()));
        };
        for _ in 0..=rng.below(3) {
            what.push_str(&mutate(&mut value, &mut rng));
            what.push(' ');
        }
        std::fs::write(&path, serde_json::to_vec(&value).expect("json")).expect("write");
    }
    // Most cases are resealed so that only the structural checks stand in the way; some are
    // not, and the checksums must catch them.
    if rng.below(10) != 0 {
        reseal(case);
    }
    let outcome = match Bundle::load(case) {
        Err(e) => {
            let m = e.to_string();
            if m.is_empty() || m.len() > 20_000 {
                Outcome::Broken(format!("a refusal message of {} bytes", m.len()))
            } else {
                Outcome::Refused(m)
            }
        }
        Ok(bundle) => {
            let proba = predict(&bundle, rows);
            match invariants(&bundle, proba.as_ref().ok()) {
                Ok(()) => Outcome::Accepted,
                Err(e) => Outcome::Broken(format!("accepted but invalid: {e}")),
            }
        }
    };
    (what, outcome)
}

/// Seeded: `TABTUNE_FUZZ_SEED` and `TABTUNE_FUZZ_CASES` (default 3000) replay or widen it.
#[test]
fn fuzzed_bundles_never_panic_hang_or_load_invalid() {
    let seed: u64 = std::env::var("TABTUNE_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(17);
    let cases: u64 = std::env::var("TABTUNE_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3000);
    let b = bases();
    let (tx, rx) = mpsc::channel::<(u64, String, Result<Outcome, String>)>();
    let dirs = b.dirs.clone();
    let rows = b.rows.clone();
    let case = b.root.join("fuzz");
    let worker = std::thread::spawn(move || {
        for i in 0..cases {
            let case_seed = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ i;
            let base = &dirs[(i as usize) % dirs.len()];
            let mut what = String::new();
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let (w, o) = run_case(base, &case, &rows, case_seed);
                what = w;
                o
            }))
            .map_err(|p| {
                p.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default()
            });
            if tx.send((i, what, result)).is_err() {
                return;
            }
        }
    });
    let started = Instant::now();
    let (mut refused, mut accepted) = (0usize, 0usize);
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut broken = Vec::new();
    for _ in 0..cases {
        // A case that takes this long hangs (a case takes milliseconds).
        let Ok((i, what, result)) = rx.recv_timeout(Duration::from_mins(1)) else {
            panic!(
                "a case hung (no answer in 60 s) after {} cases",
                refused + accepted
            );
        };
        match result {
            Ok(Outcome::Refused(m)) => {
                refused += 1;
                let kind = [
                    "does not match",
                    "manifest_sha256",
                    "not valid JSON",
                    "invalid:",
                    "invalid model",
                    "safetensors",
                    "tensor",
                    "preprocessor",
                ]
                .iter()
                .find(|k| m.contains(*k))
                .map_or("other", |k| k);
                *reasons.entry(kind.to_owned()).or_default() += 1;
            }
            Ok(Outcome::Accepted) => accepted += 1,
            Ok(Outcome::Broken(e)) => broken.push(format!("case {i} ({what}): {e}")),
            Err(panic) => broken.push(format!("case {i} ({what}): PANIC {panic}")),
        }
    }
    worker.join().expect("the worker finishes");
    eprintln!(
        "fuzz: seed {seed}, {cases} cases in {:.1} s: {refused} refused {reasons:?}, {accepted} \
         accepted (valid after the change), {} broken",
        started.elapsed().as_secs_f64(),
        broken.len()
    );
    assert!(broken.is_empty(), "{}", broken.join("\n"));
    assert!(
        refused > cases as usize / 2,
        "most corruptions must be refused"
    );
}
