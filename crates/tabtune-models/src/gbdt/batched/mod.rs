//! Batched boosting: many independent fits ("members": a trial's parameters on one fold's
//! training rows) boosted together over one shared binned matrix, on the CPU or on a GPU.
//!
//! Every member has its own rows, gradients, trees and hyperparameters (learning rate,
//! lambda/alpha, gamma, min_child_weight, min_data_in_leaf, subsample, colsample_bytree/bynode,
//! depth or leaf budget: members of one batch share the growth policy, not its limits).
//! Depth-wise and oblivious trees grow a level per step for all members, leaf-wise trees one
//! split per member per step. Each member early-stops on its own validation rows and reports
//! every round's metrics to a callback that may stop it (a pruner).
//!
//! Gradients are always quantized (a member asking for none gets `quantize = nearest`): each
//! member's model is exactly the one [`GbdtModel::fit_binned`] trains alone with the same
//! parameters and bins ([`BatchData::binned`]). The CPU backend runs the kernels' CPU
//! references; the `wgpu` and `cuda` features add the GPU backends, whose integer histograms,
//! splits and leaf values equal the CPU's.

mod backend;
#[cfg(any(feature = "wgpu", feature = "cuda"))]
mod gpu;
mod grow;

use ndarray::ArrayView2;
use rayon::prelude::*;
use tabtune_features::rng::SplitMix64;
use tabtune_kernels::layout::{BinMatrix, Problem, TreeRound};
use tabtune_kernels::reference::grad::finish_metrics;
use tabtune_kernels::reference::math::seed32;

use self::backend::{Backend, CpuBackend};
use self::grow::{TreeGrowth, grow_trees};
use super::binning::{BinMapper, Binned};
use super::booster::{
    BinnedData, GBDT_FORMAT, GBDT_FORMAT_VERSION, GbdtModel, RoundEval, check_data, initial_scores,
};
use super::grow::sample;
use super::params::{GbdtParams, GbdtValid, Growth, Quantize};
use super::quant::tree_round;
use super::tree::Tree;
use crate::error::{ModelError, Result};
use crate::metrics::Control;

/// A labelled matrix binned once for every member of a batch (bins fitted on all its rows).
#[derive(Clone, Debug)]
pub struct BatchData {
    mappers: Vec<BinMapper>,
    binned: Binned,
    bins: BinMatrix,
    labels: Vec<u32>,
    n_classes: usize,
    feature_names: Vec<String>,
    max_bins: usize,
    has_missing: bool,
}

impl BatchData {
    /// Bins `x` (`[rows, features]`, numeric features; NaN = missing only with
    /// `allow_missing`) with at most `max_bins` bins per feature, fitted on all rows. Members
    /// address rows of `x` by index.
    pub fn new(
        x: ArrayView2<'_, f32>,
        y: &[u32],
        n_classes: usize,
        feature_names: &[String],
        max_bins: usize,
        allow_missing: bool,
    ) -> Result<Self> {
        check_data(
            super::booster::Labelled { x, y },
            feature_names.len(),
            n_classes,
            "batch",
            allow_missing,
        )?;
        if !(2..=255).contains(&max_bins) {
            return Err(ModelError::param(
                "max_bins",
                max_bins,
                "an integer in 2..=255",
            ));
        }
        let data = BinnedData::new(x, None, &[], max_bins);
        let (mappers, binned) = data.into_parts();
        let columns: Vec<&[u8]> = (0..binned.n_features()).map(|f| binned.column(f)).collect();
        let n_bins: Vec<u32> = binned.n_bins.iter().map(|&b| b as u32).collect();
        let bins = BinMatrix::from_columns(binned.n_rows, &columns, &n_bins);
        let has_missing = x.iter().any(|v| v.is_nan());
        Ok(Self {
            mappers,
            binned,
            bins,
            labels: y.to_vec(),
            n_classes,
            feature_names: feature_names.to_vec(),
            max_bins,
            has_missing,
        })
    }

    /// Rows.
    pub fn n_rows(&self) -> usize {
        self.labels.len()
    }

