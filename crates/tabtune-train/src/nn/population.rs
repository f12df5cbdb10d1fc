//! Population training: P members (trials with compatible shapes, or the folds of a CV run)
//! train as one stacked model. Every member has its own learning rate, weight decay, dropout,
//! label smoothing, gradient clip, seed, training rows, validation rows, width (narrower members
//! are zero-padded) and early-stopping state; a finished or pruned member is masked out of the
//! updates. A member's result equals what it gets trained alone (a population of one) within
//! float tolerance: all per-member randomness comes from the member's own seed, and nothing
//! couples members (the loss is a sum of per-member losses, AdamW and clipping are per member).

use std::sync::Arc;
use std::time::Instant;

use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Bool, Int, Tensor, TensorData};
use tabtune_features::rng::SplitMix64;
use tabtune_models::metrics::Control;
use tabtune_models::nn::{
    BATCH_NORM_MOMENTUM, BatchRows, BatchStats, DropoutKey, DropoutLayout, DropoutMasks, Masks,
    NamedTensor, NetShape, NeuralModel, NeuralParams, Norm, Role, forward, forward_with_stats,
    quantile_edges,
};

use super::device::{BackendJob, Device, DeviceChoice, dispatch};
use crate::error::{Result, TrainError};

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPSILON: f32 = 1e-8;
/// Rows per evaluation forward pass.
const EVAL_CHUNK: usize = 2048;

/// A data matrix with labels that members index into.
#[derive(Clone, Debug, PartialEq)]
pub struct DataBlock {
    /// Values, row-major `[n_rows, n_features]`, all finite.
    pub x: Vec<f32>,
    /// Labels `0..n_classes`, one per row.
    pub y: Vec<u32>,
}

/// The data of a population: one or more blocks of the same shape (one block when every
/// member sees the same preprocessed matrix; one per fold when each fold has its own fitted
/// preprocessor).
#[derive(Clone, Debug, PartialEq)]
pub struct PopulationData {
    /// Feature names (the model's inputs).
    pub feature_names: Vec<String>,
    /// Classes.
    pub n_classes: usize,
    /// Rows per block.
    pub n_rows: usize,
    /// The blocks.
    pub blocks: Vec<DataBlock>,
}

impl PopulationData {
    /// One block from a column-major feature matrix and its labels; refuses non-finite values,
    /// naming the row and feature.
    pub fn single(
        feature_names: &[String],
        n_classes: usize,
        values: ndarray::ArrayView2<'_, f32>,
        labels: &[u32],
    ) -> Result<Self> {
        Ok(Self {
            feature_names: feature_names.to_vec(),
            n_classes,
            n_rows: values.nrows(),
            blocks: vec![block(feature_names, values, labels)?],
        })
    }
}

/// A block from a matrix, refusing NaN or infinite values and out-of-range labels.
pub(crate) fn block(
    feature_names: &[String],
    values: ndarray::ArrayView2<'_, f32>,
    labels: &[u32],
) -> Result<DataBlock> {
    if let Some(((row, col), v)) = values.indexed_iter().find(|(_, v)| !v.is_finite()) {
        return Err(TrainError::NotFinite {
            row,
            feature: feature_names
                .get(col)
                .map_or("?", String::as_str)
                .to_owned(),
            value: *v,
        });
    }
    let mut x = Vec::with_capacity(values.len());
    for row in values.rows() {
        x.extend(row.iter().copied());
    }
    Ok(DataBlock {
        x,
        y: labels.to_vec(),
    })
}

/// One member of a population.
#[derive(Clone, Debug, PartialEq)]
pub struct Member {
    /// Its parameters (all members must be [`NeuralParams::stack_compatible`]).
    pub params: NeuralParams,
    /// The data block it reads.
    pub block: usize,
    /// Rows it trains on (its training-row mask).
    pub train_rows: Vec<usize>,
    /// Rows it is validated on each epoch (early stopping, best epoch); empty = none (the
    /// last epoch's weights are kept).
    pub valid_rows: Vec<usize>,
}

/// Metrics of one member after one epoch, handed to the `on_epoch` hook.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct EpochMetrics {
    /// Epoch, from 1.
    pub epoch: usize,
    /// Mean training loss (label-smoothed cross-entropy) over the epoch's batches.
    pub train_loss: f64,
    /// Validation log loss, when the member has validation rows.
    pub valid_logloss: Option<f64>,
    /// Validation accuracy, when the member has validation rows.
    pub valid_accuracy: Option<f64>,
    /// Learning rate at the end of the epoch.
    pub learning_rate: f64,
    /// Seconds since training started.
    pub seconds: f64,
    /// The member's new best weights, when this epoch improved its validation log loss (or
    /// it has no validation rows) and the device choice asks for them
    /// ([`DeviceChoice::with_checkpoints`]): what a caller writes as the best-epoch checkpoint.
    /// Never kept in [`MemberResult::history`].
    #[serde(skip)]
    pub best_model: Option<Arc<NeuralModel>>,
}

