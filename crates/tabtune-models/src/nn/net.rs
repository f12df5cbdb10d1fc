//! The stacked network: P independent MLP / TabM members computed as one model.
//!
//! Every parameter is a rank-3 tensor `[P, a, b]` (member first), so P members of one shape
//! train with batched matmuls (`[P, rows, in] @ [P, in, out]`). Hidden states are
//! `[P, k, rows, units]` (`k` = 1 for an MLP, the TabM ensemble size otherwise). Members narrower
//! than the stack's `width` are zero-padded: zero weights in, zero weights out and zero
//! gradients keep the padded units at exactly 0, and layer normalization divides by each
//! member's own width (`inv_width`), so a padded member computes what it computes alone.

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
}

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
            Embedding::Periodic => self.n_inputs * self.embedding_dim,
        }
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
            push(
                format!("layers.{l}.bias"),
                [k_bias, self.width],
                Role::Bias,
                input,
            );
            if self.norm == Norm::Layer {
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
    /// stack.
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
                            Role::Scale => 1.0,
                            Role::Shift => 0.0,
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
        }
    }
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
            let z = x.unsqueeze_dim::<4>(3) * frequencies.clone().unsqueeze_dim::<4>(1);
            let z = z.mul_scalar(std::f64::consts::TAU);
            let periodic = Tensor::cat(vec![z.clone().sin(), z.cos()], 3);
            let e = periodic
                .reshape([p, rows * n_inputs, 2 * f])
                .matmul(weight.clone())
                + bias.clone();
            relu(e).reshape([p, rows, n_inputs * shape.embedding_dim])
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
            h = h * take().clone().unsqueeze_dim::<4>(2);
        }
        h = stacked_matmul(h, take());
        if tabm {
            h = h * take().clone().unsqueeze_dim::<4>(2);
        }
        h = h + take().clone().unsqueeze_dim::<4>(2);
        if shape.norm == Norm::Layer {
            let scale = take().clone().unsqueeze_dim::<4>(2);
            let shift = take().clone().unsqueeze_dim::<4>(2);
            // Statistics over the member's own units only (the unit mask also keeps gradients
            // away from the padded units through the mean).
            let mean = (h.clone() * masks.units.clone()).sum_dim(3) * masks.inv_width.clone();
            let centered = (h - mean) * masks.units.clone();
            let var = centered.clone().square().sum_dim(3) * masks.inv_width.clone();
            h = centered / var.add_scalar(1e-5).sqrt() * scale + shift;
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
        h = h * take().clone().unsqueeze_dim::<4>(2);
    }
    let mut logits = stacked_matmul(h, take());
    if tabm {
        logits = logits * take().clone().unsqueeze_dim::<4>(2);
    }
    logits + take().clone().unsqueeze_dim::<4>(2)
}
