//! MLP and TabM as plain ONNX ops (float32, as burn computes them): MatMul, Add, Mul, the
//! activations (ReLU; GELU with erf, as burn's `gelu`; SiLU as x·σ(x)), periodic and
//! piecewise-linear numeric embeddings, layer normalization and batch normalization with its
//! running statistics (evaluation mode), residual connections; dropout is off in evaluation.
//!
//! Shapes follow `tabtune_models::nn::forward` for one member: an MLP's hidden state is
//! `[N, units]`, TabM's `[k, N, units]` (its k BatchEnsemble members; per-member scalings and
//! biases `[k, 1, units]` broadcast over the rows); the probabilities are the mean over the
//! members of their softmax.

use std::collections::HashMap;

use tabtune_models::nn::{Activation, Embedding, NetKind, NeuralModel, Norm};

use crate::error::Result;
use crate::graph::Builder;
use crate::proto::DataType;
use crate::trees::Who;

/// Variance epsilon of layer and batch normalization (as in `tabtune_models::nn`).
const NORM_EPSILON: f64 = 1e-5;

/// The weights by name, checked against the model's layout.
struct Weights<'a> {
    by_name: HashMap<&'a str, (&'a [f32], [usize; 2])>,
}

impl<'a> Weights<'a> {
    fn get(&self, name: &str) -> (&'a [f32], [usize; 2]) {
        *self
            .by_name
            .get(name)
            .expect("every tensor of the layout was checked to be present")
    }
}

