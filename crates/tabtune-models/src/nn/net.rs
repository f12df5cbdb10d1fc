//! The stacked network: P independent MLP / TabM members computed as one model.
//!
//! Every parameter is a rank-3 tensor `[P, a, b]` (member first), so P members of one shape
//! train with batched matmuls (`[P, rows, in] @ [P, in, out]`). Hidden states are
//! `[P, k, rows, units]` (`k` = 1 for an MLP, the TabM ensemble size otherwise). Members narrower
//! than the stack's `width` are zero-padded: zero weights in, zero weights out and zero
//! gradients keep the padded units at exactly 0, and layer normalization divides by each
//! member's own width (`inv_width`), so a padded member computes what it computes alone.
//!
//! Some tensors are not trained but computed: the piecewise-linear embedding's bin edges (from
//! the member's training rows, before training) and batch normalization's running statistics
//! (updated after each step from the statistics [`forward_with_stats`] returns). They live
//! beside the weights, so checkpoints and bundles carry them.

use burn::tensor::activation::{gelu, relu, silu};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use tabtune_features::rng::SplitMix64;

use super::params::{Activation, Embedding, NetKind, NeuralParams, Norm};

/// What a parameter tensor is, for initialisation and weight decay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A weight matrix `[in, out]`: uniform ±1/√in, decayed by AdamW.
    Weight,
    /// A bias: uniform ±1/√in.
    Bias,
    /// A multiplicative scale (layer-norm scale, TabM output scaling): ones.
    Scale,
    /// An additive shift (layer-norm shift): zeros.
    Shift,
    /// TabM input scaling of the first layer: random ±1 per member (what makes the
    /// ensemble members differ); ones in later layers.
    Adapter,
    /// Periodic-embedding frequencies: N(0, frequency_scale²).
    Frequency,
    /// Piecewise-linear bin edges `[n_inputs, n_bins + 1]` per input, non-decreasing (a
    /// repeated edge ends the input's bins): quantiles of the training rows, not trained.
    Edges,
    /// Batch-norm running mean: zeros, then updated from batch statistics, not trained.
    RunningMean,
    /// Batch-norm running variance: ones, then updated from batch statistics, not trained.
    RunningVar,
}

impl Role {
    /// Whether the optimiser updates tensors of this role (edges and running statistics are
    /// computed instead).
    pub fn trainable(self) -> bool {
        !matches!(self, Self::Edges | Self::RunningMean | Self::RunningVar)
    }
}

/// Batch-norm momentum of the running statistics (PyTorch's default).
pub const BATCH_NORM_MOMENTUM: f64 = 0.1;
/// Variance epsilon of layer and batch normalization.
const NORM_EPSILON: f64 = 1e-5;

/// One parameter tensor of a member: name, shape `[a, b]`, role and fan-in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorSpec {
    /// Name in checkpoints (`layers.0.weight`, `head.bias`, ...).
    pub name: String,
    /// Shape of one member's tensor.
    pub dims: [usize; 2],
    /// Role.
    pub role: Role,
    /// Inputs feeding the layer (for the initialisation bounds).
    pub fan_in: usize,
}

/// The shape of a network: everything that fixes its tensors' shapes.
#[derive(Clone, Debug, PartialEq)]
pub struct NetShape {
    /// Input features.
    pub n_inputs: usize,
    /// Output classes.
    pub n_classes: usize,
    /// MLP or TabM.
    pub kind: NetKind,
    /// Hidden layers.
    pub depth: usize,
    /// Units per hidden layer (the widest member's, in a stack).
    pub width: usize,
    /// Activation.
    pub activation: Activation,
    /// Normalization.
    pub norm: Norm,
    /// Residual connections.
    pub residual: bool,
    /// Ensemble size (1 for an MLP).
    pub k: usize,
    /// Input embedding.
    pub embedding: Embedding,
    /// Periodic frequencies per input.
    pub n_frequencies: usize,
    /// Embedding size per input.
    pub embedding_dim: usize,
    /// Piecewise-linear bins per input.
    pub n_bins: usize,
}

