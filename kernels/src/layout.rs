//! The data the kernels work on, as flat arrays of 32-bit words (the same layout in host memory
//! for the CPU reference and in device buffers for the GPU).
//!
//! Vocabulary: a *member* is one independent boosting run (a trial's parameters on one fold's
//! training rows); each round it grows one *tree* per *output* (`K` outputs: one per class, or
//! one for binary models), tree `t = member · K + output`. A training *entry* is one of a
//! member's training rows (entries of member `m` are `row_off[m]..row_off[m + 1]`, in the
//! member's row order); per-entry, per-output arrays are indexed `entry · K + output`. Every
//! tree has `cap` node slots; per-node tables are indexed `tree · cap + node`. Histograms live
//! in *slots* of `total_bins` bins of three `i32` (gradient, hessian, rows).

/// "None" in index tables (no split, no histogram slot, no feature).
pub const NONE: u32 = u32::MAX;

/// Words per [`TreeRound`].
pub const TREE_ROUND_WORDS: usize = 11;
/// Words per [`SearchTask`].
pub const SEARCH_TASK_WORDS: usize = 4;
/// Words per [`SearchResult`].
pub const SEARCH_RESULT_WORDS: usize = 8;
/// Words per [`SplitRecord`].
pub const SPLIT_RECORD_WORDS: usize = 12;
/// Words per [`LevelTask`].
pub const LEVEL_TASK_WORDS: usize = 4;
/// Words per [`SumQuery`].
pub const SUM_QUERY_WORDS: usize = 4;

/// A binned feature matrix shared by every member: row-major, four 8-bit bins per word.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BinMatrix {
    /// Rows.
    pub n_rows: usize,
    /// Features.
    pub n_features: usize,
    /// Words per row, `ceil(n_features / 4)`.
    pub words_per_row: usize,
    /// The packed bins: feature `f` of row `r` is byte `f % 4` of word
    /// `r · words_per_row + f / 4`.
    pub data: Vec<u32>,
    /// Bins per feature (bin 0 = missing values included).
    pub n_bins: Vec<u32>,
    /// First bin of each feature in a histogram slot.
    pub offsets: Vec<u32>,
    /// Bins of all features, the size of a histogram slot (in bins).
    pub total_bins: usize,
}

impl BinMatrix {
    /// Packs column-major bins (`columns[f][row]`) with `n_bins[f]` bins per feature.
    pub fn from_columns(n_rows: usize, columns: &[&[u8]], n_bins: &[u32]) -> Self {
        assert_eq!(columns.len(), n_bins.len(), "one bin count per column");
        let n_features = columns.len();
        let words_per_row = n_features.div_ceil(4);
        let mut data = vec![0u32; n_rows * words_per_row];
        for (f, column) in columns.iter().enumerate() {
            assert_eq!(column.len(), n_rows, "column {f} has one bin per row");
            for (r, &b) in column.iter().enumerate() {
                data[r * words_per_row + f / 4] |= u32::from(b) << (8 * (f % 4));
            }
        }
        let mut offsets = Vec::with_capacity(n_features);
        let mut total = 0u32;
        for &nb in n_bins {
            offsets.push(total);
            total += nb;
        }
        Self {
            n_rows,
            n_features,
            words_per_row,
            data,
            n_bins: n_bins.to_vec(),
            offsets,
            total_bins: total as usize,
        }
    }

    /// The bin of feature `f` in row `r`.
    #[inline]
    pub fn bin(&self, r: usize, f: usize) -> u32 {
        (self.data[r * self.words_per_row + f / 4] >> (8 * (f % 4))) & 0xFF
    }
}

/// The fixed part of a batched fit: members, their rows and labels.
#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    /// Outputs (trees per member per round): 1 for binary models, else the classes.
    pub n_outputs: usize,
    /// Classes.
    pub n_classes: usize,
    /// Node slots per tree.
    pub cap: usize,
    /// Per training entry: its member.
    pub member_of: Vec<u32>,
    /// Per training entry: its row of the bin matrix.
    pub row_of: Vec<u32>,
    /// Per member: its first training entry; one more entry at the end (the total).
    pub row_off: Vec<u32>,
    /// Per member: the 32-bit seed of its rounding noise.
    pub seed: Vec<u32>,
    /// Per member and class: the class weight (`member · n_classes + class`).
    pub class_weight: Vec<f32>,
    /// Per validation entry: its member.
    pub valid_member_of: Vec<u32>,
    /// Per validation entry: its row of the bin matrix.
    pub valid_row_of: Vec<u32>,
    /// Per row of the bin matrix: its class.
    pub labels: Vec<u32>,
}

