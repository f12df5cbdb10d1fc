//! Structural checks of loaded models: everything prediction indexes or loops on, checked once
//! at load so that a crafted or damaged file is refused with a message instead of panicking
//! (an index out of range) or hanging (a cycle) at prediction time.

/// A node as the checks see it.
pub(crate) enum NodeView<'a> {
    /// A split on `feature` with children `left` and `right`; `numbers` are the values it
    /// compares with (they must not be NaN; category codes must also increase).
    Split {
        feature: usize,
        left: usize,
        right: usize,
        numbers: &'a [f32],
        sorted: bool,
    },
    /// A leaf with its outputs (they must be finite).
    Leaf { outputs: &'a [f32] },
}

/// Checks one tree of `n` nodes (`node(i)` views node `i`): at least one node; every split's
/// feature below `n_features` and children in range; every node reached exactly once from the
/// root 0 (so there is no cycle, no shared subtree and no orphan, and every path ends at a
/// leaf); leaf outputs `leaf_len` long (when given) and finite. Iterative: a chain of a million
/// nodes is checked without deep recursion.
pub(crate) fn tree<'a>(
    n: usize,
    n_features: usize,
    leaf_len: Option<usize>,
    node: impl Fn(usize) -> NodeView<'a>,
) -> Result<(), String> {
    if n == 0 {
        return Err("has no nodes; expected at least a root leaf".into());
    }
    let mut seen = vec![false; n];
    let mut stack = vec![0usize];
    seen[0] = true;
    let mut reached = 1usize;
    while let Some(i) = stack.pop() {
        match node(i) {
            NodeView::Leaf { outputs } => {
                if let Some(len) = leaf_len
                    && outputs.len() != len
                {
                    return Err(format!(
                        "node {i} is a leaf with {} output(s); expected {len}",
                        outputs.len()
                    ));
                }
                if let Some(v) = outputs.iter().find(|v| !v.is_finite()) {
                    return Err(format!(
                        "node {i} is a leaf with output {v}; expected finite"
                    ));
                }
            }
            NodeView::Split {
                feature,
                left,
                right,
                numbers,
                sorted,
            } => {
                if feature >= n_features {
                    return Err(format!(
                        "node {i} splits on feature {feature}; the model has {n_features} \
                         feature(s) (0..{n_features})"
                    ));
                }
                if numbers.iter().any(|v| v.is_nan()) {
                    return Err(format!("node {i} compares with NaN; expected numbers"));
                }
                if sorted && numbers.windows(2).any(|w| w[0] >= w[1]) {
                    return Err(format!(
                        "node {i}: its category codes are not increasing; expected a sorted set"
                    ));
                }
                for child in [left, right] {
                    if child >= n {
                        return Err(format!(
                            "node {i} has child {child}; the tree has {n} node(s) (0..{n})"
                        ));
                    }
                    if seen[child] {
                        return Err(format!(
                            "node {i} leads to node {child} a second time (a cycle or a shared \
                             subtree); expected a tree"
                        ));
                    }
                    seen[child] = true;
                    reached += 1;
                    stack.push(child);
                }
            }
        }
    }
    if reached != n {
        let orphan = seen.iter().position(|s| !s).unwrap_or(0);
        return Err(format!(
            "node {orphan} cannot be reached from the root ({reached} of {n} nodes are); \
             expected a tree"
        ));
    }
    Ok(())
}

/// The most of each network dimension a neural file may declare (2^24): products of two
/// dimensions stay far below `usize::MAX`, and real networks are orders of magnitude smaller.
pub(crate) const MAX_DIMENSION: usize = 1 << 24;

/// `value` is at most [`MAX_DIMENSION`].
pub(crate) fn dimension(name: &str, value: usize) -> Result<(), String> {
    if value > MAX_DIMENSION {
        return Err(format!(
            "`{name}` is {value}; expected at most {MAX_DIMENSION}"
        ));
    }
    Ok(())
}

/// At least two classes.
pub(crate) fn classes(n_classes: usize) -> Result<(), String> {
    if n_classes < 2 {
        return Err(format!(
            "{n_classes} class(es); a classifier needs at least 2"
        ));
    }
    Ok(())
}

use crate::forest::{ClassNode, ForestModel};
use crate::gbdt::{GbdtModel, Node};