    /// The bin boundaries of every feature.
    pub fn mappers(&self) -> &[BinMapper] {
        &self.mappers
    }

    /// The bins `max_bins` the data was binned with.
    pub fn max_bins(&self) -> usize {
        self.max_bins
    }

    /// The same bins for a fit of the engine on the matrices `train_x` and `valid_x` (rows of
    /// this data): [`GbdtModel::fit_binned`] with them trains a member's model alone.
    pub fn binned(
        &self,
        train_x: ArrayView2<'_, f32>,
        valid_x: Option<ArrayView2<'_, f32>>,
    ) -> BinnedData {
        BinnedData::with_mappers(self.mappers.clone(), train_x, valid_x, self.max_bins)
    }

    /// Bytes of the binned matrix as the kernels hold it.
    pub fn bytes(&self) -> usize {
        self.bins.data.len() * 4
    }

    /// The packed bins as the kernels hold them.
    pub(crate) fn bins(&self) -> &BinMatrix {
        &self.bins
    }

    /// Every row's class.
    pub(crate) fn labels(&self) -> &[u32] {
        &self.labels
    }

    /// Classes.
    pub fn n_classes(&self) -> usize {
        self.n_classes
    }

    /// Features.
    pub fn n_features(&self) -> usize {
        self.feature_names.len()
    }

    /// Feature names.
    pub fn feature_names(&self) -> &[String] {
        &self.feature_names
    }

    /// Whether some value is missing (NaN).
    pub fn has_missing(&self) -> bool {
        self.has_missing
    }
}

/// One member of a batch: parameters, training rows and validation rows (indices into the
/// batch's matrix, in the order the member sees them).
#[derive(Clone, Debug, PartialEq)]
pub struct BatchMember {
    /// Hyperparameters (quantization on; categorical columns are not supported).
    pub params: GbdtParams,
    /// Training rows.
    pub train: Vec<u32>,
    /// Validation rows (early stopping and per-round metrics); may be empty without early
    /// stopping.
    pub valid: Vec<u32>,
}

/// Where a batch runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchDevice {
    /// The kernels' CPU references.
    Cpu,
    /// The default wgpu adapter (`wgpu` feature).
    Wgpu,
    /// CUDA device N (`cuda` feature).
    Cuda(usize),
}

impl std::fmt::Display for BatchDevice {
    /// `cpu`, `wgpu` or `cuda:N`: how fits name where they trained.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Cpu => f.write_str("cpu"),
            Self::Wgpu => f.write_str("wgpu"),
            Self::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

/// An error of member `m`'s parameters or data, with the member named in it.
pub(crate) fn member_error(m: usize, e: ModelError) -> ModelError {
    match e {
        ModelError::Param {
            name,
            value,
            expected,
        } => ModelError::Param {
            name: format!("member {m}: {name}"),
            value,
            expected,
        },
        ModelError::Data(s) => ModelError::Data(format!("member {m}: {s}")),
        other => other,
    }
}

/// Options of a batched fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchOptions {
    /// The device.
    pub device: BatchDevice,
    /// A cap on the memory of the fit's buffers (device memory on a GPU, histograms and
    /// per-row state on the CPU), in bytes; `None`: the device's (CPU: 8 GiB).
    pub memory_limit: Option<u64>,
    /// When the device cannot start or cannot hold the batch (out of memory), train on the
    /// CPU instead of failing (what `--device auto` wants); the fits' [`MemberFit::device`]
    /// says so. Failures after the first round are errors either way.
    pub cpu_fallback: bool,
}

impl Default for BatchOptions {
    fn default() -> Self {
        Self {
            device: BatchDevice::Cpu,
            memory_limit: None,
            cpu_fallback: false,
        }
    }
}

/// One member's metrics after one round (to the callback, which may stop the member).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MemberRound {
    /// The member (index into the batch).
    pub member: usize,
    /// The round, from 0.
    pub round: usize,
    /// Validation metrics, when the member has validation rows.
    pub eval: Option<RoundEval>,
}