impl Problem {
    /// Members.
    pub fn n_members(&self) -> usize {
        self.row_off.len() - 1
    }

    /// Trees per round (members × outputs).
    pub fn n_trees(&self) -> usize {
        self.n_members() * self.n_outputs
    }

    /// Training entries of all members.
    pub fn n_entries(&self) -> usize {
        self.member_of.len()
    }

    /// Validation entries of all members.
    pub fn n_valid(&self) -> usize {
        self.valid_member_of.len()
    }
}

/// One tree's settings for one round.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TreeRound {
    /// Gradient scale (a power of two): a quantized gradient `q` stands for `q · scale_g`.
    pub scale_g: f32,
    /// `1 / scale_g`.
    pub inv_g: f32,
    /// Hessian scale (a power of two).
    pub scale_h: f32,
    /// `1 / scale_h`.
    pub inv_h: f32,
    /// `lambda / scale_h`: L2 in quantized units.
    pub lambda_q: f32,
    /// `alpha / scale_g`: L1 in quantized units.
    pub alpha_q: f32,
    /// A child needs a quantized hessian sum of at least this (`min_child_weight`, at least 1).
    pub min_hess: i32,
    /// A child needs at least this many rows (`min_data_in_leaf`).
    pub min_rows: i32,
    /// L2 in real units (leaf values).
    pub lambda: f32,
    /// Shrinkage of leaf values.
    pub learning_rate: f32,
    /// Stochastic rounding (else to nearest).
    pub stochastic: bool,
}

impl TreeRound {
    /// As words.
    pub fn words(&self) -> [u32; TREE_ROUND_WORDS] {
        [
            self.scale_g.to_bits(),
            self.inv_g.to_bits(),
            self.scale_h.to_bits(),
            self.inv_h.to_bits(),
            self.lambda_q.to_bits(),
            self.alpha_q.to_bits(),
            self.min_hess as u32,
            self.min_rows as u32,
            self.lambda.to_bits(),
            self.learning_rate.to_bits(),
            u32::from(self.stochastic),
        ]
    }

    /// The rules of split search.
    pub fn rules(&self) -> NodeRules {
        NodeRules {
            lambda_q: self.lambda_q,
            alpha_q: self.alpha_q,
            min_hess: self.min_hess,
            min_rows: self.min_rows,
        }
    }
}

/// Flattens per-tree settings.
pub fn tree_round_words(rounds: &[TreeRound]) -> Vec<u32> {
    rounds.iter().flat_map(TreeRound::words).collect()
}

/// Split-search constraints in quantized units.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NodeRules {
    /// L2, `lambda / scale_h`.
    pub lambda_q: f32,
    /// L1, `alpha / scale_g`.
    pub alpha_q: f32,
    /// Minimum quantized hessian sum per child (≥ 1).
    pub min_hess: i32,
    /// Minimum rows per child.
    pub min_rows: i32,
}

/// A node whose best split is wanted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SearchTask {
    /// Tree.
    pub tree: u32,
    /// Node (its totals are `node_stats[tree · cap + node]`).
    pub node: u32,
    /// Histogram slot of the node.
    pub slot: u32,
    /// Row of the feature mask (`masks[mask_row · n_features + f]` ≠ 0: searched).
    pub mask_row: u32,
}

impl SearchTask {
    /// As words.
    pub fn words(&self) -> [u32; SEARCH_TASK_WORDS] {
        [self.tree, self.node, self.slot, self.mask_row]
    }
}

