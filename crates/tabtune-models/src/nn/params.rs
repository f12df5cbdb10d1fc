//! Hyperparameters of the neural family (architecture and training recipe in one struct, so a
//! bundle records exactly what produced its weights).

use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result, parse_param as parse};

/// Plain MLP or TabM (BatchEnsemble MLP).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NetKind {
    /// A multi-layer perceptron.
    Mlp,
    /// TabM: `k` BatchEnsemble members sharing every weight matrix, each with its own
    /// per-feature input/output scalings and biases; predictions are averaged over the members.
    Tabm,
}

/// Hidden-layer activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Activation {
    /// max(0, x).
    Relu,
    /// Gaussian error linear unit.
    Gelu,
    /// x · sigmoid(x).
    Silu,
}

/// Normalization of each hidden layer's pre-activations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Norm {
    /// None.
    None,
    /// Layer normalization (per row, over the layer's units), with a learned scale and shift.
    Layer,
    /// Batch normalization (per unit, over the batch's rows; running statistics with momentum
    /// 0.1 for evaluation, as PyTorch's `BatchNorm1d`), with a learned scale and shift.
    Batch,
}

/// Embedding of the numeric inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Embedding {
    /// Inputs go straight into the first layer.
    None,
    /// Periodic embedding, "PLR(lite)" of Gorishniy et al. 2022: per input `x_j`, learned
    /// frequencies `c_j` (`n_frequencies` of them, initialised from N(0, frequency_scale²)),
    /// `[sin(2π c_j x_j), cos(2π c_j x_j)]`, then a linear map shared by the inputs to
    /// `embedding_dim` values and a ReLU.
    Periodic,
    /// Piecewise-linear encoding with quantile bins, "PLE-Q-LR" of Gorishniy et al. 2022: per
    /// input, `n_bins` bins whose edges are quantiles of the member's *training* rows (saved
    /// with the weights), the encoding `e_t = clamp((x − b_{t−1}) / (b_t − b_{t−1}))` (0..1, the
    /// first bin unbounded below and the last unbounded above), then a linear map of the
    /// input's own to `embedding_dim` values and a ReLU.
    Piecewise,
}

/// Learning-rate schedule (after the linear warm-up).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Schedule {
    /// Constant.
    Constant,
    /// Cosine decay to 0 over the run.
    Cosine,
    /// One-cycle: linear warm-up to the peak, then cosine decay to peak / 1000.
    OneCycle,
}

/// Hyperparameters of an MLP or TabM and of its training run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NeuralParams {
    /// Architecture.
    pub kind: NetKind,
    /// Hidden layers. Default 3.
    pub depth: usize,
    /// Units per hidden layer. Default 256 (TabM too: 5-fold CV accuracy 0.9004 on average over
    /// four seeds on the obesity data, against 0.8995 over three with 128).
    pub width: usize,
    /// Activation. Default ReLU.
    pub activation: Activation,
    /// Dropout after each hidden activation, in [0, 1). Default 0.1.
    pub dropout: f64,
    /// Normalization. Default none.
    pub norm: Norm,
    /// Residual connections between hidden layers of equal width. Default false.
    pub residual: bool,
    /// TabM ensemble size (1 for an MLP). Default 8.
    pub k: usize,
    /// Numeric-input embedding. Default none (MLP), piecewise-linear (TabM: 5-fold CV accuracy
    /// 0.9018 on the obesity data, against 0.8894 with periodic embeddings).
    pub embedding: Embedding,
    /// Frequencies per input of the periodic embedding. Default 16.
    pub n_frequencies: usize,
    /// Standard deviation of the initial frequencies. Default 0.1.
    pub frequency_scale: f64,
    /// Output size of the periodic or piecewise-linear embedding per input. Default 8.
    pub embedding_dim: usize,
    /// Quantile bins per input of the piecewise-linear embedding (fewer where a feature has
    /// fewer distinct values). Default 48.
    #[serde(default = "default_n_bins")]
    pub n_bins: usize,
    /// Training epochs (upper bound with early stopping). Default 60.
    pub epochs: usize,
    /// Rows per mini-batch. Default 256.
    pub batch_size: usize,
    /// Peak AdamW learning rate. Default 1e-3.
    pub learning_rate: f64,
    /// AdamW decoupled weight decay (weight matrices only). Default 1e-4 (MLP), 3e-4 (TabM).
    pub weight_decay: f64,
    /// Learning-rate schedule. Default cosine.
    pub schedule: Schedule,
    /// Share of the steps spent in linear warm-up, in [0, 1). Default 0.05.
    pub warmup: f64,
    /// Label smoothing ε, in [0, 1): targets are (1 − ε) one-hot + ε / classes. Default 0.05.
    pub label_smoothing: f64,
    /// Per-member global gradient-norm clip; 0 = none. Default 1.0.
    pub clip_norm: f64,
    /// Early stopping: epochs without a better validation log loss; 0 = none. Default 12.
    pub patience: usize,
    /// Seed of initialisation, shuffling and dropout.
    pub seed: u64,
}