/// Checks a boosted model: at least two classes, one initial score and one tree per output in
/// every round (finite scores), importances per input, target statistics that fit their
/// inputs and classes, and every tree (features counted with the target-statistic columns).
pub(crate) fn gbdt(model: &GbdtModel) -> Result<(), String> {
    classes(model.n_classes)?;
    let n_inputs = model.feature_names.len();
    if n_inputs == 0 {
        return Err("has no input features".into());
    }
    let outputs = model.n_outputs();
    if model.init.len() != outputs {
        return Err(format!(
            "has {} initial score(s) for {} classes; expected {outputs}",
            model.init.len(),
            model.n_classes
        ));
    }
    if let Some(v) = model.init.iter().find(|v| !v.is_finite()) {
        return Err(format!("has the initial score {v}; expected finite scores"));
    }
    if model.importance_gain.len() != n_inputs || model.importance_split.len() != n_inputs {
        return Err(format!(
            "has {} gain and {} split importance(s) for {n_inputs} features",
            model.importance_gain.len(),
            model.importance_split.len()
        ));
    }
    let expected_classes: Vec<u32> = if model.n_classes == 2 {
        vec![1]
    } else {
        (0..model.n_classes as u32).collect()
    };
    let mut width = n_inputs;
    for (j, s) in model.target_stats.iter().enumerate() {
        let at = format!("target statistics {j}");
        if s.feature >= n_inputs {
            return Err(format!(
                "{at} read feature {}; the model has {n_inputs}",
                s.feature
            ));
        }
        if s.classes != expected_classes || s.prior.len() != s.classes.len() {
            return Err(format!(
                "{at} cover classes {:?} with {} prior(s); expected classes {expected_classes:?}",
                s.classes,
                s.prior.len()
            ));
        }
        if s.counts.len() != s.levels.len()
            || s.counts.iter().any(|c| c.len() != s.classes.len() + 1)
        {
            return Err(format!(
                "{at} have {} level(s) and {} count row(s); expected one row of {} counts per level",
                s.levels.len(),
                s.counts.len(),
                s.classes.len() + 1
            ));
        }
        if s.levels.iter().any(|l| !l.is_finite()) || s.levels.windows(2).any(|w| w[0] >= w[1]) {
            return Err(format!("{at}: levels are not increasing finite codes"));
        }
        let numbers = s.prior.iter().chain(s.counts.iter().flatten());
        if numbers.clone().any(|v| !v.is_finite() || *v < 0.0) {
            return Err(format!("{at}: priors and counts must be finite and ≥ 0"));
        }
        width += s.classes.len();
    }
    if model.trees.len() > 1 << 24 {
        return Err(format!("has {} rounds", model.trees.len()));
    }
    for (round, trees) in model.trees.iter().enumerate() {
        if trees.len() != outputs {
            return Err(format!(
                "round {round} has {} tree(s) for {} classes; expected {outputs}",
                trees.len(),
                model.n_classes
            ));
        }
        for (output, t) in trees.iter().enumerate() {
            tree(t.nodes.len(), width, Some(1), |i| match &t.nodes[i] {
                Node::Split {
                    feature,
                    threshold,
                    left,
                    right,
                    ..
                } => NodeView::Split {
                    feature: *feature as usize,
                    left: *left as usize,
                    right: *right as usize,
                    numbers: std::slice::from_ref(threshold),
                    sorted: false,
                },
                Node::Category {
                    feature,
                    left_values,
                    left,
                    right,
                    ..
                } => NodeView::Split {
                    feature: *feature as usize,
                    left: *left as usize,
                    right: *right as usize,
                    numbers: left_values,
                    sorted: true,
                },
                Node::Leaf { value } => NodeView::Leaf {
                    outputs: std::slice::from_ref(value),
                },
            })
            .map_err(|e| format!("round {round}, tree {output}: {e}"))?;
        }
    }
    Ok(())
}