/// Why a member stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StopReason {
    /// Ran every epoch.
    Completed,
    /// No better validation log loss for `patience` epochs.
    EarlyStopped,
    /// The hook answered [`Control::Stop`] (pruned by a tuner).
    Pruned,
}

/// What one member ended with.
#[derive(Clone, Debug, PartialEq)]
pub struct MemberResult {
    /// The model with the best epoch's weights (the last epoch's without validation rows).
    pub model: NeuralModel,
    /// The epoch of those weights, from 1.
    pub best_epoch: usize,
    /// Epochs run.
    pub epochs_run: usize,
    /// Validation log loss of the best epoch.
    pub valid_logloss: Option<f64>,
    /// Validation accuracy of the best epoch.
    pub valid_accuracy: Option<f64>,
    /// Class probabilities of the validation rows under the best weights,
    /// `[valid_rows.len() * n_classes]` row-major.
    pub valid_proba: Vec<f64>,
    /// Per-epoch metrics.
    pub history: Vec<EpochMetrics>,
    /// Why it stopped.
    pub stop: StopReason,
}

/// Trains `members` as one stacked model on `device`. `on_epoch(member, metrics)` is called
/// after every epoch of every member still training, in member order; answering
/// [`Control::Stop`] prunes that member (its best weights so far are kept).
pub fn train_population(
    data: &PopulationData,
    members: &[Member],
    device: &DeviceChoice,
    on_epoch: &mut dyn FnMut(usize, &EpochMetrics) -> Control,
) -> Result<Vec<MemberResult>> {
    train_population_with(
        data,
        members,
        device,
        on_epoch,
        device.device != Device::Cpu,
        true,
    )
}

/// [`train_population`], with dropout masks computed on the device (`device_dropout`) or drawn
/// on the host; both give the same masks (the CPU default is the host, where it is cheaper).
/// `split`: on the CPU, members train on several threads ([`cpu_groups`]); without it, as one
/// stack (what a GPU does; the tests of the stack run it on the CPU).
pub(crate) fn train_population_with(
    data: &PopulationData,
    members: &[Member],
    device: &DeviceChoice,
    on_epoch: &mut dyn FnMut(usize, &EpochMetrics) -> Control,
    device_dropout: bool,
    split: bool,
) -> Result<Vec<MemberResult>> {
    validate(data, members)?;
    if device.device == Device::Cpu {
        super::memory::keep_freed_memory();
    }
    let groups = if split {
        cpu_groups(device, members.len())
    } else {
        1
    };
    if groups > 1 {
        return train_groups(data, members, device, on_epoch, device_dropout, groups);
    }
    dispatch(
        device,
        Job {
            data,
            members,
            on_epoch,
            checkpoints: device.checkpoints,
            device_dropout,
        },
    )?
}

/// Threads a CPU population is split over: one per member, at most four per core (1 off the
/// CPU, where one stacked launch is the point). Members share nothing, so a split changes no
/// result; on the CPU the stack does the same arithmetic as separate runs, and without a split
/// its many small element-wise passes keep one core busy. More threads than cores balance
/// better than one slice per core (5 folds on 2 cores: 3 + 2 members left one core idle for a
/// third of the time; measured 57 s vs 53 s for two TabM epochs).
fn cpu_groups(device: &DeviceChoice, members: usize) -> usize {
    if device.device == Device::Cpu {
        members.min(4 * tabtune_models::max_threads())
    } else {
        1
    }
}

/// An epoch of a member trained on a group thread, relayed to the caller's hook (which need
/// not be `Send`) with a channel to answer on.
type Relayed = (usize, EpochMetrics, std::sync::mpsc::Sender<Control>);