impl NetShape {
    /// The shape of `params` for `n_inputs` features and `n_classes` classes.
    pub fn new(params: &NeuralParams, n_inputs: usize, n_classes: usize) -> Self {
        Self {
            n_inputs,
            n_classes,
            kind: params.kind,
            depth: params.depth,
            width: params.width,
            activation: params.activation,
            norm: params.norm,
            residual: params.residual,
            k: if params.kind == NetKind::Tabm {
                params.k
            } else {
                1
            },
            embedding: params.embedding,
            n_frequencies: params.n_frequencies,
            embedding_dim: params.embedding_dim,
            n_bins: params.n_bins,
        }
    }

    /// The same shape with another hidden width.
    #[must_use]
    pub fn with_width(&self, width: usize) -> Self {
        Self {
            width,
            ..self.clone()
        }
    }

    fn tabm(&self) -> bool {
        self.kind == NetKind::Tabm
    }

    /// Width of the first layer's input (after the embedding).
    pub fn first_in(&self) -> usize {
        match self.embedding {
            Embedding::None => self.n_inputs,
            Embedding::Periodic | Embedding::Piecewise => self.n_inputs * self.embedding_dim,
        }
    }

    /// Position of the bin edges in [`Self::layout`] (piecewise-linear embedding only).
    pub fn edges_index(&self) -> Option<usize> {
        (self.embedding == Embedding::Piecewise).then_some(0)
    }

    /// Every parameter tensor, in the order [`forward`] reads them.
    pub fn layout(&self) -> Vec<TensorSpec> {
        let mut specs = Vec::new();
        let mut push = |name: String, dims: [usize; 2], role: Role, fan_in: usize| {
            specs.push(TensorSpec {
                name,
                dims,
                role,
                fan_in,
            });
        };
        if self.embedding == Embedding::Periodic {
            let two_f = 2 * self.n_frequencies;
            push(
                "embedding.frequencies".into(),
                [self.n_inputs, self.n_frequencies],
                Role::Frequency,
                1,
            );
            push(
                "embedding.weight".into(),
                [two_f, self.embedding_dim],
                Role::Weight,
                two_f,
            );
            push(
                "embedding.bias".into(),
                [1, self.embedding_dim],
                Role::Bias,
                two_f,
            );
        }
        if self.embedding == Embedding::Piecewise {
            let (n, t, d) = (self.n_inputs, self.n_bins, self.embedding_dim);
            push("embedding.edges".into(), [n, t + 1], Role::Edges, 1);
            // One linear map per input: `[t, d]` each, stored side by side.
            push("embedding.weight".into(), [n, t * d], Role::Weight, t);
            push("embedding.bias".into(), [n, d], Role::Bias, t);
        }
        let k_bias = if self.tabm() { self.k } else { 1 };
        let mut input = self.first_in();
        for l in 0..self.depth {
            if self.tabm() {
                push(
                    format!("layers.{l}.r"),
                    [self.k, input],
                    if l == 0 { Role::Adapter } else { Role::Scale },
                    input,
                );
            }
            push(
                format!("layers.{l}.weight"),
                [input, self.width],
                Role::Weight,
                input,
            );
            if self.tabm() {
                push(
                    format!("layers.{l}.s"),
                    [self.k, self.width],
                    Role::Scale,
                    input,
                );
            }
            // Batch norm subtracts the batch mean: a bias before it would do nothing (and
            // Adam would turn its rounding-noise gradient into steps), so it has none.
            if self.norm != Norm::Batch {
                push(
                    format!("layers.{l}.bias"),
                    [k_bias, self.width],
                    Role::Bias,
                    input,
                );
            }
            if matches!(self.norm, Norm::Layer | Norm::Batch) {
                push(
                    format!("layers.{l}.norm_scale"),
                    [1, self.width],
                    Role::Scale,
                    input,
                );
                push(
                    format!("layers.{l}.norm_shift"),
                    [1, self.width],
                    Role::Shift,
                    input,
                );
            }
            if self.norm == Norm::Batch {
                push(
                    format!("layers.{l}.running_mean"),
                    [self.k, self.width],
                    Role::RunningMean,
                    input,
                );
                push(
                    format!("layers.{l}.running_var"),
                    [self.k, self.width],
                    Role::RunningVar,
                    input,
                );
            }
            input = self.width;
        }
        if self.tabm() {
            push("head.r".into(), [self.k, input], Role::Scale, input);
        }
        push(
            "head.weight".into(),
            [input, self.n_classes],
            Role::Weight,
            input,
        );
        if self.tabm() {
            push(
                "head.s".into(),
                [self.k, self.n_classes],
                Role::Scale,
                input,
            );
        }
        push(
            "head.bias".into(),
            [k_bias, self.n_classes],
            Role::Bias,
            input,
        );
        specs
    }

