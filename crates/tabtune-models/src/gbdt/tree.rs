//! A regression tree over binned or raw features.

use serde::{Deserialize, Serialize};

/// A node: a split or a leaf.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Node {
    /// Rows with `x[feature] ≤ threshold` (bin ≤ `bin`) go to `left`; missing values go to
    /// `left` when `missing_left`.
    Split {
        /// Feature index.
        feature: u32,
        /// Raw-value threshold.
        threshold: f32,
        /// Last bin on the left (for binned data).
        bin: u8,
        /// Direction of missing values.
        missing_left: bool,
        /// Left child index.
        left: u32,
        /// Right child index.
        right: u32,
        /// Loss reduction of the split.
        gain: f32,
    },
    /// Rows whose category code is in `left_values` (bins in `left_bins`) go to `left`, other
    /// known and unseen codes to `right`; missing values (NaN, negative codes) go to `left`
    /// when `missing_left`.
    Category {
        /// Feature index.
        feature: u32,
        /// Level codes that go left, increasing.
        left_values: Vec<f32>,
        /// The same as bins.
        left_bins: super::hist::BinSet,
        /// Direction of missing values.
        missing_left: bool,
        /// Left child index.
        left: u32,
        /// Right child index.
        right: u32,
        /// Loss reduction of the split.
        gain: f32,
    },
    /// A leaf with its output value (learning rate applied).
    Leaf {
        /// Output.
        value: f32,
    },
}

/// A tree; node 0 is the root.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Tree {
    /// The nodes.
    pub nodes: Vec<Node>,
}

impl Tree {
    /// Follows splits from the root (`go_left(node)` decides at each split node) to a leaf's
    /// value.
    #[inline]
    fn walk(&self, go_left: impl Fn(&Node) -> bool) -> f32 {
        let mut i = 0usize;
        loop {
            let node = &self.nodes[i];
            i = match node {
                Node::Leaf { value } => return *value,
                Node::Split { left, right, .. } | Node::Category { left, right, .. } => {
                    if go_left(node) { *left } else { *right }
                }
            } as usize;
        }
    }

    /// The output for one raw feature row.
    pub fn predict_row(&self, row: &[f32]) -> f32 {
        self.walk(|node| match node {
            Node::Split {
                feature,
                threshold,
                missing_left,
                ..
            } => {
                let v = row[*feature as usize];
                if v.is_nan() {
                    *missing_left
                } else {
                    v <= *threshold
                }
            }
            Node::Category {
                feature,
                left_values,
                missing_left,
                ..
            } => {
                let v = row[*feature as usize];
                if v.is_nan() || v < 0.0 {
                    *missing_left
                } else {
                    left_values.binary_search_by(|c| c.total_cmp(&v)).is_ok()
                }
            }
            Node::Leaf { .. } => unreachable!("walk asks only at split nodes"),
        })
    }

    /// The output for a row of binned data (`bin_of(feature)` gives its bin).
    pub fn predict_binned(&self, bin_of: impl Fn(usize) -> u8) -> f32 {
        self.walk(|node| match node {
            Node::Split {
                feature,
                bin,
                missing_left,
                ..
            } => {
                let b = bin_of(*feature as usize);
                if b == 0 { *missing_left } else { b <= *bin }
            }
            Node::Category {
                feature,
                left_bins,
                missing_left,
                ..
            } => {
                let b = bin_of(*feature as usize);
                if b == 0 {
                    *missing_left
                } else {
                    left_bins.contains(usize::from(b))
                }
            }
            Node::Leaf { .. } => unreachable!("walk asks only at split nodes"),
        })
    }

    /// Number of leaves.
    pub fn n_leaves(&self) -> usize {
        self.nodes
            .iter()
            .filter(|n| matches!(n, Node::Leaf { .. }))
            .count()
    }

    /// Depth (a single leaf has depth 0).
    pub fn depth(&self) -> usize {
        fn depth(nodes: &[Node], i: usize) -> usize {
            match &nodes[i] {
                Node::Leaf { .. } => 0,
                Node::Split { left, right, .. } | Node::Category { left, right, .. } => {
                    1 + depth(nodes, *left as usize).max(depth(nodes, *right as usize))
                }
            }
        }
        if self.nodes.is_empty() {
            0
        } else {
            depth(&self.nodes, 0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_and_binned_prediction_agree() {
        let tree = Tree {
            nodes: vec![
                Node::Split {
                    feature: 1,
                    threshold: 2.5,
                    bin: 2,
                    missing_left: false,
                    left: 1,
                    right: 2,
                    gain: 1.0,
                },
                Node::Leaf { value: -1.0 },
                Node::Leaf { value: 3.0 },
            ],
        };
        assert_eq!(tree.predict_row(&[0.0, 2.0]), -1.0);
        assert_eq!(tree.predict_row(&[0.0, 2.5]), -1.0);
        assert_eq!(tree.predict_row(&[0.0, 2.6]), 3.0);
        assert_eq!(tree.predict_row(&[0.0, f32::NAN]), 3.0);
        assert_eq!(tree.predict_binned(|_| 2), -1.0);
        assert_eq!(tree.predict_binned(|_| 3), 3.0);
        assert_eq!(tree.predict_binned(|_| 0), 3.0);
        assert_eq!((tree.n_leaves(), tree.depth()), (2, 1));
    }
}