/// Class probabilities (double `[N, n_classes]`) of an MLP or TabM on `features` (float
/// `[N, n_features]`).
pub(crate) fn neural(
    g: &mut Builder,
    model: &NeuralModel,
    features: &str,
    who: &Who<'_>,
) -> Result<String> {
    let shape = model.shape();
    let mut by_name = HashMap::new();
    for t in &model.tensors {
        by_name.insert(t.name.as_str(), (t.values.as_slice(), t.dims));
    }
    for spec in shape.layout() {
        let Some((values, dims)) = by_name.get(spec.name.as_str()) else {
            return Err(who.err(format!("tensor `{}` is missing", spec.name)));
        };
        if *dims != spec.dims || values.len() != dims[0] * dims[1] {
            return Err(who.err(format!(
                "tensor `{}` is {dims:?} with {} values, expected {:?}",
                spec.name,
                values.len(),
                spec.dims
            )));
        }
        if let Some(v) = values.iter().find(|v| !v.is_finite()) {
            return Err(who.err(format!(
                "tensor `{}` holds {v}, expected finite numbers",
                spec.name
            )));
        }
    }
    let w = Weights { by_name };
    let tabm = shape.kind == NetKind::Tabm;
    let k = shape.k;
    // A per-member parameter `[a, b]` as `[a, 1, b]` (TabM), or as stored (MLP, a = 1).
    let member = |g: &mut Builder, name: &str| -> String {
        let (values, [a, b]) = w.get(name);
        if tabm {
            g.f32_tensor(name, &[a, 1, b], values.to_vec())
        } else {
            g.f32_tensor(name, &[a, b], values.to_vec())
        }
    };
    let matrix = |g: &mut Builder, name: &str| -> String {
        let (values, [a, b]) = w.get(name);
        g.f32_tensor(name, &[a, b], values.to_vec())
    };
    let n = shape.n_inputs;
    let x = match shape.embedding {
        Embedding::None => features.to_owned(),
        Embedding::Periodic => {
            let f = shape.n_frequencies;
            let d = shape.embedding_dim;
            let frequencies = matrix(g, "embedding.frequencies");
            let weight = matrix(g, "embedding.weight");
            let bias = matrix(g, "embedding.bias");
            let column = g.unsqueeze(features, &[2], "x_column");
            // [N, n, 1] · [n, f] -> [N, n, f], times 2π (burn multiplies by TAU as f32).
            let z = g.mul(&column, &frequencies, "periodic.z");
            let tau = g.f32(std::f64::consts::TAU as f32);
            let z = g.mul(&z, &tau, "periodic.z");
            let sin = g.unary("Sin", &z, "periodic.sin");
            let cos = g.unary("Cos", &z, "periodic.cos");
            let periodic = g.concat(&[sin, cos], 2, "periodic");
            let e = g.matmul(&periodic, &weight, "periodic.linear");
            let e = g.add(&e, &bias, "periodic.linear");
            let e = g.unary("Relu", &e, "periodic.relu");
            debug_assert_eq!(w.get("embedding.weight").1, [2 * f, d]);
            g.reshape(&e, &[-1, (n * d) as i64], "embedded")
        }
        Embedding::Piecewise => piecewise(g, &w, features, n, shape.n_bins, shape.embedding_dim),
    };
    let mut h = if tabm {
        g.unsqueeze(&x, &[0], "members")
    } else {
        x
    };
    for l in 0..shape.depth {
        let before = h.clone();
        let layer = |s: &str| format!("layers.{l}.{s}");
        if tabm {
            let r = member(g, &layer("r"));
            h = g.mul(&h, &r, &layer("in_scaled"));
        }
        let weight = matrix(g, &layer("weight"));
        h = g.matmul(&h, &weight, &layer("linear"));
        if tabm {
            let s = member(g, &layer("s"));
            h = g.mul(&h, &s, &layer("out_scaled"));
        }
        if shape.norm != Norm::Batch {
            let bias = member(g, &layer("bias"));
            h = g.add(&h, &bias, &layer("biased"));
        }
        match shape.norm {
            Norm::None => {}
            Norm::Layer => {
                // As burn: sums over the units times 1/width, then (h − mean) / √(var + ε).
                let inv = g.f32(1.0 / shape.width as f32);
                let sum = g.reduce_sum(&h, &[-1], true, &layer("sum"));
                let mean = g.mul(&sum, &inv, &layer("mean"));
                let centered = g.sub(&h, &mean, &layer("centered"));
                let squared = g.mul(&centered, &centered, &layer("squared"));
                let sum = g.reduce_sum(&squared, &[-1], true, &layer("squared_sum"));
                let var = g.mul(&sum, &inv, &layer("var"));
                let eps = g.f32(NORM_EPSILON as f32);
                let var = g.add(&var, &eps, &layer("var_eps"));
                let std = g.unary("Sqrt", &var, &layer("std"));
                h = g.div(&centered, &std, &layer("normalized"));
                let scale = matrix(g, &layer("norm_scale"));
                let shift = matrix(g, &layer("norm_shift"));
                h = g.mul(&h, &scale, &layer("norm_scaled"));
                h = g.add(&h, &shift, &layer("norm_shifted"));
            }
            Norm::Batch => {
                // Evaluation: the running statistics; √(var + ε) in f32 as burn computes it.
                let mean = member(g, &layer("running_mean"));
                let (var, [a, b]) = w.get(&layer("running_var"));
                let eps = NORM_EPSILON as f32;
                let std: Vec<f32> = var.iter().map(|v| (v + eps).sqrt()).collect();
                let std = if tabm {
                    g.f32_tensor(&layer("running_std"), &[a, 1, b], std)
                } else {
                    g.f32_tensor(&layer("running_std"), &[a, b], std)
                };
                let centered = g.sub(&h, &mean, &layer("centered"));
                h = g.div(&centered, &std, &layer("normalized"));
                let scale = matrix(g, &layer("norm_scale"));
                let shift = matrix(g, &layer("norm_shift"));
                h = g.mul(&h, &scale, &layer("norm_scaled"));
                h = g.add(&h, &shift, &layer("norm_shifted"));
            }
        }
        h = activate(g, shape.activation, &h, &layer("activated"));
        if shape.residual && l > 0 {
            h = g.add(&h, &before, &layer("residual"));
        }
    }
    if tabm {
        let r = member(g, "head.r");
        h = g.mul(&h, &r, "head.in_scaled");
    }
    let weight = matrix(g, "head.weight");
    let mut logits = g.matmul(&h, &weight, "logits");
    if tabm {
        let s = member(g, "head.s");
        logits = g.mul(&logits, &s, "logits");
    }
    let bias = member(g, "head.bias");
    logits = g.add(&logits, &bias, "logits");
    let proba = g.softmax(&logits, -1, "member_proba");
    let proba = if tabm {
        debug_assert!(k >= 1);
        g.reduce_mean(&proba, &[0], false, "nn_proba")
    } else {
        proba
    };
    Ok(g.cast(&proba, DataType::Double, "nn_proba"))
}