/// The best split of a node: features `1..=bin` go left (missing values by `missing_left`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SearchResult {
    /// Feature, [`NONE`] when no split satisfies the constraints.
    pub feature: u32,
    /// Last bin on the left.
    pub bin: u32,
    /// Missing values go left: learned when the node has missing values, else towards the
    /// larger child.
    pub missing_left: bool,
    /// The split's structure score `S(L) + S(R)` in quantized units (`f32`).
    pub score: f32,
    /// Quantized sums `[g, h, n]` of the left child.
    pub left: [i32; 3],
}

impl SearchResult {
    /// No split.
    pub const NONE: Self = Self {
        feature: NONE,
        bin: 0,
        missing_left: false,
        score: 0.0,
        left: [0; 3],
    };

    /// From words.
    pub fn from_words(w: &[u32]) -> Self {
        Self {
            feature: w[0],
            bin: w[1],
            missing_left: w[2] != 0,
            score: f32::from_bits(w[3]),
            left: [w[4] as i32, w[5] as i32, w[6] as i32],
        }
    }

    /// As words.
    pub fn words(&self) -> [u32; SEARCH_RESULT_WORDS] {
        [
            self.feature,
            self.bin,
            u32::from(self.missing_left),
            self.score.to_bits(),
            self.left[0] as u32,
            self.left[1] as u32,
            self.left[2] as u32,
            0,
        ]
    }
}

/// A split applied to a tree: node `node` splits on `feature` at `bin`; its children are nodes
/// `left` and `left + 1` with sums `left_stats` and `right_stats`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SplitRecord {
    /// Tree.
    pub tree: u32,
    /// The node split.
    pub node: u32,
    /// Feature.
    pub feature: u32,
    /// Last bin on the left.
    pub bin: u32,
    /// Missing values go left.
    pub missing_left: bool,
    /// The left child's node (the right child is `left + 1`).
    pub left: u32,
    /// Sums of the left child.
    pub left_stats: [i32; 3],
    /// Sums of the right child.
    pub right_stats: [i32; 3],
}

impl SplitRecord {
    /// As words.
    pub fn words(&self) -> [u32; SPLIT_RECORD_WORDS] {
        [
            self.tree,
            self.node,
            pack_split(self.feature, self.bin, self.missing_left),
            self.left,
            self.left_stats[0] as u32,
            self.left_stats[1] as u32,
            self.left_stats[2] as u32,
            self.right_stats[0] as u32,
            self.right_stats[1] as u32,
            self.right_stats[2] as u32,
            0,
            0,
        ]
    }
}

/// The first word of a split-table entry: feature (bits 0..16), bin (16..24), missing left
/// (24), valid (31).
#[inline]
pub fn pack_split(feature: u32, bin: u32, missing_left: bool) -> u32 {
    (feature & 0xFFFF) | ((bin & 0xFF) << 16) | (u32::from(missing_left) << 24) | (1 << 31)
}

/// The inverse of [`pack_split`]: `(feature, bin, missing_left)`, `None` for "no split".
#[inline]
pub fn unpack_split(word: u32) -> Option<(u32, u32, bool)> {
    (word >> 31 != 0).then_some((word & 0xFFFF, (word >> 16) & 0xFF, (word >> 24) & 1 != 0))
}

/// One tree's level for oblivious growth: `count` nodes listed from `first` on in the level
/// list (pairs `[node, slot]`), all split on one shared `(feature, bin)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LevelTask {
    /// Tree.
    pub tree: u32,
    /// First pair in the level list.
    pub first: u32,
    /// Nodes of the level.
    pub count: u32,
    /// Row of the feature mask.
    pub mask_row: u32,
}

impl LevelTask {
    /// As words.
    pub fn words(&self) -> [u32; LEVEL_TASK_WORDS] {
        [self.tree, self.first, self.count, self.mask_row]
    }
}

/// The best shared split of an oblivious level.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LevelResult {
    /// Feature, [`NONE`] when no candidate exists.
    pub feature: u32,
    /// Last bin on the left.
    pub bin: u32,
    /// Whether the candidate sends missing values left (meaningful when `any_missing`).
    pub missing_dir: bool,
    /// Whether some node of the level has missing values in `feature`.
    pub any_missing: bool,
    /// The summed score `Σ [S(L) + S(R) − S(P)]` over the level's nodes (quantized units).
    pub score: f32,
}