/// Trains `members` as `groups` populations on their own threads (contiguous, balanced
/// slices); every epoch goes to `on_epoch` on the calling thread with the member's index in
/// `members`. Results come back in member order; the first group error is returned.
fn train_groups(
    data: &PopulationData,
    members: &[Member],
    device: &DeviceChoice,
    on_epoch: &mut dyn FnMut(usize, &EpochMetrics) -> Control,
    device_dropout: bool,
    groups: usize,
) -> Result<Vec<MemberResult>> {
    let (events, inbox) = std::sync::mpsc::channel::<Relayed>();
    let bounds: Vec<(usize, usize)> = (0..groups)
        .map(|g| (g * members.len() / groups, (g + 1) * members.len() / groups))
        .collect();
    std::thread::scope(|scope| {
        let mut handles = Vec::with_capacity(groups);
        for (g, &(from, to)) in bounds.iter().enumerate() {
            let sender = events.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("tabtune-population-{g}"))
                .spawn_scoped(scope, move || {
                    let mut relay = |m: usize, e: &EpochMetrics| {
                        let (answer, reply) = std::sync::mpsc::channel();
                        // The caller gone (it stopped listening) means stop.
                        if sender.send((from + m, e.clone(), answer)).is_err() {
                            return Control::Stop;
                        }
                        reply.recv().unwrap_or(Control::Stop)
                    };
                    dispatch(
                        device,
                        Job {
                            data,
                            members: &members[from..to],
                            on_epoch: &mut relay,
                            checkpoints: device.checkpoints,
                            device_dropout,
                        },
                    )?
                });
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => {
                    // Threads already started end when their members do; this one never ran.
                    drop(events);
                    for (m, metrics, answer) in &inbox {
                        let _ = answer.send(on_epoch(m, &metrics));
                    }
                    for h in handles {
                        let _ = h.join();
                    }
                    return Err(TrainError::Model(tabtune_models::ModelError::Threads {
                        threads: groups,
                        message: e.to_string(),
                    }));
                }
            }
        }
        drop(events);
        // Every group's sender is dropped when it ends, which ends this loop.
        for (m, metrics, answer) in &inbox {
            let _ = answer.send(on_epoch(m, &metrics));
        }
        let mut out = Vec::with_capacity(members.len());
        let mut first_error = None;
        for h in handles {
            match h.join() {
                Ok(Ok(results)) => out.extend(results),
                Ok(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        first_error.map_or(Ok(out), Err)
    })
}

fn validate(data: &PopulationData, members: &[Member]) -> Result<()> {
    let first = members.first().ok_or(TrainError::EmptyPopulation)?;
    if data.n_classes < 2 {
        return Err(TrainError::TooFewClasses {
            n_classes: data.n_classes,
        });
    }
    for (b, block) in data.blocks.iter().enumerate() {
        if block.x.len() != data.n_rows * data.feature_names.len() || block.y.len() != data.n_rows {
            return Err(TrainError::BlockShape {
                block: b,
                rows: data.n_rows,
                features: data.feature_names.len(),
                values: block.x.len(),
                labels: block.y.len(),
            });
        }
        if let Some((row, y)) = block
            .y
            .iter()
            .enumerate()
            .find(|(_, y)| **y as usize >= data.n_classes)
        {
            return Err(TrainError::BlockLabel {
                block: b,
                row,
                label: *y,
                n_classes: data.n_classes,
            });
        }
    }
    for (m, member) in members.iter().enumerate() {
        member
            .params
            .check()
            .map_err(|source| TrainError::MemberParams { member: m, source })?;
        if !first.params.stack_compatible(&member.params) {
            return Err(TrainError::MemberIncompatible { member: m });
        }
        if member.block >= data.blocks.len() {
            return Err(TrainError::MemberBlock {
                member: m,
                block: member.block,
                n_blocks: data.blocks.len(),
            });
        }
        if member.train_rows.is_empty() {
            return Err(TrainError::MemberNoRows { member: m });
        }
        if let Some(row) = member
            .train_rows
            .iter()
            .chain(&member.valid_rows)
            .find(|&&r| r >= data.n_rows)
        {
            return Err(TrainError::MemberRow {
                member: m,
                row: *row,
                n_rows: data.n_rows,
            });
        }
    }
    Ok(())
}

struct Job<'a> {
    data: &'a PopulationData,
    members: &'a [Member],
    on_epoch: &'a mut dyn FnMut(usize, &EpochMetrics) -> Control,
    checkpoints: bool,
    device_dropout: bool,
}

impl BackendJob for Job<'_> {
    type Output = Result<Vec<MemberResult>>;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Output {
        let mut trainer = Trainer::<B>::new(self.data, self.members, device, self.device_dropout);
        trainer.checkpoints = self.checkpoints;
        Ok(trainer.run(self.on_epoch))
    }
}

type Inner<B> = <B as AutodiffBackend>::InnerBackend;

/// Per-member training state kept on the CPU.
struct MemberState {
    shuffle: SplitMix64,
    dropout: SplitMix64,
    steps: usize,
    steps_per_epoch: usize,
    active: bool,
    best_loss: f64,
    best_epoch: usize,
    since_best: usize,
    best_metrics: (Option<f64>, Option<f64>),
    best_proba: Vec<f64>,
    history: Vec<EpochMetrics>,
    stop: StopReason,
    lr: f64,
}

struct Trainer<'a, B: AutodiffBackend> {
    data: &'a PopulationData,
    members: &'a [Member],
    device: B::Device,
    shape: NetShape,
    widths: Vec<usize>,
    specs: Vec<tabtune_models::nn::TensorSpec>,
    x_all: Tensor<B, 2>,
    params: Vec<Tensor<Inner<B>, 3>>,
    best: Vec<Tensor<Inner<B>, 3>>,
    /// AdamW's moments of the trainable tensors, flat `[P, N]` (see `flat`).
    adam_m: Tensor<Inner<B>, 2>,
    adam_v: Tensor<Inner<B>, 2>,
    /// Each trainable tensor's index in `params`, offset and length in the flat `[P, N]` block.
    flat: Vec<(usize, usize, usize)>,
    /// 1 on the flat block's weight-matrix entries (decayed), 0 elsewhere, `[1, N]`.
    decay_mask: Tensor<Inner<B>, 2>,
    state: Vec<MemberState>,
    /// Whether the hook gets each improved member's best weights.
    checkpoints: bool,
    /// Rows per step: the batch size, at most the largest member's training rows.
    batch: usize,
    /// Where each step's dropout masks come from.
    dropout: DropoutMasks<Inner<B>>,
}