/// How a member's training ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberEnd {
    /// All its rounds.
    Completed,
    /// Early stopping (no improvement for `early_stopping_rounds`).
    EarlyStopped,
    /// The callback said stop (for example: pruned).
    Stopped,
}

/// A member's result.
#[derive(Clone, Debug, PartialEq)]
pub struct MemberFit {
    /// The model (an ordinary GBDT model: saved, bundled and predicted as any other).
    pub model: GbdtModel,
    /// Validation metrics of every round trained.
    pub evals: Vec<RoundEval>,
    /// How it ended.
    pub end: MemberEnd,
    /// Rounds trained (before truncation to the best round).
    pub rounds: usize,
    /// Where it trained: `cpu`, `wgpu` or `cuda:N`, or `cpu (fallback: REASON)`.
    pub device: String,
}

fn outputs(n_classes: usize) -> usize {
    if n_classes == 2 { 1 } else { n_classes }
}

/// Node slots and histogram slots a tree of `p` needs at most with `n` training rows.
fn tree_budget(p: &GbdtParams, n: usize) -> (usize, usize) {
    let rows_leaves = (n / p.min_data_in_leaf.max(1)).max(1);
    match p.growth {
        Growth::LeafWise => (2 * p.num_leaves - 1, p.num_leaves + 1),
        Growth::DepthWise => {
            let leaves = (1usize << p.max_depth).min(rows_leaves);
            (2 * leaves - 1, leaves + 1)
        }
        Growth::Oblivious => (1 << (p.max_depth + 1), (1 << p.max_depth) + 1),
    }
}

/// Checks the members against the data; returns their checked parameters (quantization on).
fn check_members(data: &BatchData, members: &[BatchMember]) -> Result<Vec<GbdtValid>> {
    if members.is_empty() {
        return Err(ModelError::Data("a batch needs at least one member".into()));
    }
    let n_rows = data.n_rows();
    let growth = members[0].params.growth;
    members
        .iter()
        .enumerate()
        .map(|(m, member)| {
            let mut p = member.params.clone();
            if p.quantize == Quantize::Off {
                p.quantize = Quantize::Nearest;
            }
            let p = p.check(data.n_classes).map_err(|e| member_error(m, e))?;
            if p.growth != growth {
                return Err(ModelError::param(
                    &format!("member {m}: growth"),
                    format!("{:?}", p.growth),
                    &format!("the batch's growth policy {growth:?} (one policy per batch)"),
                ));
            }
            if p.max_bins != data.max_bins {
                return Err(ModelError::param(
                    &format!("member {m}: max_bins"),
                    p.max_bins,
                    &format!("the batch's binning ({} bins)", data.max_bins),
                ));
            }
            if data.has_missing && !p.allow_missing {
                return Err(ModelError::param(
                    &format!("member {m}: allow_missing"),
                    false,
                    "true: the batch's data has missing values (NaN)",
                ));
            }
            if member.train.is_empty() {
                return Err(ModelError::Data(format!(
                    "member {m} has no training rows (an empty fold?)"
                )));
            }
            if let Some(&r) = member
                .train
                .iter()
                .chain(&member.valid)
                .find(|&&r| r as usize >= n_rows)
            {
                return Err(ModelError::Data(format!(
                    "member {m}: row {r} is outside the batch's {n_rows} rows"
                )));
            }
            if p.early_stopping_rounds > 0 && member.valid.is_empty() {
                return Err(ModelError::Data(format!(
                    "member {m}: early_stopping_rounds = {} needs validation rows, and it has \
                     none (an empty validation fold?)",
                    p.early_stopping_rounds
                )));
            }
            let mut counts = vec![0usize; data.n_classes];
            for &r in &member.train {
                counts[data.labels[r as usize] as usize] += 1;
            }
            if let Some(c) = counts.iter().position(|&c| c == 0) {
                return Err(ModelError::Data(format!(
                    "member {m}: class {c} has no training rows; every class needs at least one"
                )));
            }
            Ok(p)
        })
        .collect()
}

