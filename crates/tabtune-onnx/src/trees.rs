//! Tree families as ai.onnx.ml `TreeEnsembleRegressor` (opset 3): gradient boosting in all three
//! growth styles (raw scores per class, then softmax or the logistic function) and decision
//! trees / random forests (leaf class probabilities, averaged).
//!
//! Exactness: the ensemble reads double input, so onnxruntime compares in double and sums the
//! leaves in double (`TreeEnsembleCommon<double, double, float>`); every threshold and leaf
//! value is an f32 of the model stored as a double and the features are the same f32 values as
//! tabtune's, so every row takes the same path. Only the summed scores are rounded to float
//! on the way out.
//!
//! Missing values (NaN) follow the learned direction: `nodes_missing_value_tracks_true` is the
//! node's `missing_left` (the true branch of `BRANCH_LEQ` is the left child).
//!
//! Category-set splits (`x ∈ S` goes left): opset 3 has no set-membership mode (ai.onnx.ml 5's
//! `TreeEnsemble` has, but needs onnxruntime ≥ 1.20). So every distinct (feature, set) becomes
//! one indicator column computed before the ensemble: 0 for a code in the set, 1 for another
//! code, NaN for a missing or unknown code (NaN or negative: the learned direction), split at
//! 0.5. CatBoost-style ordered target statistics (oblivious trees) become their columns through
//! a lookup of the level code (the statistics of all training rows; unseen codes: the prior).

use std::collections::HashMap;

use tabtune_models::forest::{ClassNode, ForestModel};
use tabtune_models::gbdt::{GbdtModel, Node, TargetStats};

use crate::error::{OnnxError, Result};
use crate::graph::{Builder, ML};
use crate::proto::{Attr, DataType, Tensor, TensorData};

/// Who a model is, for error messages.
pub(crate) struct Who<'a> {
    pub family: &'a str,
    pub member: Option<&'a str>,
}

impl Who<'_> {
    pub(crate) fn err(&self, reason: impl Into<String>) -> OnnxError {
        OnnxError::family(self.family, self.member, reason)
    }
}

/// The attribute arrays of one `TreeEnsembleRegressor`.
#[derive(Default)]
struct Ensemble {
    tree_ids: Vec<i64>,
    node_ids: Vec<i64>,
    feature_ids: Vec<i64>,
    modes: Vec<String>,
    thresholds: Vec<f64>,
    true_ids: Vec<i64>,
    false_ids: Vec<i64>,
    missing_true: Vec<i64>,
    target_tree_ids: Vec<i64>,
    target_node_ids: Vec<i64>,
    target_ids: Vec<i64>,
    target_weights: Vec<f64>,
    n_trees: i64,
}

/// A split or leaf in the form the ensemble stores.
enum Step {
    /// `x[feature] <= threshold` goes to `left`.
    Split {
        feature: i64,
        threshold: f64,
        missing_left: bool,
        left: usize,
        right: usize,
    },
    /// `(target, weight)` pairs.
    Leaf(Vec<(i64, f64)>),
}

impl Ensemble {
    /// Adds one tree of `n_nodes` nodes (`step(i)` describes node `i`; node 0 is the root).
    /// Only the nodes reachable from the root are stored, numbered in visiting order; a child
    /// index out of range or a node reached twice (not a tree) is an error.
    fn add_tree(
        &mut self,
        n_nodes: usize,
        mut step: impl FnMut(usize) -> Result<Step>,
        name: &dyn Fn() -> String,
        who: &Who<'_>,
    ) -> Result<()> {
        if n_nodes == 0 {
            return Err(who.err(format!("{} has no nodes", name())));
        }
        let tree = self.n_trees;
        self.n_trees += 1;
        let mut id = vec![None::<i64>; n_nodes];
        let mut next_id = 0i64;
        let mut stack = vec![0usize];
        id[0] = Some(0);
        next_id += 1;
        while let Some(i) = stack.pop() {
            let node_id = id[i].expect("numbered before it is pushed");
            match step(i)? {
                Step::Split {
                    feature,
                    threshold,
                    missing_left,
                    left,
                    right,
                } => {
                    let mut child_id = |c: usize, next_id: &mut i64| -> Result<i64> {
                        if c >= n_nodes {
                            return Err(who.err(format!(
                                "{} node {i} points to node {c}, but the tree has {n_nodes} nodes",
                                name()
                            )));
                        }
                        if id[c].is_some() {
                            return Err(who.err(format!(
                                "{} node {c} is reached twice (the nodes do not form a tree)",
                                name()
                            )));
                        }
                        id[c] = Some(*next_id);
                        *next_id += 1;
                        Ok(id[c].expect("just set"))
                    };
                    let l = child_id(left, &mut next_id)?;
                    let r = child_id(right, &mut next_id)?;
                    stack.push(right);
                    stack.push(left);
                    self.push_node(tree, node_id, feature, "BRANCH_LEQ", threshold);
                    self.true_ids.push(l);
                    self.false_ids.push(r);
                    self.missing_true.push(i64::from(missing_left));
                }
                Step::Leaf(targets) => {
                    self.push_node(tree, node_id, 0, "LEAF", 0.0);
                    self.true_ids.push(0);
                    self.false_ids.push(0);
                    self.missing_true.push(0);
                    for (target, weight) in targets {
                        self.target_tree_ids.push(tree);
                        self.target_node_ids.push(node_id);
                        self.target_ids.push(target);
                        self.target_weights.push(weight);
                    }
                }
            }
        }
        Ok(())
    }