impl LevelResult {
    /// From words.
    pub fn from_words(w: &[u32]) -> Self {
        Self {
            feature: w[0],
            bin: w[1],
            missing_dir: w[2] != 0,
            any_missing: w[3] != 0,
            score: f32::from_bits(w[4]),
        }
    }
}

/// Words per [`LevelResult`].
pub const LEVEL_RESULT_WORDS: usize = 8;

/// "The left sums of split (`feature`, `bin`, `missing_left`) in histogram slot `slot`".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SumQuery {
    /// Histogram slot.
    pub slot: u32,
    /// Feature.
    pub feature: u32,
    /// Last bin on the left.
    pub bin: u32,
    /// Whether bin 0 (missing values) goes left.
    pub missing_left: bool,
}

impl SumQuery {
    /// As words.
    pub fn words(&self) -> [u32; SUM_QUERY_WORDS] {
        [
            self.slot,
            self.feature,
            self.bin,
            u32::from(self.missing_left),
        ]
    }
}

/// Flattens records of a word layout.
pub fn flatten<const N: usize, T>(items: &[T], words: impl Fn(&T) -> [u32; N]) -> Vec<u32> {
    items.iter().flat_map(words).collect()
}

// ---------------------------------------------------------------------------------------------
// Classification trees (decision trees and random forests).

/// Words per class-split result before its left counts: feature, last left bin, missing left,
/// score (`f32` bits); then `n_classes` left counts.
pub const CLASS_RESULT_HEAD: usize = 4;
/// Words per [`ClassRules`].
pub const CLASS_RULES_WORDS: usize = 2;

/// The fixed part of a batched fit of classification trees (decision trees, forests): every
/// tree is a member with its own entries; a bootstrapped row appears once per draw, so a
/// histogram's integer counts are the bootstrap-weighted class counts. Histogram slots hold
/// `total_bins` bins of `n_classes` counts (`i32`); per-node tables are indexed `tree · cap +
/// node`, as for boosting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassProblem {
    /// Classes.
    pub n_classes: usize,
    /// Node slots per tree.
    pub cap: usize,
    /// Per entry: its tree.
    pub tree_of: Vec<u32>,
    /// Per entry: its row of the bin matrix.
    pub row_of: Vec<u32>,
    /// Per row of the bin matrix: its class.
    pub labels: Vec<u32>,
}

impl ClassProblem {
    /// Entries of all trees.
    pub fn n_entries(&self) -> usize {
        self.tree_of.len()
    }
}

/// One tree's split rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClassRules {
    /// Rows (bootstrap-weighted) each child needs at least (`min_samples_leaf`, ≥ 1).
    pub min_leaf: i32,
    /// Entropy instead of Gini.
    pub entropy: bool,
}

impl ClassRules {
    /// As words.
    pub fn words(&self) -> [u32; CLASS_RULES_WORDS] {
        [self.min_leaf as u32, u32::from(self.entropy)]
    }
}

/// The best split of a classification node: bins `1..=bin` of `feature` go left (missing
/// values by `missing_left`).
#[derive(Clone, Debug, PartialEq)]
pub struct ClassResult {
    /// Feature, [`NONE`] when no split satisfies the rules.
    pub feature: u32,
    /// Last bin on the left.
    pub bin: u32,
    /// Missing values go left: learned when the node has missing values, else towards the
    /// larger child.
    pub missing_left: bool,
    /// `Q(L) + Q(R)` (see [`crate::reference::forest::side_score`]).
    pub score: f32,
    /// Class counts of the left child.
    pub left: Vec<i32>,
}

impl ClassResult {
    /// Reads results of `n_classes` classes from words.
    pub fn from_words(words: &[u32], n_classes: usize) -> Vec<Self> {
        words
            .chunks_exact(CLASS_RESULT_HEAD + n_classes)
            .map(|w| Self {
                feature: w[0],
                bin: w[1],
                missing_left: w[2] != 0,
                score: f32::from_bits(w[3]),
                left: w[CLASS_RESULT_HEAD..].iter().map(|&c| c as i32).collect(),
            })
            .collect()
    }
}