/// The most hidden layers.
pub const MAX_DEPTH: usize = 64;
/// The widest hidden layer.
pub const MAX_WIDTH: usize = 16_384;
/// The most TabM ensemble members.
pub const MAX_K: usize = 256;
/// The most periodic frequencies, and the largest embedding output, per input.
pub const MAX_EMBEDDING: usize = 1024;
/// The most hidden-layer weights (width² × depth × k): 2^28, 1 GiB of f32 (AdamW keeps three
/// more copies).
pub const MAX_HIDDEN_WEIGHTS: u128 = 1 << 28;

/// The most quantile bins per input.
const MAX_BINS: usize = 1024;

/// The default of `n_bins` (also for files written before it existed).
fn default_n_bins() -> usize {
    48
}

/// Parameter names `set` knows, for error messages.
const KNOWN: &str = "depth, width, activation, dropout, norm, residual, k, embedding, \
                     n_frequencies, frequency_scale, embedding_dim, n_bins, epochs, batch_size, learning_rate, \
                     weight_decay, schedule, warmup, label_smoothing, clip_norm, patience, seed";

impl NeuralParams {
    /// The tuned defaults of a kind.
    pub fn new(kind: NetKind) -> Self {
        let tabm = kind == NetKind::Tabm;
        Self {
            kind,
            depth: 3,
            width: 256,
            activation: Activation::Relu,
            dropout: 0.1,
            norm: Norm::None,
            residual: false,
            k: if tabm { 8 } else { 1 },
            embedding: if tabm {
                Embedding::Piecewise
            } else {
                Embedding::None
            },
            n_frequencies: 16,
            frequency_scale: 0.1,
            embedding_dim: 8,
            n_bins: default_n_bins(),
            epochs: 60,
            batch_size: 256,
            learning_rate: 1e-3,
            weight_decay: if tabm { 3e-4 } else { 1e-4 },
            schedule: Schedule::Cosine,
            warmup: 0.05,
            label_smoothing: 0.05,
            clip_norm: 1.0,
            patience: 12,
            seed: 42,
        }
    }

    /// Sets one parameter from its command-line text (`--param NAME=VALUE`).
    pub fn set(&mut self, name: &str, value: &str) -> Result<()> {
        let v = value.trim();
        match name {
            "depth" | "n_layers" => self.depth = parse(name, value, "an integer ≥ 1")?,
            "width" | "d_block" | "hidden" => self.width = parse(name, value, "an integer ≥ 1")?,
            "activation" => {
                self.activation = match v {
                    "relu" => Activation::Relu,
                    "gelu" => Activation::Gelu,
                    "silu" => Activation::Silu,
                    _ => return Err(ModelError::param(name, value, "relu, gelu or silu")),
                };
            }
            "dropout" => self.dropout = parse(name, value, "a number in [0, 1)")?,
            "norm" | "normalization" => {
                self.norm = match v {
                    "none" => Norm::None,
                    "layer" | "layernorm" => Norm::Layer,
                    "batch" | "batchnorm" => Norm::Batch,
                    _ => return Err(ModelError::param(name, value, "none, layer or batch")),
                };
            }
            "residual" => self.residual = parse(name, value, "true or false")?,
            "k" | "ensemble_size" => self.k = parse(name, value, "an integer ≥ 1")?,
            "embedding" => {
                self.embedding = match v {
                    "none" => Embedding::None,
                    "periodic" => Embedding::Periodic,
                    "piecewise" | "ple" => Embedding::Piecewise,
                    _ => {
                        return Err(ModelError::param(
                            name,
                            value,
                            "none, periodic or piecewise",
                        ));
                    }
                };
            }
            "n_frequencies" => self.n_frequencies = parse(name, value, "an integer ≥ 1")?,
            "frequency_scale" => self.frequency_scale = parse(name, value, "a number > 0")?,
            "embedding_dim" => self.embedding_dim = parse(name, value, "an integer ≥ 1")?,
            "n_bins" => self.n_bins = parse(name, value, "an integer in 1..=1024")?,
            "epochs" | "rounds" => self.epochs = parse(name, value, "an integer ≥ 1")?,
            "batch_size" => self.batch_size = parse(name, value, "an integer ≥ 1")?,
            "learning_rate" | "lr" => self.learning_rate = parse(name, value, "a number > 0")?,
            "weight_decay" => self.weight_decay = parse(name, value, "a number ≥ 0")?,
            "schedule" => {
                self.schedule = match v {
                    "constant" => Schedule::Constant,
                    "cosine" => Schedule::Cosine,
                    "one-cycle" | "onecycle" | "one_cycle" => Schedule::OneCycle,
                    _ => {
                        return Err(ModelError::param(
                            name,
                            value,
                            "constant, cosine or one-cycle",
                        ));
                    }
                };
            }
            "warmup" => self.warmup = parse(name, value, "a number in [0, 1)")?,
            "label_smoothing" => self.label_smoothing = parse(name, value, "a number in [0, 1)")?,
            "clip_norm" | "gradient_clipping" => {
                self.clip_norm = parse(name, value, "a number ≥ 0")?;
            }
            "patience" | "early_stopping_rounds" => {
                self.patience = parse(name, value, "an integer ≥ 0")?;
            }
            "seed" => self.seed = parse(name, value, "an integer ≥ 0")?,
            other => {
                return Err(ModelError::param(
                    other,
                    value,
                    &format!("a known parameter: {KNOWN}"),
                ));
            }
        }
        Ok(())
    }