    fn push_node(&mut self, tree: i64, node: i64, feature: i64, mode: &str, threshold: f64) {
        self.tree_ids.push(tree);
        self.node_ids.push(node);
        self.feature_ids.push(feature);
        self.modes.push(mode.to_owned());
        self.thresholds.push(threshold);
    }

    /// The `TreeEnsembleRegressor` node on `x` (double `[N, F]`); float `[N, n_targets]` out.
    fn build(
        self,
        g: &mut Builder,
        x: &str,
        n_targets: usize,
        aggregate: &str,
        base: Option<Vec<f64>>,
        hint: &str,
    ) -> String {
        let tensor = |name: &str, v: Vec<f64>| {
            Attr::Tensor(Tensor {
                name: name.to_owned(),
                dims: vec![v.len() as i64],
                data: TensorData::Double(v),
            })
        };
        let mut attrs = vec![
            ("aggregate_function", Attr::String(aggregate.to_owned())),
            ("n_targets", Attr::Int(n_targets as i64)),
            ("post_transform", Attr::String("NONE".into())),
            ("nodes_treeids", Attr::Ints(self.tree_ids)),
            ("nodes_nodeids", Attr::Ints(self.node_ids)),
            ("nodes_featureids", Attr::Ints(self.feature_ids)),
            ("nodes_modes", Attr::Strings(self.modes)),
            (
                "nodes_values_as_tensor",
                tensor("nodes_values", self.thresholds),
            ),
            ("nodes_truenodeids", Attr::Ints(self.true_ids)),
            ("nodes_falsenodeids", Attr::Ints(self.false_ids)),
            (
                "nodes_missing_value_tracks_true",
                Attr::Ints(self.missing_true),
            ),
            ("target_treeids", Attr::Ints(self.target_tree_ids)),
            ("target_nodeids", Attr::Ints(self.target_node_ids)),
            ("target_ids", Attr::Ints(self.target_ids)),
            (
                "target_weights_as_tensor",
                tensor("target_weights", self.target_weights),
            ),
        ];
        if let Some(base) = base {
            attrs.push(("base_values_as_tensor", tensor("base_values", base)));
        }
        g.node_in(ML, "TreeEnsembleRegressor", &[x], attrs, hint)
    }
}

fn finite32(v: f32, who: &Who<'_>, what: &dyn Fn() -> String) -> Result<f64> {
    if v.is_finite() {
        Ok(f64::from(v))
    } else {
        Err(who.err(format!("{} is {v}, expected a finite number", what())))
    }
}

/// The category-set indicator columns of a boosted model: one per distinct (feature, set).
#[derive(Default)]
struct Indicators {
    /// (feature, set as f32 bits) -> column, counted after the model's own features.
    index: HashMap<(u32, Vec<u32>), usize>,
    /// In column order: (feature, set).
    columns: Vec<(u32, Vec<f32>)>,
}

impl Indicators {
    fn column(&mut self, feature: u32, set: &[f32]) -> usize {
        let key = (feature, set.iter().map(|v| v.to_bits()).collect());
        if let Some(&c) = self.index.get(&key) {
            return c;
        }
        let c = self.columns.len();
        self.columns.push((feature, set.to_vec()));
        self.index.insert(key, c);
        c
    }
}

