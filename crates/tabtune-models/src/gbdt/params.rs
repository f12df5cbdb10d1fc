//! Hyperparameters: `GbdtParams` as given, `check()` into `GbdtValid`, the only form training
//! accepts.

use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// How trees grow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Growth {
    /// Level by level up to `max_depth` (XGBoost `hist`).
    DepthWise,
    /// Best leaf first up to `num_leaves` (LightGBM).
    LeafWise,
    /// One split per level shared by all leaves, `max_depth` levels (CatBoost).
    Oblivious,
}

/// Gradient quantization: train on integer gradients and hessians (exact, order-free histogram
/// sums; the arithmetic the GPU kernels share, see `tabtune_kernels::reference::math`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Quantize {
    /// Floating-point gradients (the default).
    #[default]
    Off,
    /// Integers, rounded to nearest.
    Nearest,
    /// Integers, rounded stochastically (unbiased; noise from the seed, round, output, row).
    Stochastic,
}

impl Quantize {
    /// Whether gradients are quantized.
    pub fn is_on(self) -> bool {
        self != Self::Off
    }

    #[allow(clippy::trivially_copy_pass_by_ref)] // serde's `skip_serializing_if` passes a reference
    fn is_off(&self) -> bool {
        *self == Self::Off
    }
}

/// Gradient-boosting hyperparameters as given (names as on the command line).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GbdtParams {
    /// Growth policy.
    pub growth: Growth,
    /// Boosting rounds (one tree per class per round). Default 500.
    pub rounds: usize,
    /// Shrinkage. Default 0.05.
    pub learning_rate: f64,
    /// Leaves per tree for leaf-wise growth (≥ 2). Default 31.
    pub num_leaves: usize,
    /// Depth limit; 0 = none (leaf-wise only). Default: 6 for depth-wise and oblivious, 0 for
    /// leaf-wise.
    pub max_depth: usize,
    /// L2 regularisation of leaf values. Default 1.
    pub lambda: f64,
    /// L1 regularisation of leaf values. Default 0.
    pub alpha: f64,
    /// Minimum hessian sum in a child. Default 1e-3.
    pub min_child_weight: f64,
    /// Minimum rows in a child. Default 20.
    pub min_data_in_leaf: usize,
    /// Minimum gain to split (XGBoost `gamma`). Default 0.
    pub gamma: f64,
    /// Row subsample per tree, in (0, 1]. Default 1.
    pub subsample: f64,
    /// Feature subsample per tree, in (0, 1]. Default 1.
    pub colsample_bytree: f64,
    /// Feature subsample per split search, in (0, 1]. Default 1.
    pub colsample_bynode: f64,
    /// Histogram bins per feature (2..=255). Default 255.
    pub max_bins: usize,
    /// Stop when the validation loss has not improved for this many rounds; 0 = off.
    pub early_stopping_rounds: usize,
    /// Per-class weight multiplying each row's gradient; empty = all 1.
    pub class_weights: Vec<f64>,
    /// Seed of the subsampling.
    pub seed: u64,
    /// Threads; 0 = all cores (the caller's pool). At most this machine's cores
    /// ([`max_threads`](crate::max_threads)).
    pub threads: usize,
    /// Treat NaN features as missing values (learned direction) instead of rejecting them.
    pub allow_missing: bool,
    /// Indices of the features that hold categorical level codes (0, 1, ...; negative =
    /// unknown). Leaf-wise and depth-wise trees split them into category sets; oblivious trees
    /// see them as ordered target statistics. Set by the trainer from the feature matrix.
    #[serde(default)]
    pub categorical: Vec<usize>,
    /// Gradient quantization (default off). Quantized training keeps raw scores in `f32`,
    /// computes `exp`/`ln` from tables and ranks splits by `f32` scores: the arithmetic of the
    /// batched GPU fit, whose models it reproduces exactly. Numeric features only.
    #[serde(default, skip_serializing_if = "Quantize::is_off")]
    pub quantize: Quantize,
    /// With quantization: at most `2^quant_bits` levels per side for a gradient or hessian
    /// (fewer when the rows would overflow 32-bit sums). Default 16.
    #[serde(
        default = "default_quant_bits",
        skip_serializing_if = "is_default_quant_bits"
    )]
    pub quant_bits: u32,
}