fn activate(g: &mut Builder, activation: Activation, h: &str, hint: &str) -> String {
    match activation {
        Activation::Relu => g.unary("Relu", h, hint),
        Activation::Gelu => {
            // burn: x · (erf(x / √2) + 1) / 2.
            let sqrt2 = g.f32(std::f64::consts::SQRT_2 as f32);
            let one = g.f32(1.0);
            let two = g.f32(2.0);
            let scaled = g.div(h, &sqrt2, hint);
            let erf = g.unary("Erf", &scaled, hint);
            let erf1 = g.add(&erf, &one, hint);
            let product = g.mul(h, &erf1, hint);
            g.div(&product, &two, hint)
        }
        Activation::Silu => {
            let sigmoid = g.unary("Sigmoid", h, hint);
            g.mul(h, &sigmoid, hint)
        }
    }
}

/// The piecewise-linear embedding (`[N, n · d]`) of `x` (`[N, n]`), as burn's
/// `piecewise_encoding` and the per-input linear maps: per input and bin `(x − left) / width`,
/// clamped to [0, 1] except below the first bin and above the input's last real bin, 0 in
/// zero-width bins; then `[T] → [d]` per input, plus bias, ReLU.
fn piecewise(g: &mut Builder, w: &Weights<'_>, x: &str, n: usize, t: usize, d: usize) -> String {
    let (edges, _) = w.get("embedding.edges");
    // Per input and bin, in f32 as burn computes them: left edge, 1/width (0 in zero-width
    // bins), whether the lower clamp applies (all bins but the first) and whether the upper
    // one does (all but the input's last real bin).
    let mut left = Vec::with_capacity(n * t);
    let mut scale = Vec::with_capacity(n * t);
    let mut clamp_above = Vec::with_capacity(n * t);
    for i in 0..n {
        let e = &edges[i * (t + 1)..(i + 1) * (t + 1)];
        let real: Vec<f32> = (0..t)
            .map(|b| if e[b + 1] - e[b] > 0.0 { 1.0 } else { 0.0 })
            .collect();
        for b in 0..t {
            let width = e[b + 1] - e[b];
            left.push(e[b]);
            scale.push(real[b] / (width - (real[b] - 1.0)));
            let next_real = if b + 1 < t { real[b + 1] } else { 0.0 };
            let open_above = real[b] * (1.0 - next_real);
            clamp_above.push(1.0 - open_above);
        }
    }
    let mut open_below = vec![0.0f32; t];
    open_below[0] = 1.0;
    let left = g.f32_tensor("piecewise.left", &[n, t], left);
    let scale = g.f32_tensor("piecewise.scale", &[n, t], scale);
    let clamp_above = g.f32_tensor("piecewise.clamp_above", &[n, t], clamp_above);
    let open_below = g.f32_tensor("piecewise.open_below", &[t], open_below);
    let column = g.unsqueeze(x, &[2], "x_column");
    let shifted = g.sub(&column, &left, "piecewise.shifted");
    let z = g.mul(&shifted, &scale, "piecewise.z");
    // Lower clamp except in the first bin: relu(z) + first · (z − relu(z)).
    let positive = g.unary("Relu", &z, "piecewise.positive");
    let below = g.sub(&z, &positive, "piecewise.below");
    let below = g.mul(&below, &open_below, "piecewise.below");
    let z = g.add(&positive, &below, "piecewise.z");
    // Upper clamp except in the last real bin: z − (1 − last) · relu(z − 1).
    let one = g.f32(1.0);
    let over = g.sub(&z, &one, "piecewise.over");
    let over = g.unary("Relu", &over, "piecewise.over");
    let over = g.mul(&over, &clamp_above, "piecewise.over");
    let encoded = g.sub(&z, &over, "piecewise.encoded");
    // [N, n, T] -> [n, N, T] @ [n, T, d] -> [n, N, d] (+ [n, 1, d]) -> [N, n, d] -> [N, n·d]
    let per_input = g.transpose(&encoded, &[1, 0, 2], "piecewise.per_input");
    let (weight, _) = w.get("embedding.weight");
    let weight = g.f32_tensor("embedding.weight", &[n, t, d], weight.to_vec());
    let (bias, _) = w.get("embedding.bias");
    let bias = g.f32_tensor("embedding.bias", &[n, 1, d], bias.to_vec());
    let e = g.matmul(&per_input, &weight, "piecewise.linear");
    let e = g.add(&e, &bias, "piecewise.linear");
    let e = g.unary("Relu", &e, "piecewise.relu");
    let e = g.transpose(&e, &[1, 0, 2], "piecewise.rows");
    g.reshape(&e, &[-1, (n * d) as i64], "embedded")
}