/// Class probabilities (double `[N, n_classes]`) of a boosted model on `features` (float
/// `[N, n_features]`).
pub(crate) fn gbdt(
    g: &mut Builder,
    model: &GbdtModel,
    features: &str,
    who: &Who<'_>,
) -> Result<String> {
    let n_inputs = model.feature_names.len();
    let k = model.n_outputs();
    if model.n_classes < 2 {
        return Err(who.err(format!(
            "{} class(es); a classifier has at least 2",
            model.n_classes
        )));
    }
    if model.init.len() != k || model.trees.iter().any(|r| r.len() != k) {
        return Err(who.err(format!(
            "the trees and initial scores do not match {k} output(s) per round"
        )));
    }
    if let Some(v) = model.init.iter().find(|v| !v.is_finite()) {
        return Err(who.err(format!("initial score {v} is not finite")));
    }
    let mut extra = 0usize;
    for s in &model.target_stats {
        if s.feature >= n_inputs {
            return Err(who.err(format!(
                "target statistics of feature {} of {n_inputs}",
                s.feature
            )));
        }
        if s.counts.len() != s.levels.len() || s.prior.len() != s.classes.len() {
            return Err(who.err(format!(
                "target statistics of feature `{}` have {} levels but {} count rows",
                model.feature_names[s.feature],
                s.levels.len(),
                s.counts.len()
            )));
        }
        extra += s.classes.len();
    }
    let n_tree_features = n_inputs + extra;
    let mut indicators = Indicators::default();
    let mut ensemble = Ensemble::default();
    for (round, trees) in model.trees.iter().enumerate() {
        for (output, tree) in trees.iter().enumerate() {
            let name = || format!("tree {output} of round {round}");
            ensemble.add_tree(
                tree.nodes.len(),
                |i| {
                    let node_name = || format!("{} node {i}", name());
                    Ok(match &tree.nodes[i] {
                        Node::Leaf { value } => {
                            Step::Leaf(vec![(output as i64, finite32(*value, who, &node_name)?)])
                        }
                        Node::Split {
                            feature,
                            threshold,
                            missing_left,
                            left,
                            right,
                            ..
                        } => {
                            if *feature as usize >= n_tree_features {
                                return Err(who.err(format!(
                                    "{} splits feature {feature} of {n_tree_features}",
                                    node_name()
                                )));
                            }
                            if threshold.is_nan() {
                                return Err(who.err(format!("{} has a NaN threshold", node_name())));
                            }
                            Step::Split {
                                feature: i64::from(*feature),
                                threshold: f64::from(*threshold),
                                missing_left: *missing_left,
                                left: *left as usize,
                                right: *right as usize,
                            }
                        }
                        Node::Category {
                            feature,
                            left_values,
                            missing_left,
                            left,
                            right,
                            ..
                        } => {
                            if *feature as usize >= n_tree_features {
                                return Err(who.err(format!(
                                    "{} splits feature {feature} of {n_tree_features}",
                                    node_name()
                                )));
                            }
                            if left_values.iter().any(|v| v.is_nan()) {
                                return Err(
                                    who.err(format!("{} has NaN in its category set", node_name()))
                                );
                            }
                            let column = indicators.column(*feature, left_values);
                            Step::Split {
                                feature: (n_tree_features + column) as i64,
                                threshold: 0.5,
                                missing_left: *missing_left,
                                left: *left as usize,
                                right: *right as usize,
                            }
                        }
                    })
                },
                &name,
                who,
            )?;
        }
    }
    let mut columns = vec![features.to_owned()];
    for s in &model.target_stats {
        columns.extend(target_statistics(g, s, features, &model.feature_names));
    }
    for (feature, set) in &indicators.columns {
        columns.push(indicator(g, features, *feature, set, &model.feature_names));
    }
    let x = g.concat(&columns, 1, "tree_input");
    let x = g.cast(&x, DataType::Double, "tree_input");
    let raw = ensemble.build(g, &x, k, "SUM", Some(model.init.clone()), "raw_scores");
    let raw = g.cast(&raw, DataType::Double, "raw_scores");
    Ok(if model.n_classes == 2 {
        // tabtune: p1 = σ(s), p0 = 1 − p1.
        let p1 = g.unary("Sigmoid", &raw, "p1");
        let one = g.f64(1.0);
        let p0 = g.sub(&one, &p1, "p0");
        g.concat(&[p0, p1], 1, "gbdt_proba")
    } else {
        g.softmax(&raw, 1, "gbdt_proba")
    })
}

/// The name of model feature `f` for value hints.
fn feature_hint(names: &[String], f: usize) -> String {
    names.get(f).cloned().unwrap_or_else(|| format!("f{f}"))
}