fn default_quant_bits() -> u32 {
    16
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's `skip_serializing_if` passes a reference
fn is_default_quant_bits(b: &u32) -> bool {
    *b == default_quant_bits()
}

impl GbdtParams {
    /// Defaults for a growth policy.
    pub fn new(growth: Growth) -> Self {
        Self {
            growth,
            rounds: 500,
            learning_rate: 0.05,
            num_leaves: 31,
            max_depth: if growth == Growth::LeafWise { 0 } else { 6 },
            lambda: 1.0,
            alpha: 0.0,
            min_child_weight: 1e-3,
            min_data_in_leaf: 20,
            gamma: 0.0,
            subsample: 1.0,
            colsample_bytree: 1.0,
            colsample_bynode: 1.0,
            max_bins: 255,
            early_stopping_rounds: 0,
            class_weights: Vec::new(),
            seed: 42,
            threads: 0,
            allow_missing: false,
            categorical: Vec::new(),
            quantize: Quantize::Off,
            quant_bits: default_quant_bits(),
        }
    }

    /// Sets one parameter from its command-line name and text value.
    pub fn set(&mut self, name: &str, value: &str) -> Result<()> {
        use crate::error::parse_param as parse;
        match name {
            "rounds" | "n_estimators" | "iterations" => {
                self.rounds = parse(name, value, "an integer ≥ 1")?;
            }
            "learning_rate" | "eta" => {
                self.learning_rate = parse(name, value, "a number in (0, 1]")?;
            }
            "num_leaves" => self.num_leaves = parse(name, value, "an integer ≥ 2")?,
            "max_depth" | "depth" => self.max_depth = parse(name, value, "an integer ≥ 0")?,
            "lambda" | "reg_lambda" | "l2_leaf_reg" => {
                self.lambda = parse(name, value, "a number ≥ 0")?;
            }
            "alpha" | "reg_alpha" => self.alpha = parse(name, value, "a number ≥ 0")?,
            "min_child_weight" | "min_sum_hessian_in_leaf" => {
                self.min_child_weight = parse(name, value, "a number ≥ 0")?;
            }
            "min_data_in_leaf" | "min_child_samples" => {
                self.min_data_in_leaf = parse(name, value, "an integer ≥ 1")?;
            }
            "gamma" | "min_split_gain" => self.gamma = parse(name, value, "a number ≥ 0")?,
            "subsample" | "bagging_fraction" => {
                self.subsample = parse(name, value, "a number in (0, 1]")?;
            }
            "colsample_bytree" | "feature_fraction" => {
                self.colsample_bytree = parse(name, value, "a number in (0, 1]")?;
            }
            "colsample_bynode" | "feature_fraction_bynode" => {
                self.colsample_bynode = parse(name, value, "a number in (0, 1]")?;
            }
            "max_bins" | "max_bin" => self.max_bins = parse(name, value, "an integer in 2..=255")?,
            "early_stopping_rounds" | "early_stopping" => {
                self.early_stopping_rounds = parse(name, value, "an integer ≥ 0")?;
            }
            "class_weights" => {
                self.class_weights = value
                    .split(',')
                    .map(|v| parse(name, v, "comma-separated numbers > 0"))
                    .collect::<Result<_>>()?;
            }
            "seed" => self.seed = parse(name, value, "an integer ≥ 0")?,
            "threads" | "n_jobs" => {
                self.threads = parse(name, value, "an integer ≥ 0 (0 = all cores)")?;
            }
            "allow_missing" => self.allow_missing = parse(name, value, "true or false")?,
            "quantize" | "quantized_gradients" => {
                self.quantize = match value.trim() {
                    "off" | "false" | "none" => Quantize::Off,
                    "nearest" | "true" | "on" => Quantize::Nearest,
                    "stochastic" => Quantize::Stochastic,
                    _ => {
                        return Err(ModelError::param(name, value, "off, nearest or stochastic"));
                    }
                };
            }
            "quant_bits" => self.quant_bits = parse(name, value, "an integer in 2..=20")?,
            other => {
                return Err(ModelError::param(
                    other,
                    value,
                    "a known parameter: rounds, learning_rate, num_leaves, max_depth, lambda, \
                     alpha, min_child_weight, min_data_in_leaf, gamma, subsample, \
                     colsample_bytree, colsample_bynode, max_bins, early_stopping_rounds, \
                     class_weights, seed, threads, allow_missing, quantize, quant_bits",
                ));
            }
        }
        Ok(())
    }

    /// Checks every value; only checked parameters reach training.
    pub fn check(&self, n_classes: usize) -> Result<GbdtValid> {
        let p = self;
        let unit = |name: &str, v: f64| {
            if v > 0.0 && v <= 1.0 {
                Ok(())
            } else {
                Err(ModelError::param(name, v, "a number in (0, 1]"))
            }
        };
        let non_negative = |name: &str, v: f64| {
            if v >= 0.0 && v.is_finite() {
                Ok(())
            } else {
                Err(ModelError::param(name, v, "a finite number ≥ 0"))
            }
        };
        if p.rounds == 0 {
            return Err(ModelError::param("rounds", p.rounds, "an integer ≥ 1"));
        }
        if !(p.learning_rate > 0.0 && p.learning_rate <= 1.0) {
            return Err(ModelError::param(
                "learning_rate",
                p.learning_rate,
                "a number in (0, 1]",
            ));
        }
        if p.num_leaves < 2 {
            return Err(ModelError::param(
                "num_leaves",
                p.num_leaves,
                "an integer ≥ 2",
            ));
        }
        if p.growth != Growth::LeafWise && !(1..=16).contains(&p.max_depth) {
            return Err(ModelError::param(
                "max_depth",
                p.max_depth,
                "an integer in 1..=16 for depth-wise and oblivious trees",
            ));
        }
        non_negative("lambda", p.lambda)?;
        non_negative("alpha", p.alpha)?;
        non_negative("min_child_weight", p.min_child_weight)?;
        non_negative("gamma", p.gamma)?;
        if p.min_data_in_leaf == 0 {
            return Err(ModelError::param("min_data_in_leaf", 0, "an integer ≥ 1"));
        }
        unit("subsample", p.subsample)?;
        unit("colsample_bytree", p.colsample_bytree)?;
        unit("colsample_bynode", p.colsample_bynode)?;
        if !(2..=255).contains(&p.max_bins) {
            return Err(ModelError::param(
                "max_bins",
                p.max_bins,
                "an integer in 2..=255",
            ));
        }
        if !(2..=20).contains(&p.quant_bits) {
            return Err(ModelError::param(
                "quant_bits",
                p.quant_bits,
                "an integer in 2..=20",
            ));
        }
        if p.quantize.is_on() && !p.categorical.is_empty() {
            return Err(ModelError::param(
                "quantize",
                format!(
                    "{:?} with categorical columns {:?}",
                    p.quantize, p.categorical
                ),
                "numeric features only: encode categorical columns one-hot (encode = \"one-hot\") \
                 or train without quantization",
            ));
        }
        crate::threads::check(p.threads)?;
        if !p.class_weights.is_empty() {
            if p.class_weights.len() != n_classes {
                return Err(ModelError::param(
                    "class_weights",
                    format!("{} values", p.class_weights.len()),
                    &format!("one weight per class ({n_classes})"),
                ));
            }
            if let Some(w) = p
                .class_weights
                .iter()
                .find(|w| !(**w > 0.0 && w.is_finite()))
            {
                return Err(ModelError::param("class_weights", w, "finite weights > 0"));
            }
        }
        Ok(GbdtValid(p.clone()))
    }
}

/// Checked parameters (see [`GbdtParams::check`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GbdtValid(GbdtParams);

impl std::ops::Deref for GbdtValid {
    type Target = GbdtParams;
    fn deref(&self) -> &GbdtParams {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_values_are_named() {
        let cases: [(&str, &str, &str); 9] = [
            ("threads", "100000", "threads"),
            ("learning_rate", "-0.1", "learning_rate"),
            ("num_leaves", "1", "num_leaves"),
            ("rounds", "0", "rounds"),
            ("subsample", "1.5", "subsample"),
            ("max_bins", "300", "max_bins"),
            ("lambda", "-1", "lambda"),
            ("class_weights", "1,2", "class_weights"),
            ("min_data_in_leaf", "0", "min_data_in_leaf"),
        ];
        for (name, value, key) in cases {
            let mut p = GbdtParams::new(Growth::LeafWise);
            p.set(name, value).expect("parses");
            let m = p.check(3).expect_err("invalid").to_string();
            assert!(m.contains(&format!("`{key}`")), "{m}");
        }
        let mut p = GbdtParams::new(Growth::DepthWise);
        p.set("max_depth", "0").expect("parses");
        assert!(p.check(3).is_err());
        let m = GbdtParams::new(Growth::LeafWise)
            .set("leaves", "3")
            .expect_err("unknown")
            .to_string();
        assert!(m.contains("`leaves`") && m.contains("num_leaves"), "{m}");
        let m = GbdtParams::new(Growth::LeafWise)
            .set("rounds", "many")
            .expect_err("text")
            .to_string();
        assert!(m.contains("`rounds` = many"), "{m}");
    }
}