    /// Checks every value; only checked parameters reach training.
    pub fn check(&self) -> Result<NeuralValid> {
        let positive = |name: &str, v: usize| {
            if v == 0 {
                Err(ModelError::param(name, v, "an integer ≥ 1"))
            } else {
                Ok(())
            }
        };
        // Sizes have documented maxima (MAX_*) so that a typo cannot ask for terabytes.
        let sized = |name: &str, v: usize, max: usize| {
            if (1..=max).contains(&v) {
                Ok(())
            } else {
                Err(ModelError::param(
                    name,
                    v,
                    &format!("an integer in 1..={max}"),
                ))
            }
        };
        sized("depth", self.depth, MAX_DEPTH)?;
        sized("width", self.width, MAX_WIDTH)?;
        sized("k", self.k, MAX_K)?;
        sized("n_frequencies", self.n_frequencies, MAX_EMBEDDING)?;
        sized("embedding_dim", self.embedding_dim, MAX_EMBEDDING)?;
        let weights = (self.width * self.width) as u128 * self.depth as u128 * self.k as u128;
        if weights > MAX_HIDDEN_WEIGHTS {
            return Err(ModelError::param(
                "width",
                self.width,
                &format!(
                    "at most {MAX_HIDDEN_WEIGHTS} hidden weights (width² × depth × k; here \
                     {weights} with depth {} and k {})",
                    self.depth, self.k
                ),
            ));
        }
        if !(1..=MAX_BINS).contains(&self.n_bins) {
            return Err(ModelError::param(
                "n_bins",
                self.n_bins,
                &format!("an integer in 1..={MAX_BINS}"),
            ));
        }
        positive("epochs", self.epochs)?;
        positive("batch_size", self.batch_size)?;
        if self.kind == NetKind::Mlp && self.k != 1 {
            return Err(ModelError::param(
                "k",
                self.k,
                "1 for an MLP (use --model tabm for an ensemble)",
            ));
        }
        let unit = |name: &str, v: f64| {
            if (0.0..1.0).contains(&v) {
                Ok(())
            } else {
                Err(ModelError::param(name, v, "a number in [0, 1)"))
            }
        };
        unit("dropout", self.dropout)?;
        unit("warmup", self.warmup)?;
        unit("label_smoothing", self.label_smoothing)?;
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(ModelError::param(
                "learning_rate",
                self.learning_rate,
                "a number > 0",
            ));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(ModelError::param(
                "weight_decay",
                self.weight_decay,
                "a number ≥ 0",
            ));
        }
        if !(self.clip_norm.is_finite() && self.clip_norm >= 0.0) {
            return Err(ModelError::param(
                "clip_norm",
                self.clip_norm,
                "a number ≥ 0",
            ));
        }
        if !(self.frequency_scale.is_finite() && self.frequency_scale > 0.0) {
            return Err(ModelError::param(
                "frequency_scale",
                self.frequency_scale,
                "a number > 0",
            ));
        }
        Ok(NeuralValid(self.clone()))
    }

    /// Whether `other` can train in the same stacked population as `self`: every parameter that
    /// fixes tensor shapes or the step count matches (widths may differ: narrower members are
    /// padded and masked).
    pub fn stack_compatible(&self, other: &Self) -> bool {
        self.kind == other.kind
            && self.depth == other.depth
            && self.activation == other.activation
            && self.norm == other.norm
            && self.residual == other.residual
            && self.k == other.k
            && self.embedding == other.embedding
            && self.n_frequencies == other.n_frequencies
            && self.embedding_dim == other.embedding_dim
            && (self.embedding != Embedding::Piecewise || self.n_bins == other.n_bins)
            && self.epochs == other.epochs
            && self.batch_size == other.batch_size
            && self.schedule == other.schedule
            && self.warmup == other.warmup
    }

    /// The learning-rate multiplier (0..=1) at `step` of `total` steps.
    pub fn schedule_factor(&self, step: usize, total: usize) -> f64 {
        let total = total.max(1) as f64;
        let t = step as f64;
        let warm = (self.warmup * total).floor();
        if t < warm {
            return (t + 1.0) / warm;
        }
        let progress = ((t - warm) / (total - warm).max(1.0)).clamp(0.0, 1.0);
        let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
        match self.schedule {
            Schedule::Constant => 1.0,
            Schedule::Cosine => cosine,
            Schedule::OneCycle => 1e-3 + (1.0 - 1e-3) * cosine,
        }
    }
}