/// The ordered-target-statistic columns of one categorical feature (float `[N, 1]` each), as
/// `TargetStats::apply` gives them: the level's smoothed class shares, the prior for other
/// codes (NaN, negative, unseen).
fn target_statistics(
    g: &mut Builder,
    s: &TargetStats,
    features: &str,
    names: &[String],
) -> Vec<String> {
    let hint = feature_hint(names, s.feature);
    let code = g.columns(features, &[s.feature as i64], &format!("{hint}.code"));
    let mut per_level: Vec<Vec<f32>> = Vec::with_capacity(s.levels.len());
    for &level in &s.levels {
        let mut out = Vec::with_capacity(s.classes.len());
        s.apply(level, &mut out);
        per_level.push(out);
    }
    let mut prior = Vec::with_capacity(s.classes.len());
    s.apply(f32::NAN, &mut prior);
    (0..s.classes.len())
        .map(|k| {
            g.node_in(
                ML,
                "LabelEncoder",
                &[&code],
                vec![
                    ("keys_floats", Attr::Floats(s.levels.clone())),
                    (
                        "values_floats",
                        Attr::Floats(per_level.iter().map(|v| v[k]).collect()),
                    ),
                    ("default_float", Attr::Float(prior[k])),
                ],
                &format!("{hint}.target_share_{}", s.classes[k]),
            )
        })
        .collect()
}

/// The indicator column (float `[N, 1]`) of a category-set split: 0 in the set, 1 outside it,
/// NaN for a missing or unknown code (NaN or negative).
fn indicator(
    g: &mut Builder,
    features: &str,
    feature: u32,
    set: &[f32],
    names: &[String],
) -> String {
    let hint = feature_hint(names, feature as usize);
    let code = g.columns(features, &[i64::from(feature)], &format!("{hint}.code"));
    let side = g.node_in(
        ML,
        "LabelEncoder",
        &[&code],
        vec![
            ("keys_floats", Attr::Floats(set.to_vec())),
            ("values_floats", Attr::Floats(vec![0.0; set.len()])),
            ("default_float", Attr::Float(1.0)),
        ],
        &format!("{hint}.in_set"),
    );
    let zero = g.f32(0.0);
    let known = g.binary("GreaterOrEqual", &code, &zero, &format!("{hint}.known"));
    let nan = g.f32(f32::NAN);
    g.where_(&known, &side, &nan, &format!("{hint}.in_set"))
}

/// Class probabilities (double `[N, n_classes]`) of a decision tree or random forest: the
/// mean of the trees' leaf probabilities.
pub(crate) fn forest(
    g: &mut Builder,
    model: &ForestModel,
    features: &str,
    who: &Who<'_>,
) -> Result<String> {
    let n_features = model.feature_names.len();
    let n_classes = model.n_classes;
    if model.trees.is_empty() {
        return Err(who.err("the forest has no trees"));
    }
    let mut ensemble = Ensemble::default();
    for (t, tree) in model.trees.iter().enumerate() {
        let name = || format!("tree {t}");
        ensemble.add_tree(
            tree.nodes.len(),
            |i| {
                let node_name = || format!("tree {t} node {i}");
                Ok(match &tree.nodes[i] {
                    ClassNode::Leaf { proba } => {
                        if proba.len() != n_classes {
                            return Err(who.err(format!(
                                "{} has {} class probabilities, expected {n_classes}",
                                node_name(),
                                proba.len()
                            )));
                        }
                        let mut targets = Vec::new();
                        for (c, p) in proba.iter().enumerate() {
                            let p = finite32(*p, who, &node_name)?;
                            // Zero weights add nothing to the sum.
                            if p != 0.0 {
                                targets.push((c as i64, p));
                            }
                        }
                        Step::Leaf(targets)
                    }
                    ClassNode::Split {
                        feature,
                        threshold,
                        missing_left,
                        left,
                        right,
                        ..
                    } => {
                        if *feature as usize >= n_features {
                            return Err(who.err(format!(
                                "{} splits feature {feature} of {n_features}",
                                node_name()
                            )));
                        }
                        if threshold.is_nan() {
                            return Err(who.err(format!("{} has a NaN threshold", node_name())));
                        }
                        Step::Split {
                            feature: i64::from(*feature),
                            threshold: f64::from(*threshold),
                            missing_left: *missing_left,
                            left: *left as usize,
                            right: *right as usize,
                        }
                    }
                })
            },
            &name,
            who,
        )?;
    }
    let x = g.cast(features, DataType::Double, "tree_input");
    let proba = ensemble.build(g, &x, n_classes, "AVERAGE", None, "forest_proba");
    Ok(g.cast(&proba, DataType::Double, "forest_proba"))
}
