//! A regression tree over binned or raw features.

use serde::{Deserialize, Serialize};

use super::binning::Binned;
use super::grow::{partition, partition_by};

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
        self.walk(|node| raw_left(node, row))
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

    /// The outputs of the rows `rows` of binned data, into `out[row]`: the values
    /// [`predict_binned`](Self::predict_binned) gives row by row, found a node at a time (each
    /// split partitions its rows by one column; `rows` is reordered) instead of one walk per
    /// row, whose steps wait on each other and mispredict. `scratch` is scratch space.
    pub fn predict_binned_rows(
        &self,
        binned: &Binned,
        rows: &mut [u32],
        scratch: &mut Vec<u32>,
        out: &mut [f32],
    ) {
        self.by_partition(rows, out, |node, here| match node {
            Node::Split {
                feature,
                bin,
                missing_left,
                ..
            } => {
                let bin = usize::from(*bin);
                let column = binned.column(*feature as usize);
                partition(here, scratch, column, |b| b <= bin, *missing_left)
            }
            Node::Category {
                feature,
                left_bins,
                missing_left,
                ..
            } => {
                let column = binned.column(*feature as usize);
                let goes_left = |b| left_bins.contains(b);
                partition(here, scratch, column, goes_left, *missing_left)
            }
            Node::Leaf { .. } => unreachable!("only split nodes partition"),
        });
    }

    /// The outputs of the rows `rows` of a raw row-major feature matrix `x` (`width` values
    /// per row), into `out[row]`: the values [`predict_row`](Self::predict_row) gives, found a
    /// node at a time as in [`predict_binned_rows`](Self::predict_binned_rows).
    pub fn predict_rows(
        &self,
        x: &[f32],
        width: usize,
        rows: &mut [u32],
        scratch: &mut Vec<u32>,
        out: &mut [f32],
    ) {
        self.by_partition(rows, out, |node, here| {
            partition_by(here, scratch, |r| {
                let start = r as usize * width;
                raw_left(node, &x[start..start + width])
            })
        });
    }

    /// Passes `rows` down the tree a node at a time: `split(node, rows)` reorders a split
    /// node's rows, those going left first, and returns how many go left; every leaf writes
    /// its value to `out[row]` for its rows.
    fn by_partition(
        &self,
        rows: &mut [u32],
        out: &mut [f32],
        mut split: impl FnMut(&Node, &mut [u32]) -> usize,
    ) {
        if self.nodes.is_empty() {
            return;
        }
        // (node, start, end): the node's rows are `rows[start..end]`.
        let mut stack = vec![(0usize, 0usize, rows.len())];
        while let Some((i, start, end)) = stack.pop() {
            let node = &self.nodes[i];
            let here = &mut rows[start..end];
            let (left, right) = match node {
                Node::Leaf { value } => {
                    for &r in here.iter() {
                        out[r as usize] = *value;
                    }
                    continue;
                }
                Node::Split { left, right, .. } | Node::Category { left, right, .. } => {
                    (*left as usize, *right as usize)
                }
            };
            let mid = start + split(node, here);
            if mid > start {
                stack.push((left, start, mid));
            }
            if mid < end {
                stack.push((right, mid, end));
            }
        }
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

/// Whether a raw feature row goes left at a split node: missing values (NaN; for categories
/// also negative codes) by the learned direction, values by the threshold or category set.
#[inline]
fn raw_left(node: &Node, row: &[f32]) -> bool {
    match node {
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
        Node::Leaf { .. } => unreachable!("only split nodes decide"),
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

    #[test]
    fn node_at_a_time_prediction_equals_row_walks() {
        use super::super::binning::BinMapper;
        use super::super::hist::BinSet;
        // Numeric with missing values, category codes with unknowns (-1), numeric.
        let n = 300;
        let mut values = Vec::with_capacity(n * 3);
        for r in 0..n {
            values.push(if r % 17 == 0 {
                f32::NAN
            } else {
                (r % 23) as f32
            });
            values.push(if r % 11 == 0 { -1.0 } else { (r % 5) as f32 });
            values.push((r * 7 % 13) as f32 / 3.0);
        }
        let x = ndarray::Array2::from_shape_vec((n, 3), values).expect("shape");
        let column = |f: usize| x.column(f).to_vec();
        let mappers = vec![
            BinMapper::fit(&column(0), 255),
            BinMapper::fit_categorical(&column(1), 255),
            BinMapper::fit(&column(2), 8),
        ];
        let binned = Binned::new(x.view(), &mappers);
        let mut left_bins = BinSet::default();
        left_bins.insert(2);
        left_bins.insert(4);
        let split = |feature: usize, bin: usize, missing_left, left, right| Node::Split {
            feature: feature as u32,
            threshold: mappers[feature].threshold(bin),
            bin: bin as u8,
            missing_left,
            left,
            right,
            gain: 1.0,
        };
        let tree = Tree {
            nodes: vec![
                split(0, 9, true, 1, 2),
                Node::Category {
                    feature: 1,
                    left_values: left_bins
                        .bins()
                        .into_iter()
                        .map(|b| mappers[1].category(b))
                        .collect(),
                    left_bins,
                    missing_left: false,
                    left: 3,
                    right: 4,
                    gain: 1.0,
                },
                split(2, 3, false, 5, 6),
                Node::Leaf { value: -1.0 },
                Node::Leaf { value: 2.0 },
                Node::Leaf { value: 0.5 },
                Node::Leaf { value: 4.0 },
            ],
        };
        let walks: Vec<f32> = (0..n)
            .map(|r| tree.predict_binned(|f| binned.column(f)[r]))
            .collect();
        let raw_walks: Vec<f32> = x
            .rows()
            .into_iter()
            .map(|row| tree.predict_row(row.as_slice().expect("contiguous")))
            .collect();
        assert_eq!(walks, raw_walks);
        assert!(
            [-1.0, 2.0, 0.5, 4.0].iter().all(|v| walks.contains(v)),
            "every leaf is reached"
        );
        // Any order and any subset of rows; rows not asked for keep their old value.
        let mut rows: Vec<u32> = (0..n as u32).rev().filter(|r| r % 3 != 1).collect();
        let mut out = vec![f32::NAN; n];
        tree.predict_binned_rows(&binned, &mut rows, &mut Vec::new(), &mut out);
        let flat = x.as_slice().expect("standard layout");
        let mut rows_raw: Vec<u32> = (0..n as u32).filter(|r| r % 3 != 1).collect();
        let mut out_raw = vec![f32::NAN; n];
        tree.predict_rows(flat, 3, &mut rows_raw, &mut Vec::new(), &mut out_raw);
        for r in 0..n {
            if r % 3 == 1 {
                assert!(out[r].is_nan() && out_raw[r].is_nan());
            } else {
                assert_eq!((out[r], out_raw[r]), (walks[r], walks[r]), "row {r}");
            }
        }
    }
}