/// Checks a forest: at least two classes and one tree, importances per input, and every tree
/// (leaves with one probability per class, each in [0, 1], summing to 1).
pub(crate) fn forest(model: &ForestModel) -> Result<(), String> {
    classes(model.n_classes)?;
    let n_inputs = model.feature_names.len();
    if n_inputs == 0 {
        return Err("has no input features".into());
    }
    if model.trees.is_empty() {
        return Err("has no trees; expected at least one".into());
    }
    if model.importance_gain.len() != n_inputs || model.importance_split.len() != n_inputs {
        return Err(format!(
            "has {} gain and {} split importance(s) for {n_inputs} features",
            model.importance_gain.len(),
            model.importance_split.len()
        ));
    }
    for (k, t) in model.trees.iter().enumerate() {
        tree(
            t.nodes.len(),
            n_inputs,
            Some(model.n_classes),
            |i| match &t.nodes[i] {
                ClassNode::Split {
                    feature,
                    threshold,
                    left,
                    right,
                    ..
                } => NodeView::Split {
                    feature: *feature as usize,
                    left: *left as usize,
                    right: *right as usize,
                    numbers: std::slice::from_ref(threshold),
                    sorted: false,
                },
                ClassNode::Leaf { proba } => NodeView::Leaf { outputs: proba },
            },
        )
        .map_err(|e| format!("tree {k}: {e}"))?;
        for (i, node) in t.nodes.iter().enumerate() {
            if let ClassNode::Leaf { proba } = node {
                let sum: f32 = proba.iter().sum();
                if proba.iter().any(|p| !(0.0..=1.0).contains(p)) || (sum - 1.0).abs() > 1e-3 {
                    return Err(format!(
                        "tree {k}, node {i}: leaf probabilities {proba:?}; expected shares in \
                         [0, 1] summing to 1"
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Checks what a neural file declares before its tensors are read: valid parameters, at least
/// two classes and one input, every dimension at most [`MAX_DIMENSION`], and no more layers
/// than the weights file has tensors (each layer has at least one), so the expected layout is
/// small and its sizes cannot overflow.
pub(crate) fn neural_header(
    params: &crate::nn::NeuralParams,
    n_inputs: usize,
    n_classes: usize,
    n_tensors: usize,
) -> Result<(), String> {
    params.check().map_err(|e| e.to_string())?;
    classes(n_classes)?;
    if n_inputs == 0 {
        return Err("has no input features".into());
    }
    for (name, value) in [
        ("inputs", n_inputs),
        ("classes", n_classes),
        ("width", params.width),
        ("k", params.k),
        ("n_frequencies", params.n_frequencies),
        ("embedding_dim", params.embedding_dim),
        ("n_bins", params.n_bins),
    ] {
        dimension(name, value)?;
    }
    if params.depth > n_tensors {
        return Err(format!(
            "`depth` is {} but the weights file holds {n_tensors} tensor(s)",
            params.depth
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nodes as (feature, left, right) for splits, None for leaves.
    fn check(nodes: &[Option<(usize, usize, usize)>]) -> Result<(), String> {
        tree(nodes.len(), 3, None, |i| match nodes[i] {
            Some((feature, left, right)) => NodeView::Split {
                feature,
                left,
                right,
                numbers: &[],
                sorted: false,
            },
            None => NodeView::Leaf { outputs: &[] },
        })
    }

    type Nodes<'a> = &'a [Option<(usize, usize, usize)>];

    #[test]
    fn trees_must_be_trees() {
        check(&[Some((0, 1, 2)), None, None]).expect("a stump");
        check(&[None]).expect("a single leaf");
        let cases: [(Nodes<'_>, &str); 7] = [
            (&[], "no nodes"),
            (&[Some((9999, 1, 2)), None, None], "feature 9999"),
            (&[Some((0, 1, 7)), None, None], "child 7"),
            (&[Some((0, 0, 1)), None], "node 0 a second time"),
            (&[Some((0, 1, 2)), Some((0, 1, 2)), None], "a second time"),
            (&[Some((0, 1, 1)), None], "a second time"),
            (
                &[Some((0, 1, 2)), None, None, None],
                "node 3 cannot be reached",
            ),
        ];
        for (nodes, want) in cases {
            let err = check(nodes).expect_err(want);
            assert!(err.contains(want), "{err} (wanted {want})");
        }
    }

    #[test]
    fn a_long_chain_is_checked_without_recursion() {
        // 0 -> (1, leaf), 1 -> (2, leaf) ...: a million nodes deep.
        let depth = 500_000;
        let nodes: Vec<Option<(usize, usize, usize)>> = (0..=2 * depth)
            .map(|i| {
                if i % 2 == 0 && i < 2 * depth {
                    Some((0, i + 2, i + 1))
                } else {
                    None
                }
            })
            .collect();
        check(&nodes).expect("a deep but valid tree");
    }
}