/// Per-member state of the driver.
struct MemberState {
    init: Vec<f64>,
    trees: Vec<Vec<Tree>>,
    evals: Vec<RoundEval>,
    valid_loss: Vec<f64>,
    best: (f64, usize),
    importance_gain: Vec<f64>,
    importance_split: Vec<u64>,
    end: Option<MemberEnd>,
    rounds: usize,
}

/// Boosts every member of a batch together on `options.device`. `on_round` sees each active
/// member's metrics after every round and may stop it ([`Control::Stop`]); a member also stops
/// early on its own validation loss. Returns one fit per member, in order.
pub fn fit_batched(
    data: &BatchData,
    members: &[BatchMember],
    options: &BatchOptions,
    on_round: &mut (dyn FnMut(MemberRound) -> Control + Send),
) -> Result<Vec<MemberFit>> {
    let params = check_members(data, members)?;
    let k = outputs(data.n_classes);
    let nc = data.n_classes;
    // The fixed layout.
    let mut row_off = vec![0u32];
    let (mut member_of, mut row_of) = (Vec::new(), Vec::new());
    let (mut valid_member_of, mut valid_row_of) = (Vec::new(), Vec::new());
    let (mut scores, mut valid_scores) = (Vec::new(), Vec::new());
    let mut states = Vec::with_capacity(members.len());
    let mut class_weight = Vec::with_capacity(members.len() * nc);
    let (mut cap, mut slots_per_tree) = (1usize, 1usize);
    for (m, (member, p)) in members.iter().zip(&params).enumerate() {
        let y: Vec<u32> = member
            .train
            .iter()
            .map(|&r| data.labels[r as usize])
            .collect();
        let weights: Vec<f64> = y
            .iter()
            .map(|&c| p.class_weights.get(c as usize).copied().unwrap_or(1.0))
            .collect();
        let init32: Vec<f32> = initial_scores(&y, &weights, nc)
            .iter()
            .map(|&v| v as f32)
            .collect();
        for &r in &member.train {
            member_of.push(m as u32);
            row_of.push(r);
            scores.extend_from_slice(&init32);
        }
        row_off.push(member_of.len() as u32);
        for &r in &member.valid {
            valid_member_of.push(m as u32);
            valid_row_of.push(r);
            valid_scores.extend_from_slice(&init32);
        }
        class_weight.extend((0..nc).map(|c| p.class_weights.get(c).copied().unwrap_or(1.0) as f32));
        let (c, s) = tree_budget(p, member.train.len());
        cap = cap.max(c);
        slots_per_tree = slots_per_tree.max(s);
        states.push(MemberState {
            init: init32.iter().map(|&v| f64::from(v)).collect(),
            trees: Vec::new(),
            evals: Vec::new(),
            valid_loss: Vec::new(),
            best: (f64::INFINITY, 0),
            importance_gain: vec![0.0; data.feature_names.len()],
            importance_split: vec![0; data.feature_names.len()],
            end: None,
            rounds: 0,
        });
    }
    let problem = Problem {
        n_outputs: k,
        n_classes: nc,
        cap,
        member_of,
        row_of,
        row_off: row_off.clone(),
        seed: params.iter().map(|p| seed32(p.seed)).collect(),
        class_weight,
        valid_member_of,
        valid_row_of,
        labels: data.labels.clone(),
    };
    let n_trees = problem.n_trees();
    let device = options.device.to_string();
    let (mut backend, device) = match make_backend(
        options,
        problem.clone(),
        data,
        slots_per_tree,
        &scores,
        &valid_scores,
    ) {
        Ok(b) => (b, device),
        Err(ModelError::Kernel(e))
            if options.cpu_fallback && options.device != BatchDevice::Cpu =>
        {
            let reason = format!("{device}: {e}");
            // The cap was the device's; the CPU has its own.
            let cpu = BatchOptions {
                device: BatchDevice::Cpu,
                memory_limit: None,
                cpu_fallback: false,
            };
            let b = make_backend(&cpu, problem, data, slots_per_tree, &scores, &valid_scores)?;
            (b, format!("cpu (fallback: {reason})"))
        }
        Err(e) => return Err(e),
    };
    let all_features: Vec<usize> = (0..data.feature_names.len()).collect();
    let any_subsample = params.iter().any(|p| p.subsample < 1.0);
    let mut round = 0usize;
    loop {
        let active: Vec<u32> = states.iter().map(|s| u32::from(s.end.is_none())).collect();
        if active.iter().all(|&a| a == 0) {
            break;
        }
        // The engine's per-round draws: rows in the bag, then one seed per output's tree.
        let mut in_bag = vec![1u32; row_off[members.len()] as usize];
        let mut tree_seeds = vec![Vec::new(); members.len()];
        for (m, p) in params.iter().enumerate() {
            if active[m] == 0 {
                continue;
            }
            let mut rng =
                SplitMix64::new(p.seed ^ (round as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            if p.subsample < 1.0 {
                let cut = (p.subsample * f64::from(u32::MAX)) as u64;
                let start = row_off[m] as usize;
                for b in &mut in_bag[start..row_off[m + 1] as usize] {
                    *b = u32::from(rng.next_u64() >> 32 <= cut);
                }
            }
            tree_seeds[m] = (0..k).map(|_| rng.next_u64()).collect();
        }
        let max_bits = backend.begin_round(&active, any_subsample.then_some(&in_bag[..]))?;
        let mut rounds = vec![TreeRound::default(); n_trees];
        for (m, p) in params.iter().enumerate() {
            if active[m] == 0 {
                continue;
            }
            for j in 0..k {
                let t = m * k + j;
                rounds[t] = tree_round(
                    p,
                    [max_bits[2 * t], max_bits[2 * t + 1]],
                    members[m].train.len(),
                    &|| format!("member {m}, round {round}, output {j}"),
                )?;
            }
        }
        let roots = backend.quantize(&rounds, round as u32)?;
        let mut trees: Vec<TreeGrowth<'_>> = Vec::new();
        for (m, p) in params.iter().enumerate() {
            if active[m] == 0 {
                continue;
            }
            for (j, &seed) in tree_seeds[m].iter().enumerate() {
                let t = m * k + j;
                let mut tree_rng = SplitMix64::new(seed);
                let features = sample(&all_features, p.colsample_bytree, &mut tree_rng);
                let node_seed = tree_rng.next_u64();
                let first = (t * slots_per_tree) as u32;
                trees.push(TreeGrowth::new(
                    t,
                    p,
                    rounds[t],
                    roots[t],
                    features,
                    node_seed,
                    first..first + slots_per_tree as u32,
                ));
            }
        }
        grow_trees(
            backend.as_mut(),
            &mut trees,
            params[0].growth,
            &data.mappers,
        )?;
        let mut pairs = Vec::new();
        for t in &trees {
            t.leaf_pairs(&mut pairs);
        }
        let (values, metric_words) = backend.finish_round(&pairs)?;
        let mut values = values.into_iter();
        let mut grown = trees.into_iter().peekable();
        for (m, p) in params.iter().enumerate() {
            if active[m] == 0 {
                continue;
            }
            let state = &mut states[m];
            let mut round_trees = Vec::with_capacity(k);
            while grown.peek().is_some_and(|t| t.tree / k == m) {
                let (tree, splits) = grown.next().expect("peeked").into_tree(&mut values);
                for (f, gain) in splits {
                    state.importance_gain[f] += gain;
                    state.importance_split[f] += 1;
                }
                round_trees.push(tree);
            }
            state.trees.push(round_trees);
            state.rounds = round + 1;
            let n_valid = members[m].valid.len();
            let eval = (n_valid > 0).then(|| {
                let (logloss, accuracy) = finish_metrics(&metric_words[3 * m..3 * m + 3], n_valid);
                RoundEval { logloss, accuracy }
            });
            if let Some(e) = eval {
                state.evals.push(e);
                state.valid_loss.push(e.logloss);
                if e.logloss < state.best.0 {
                    state.best = (e.logloss, round);
                }
            }
            let control = on_round(MemberRound {
                member: m,
                round,
                eval,
            });
            state.end = if control == Control::Stop {
                Some(MemberEnd::Stopped)
            } else if p.early_stopping_rounds > 0
                && eval.is_some()
                && round - state.best.1 >= p.early_stopping_rounds
            {
                Some(MemberEnd::EarlyStopped)
            } else if round + 1 >= p.rounds {
                Some(MemberEnd::Completed)
            } else {
                None
            };
        }
        round += 1;
    }
    Ok(states
        .into_par_iter()
        .zip(params.into_par_iter())
        .map(|(s, p)| {
            let mut trees = s.trees;
            if p.early_stopping_rounds > 0 && !s.valid_loss.is_empty() {
                trees.truncate(s.best.1 + 1);
            }
            MemberFit {
                model: GbdtModel {
                    format: GBDT_FORMAT.to_owned(),
                    format_version: GBDT_FORMAT_VERSION,
                    params: (*p).clone(),
                    feature_names: data.feature_names.clone(),
                    n_classes: data.n_classes,
                    init: s.init,
                    trees,
                    valid_loss: s.valid_loss,
                    importance_gain: s.importance_gain,
                    importance_split: s.importance_split,
                    target_stats: Vec::new(),
                },
                evals: s.evals,
                end: s.end.unwrap_or(MemberEnd::Completed),
                rounds: s.rounds,
                device: device.clone(),
            }
        })
        .collect())
}

/// The default memory cap of the CPU backend.
const CPU_MEMORY: u64 = 8 << 30;

fn make_backend(
    options: &BatchOptions,
    problem: Problem,
    data: &BatchData,
    slots_per_tree: usize,
    scores: &[f32],
    valid_scores: &[f32],
) -> Result<Box<dyn Backend>> {
    let bins = &data.bins;
    let slots = problem.n_trees() * slots_per_tree;
    match options.device {
        BatchDevice::Cpu => {
            let hist = (slots * bins.total_bins * 3 * 4) as u64;
            let per_row = (problem.n_entries() * problem.n_outputs * 7 * 4) as u64;
            let tables = (problem.n_trees() * problem.cap * 7 * 4) as u64;
            let limit = options.memory_limit.unwrap_or(CPU_MEMORY);
            let bytes = hist + per_row + tables;
            if bytes > limit {
                return Err(ModelError::Kernel(
                    tabtune_kernels::KernelError::OutOfMemory {
                        what: format!(
                            "the batch's histograms ({slots} slots of {} bins) and per-row state",
                            bins.total_bins
                        ),
                        bytes,
                        limit: Some(limit),
                    },
                ));
            }
            Ok(Box::new(CpuBackend::new(
                problem,
                bins.clone(),
                data.binned.clone(),
                slots_per_tree,
                scores.to_vec(),
                valid_scores.to_vec(),
            )))
        }
        #[cfg(feature = "wgpu")]
        BatchDevice::Wgpu => {
            let gpu = tabtune_kernels::gpu::Gpu::wgpu()?;
            gpu_backend(gpu, options, problem, bins, slots, scores, valid_scores)
        }
        #[cfg(feature = "cuda")]
        BatchDevice::Cuda(index) => {
            let gpu = tabtune_kernels::gpu::Gpu::cuda(index)?;
            gpu_backend(gpu, options, problem, bins, slots, scores, valid_scores)
        }
        #[allow(unreachable_patterns)]
        other => Err(ModelError::Data(format!(
            "batched fit on {other:?}: this build has no such backend (cargo features `wgpu` / \
             `cuda`)"
        ))),
    }
}

#[cfg(any(feature = "wgpu", feature = "cuda"))]
fn gpu_backend<R: tabtune_kernels::gpu::Runtime>(
    gpu: tabtune_kernels::gpu::Gpu<R>,
    options: &BatchOptions,
    problem: Problem,
    bins: &BinMatrix,
    slots: usize,
    scores: &[f32],
    valid_scores: &[f32],
) -> Result<Box<dyn Backend>> {
    let gpu = match options.memory_limit {
        Some(l) => gpu.with_memory_limit(l),
        None => gpu,
    };
    Ok(Box::new(gpu::GpuBackend::new(
        gpu,
        &problem,
        bins,
        slots,
        scores,
        valid_scores,
    )?))
}