    /// Initial values of one member of hidden width `width` (≤ `self.width`), zero-padded to
    /// this shape's tensors; `frequency_scale` is the periodic embedding's σ. The values depend
    /// only on the seed and the member's own shape, so a member starts the same alone or in a
    /// stack. Bin edges start at 0: the trainer fills them from the member's training rows
    /// ([`quantile_edges`]).
    pub fn init_member(&self, width: usize, frequency_scale: f64, seed: u64) -> Vec<Vec<f32>> {
        let own = self.with_width(width).layout();
        let mut rng = SplitMix64::new(seed ^ 0x6E65_7572_616C_5F69);
        own.iter()
            .zip(self.layout())
            .map(|(spec, full)| {
                let [a, b] = spec.dims;
                let bound = 1.0 / (spec.fan_in as f64).sqrt();
                let mut values = vec![0.0f32; full.dims[0] * full.dims[1]];
                for i in 0..a {
                    for j in 0..b {
                        let v = match spec.role {
                            Role::Weight | Role::Bias => bound * (2.0 * uniform(&mut rng) - 1.0),
                            Role::Scale | Role::RunningVar => 1.0,
                            Role::Shift | Role::Edges | Role::RunningMean => 0.0,
                            Role::Adapter => {
                                if rng.next_u64() & 1 == 0 {
                                    1.0
                                } else {
                                    -1.0
                                }
                            }
                            Role::Frequency => frequency_scale * normal(&mut rng),
                        };
                        values[i * full.dims[1] + j] = v as f32;
                    }
                }
                values
            })
            .collect()
    }
}

/// The `n_bins + 1` bin edges of one input from its training values (Gorishniy et al. 2022,
/// quantile bins): the quantiles at `0, 1/n_bins, ..., 1` (linear interpolation, as
/// `torch.quantile`), duplicates dropped, then the last edge repeated to fill `n_bins + 1`
/// (a zero-width bin is no bin: its encoding is 0). An empty `values` gives all zeros.
/// `values` is sorted in place.
pub fn quantile_edges(values: &mut [f32], n_bins: usize) -> Vec<f32> {
    let n_bins = n_bins.max(1);
    if values.is_empty() {
        return vec![0.0; n_bins + 1];
    }
    values.sort_unstable_by(f32::total_cmp);
    let last = values.len() - 1;
    let mut edges: Vec<f32> = Vec::with_capacity(n_bins + 1);
    for i in 0..=n_bins {
        let position = i as f64 / n_bins as f64 * last as f64;
        let below = (position.floor() as usize).min(last);
        let above = (below + 1).min(last);
        let fraction = position - below as f64;
        let a = f64::from(values[below]);
        let b = f64::from(values[above]);
        let q = (a + fraction * (b - a)) as f32;
        if edges.last().is_none_or(|&e| q > e) {
            edges.push(q);
        }
    }
    let fill = *edges.last().expect("at least one edge");
    edges.resize(n_bins + 1, fill);
    edges
}

