//! Decision-tree and random-forest hyperparameters.

use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// Impurity measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Criterion {
    /// Gini impurity `1 − Σ p²`.
    Gini,
    /// Entropy `−Σ p ln p`.
    Entropy,
}

/// One tree on all rows, or a bagged forest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ForestKind {
    /// A single tree on every row and every feature.
    DecisionTree,
    /// Bootstrap-sampled trees with per-split feature sampling.
    RandomForest,
}

/// Hyperparameters as given (names as on the command line, scikit-learn's where they exist).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ForestParams {
    /// Decision tree or forest.
    pub kind: ForestKind,
    /// Trees in a forest. Default 100 (scikit-learn's).
    pub n_trees: usize,
    /// Split criterion. Default Gini.
    pub criterion: Criterion,
    /// Depth limit; 0 = none (grow until pure). Default 0.
    pub max_depth: usize,
    /// Minimum rows to split a node. Default 2.
    pub min_samples_split: usize,
    /// Minimum rows in a leaf. Default 1.
    pub min_samples_leaf: usize,
    /// Share of features tried at each split, in (0, 1]; 0 stands for √n_features (the forest
    /// default; on the command line `max_features=sqrt`: a given 0 is refused).
    /// Default: √n for forests, 1 for a decision tree.
    pub max_features: f64,
    /// Bootstrap rows per tree (forests). Default true.
    pub bootstrap: bool,
    /// Histogram bins per feature (2..=255). Default 255.
    pub max_bins: usize,
    /// Seed.
    pub seed: u64,
    /// Threads; 0 = all cores. At most this machine's cores
    /// ([`max_threads`](crate::max_threads)).
    pub threads: usize,
}

impl ForestParams {
    /// Defaults for a kind.
    pub fn new(kind: ForestKind) -> Self {
        Self {
            kind,
            n_trees: if kind == ForestKind::DecisionTree {
                1
            } else {
                100
            },
            criterion: Criterion::Gini,
            max_depth: 0,
            min_samples_split: 2,
            min_samples_leaf: 1,
            max_features: if kind == ForestKind::DecisionTree {
                1.0
            } else {
                0.0
            },
            bootstrap: kind == ForestKind::RandomForest,
            max_bins: 255,
            seed: 42,
            threads: 0,
        }
    }

    /// Sets one parameter from its command-line name and text value.
    pub fn set(&mut self, name: &str, value: &str) -> Result<()> {
        use crate::error::parse_param as parse;
        match name {
            "n_trees" | "n_estimators" | "rounds" => {
                self.n_trees = parse(name, value, "an integer ≥ 1")?;
            }
            "criterion" => {
                self.criterion = match value.trim() {
                    "gini" => Criterion::Gini,
                    "entropy" => Criterion::Entropy,
                    _ => return Err(ModelError::param(name, value, "gini or entropy")),
                };
            }
            "max_depth" => self.max_depth = parse(name, value, "an integer ≥ 0")?,
            "min_samples_split" => self.min_samples_split = parse(name, value, "an integer ≥ 2")?,
            "min_samples_leaf" | "min_data_in_leaf" => {
                self.min_samples_leaf = parse(name, value, "an integer ≥ 1")?;
            }
            "max_features" => {
                let expected = "a share of the features in (0, 1], or sqrt (√n_features)";
                self.max_features = match value.trim() {
                    "sqrt" => 0.0,
                    _ => {
                        let share: f64 = parse(name, value, expected)?;
                        if !(share > 0.0 && share <= 1.0) {
                            return Err(ModelError::param(name, value, expected));
                        }
                        share
                    }
                };
            }
            "bootstrap" => self.bootstrap = parse(name, value, "true or false")?,
            "max_bins" | "max_bin" => self.max_bins = parse(name, value, "an integer in 2..=255")?,
            "seed" => self.seed = parse(name, value, "an integer ≥ 0")?,
            "threads" | "n_jobs" => {
                self.threads = parse(name, value, "an integer ≥ 0 (0 = all cores)")?;
            }
            other => {
                return Err(ModelError::param(
                    other,
                    value,
                    "a known parameter: n_trees, criterion, max_depth, min_samples_split, \
                     min_samples_leaf, max_features, bootstrap, max_bins, seed, threads",
                ));
            }
        }
        Ok(())
    }

    /// Checks every value; only checked parameters reach training.
    pub fn check(&self) -> Result<ForestValid> {
        if self.n_trees == 0 {
            return Err(ModelError::param("n_trees", 0, "an integer ≥ 1"));
        }
        if self.kind == ForestKind::DecisionTree && self.n_trees != 1 {
            return Err(ModelError::param(
                "n_trees",
                self.n_trees,
                "1 for a decision tree",
            ));
        }
        if self.min_samples_split < 2 {
            return Err(ModelError::param(
                "min_samples_split",
                self.min_samples_split,
                "an integer ≥ 2",
            ));
        }
        if self.min_samples_leaf == 0 {
            return Err(ModelError::param("min_samples_leaf", 0, "an integer ≥ 1"));
        }
        if !(self.max_features >= 0.0 && self.max_features <= 1.0) {
            return Err(ModelError::param(
                "max_features",
                self.max_features,
                "a share of the features in (0, 1], or sqrt (√n_features)",
            ));
        }
        if !(2..=255).contains(&self.max_bins) {
            return Err(ModelError::param(
                "max_bins",
                self.max_bins,
                "an integer in 2..=255",
            ));
        }
        crate::threads::check(self.threads)?;
        Ok(ForestValid(self.clone()))
    }
}

/// Checked parameters (see [`ForestParams::check`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ForestValid(ForestParams);

impl std::ops::Deref for ForestValid {
    type Target = ForestParams;
    fn deref(&self) -> &ForestParams {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_features_zero_and_too_many_threads_are_refused() {
        let mut p = ForestParams::new(ForestKind::RandomForest);
        let m = p.set("max_features", "0").expect_err("zero").to_string();
        assert!(
            m.contains("`max_features` = 0") && m.contains("sqrt"),
            "{m}"
        );
        for bad in ["-0.5", "1.5", "NaN", "many"] {
            let m = p.set("max_features", bad).expect_err(bad).to_string();
            assert!(m.contains("`max_features`"), "{m}");
        }
        p.set("max_features", "sqrt").expect("sqrt");
        assert_eq!(p.max_features, 0.0);
        p.set("max_features", "0.5").expect("a share");
        p.check().expect("valid");
        p.set("threads", "100000").expect("parses");
        let m = p.check().expect_err("too many threads").to_string();
        assert!(
            m.contains("`threads` = 100000") && m.contains("cores"),
            "{m}"
        );
    }
}