fn member_tensor<BK: Backend>(values: Vec<f32>, p: usize, device: &BK::Device) -> Tensor<BK, 2> {
    Tensor::from_data(TensorData::new(values, [p, 1]), device)
}

impl<'a, B: AutodiffBackend> Trainer<'a, B> {
    fn new(
        data: &'a PopulationData,
        members: &'a [Member],
        device: B::Device,
        device_dropout: bool,
    ) -> Self {
        let p = members.len();
        let widths: Vec<usize> = members.iter().map(|m| m.params.width).collect();
        let width = widths.iter().copied().max().unwrap_or(1);
        let shape = NetShape::new(&members[0].params, data.feature_names.len(), data.n_classes)
            .with_width(width);
        let specs = shape.layout();
        // Each member's initial values come from its own seed and width only; its bin edges
        // from its own training rows only (never its validation rows).
        let n_features = data.feature_names.len();
        let inits: Vec<Vec<Vec<f32>>> = members
            .iter()
            .map(|m| {
                let mut init =
                    shape.init_member(m.params.width, m.params.frequency_scale, m.params.seed);
                if let Some(at) = shape.edges_index() {
                    let x = &data.blocks[m.block].x;
                    let mut column = Vec::with_capacity(m.train_rows.len());
                    let mut edges = Vec::with_capacity(n_features * (shape.n_bins + 1));
                    for j in 0..n_features {
                        column.clear();
                        column.extend(m.train_rows.iter().map(|&r| x[r * n_features + j]));
                        edges.extend(quantile_edges(&mut column, shape.n_bins));
                    }
                    init[at] = edges;
                }
                init
            })
            .collect();
        let params: Vec<Tensor<Inner<B>, 3>> = specs
            .iter()
            .enumerate()
            .map(|(i, spec)| {
                let mut values = Vec::with_capacity(p * spec.dims[0] * spec.dims[1]);
                for init in &inits {
                    values.extend_from_slice(&init[i]);
                }
                Tensor::from_data(
                    TensorData::new(values, [p, spec.dims[0], spec.dims[1]]),
                    &device,
                )
            })
            .collect();
        let mut flat = Vec::new();
        let mut decay = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            if spec.role.trainable() {
                let len = spec.dims[0] * spec.dims[1];
                flat.push((i, decay.len(), len));
                let decayed = f32::from(u8::from(spec.role == Role::Weight));
                decay.extend(std::iter::repeat_n(decayed, len));
            }
        }
        let n_flat = decay.len();
        let decay_mask = Tensor::from_data(TensorData::new(decay, [1, n_flat]), &device);
        let zeros = Tensor::<Inner<B>, 2>::zeros([p, n_flat], &device);
        let mut x = Vec::with_capacity(data.blocks.len() * data.x_len());
        for b in &data.blocks {
            x.extend_from_slice(&b.x);
        }
        let x_all = Tensor::<B, 2>::from_data(
            TensorData::new(x, [data.blocks.len() * data.n_rows, n_features]),
            &device,
        );
        // A batch larger than every member's training rows is one batch of those rows.
        let batch = members[0]
            .params
            .batch_size
            .min(
                members
                    .iter()
                    .map(|m| m.train_rows.len())
                    .max()
                    .unwrap_or(1),
            )
            .max(1);
        let state = members
            .iter()
            .map(|m| MemberState {
                shuffle: SplitMix64::new(m.params.seed ^ 0x7368_7566_666C_6521),
                dropout: SplitMix64::new(m.params.seed ^ 0x6472_6F70_6F75_7421),
                steps: 0,
                steps_per_epoch: m.train_rows.len().div_ceil(batch),
                active: true,
                best_loss: f64::INFINITY,
                best_epoch: 0,
                since_best: 0,
                best_metrics: (None, None),
                best_proba: Vec::new(),
                history: Vec::new(),
                stop: StopReason::Completed,
                lr: 0.0,
            })
            .collect();
        let dropout_layout = DropoutLayout {
            k: shape.k,
            rows: batch,
            width,
            own: widths.clone(),
        };
        // Counters go to the device only when some member uses dropout.
        let on_device = device_dropout && members.iter().any(|m| m.params.dropout > 0.0);
        let dropout = DropoutMasks::new(dropout_layout, on_device, &device);
        Self {
            data,
            members,
            device,
            shape,
            widths,
            specs,
            x_all,
            best: params.clone(),
            adam_m: zeros.clone(),
            adam_v: zeros,
            flat,
            decay_mask,
            params,
            state,
            checkpoints: false,
            batch,
            dropout,
        }
    }

    fn p(&self) -> usize {
        self.members.len()
    }

    fn run(
        mut self,
        on_epoch: &mut dyn FnMut(usize, &EpochMetrics) -> Control,
    ) -> Vec<MemberResult> {
        let start = Instant::now();
        let epochs = self.members[0].params.epochs;
        let batch = self.batch;
        let p = self.p();
        let train_masks = Masks::<B>::eval(&self.widths, self.shape.width, &self.device);
        let eval_masks = Masks::<Inner<B>>::eval(&self.widths, self.shape.width, &self.device);
        for epoch in 1..=epochs {
            if !self.state.iter().any(|s| s.active) {
                break;
            }
            let orders: Vec<Vec<usize>> = self
                .members
                .iter()
                .zip(&mut self.state)
                .map(|(m, s)| {
                    let mut rows = m.train_rows.clone();
                    if s.active {
                        s.shuffle.shuffle(&mut rows);
                    }
                    rows
                })
                .collect();
            let max_steps = self
                .state
                .iter()
                .filter(|s| s.active)
                .map(|s| s.steps_per_epoch)
                .max()
                .unwrap_or(0);
            let mut loss_sum = Tensor::<Inner<B>, 1>::zeros([p], &self.device);
            for step in 0..max_steps {
                let batches: Vec<&[usize]> = orders
                    .iter()
                    .zip(&self.state)
                    .map(|(rows, s)| {
                        if s.active && step < s.steps_per_epoch {
                            let from = step * batch;
                            &rows[from..(from + batch).min(rows.len())]
                        } else {
                            &rows[..0]
                        }
                    })
                    .collect();
                let loss = self.step(&batches, batch, &train_masks);
                loss_sum = loss_sum + loss;
            }
            let losses: Vec<f32> = loss_sum
                .into_data()
                .into_vec()
                .expect("a float tensor reads back as f32");
            let evaluated = self.evaluate(&eval_masks);
            let mut improved = vec![false; p];
            let mut epoch_metrics: Vec<Option<EpochMetrics>> = vec![None; p];
            for m in 0..p {
                if !self.state[m].active {
                    continue;
                }
                let s = &mut self.state[m];
                let train_loss = f64::from(losses[m]) / s.steps_per_epoch as f64;
                let (valid_logloss, valid_accuracy, proba) = match &evaluated[m] {
                    Some((l, a, pr)) => (Some(*l), Some(*a), pr.clone()),
                    None => (None, None, Vec::new()),
                };
                let metrics = EpochMetrics {
                    epoch,
                    train_loss,
                    valid_logloss,
                    valid_accuracy,
                    learning_rate: s.lr,
                    seconds: start.elapsed().as_secs_f64(),
                    best_model: None,
                };
                let score = valid_logloss.unwrap_or(f64::NEG_INFINITY);
                if valid_logloss.is_none() || score < s.best_loss {
                    s.best_loss = score;
                    s.best_epoch = epoch;
                    s.since_best = 0;
                    s.best_metrics = (valid_logloss, valid_accuracy);
                    s.best_proba = proba;
                    improved[m] = true;
                } else {
                    s.since_best += 1;
                }
                s.history.push(metrics.clone());
                epoch_metrics[m] = Some(metrics);
            }
            if improved.iter().any(|&i| i) {
                let mask = self.member_mask(&improved);
                self.best = self
                    .best
                    .iter()
                    .zip(&self.params)
                    .map(|(best, cur)| {
                        let dims = best.dims();
                        best.clone()
                            .mask_where(mask.clone().expand(dims), cur.clone())
                    })
                    .collect();
                if self.checkpoints {
                    // The hook gets each improved member's new best weights (to write them).
                    let host = self.best_on_host();
                    for (m, metrics) in epoch_metrics.iter_mut().enumerate() {
                        if let (true, Some(metrics)) = (improved[m], metrics) {
                            metrics.best_model = Some(Arc::new(self.member_model(m, &host)));
                        }
                    }
                }
            }
            for (m, metrics) in epoch_metrics.into_iter().enumerate() {
                let Some(metrics) = metrics else { continue };
                let patience = self.members[m].params.patience;
                let s = &mut self.state[m];
                if on_epoch(m, &metrics) == Control::Stop {
                    s.active = false;
                    s.stop = StopReason::Pruned;
                } else if metrics.valid_logloss.is_some()
                    && patience > 0
                    && s.since_best >= patience
                {
                    s.active = false;
                    s.stop = StopReason::EarlyStopped;
                }
            }
        }
        self.results()
    }

    /// `[P, 1, 1]`, true for the members flagged.
    fn member_mask(&self, flags: &[bool]) -> Tensor<Inner<B>, 3, Bool> {
        let values: Vec<i32> = flags.iter().map(|&f| i32::from(f)).collect();
        Tensor::<Inner<B>, 3, Int>::from_data(
            TensorData::new(values, [flags.len(), 1, 1]),
            &self.device,
        )
        .equal_elem(1)
    }

    /// One optimisation step of every member with rows in `batches`; returns each member's
    /// loss `[P]` (0 for members without rows).
    fn step(
        &mut self,
        batches: &[&[usize]],
        batch: usize,
        width_masks: &Masks<B>,
    ) -> Tensor<Inner<B>, 1> {
        let p = self.p();
        let n_classes = self.data.n_classes;
        let n_features = self.data.feature_names.len();
        // Row indices into x_all (padding rows point at row 0 with weight 0) and smoothed,
        // weighted targets [P, 1, batch, classes].
        let mut index = vec![0i32; p * batch];
        let mut target = vec![0f32; p * batch * n_classes];
        for (m, rows) in batches.iter().enumerate() {
            let member = &self.members[m];
            let offset = member.block * self.data.n_rows;
            let eps = member.params.label_smoothing;
            let weight = 1.0 / rows.len().max(1) as f64;
            let y = &self.data.blocks[member.block].y;
            for (r, &row) in rows.iter().enumerate() {
                index[m * batch + r] = (offset + row) as i32;
                let t = &mut target[(m * batch + r) * n_classes..][..n_classes];
                for (c, v) in t.iter_mut().enumerate() {
                    let one_hot = if c == y[row] as usize { 1.0 } else { 0.0 };
                    *v = (weight * ((1.0 - eps) * one_hot + eps / n_classes as f64)) as f32;
                }
            }
        }
        // Dropout multipliers, drawn from each member's own generator for its own rows and
        // units only (so a member draws the same numbers alone or in a population).
        let any_dropout = self
            .members
            .iter()
            .zip(batches)
            .any(|(m, rows)| m.params.dropout > 0.0 && !rows.is_empty());
        let mut masks = width_masks.clone();
        if any_dropout {
            for _ in 0..self.shape.depth {
                let keys: Vec<Option<(DropoutKey, f64)>> = batches
                    .iter()
                    .enumerate()
                    .map(|(m, rows)| {
                        let rate = self.members[m].params.dropout;
                        (rate > 0.0 && !rows.is_empty())
                            .then(|| (DropoutKey::draw(&mut self.state[m].dropout), rate))
                    })
                    .collect();
                masks
                    .dropout
                    .push(Tensor::from_inner(self.dropout.mask(&keys, &self.device)));
            }
        }
        if self.shape.norm == Norm::Batch {
            let counts: Vec<usize> = batches.iter().map(|rows| rows.len()).collect();
            masks.batch = Some(BatchRows::new(&counts, batch, &self.device));
        }
        // Edges and running statistics are inputs, not trained.
        let weights: Vec<Tensor<B, 3>> = self
            .params
            .iter()
            .zip(&self.specs)
            .map(|(t, spec)| {
                let t = Tensor::from_inner(t.clone());
                if spec.role.trainable() {
                    t.require_grad()
                } else {
                    t
                }
            })
            .collect();
        let index =
            Tensor::<B, 1, Int>::from_data(TensorData::new(index, [p * batch]), &self.device);
        let x = self
            .x_all
            .clone()
            .select(0, index)
            .reshape([p, batch, n_features]);
        let target = Tensor::<B, 4>::from_data(
            TensorData::new(target, [p, 1, batch, n_classes]),
            &self.device,
        );
        let (logits, stats) = forward_with_stats(&self.shape, &weights, x, &masks);
        // Per member: mean over the k ensemble members of the batch-mean cross-entropy.
        let member_loss = (log_softmax(logits, 3) * target)
            .sum_dim(3)
            .sum_dim(2)
            .mean_dim(1)
            .neg()
            .reshape([p]);
        let grads = member_loss.clone().sum().backward();
        let loss_values = member_loss.inner();

        // Per-member optimiser settings.
        let mut lr = vec![0f32; p];
        let mut decay = vec![0f32; p];
        let mut clip = vec![1e30f32; p];
        let mut c1 = vec![1f32; p];
        let mut c2 = vec![1f32; p];
        let mut has_rows = vec![false; p];
        for (m, rows) in batches.iter().enumerate() {
            if rows.is_empty() {
                continue;
            }
            has_rows[m] = true;
            let params = &self.members[m].params;
            let s = &mut self.state[m];
            let total = params.epochs * s.steps_per_epoch;
            let rate = params.learning_rate * params.schedule_factor(s.steps, total);
            s.lr = rate;
            s.steps += 1;
            let t = s.steps as i32;
            lr[m] = rate as f32;
            decay[m] = params.weight_decay as f32;
            if params.clip_norm > 0.0 {
                clip[m] = params.clip_norm as f32;
            }
            c1[m] = (1.0 / (1.0 - BETA1.powi(t))) as f32;
            c2[m] = (1.0 / (1.0 - BETA2.powi(t))) as f32;
        }
        let dev = &self.device;
        let lr_t = member_tensor::<Inner<B>>(lr, p, dev);
        let decay_t = member_tensor::<Inner<B>>(decay, p, dev);
        let clip_t = member_tensor::<Inner<B>>(clip, p, dev);
        let c1_t = member_tensor::<Inner<B>>(c1, p, dev);
        let c2_t = member_tensor::<Inner<B>>(c2, p, dev);
        // Every trainable tensor as one flat [P, N] block: the clip norm and AdamW run as a
        // handful of kernels for the whole model instead of ~20 per tensor (a GPU step of a
        // small net is bound by kernel launches).
        let n = self.flat.last().map_or(0, |&(_, at, len)| at + len);
        let flatten = |t: Tensor<Inner<B>, 3>| {
            let [pp, a, b] = t.dims();
            t.reshape([pp, a * b])
        };
        let g = Tensor::cat(
            self.flat
                .iter()
                .map(|&(i, _, _)| {
                    flatten(
                        weights[i]
                            .grad(&grads)
                            .unwrap_or_else(|| self.params[i].zeros_like()),
                    )
                })
                .collect(),
            1,
        );
        let theta = Tensor::cat(
            self.flat
                .iter()
                .map(|&(i, _, _)| flatten(self.params[i].clone()))
                .collect(),
            1,
        );
        // Global gradient norm per member; scale = clip / max(norm, clip).
        let norm = g.clone().square().sum_dim(1).sqrt();
        let scale = clip_t.clone() / norm.max_pair(clip_t);
        let skip = if has_rows.iter().all(|&h| h) {
            None
        } else {
            let flags: Vec<bool> = has_rows.iter().map(|h| !h).collect();
            Some(self.member_mask(&flags))
        };
        self.update_running_stats(stats, skip.as_ref());
        let g = g * scale;
        let m = self.adam_m.clone().mul_scalar(BETA1) + g.clone().mul_scalar(1.0 - BETA1);
        let v = self.adam_v.clone().mul_scalar(BETA2) + g.square().mul_scalar(1.0 - BETA2);
        let update = (m.clone() * c1_t) / (v.clone() * c2_t).sqrt().add_scalar(EPSILON)
            + theta.clone() * (decay_t * self.decay_mask.clone());
        let mut new = theta.clone() - update * lr_t;
        match &skip {
            None => {
                self.adam_m = m;
                self.adam_v = v;
            }
            Some(mask) => {
                let mask = mask.clone().reshape([p, 1]).expand([p, n]);
                new = new.mask_where(mask.clone(), theta);
                self.adam_m = m.mask_where(mask.clone(), self.adam_m.clone());
                self.adam_v = v.mask_where(mask, self.adam_v.clone());
            }
        }
        for &(i, at, len) in &self.flat {
            let dims = self.params[i].dims();
            self.params[i] = new.clone().slice([0..p, at..at + len]).reshape(dims);
        }
        loss_values
    }

    /// Moves each batch-norm layer's running statistics toward this step's batch statistics
    /// (members flagged in `skip` had no rows and keep theirs).
    fn update_running_stats(
        &mut self,
        stats: Vec<BatchStats<B>>,
        skip: Option<&Tensor<Inner<B>, 3, Bool>>,
    ) {
        if stats.is_empty() {
            return;
        }
        let means = self.role_indices(Role::RunningMean);
        let vars = self.role_indices(Role::RunningVar);
        for ((stat, mean_at), var_at) in stats.into_iter().zip(means).zip(vars) {
            for (at, value) in [(mean_at, stat.mean), (var_at, stat.var)] {
                let old = self.params[at].clone();
                let dims = old.dims();
                let new = old.clone().mul_scalar(1.0 - BATCH_NORM_MOMENTUM)
                    + value.inner().reshape(dims).mul_scalar(BATCH_NORM_MOMENTUM);
                self.params[at] = match skip {
                    None => new,
                    Some(mask) => new.mask_where(mask.clone().expand(dims), old),
                };
            }
        }
    }

    /// Positions in the layout of the tensors of `role`, in order.
    fn role_indices(&self, role: Role) -> Vec<usize> {
        self.specs
            .iter()
            .enumerate()
            .filter(|(_, s)| s.role == role)
            .map(|(i, _)| i)
            .collect()
    }

    /// Validation log loss, accuracy and probabilities of every active member with
    /// validation rows, under the current weights.
    #[allow(clippy::type_complexity)]
    fn evaluate(&self, masks: &Masks<Inner<B>>) -> Vec<Option<(f64, f64, Vec<f64>)>> {
        let p = self.p();
        let n_classes = self.data.n_classes;
        let n_features = self.data.feature_names.len();
        let wanted: Vec<bool> = self
            .members
            .iter()
            .zip(&self.state)
            .map(|(m, s)| s.active && !m.valid_rows.is_empty())
            .collect();
        let longest = self
            .members
            .iter()
            .zip(&wanted)
            .filter(|(_, w)| **w)
            .map(|(m, _)| m.valid_rows.len())
            .max()
            .unwrap_or(0);
        if longest == 0 {
            return vec![None; p];
        }
        let x_all = self.x_all.clone().inner();
        let mut proba: Vec<Vec<f64>> = vec![Vec::new(); p];
        let mut from = 0;
        while from < longest {
            let rows = EVAL_CHUNK.min(longest - from);
            let mut index = vec![0i32; p * rows];
            for (m, member) in self.members.iter().enumerate() {
                let offset = member.block * self.data.n_rows;
                for (r, &row) in member.valid_rows.iter().skip(from).take(rows).enumerate() {
                    index[m * rows + r] = (offset + row) as i32;
                }
            }
            let index = Tensor::<Inner<B>, 1, Int>::from_data(
                TensorData::new(index, [p * rows]),
                &self.device,
            );
            let x = x_all
                .clone()
                .select(0, index)
                .reshape([p, rows, n_features]);
            let logits = forward(&self.shape, &self.params, x, masks);
            let values: Vec<f32> = softmax(logits, 3)
                .mean_dim(1)
                .into_data()
                .into_vec()
                .expect("a float tensor reads back as f32");
            for (m, member) in self.members.iter().enumerate() {
                if !wanted[m] {
                    continue;
                }
                let real = member.valid_rows.len().saturating_sub(from).min(rows);
                let at = m * rows * n_classes;
                proba[m].extend(
                    values[at..at + real * n_classes]
                        .iter()
                        .map(|&v| f64::from(v)),
                );
            }
            from += rows;
        }
        self.members
            .iter()
            .enumerate()
            .map(|(m, member)| {
                if !wanted[m] {
                    return None;
                }
                let y = &self.data.blocks[member.block].y;
                let labels: Vec<u32> = member.valid_rows.iter().map(|&r| y[r]).collect();
                let pr = std::mem::take(&mut proba[m]);
                let logloss = tabtune_models::metrics::log_loss(&pr, &labels, n_classes);
                let correct = labels
                    .iter()
                    .enumerate()
                    .filter(|&(i, &l)| {
                        tabtune_models::metrics::argmax(&pr[i * n_classes..(i + 1) * n_classes])
                            == l
                    })
                    .count();
                Some((logloss, correct as f64 / labels.len() as f64, pr))
            })
            .collect()
    }

    /// The best weights of every member, read back to the host (one vector per tensor).
    fn best_on_host(&self) -> Vec<Vec<f32>> {
        self.best
            .iter()
            .map(|t| {
                t.clone()
                    .into_data()
                    .into_vec()
                    .expect("a float tensor reads back as f32")
            })
            .collect()
    }

    /// Member `m`'s model from [`Self::best_on_host`]: cut out of the stack and unpadded to
    /// its own width.
    fn member_model(&self, m: usize, host: &[Vec<f32>]) -> NeuralModel {
        let own = self.shape.with_width(self.widths[m]);
        let tensors = own
            .layout()
            .into_iter()
            .zip(&self.specs)
            .zip(host)
            .map(|((spec, full), values)| {
                let [a, b] = full.dims;
                let slab = &values[m * a * b..(m + 1) * a * b];
                let mut out = Vec::with_capacity(spec.dims[0] * spec.dims[1]);
                for i in 0..spec.dims[0] {
                    out.extend_from_slice(&slab[i * b..i * b + spec.dims[1]]);
                }
                NamedTensor {
                    name: spec.name,
                    dims: spec.dims,
                    values: out,
                }
            })
            .collect();
        NeuralModel {
            params: self.members[m].params.clone(),
            feature_names: self.data.feature_names.clone(),
            n_classes: self.data.n_classes,
            best_epoch: self.state[m].best_epoch,
            tensors,
        }
    }

    /// Each member's best weights, cut out of the stack and unpadded to its own width.
    fn results(self) -> Vec<MemberResult> {
        let host = self.best_on_host();
        let models: Vec<NeuralModel> = (0..self.p()).map(|m| self.member_model(m, &host)).collect();
        models
            .into_iter()
            .zip(self.state)
            .map(|(model, s)| MemberResult {
                model,
                best_epoch: s.best_epoch,
                epochs_run: s.history.len(),
                valid_logloss: s.best_metrics.0,
                valid_accuracy: s.best_metrics.1,
                valid_proba: s.best_proba,
                history: s.history,
                stop: s.stop,
            })
            .collect()
    }
}

impl PopulationData {
    fn x_len(&self) -> usize {
        self.n_rows * self.feature_names.len()
    }
}