/// A uniform number in [0, 1) from 53 random bits.
pub fn uniform(rng: &mut SplitMix64) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// A standard normal number (Box–Muller).
fn normal(rng: &mut SplitMix64) -> f64 {
    let u1 = uniform(rng).max(f64::MIN_POSITIVE);
    let u2 = uniform(rng);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Per-member masks of a forward pass.
#[derive(Clone, Debug)]
pub struct Masks<B: Backend> {
    /// `1 / member width`, `[P, 1, 1, 1]` (layer-norm statistics over the member's own units).
    pub inv_width: Tensor<B, 4>,
    /// 1 on a member's own units, 0 on padding, `[P, 1, 1, width]`.
    pub units: Tensor<B, 4>,
    /// Dropout multipliers per hidden layer, `[P, k, rows, width]` (0 or 1 / (1 − p)); empty
    /// for evaluation.
    pub dropout: Vec<Tensor<B, 4>>,
    /// The rows of a training batch, for batch-norm statistics; `None` for evaluation (batch
    /// norm then uses its running statistics).
    pub batch: Option<BatchRows<B>>,
}

/// Which rows of a training batch are real (members with fewer rows are padded), for batch
/// normalization's statistics.
#[derive(Clone, Debug)]
pub struct BatchRows<B: Backend> {
    /// 1 on a member's real rows, 0 on padding, `[P, 1, rows, 1]`.
    pub mask: Tensor<B, 4>,
    /// `1 / real rows` per member (1 for a member without rows), `[P, 1, 1, 1]`.
    pub inv_count: Tensor<B, 4>,
    /// `n / (n − 1)` per member (Bessel's correction of the running variance; 1 for n ≤ 1),
    /// `[P, 1, 1, 1]`.
    pub unbias: Tensor<B, 4>,
}

impl<B: Backend> BatchRows<B> {
    /// Masks for members with `counts[m]` real rows each in a batch of `rows`.
    pub fn new(counts: &[usize], rows: usize, device: &B::Device) -> Self {
        let p = counts.len();
        let mut mask = vec![0.0f32; p * rows];
        for (m, &n) in counts.iter().enumerate() {
            mask[m * rows..m * rows + n.min(rows)].fill(1.0);
        }
        let inv: Vec<f32> = counts.iter().map(|&n| 1.0 / n.max(1) as f32).collect();
        let unbias: Vec<f32> = counts
            .iter()
            .map(|&n| {
                if n > 1 {
                    n as f32 / (n - 1) as f32
                } else {
                    1.0
                }
            })
            .collect();
        let member = |v: Vec<f32>| Tensor::from_data(TensorData::new(v, [p, 1, 1, 1]), device);
        Self {
            mask: Tensor::from_data(TensorData::new(mask, [p, 1, rows, 1]), device),
            inv_count: member(inv),
            unbias: member(unbias),
        }
    }
}

/// Batch statistics of one batch-norm layer in a training pass, `[P, k, 1, width]` each:
/// the mean and the unbiased variance over the batch's real rows.
#[derive(Clone, Debug)]
pub struct BatchStats<B: Backend> {
    /// Mean.
    pub mean: Tensor<B, 4>,
    /// Unbiased variance.
    pub var: Tensor<B, 4>,
}

impl<B: Backend> Masks<B> {
    /// Evaluation masks (no dropout) for members of the given widths in a stack of `width`.
    pub fn eval(widths: &[usize], width: usize, device: &B::Device) -> Self {
        let p = widths.len();
        let inv: Vec<f32> = widths.iter().map(|&w| 1.0 / w as f32).collect();
        let mut units = vec![0.0f32; p * width];
        for (m, &w) in widths.iter().enumerate() {
            units[m * width..m * width + w].fill(1.0);
        }
        Self {
            inv_width: Tensor::from_data(TensorData::new(inv, [p, 1, 1, 1]), device),
            units: Tensor::from_data(TensorData::new(units, [p, 1, 1, width]), device),
            dropout: Vec::new(),
            batch: None,
        }
    }
}

/// `v` broadcast to `dims` as one contiguous tensor: each size-1 axis that `dims` widens is
/// repeated. flex's element-wise kernels are vectorised for same-shape operands, for a row
/// shared by the whole tensor and for one scalar per row, but walk a scalar strided iterator
/// (about ten times slower) when a member's own row is broadcast over the batch's rows
/// (`[P, k, 1, w]` against `[P, k, rows, w]`): that was most of a population step on the CPU.
/// One copy per operand avoids it; GPU backends pay the same small copy.
fn spread<B: Backend, const D: usize>(v: Tensor<B, D>, dims: [usize; D]) -> Tensor<B, D> {
    let own = v.dims();
    let mut v = v;
    for d in 0..D {
        if own[d] == 1 && dims[d] > 1 {
            v = v.repeat_dim(d, dims[d]);
        }
    }
    v
}

/// A per-member parameter `[P, a, b]` (`a` = 1 or k) as rows of a hidden state of `dims`
/// (`[P, k, rows, b]`).
fn rows_of<B: Backend>(v: &Tensor<B, 3>, dims: [usize; 4]) -> Tensor<B, 4> {
    spread(v.clone().unsqueeze_dim::<4>(2), dims)
}

/// `[P, k, rows, in] @ [P, in, out]` → `[P, k, rows, out]`.
fn stacked_matmul<B: Backend>(h: Tensor<B, 4>, w: &Tensor<B, 3>) -> Tensor<B, 4> {
    let [p, k, rows, input] = h.dims();
    let out = w.dims()[2];
    h.reshape([p, k * rows, input])
        .matmul(w.clone())
        .reshape([p, k, rows, out])
}

fn activate<B: Backend>(activation: Activation, h: Tensor<B, 4>) -> Tensor<B, 4> {
    match activation {
        Activation::Relu => relu(h),
        Activation::Gelu => gelu(h),
        Activation::Silu => silu(h),
    }
}

/// Logits `[P, k, rows, classes]` of `x` (`[P, rows, n_inputs]`) under the parameters `w`
/// (in [`NetShape::layout`] order, each `[P, a, b]`).
pub fn forward<B: Backend>(
    shape: &NetShape,
    w: &[Tensor<B, 3>],
    x: Tensor<B, 3>,
    masks: &Masks<B>,
) -> Tensor<B, 4> {
    forward_with_stats(shape, w, x, masks).0
}

/// The piecewise-linear encoding `[P, rows, n, T]` of `x` (`[P, rows, n]`) with the bin edges
/// `[P, n, T + 1]`: per bin `(x − left) / width`, clamped to [0, 1] except below the first
/// bin and above an input's last real bin; 0 in zero-width bins.
fn piecewise_encoding<B: Backend>(x: Tensor<B, 3>, edges: &Tensor<B, 3>) -> Tensor<B, 4> {
    let [p, n, t1] = edges.dims();
    let t = t1 - 1;
    let device = edges.device();
    let left = edges.clone().narrow(2, 0, t);
    let width = edges.clone().narrow(2, 1, t) - left.clone();
    let real = width.clone().greater_elem(0.0).float();
    // 1 / width in real bins, 0 in zero-width ones.
    let scale = real.clone() / (width - real.clone().add_scalar(-1.0));
    // Real bins come first, so an input's last real bin is real with an unreal successor.
    let next_real = if t > 1 {
        Tensor::cat(
            vec![
                real.clone().narrow(2, 1, t - 1),
                Tensor::zeros([p, n, 1], &device),
            ],
            2,
        )
    } else {
        Tensor::zeros([p, n, 1], &device)
    };
    let [_, rows, _] = x.dims();
    let dims = [p, rows, n, t];
    let open_above = spread(
        (real * (next_real.neg().add_scalar(1.0))).unsqueeze_dim::<4>(1),
        dims,
    );
    let mut first = vec![0.0f32; t];
    first[0] = 1.0;
    let open_below = Tensor::<B, 4>::from_data(TensorData::new(first, [1, 1, 1, t]), &device);
    let z = (spread(x.unsqueeze_dim::<4>(3), dims) - spread(left.unsqueeze_dim::<4>(1), dims))
        * spread(scale.unsqueeze_dim::<4>(1), dims);
    // Lower clamp except in the first bin: relu(z) + first · (z − relu(z)) (exact).
    let positive = relu(z.clone());
    let z = positive.clone() + (z - positive) * open_below;
    // Upper clamp except in the last real bin: z − (1 − last) · relu(z − 1).
    let over = relu(z.clone().add_scalar(-1.0));
    z - over * open_above.neg().add_scalar(1.0)
}

/// [`forward`], also returning each batch-norm layer's batch statistics in a training pass
/// (`masks.batch` set); empty otherwise.
pub fn forward_with_stats<B: Backend>(
    shape: &NetShape,
    w: &[Tensor<B, 3>],
    x: Tensor<B, 3>,
    masks: &Masks<B>,
) -> (Tensor<B, 4>, Vec<BatchStats<B>>) {
    let mut stats = Vec::new();
    let mut next = w.iter();
    let mut take = || {
        next.next()
            .expect("the layout lists every tensor forward reads")
    };
    let [p, rows, n_inputs] = x.dims();
    let x = match shape.embedding {
        Embedding::None => x,
        Embedding::Periodic => {
            let frequencies = take();
            let weight = take();
            let bias = take();
            let f = shape.n_frequencies;
            // [P, rows, n, 1] * [P, 1, n, f] -> [P, rows, n, f]
            let dims = [p, rows, n_inputs, f];
            let z = spread(x.unsqueeze_dim::<4>(3), dims)
                * spread(frequencies.clone().unsqueeze_dim::<4>(1), dims);
            let z = z.mul_scalar(std::f64::consts::TAU);
            let periodic = Tensor::cat(vec![z.clone().sin(), z.cos()], 3);
            let e = periodic
                .reshape([p, rows * n_inputs, 2 * f])
                .matmul(weight.clone())
                + spread(bias.clone(), [p, rows * n_inputs, shape.embedding_dim]);
            relu(e).reshape([p, rows, n_inputs * shape.embedding_dim])
        }
        Embedding::Piecewise => {
            let edges = take();
            let weight = take();
            let bias = take();
            let (t, d) = (shape.n_bins, shape.embedding_dim);
            // [P, rows, n, T] -> [P·n, rows, T] @ [P·n, T, d] -> [P, n, rows, d]
            let encoded =
                piecewise_encoding(x, edges)
                    .swap_dims(1, 2)
                    .reshape([p * n_inputs, rows, t]);
            let e = encoded
                .matmul(weight.clone().reshape([p * n_inputs, t, d]))
                .reshape([p, n_inputs, rows, d])
                + rows_of(bias, [p, n_inputs, rows, d]);
            relu(e)
                .swap_dims(1, 2)
                .reshape([p, rows, n_inputs * shape.embedding_dim])
        }
    };
    let tabm = shape.kind == NetKind::Tabm;
    let mut h = x.unsqueeze_dim::<4>(1);
    if tabm {
        h = h.repeat_dim(1, shape.k);
    }
    for l in 0..shape.depth {
        let before = h.clone();
        if tabm {
            h = h.clone() * rows_of(take(), h.dims());
        }
        h = stacked_matmul(h, take());
        if tabm {
            h = h.clone() * rows_of(take(), h.dims());
        }
        if shape.norm != Norm::Batch {
            h = h.clone() + rows_of(take(), h.dims());
        }
        if shape.norm == Norm::Layer {
            let dims = h.dims();
            let scale = rows_of(take(), dims);
            let shift = rows_of(take(), dims);
            let units = spread(masks.units.clone(), dims);
            // Statistics over the member's own units only (the unit mask also keeps gradients
            // away from the padded units through the mean).
            let mean = (h.clone() * units.clone()).sum_dim(3) * masks.inv_width.clone();
            let centered = (h - mean) * units;
            let var = centered.clone().square().sum_dim(3) * masks.inv_width.clone();
            h = centered / var.add_scalar(NORM_EPSILON).sqrt() * scale + shift;
        }
        if shape.norm == Norm::Batch {
            let dims = h.dims();
            let scale = rows_of(take(), dims);
            let shift = rows_of(take(), dims);
            let running_mean = rows_of(take(), dims);
            let running_var = rows_of(take(), dims);
            // Per unit over the rows: the batch's real rows in training, the running
            // statistics in evaluation. Padded units stay 0 (their values and shift are 0).
            let normalized = match &masks.batch {
                Some(batch) => {
                    let rows = spread(batch.mask.clone(), dims);
                    let mean = (h.clone() * rows.clone()).sum_dim(2) * batch.inv_count.clone();
                    let centered = (h - spread(mean.clone(), dims)) * rows;
                    let var = centered.clone().square().sum_dim(2) * batch.inv_count.clone();
                    stats.push(BatchStats {
                        mean,
                        var: var.clone() * batch.unbias.clone(),
                    });
                    centered / var.add_scalar(NORM_EPSILON).sqrt()
                }
                None => (h - running_mean) / running_var.add_scalar(NORM_EPSILON).sqrt(),
            };
            h = normalized * scale + shift;
        }
        h = activate(shape.activation, h);
        if let Some(drop) = masks.dropout.get(l) {
            h = h * drop.clone();
        }
        if shape.residual && l > 0 {
            h = h + before;
        }
    }
    if tabm {
        h = h.clone() * rows_of(take(), h.dims());
    }
    let mut logits = stacked_matmul(h, take());
    if tabm {
        logits = logits.clone() * rows_of(take(), logits.dims());
    }
    let bias = rows_of(take(), logits.dims());
    (logits + bias, stats)
}

#[cfg(test)]
mod tests {
    use burn::backend::Flex;
    use burn::backend::flex::FlexDevice;

    use super::*;

    #[test]
    fn quantile_edges_interpolate_and_drop_repeats() {
        let mut v: Vec<f32> = (0..=10).rev().map(|i| i as f32).collect();
        assert_eq!(quantile_edges(&mut v, 4), vec![0.0, 2.5, 5.0, 7.5, 10.0]);
        // Few distinct values: repeated quantiles collapse and the last edge fills the rest.
        let mut v = vec![1.0, 2.0, 1.0, 1.0];
        assert_eq!(quantile_edges(&mut v, 3), vec![1.0, 2.0, 2.0, 2.0]);
        let mut v = vec![3.0; 5];
        assert_eq!(quantile_edges(&mut v, 2), vec![3.0; 3]);
        assert_eq!(quantile_edges(&mut [], 2), vec![0.0; 3]);
    }

    #[test]
    fn piecewise_encoding_matches_the_paper_by_hand() {
        let device = FlexDevice;
        // Input 0: bins [0,1), [1,2), [2,4]; input 1: one real bin [0,1], then none; input 2:
        // constant (no bins).
        let edges = Tensor::<Flex, 3>::from_data(
            TensorData::new(
                vec![
                    0.0f32, 1.0, 2.0, 4.0, 0.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0,
                ],
                [1, 3, 4],
            ),
            &device,
        );
        let rows = [
            [-1.0f32, 3.0, 5.0],
            [0.5, 0.25, 2.0],
            [1.5, -1.0, 0.0],
            [5.0, 0.5, 9.0],
        ];
        let x = Tensor::<Flex, 3>::from_data(
            TensorData::new(
                rows.iter().flatten().copied().collect::<Vec<_>>(),
                [1, 4, 3],
            ),
            &device,
        );
        let got: Vec<f32> = piecewise_encoding(x, &edges)
            .into_data()
            .into_vec()
            .expect("f32");
        #[rustfmt::skip]
        let want = [
            -1.0, 0.0, 0.0,   3.0, 0.0, 0.0,    0.0, 0.0, 0.0,
            0.5, 0.0, 0.0,    0.25, 0.0, 0.0,   0.0, 0.0, 0.0,
            1.0, 0.5, 0.0,    -1.0, 0.0, 0.0,   0.0, 0.0, 0.0,
            1.0, 1.0, 1.5,    0.5, 0.0, 0.0,    0.0, 0.0, 0.0,
        ];
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() < 1e-6, "value {i}: {g} vs {w}");
        }
    }
}