/// Parameters that passed [`NeuralParams::check`].
#[derive(Clone, Debug, PartialEq)]
pub struct NeuralValid(NeuralParams);

impl NeuralValid {
    /// The checked parameters.
    pub fn params(&self) -> &NeuralParams {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_names_the_parameter_on_bad_values() {
        let mut p = NeuralParams::new(NetKind::Mlp);
        p.set("width", "64").expect("ok");
        p.set("schedule", "one-cycle").expect("ok");
        assert_eq!((p.width, p.schedule), (64, Schedule::OneCycle));
        let m = p.set("dropout", "lots").expect_err("bad").to_string();
        assert!(m.contains("`dropout` = lots"), "{m}");
        let m = p.set("nope", "1").expect_err("unknown").to_string();
        assert!(m.contains("`nope`") && m.contains("learning_rate"), "{m}");
        p.dropout = 1.0;
        let m = p.check().expect_err("dropout 1").to_string();
        assert!(m.contains("`dropout`"), "{m}");
        let mut p = NeuralParams::new(NetKind::Mlp);
        p.learning_rate = -1.0;
        assert!(
            p.check()
                .expect_err("lr")
                .to_string()
                .contains("learning_rate")
        );
        let mut p = NeuralParams::new(NetKind::Mlp);
        p.k = 4;
        assert!(p.check().expect_err("k").to_string().contains("`k`"));
    }

    #[test]
    fn piecewise_embedding_and_batch_norm_parameters_are_checked() {
        let mut p = NeuralParams::new(NetKind::Tabm);
        p.set("embedding", "piecewise").expect("ok");
        p.set("n_bins", "16").expect("ok");
        p.set("norm", "batch").expect("ok");
        assert_eq!(
            (p.embedding, p.n_bins, p.norm),
            (Embedding::Piecewise, 16, Norm::Batch)
        );
        p.check().expect("valid");
        let m = p.set("embedding", "wavelet").expect_err("bad").to_string();
        assert!(
            m.contains("`embedding` = wavelet") && m.contains("piecewise"),
            "{m}"
        );
        let m = p.set("norm", "group").expect_err("bad").to_string();
        assert!(m.contains("`norm` = group") && m.contains("batch"), "{m}");
        for bad in ["-3", "many", "1.5"] {
            let m = p.set("n_bins", bad).expect_err("bad").to_string();
            assert!(m.contains(&format!("`n_bins` = {bad}")), "{m}");
        }
        for bad in ["0", "5000"] {
            p.set("n_bins", bad).expect("parses");
            let m = p.check().expect_err("out of range").to_string();
            assert!(m.contains("`n_bins`") && m.contains("1..=1024"), "{m}");
        }
        // The bin count fixes tensor shapes only with the piecewise embedding.
        let a = NeuralParams::new(NetKind::Mlp);
        let mut b = a.clone();
        b.n_bins = 8;
        assert!(a.stack_compatible(&b));
        let mut a = a;
        a.embedding = Embedding::Piecewise;
        b.embedding = Embedding::Piecewise;
        assert!(!a.stack_compatible(&b));
        // Files written before `n_bins` existed read with the default.
        let mut json = serde_json::to_value(NeuralParams::new(NetKind::Mlp)).expect("json");
        json.as_object_mut().expect("object").remove("n_bins");
        let old: NeuralParams = serde_json::from_value(json).expect("old file");
        assert_eq!(old.n_bins, 48);
    }

    #[test]
    fn schedule_warms_up_then_decays() {
        let p = NeuralParams::new(NetKind::Mlp);
        let f: Vec<f64> = (0..100).map(|s| p.schedule_factor(s, 100)).collect();
        assert!(f[0] < f[4] && (f[4] - 1.0).abs() < 1e-12);
        assert!(f[50] < 1.0 && f[99] < 0.01);
        assert!(f.windows(2).skip(5).all(|w| w[1] <= w[0]));
    }
}
