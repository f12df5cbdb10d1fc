//! The model families `tabtune train --model` accepts.

use serde::Serialize;
use tabtune_models::forest::{ForestKind, ForestParams};
use tabtune_models::gbdt::{GbdtParams, Growth};
use tabtune_models::nn::{NetKind, NeuralParams};

use crate::error::{Result, TrainError};

/// The parameters of one family.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ModelParams {
    /// Gradient boosting.
    Gbdt(GbdtParams),
    /// Decision tree or random forest.
    Forest(ForestParams),
    /// MLP or TabM.
    Neural(NeuralParams),
}

/// A model family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// Gradient boosting with leaf-wise growth (LightGBM style).
    GbdtLeafwise,
    /// Gradient boosting with depth-wise growth (XGBoost `hist` style).
    GbdtDepthwise,
    /// Gradient boosting with oblivious trees (CatBoost style).
    GbdtOblivious,
    /// Bagged classification trees with per-split feature sampling.
    RandomForest,
    /// One classification tree (Gini or entropy).
    DecisionTree,
    /// A multi-layer perceptron (burn; CPU, wgpu or CUDA).
    Mlp,
    /// TabM: a BatchEnsemble MLP with periodic numeric embeddings.
    Tabm,
}

impl Family {
    /// Every family, in the order the CLI lists them.
    pub const ALL: [Family; 7] = [
        Self::GbdtLeafwise,
        Self::GbdtDepthwise,
        Self::GbdtOblivious,
        Self::RandomForest,
        Self::DecisionTree,
        Self::Mlp,
        Self::Tabm,
    ];

    /// The CLI name.
    pub fn name(self) -> &'static str {
        match self {
            Self::GbdtLeafwise => "gbdt-leafwise",
            Self::GbdtDepthwise => "gbdt-depthwise",
            Self::GbdtOblivious => "gbdt-oblivious",
            Self::RandomForest => "random-forest",
            Self::DecisionTree => "decision-tree",
            Self::Mlp => "mlp",
            Self::Tabm => "tabm",
        }
    }

    /// Whether the family trains on a `--device` (the neural families).
    pub fn is_neural(self) -> bool {
        matches!(self, Self::Mlp | Self::Tabm)
    }

    /// Whether it is one of the three gradient-boosting styles (batched on a GPU).
    pub fn is_gbdt(self) -> bool {
        matches!(
            self,
            Self::GbdtLeafwise | Self::GbdtDepthwise | Self::GbdtOblivious
        )
    }

    /// Parses a CLI name.
    pub fn parse(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|f| f.name() == name)
            .ok_or_else(|| TrainError::UnknownModel {
                name: name.to_owned(),
                expected: Self::ALL.iter().map(|f| f.name().to_owned()).collect(),
            })
    }

    /// Default parameters, with `name=value` overrides applied.
    pub fn params(self, overrides: &[(String, String)]) -> Result<ModelParams> {
        let growth = match self {
            Self::GbdtLeafwise => Growth::LeafWise,
            Self::GbdtDepthwise => Growth::DepthWise,
            Self::GbdtOblivious => Growth::Oblivious,
            Self::Mlp | Self::Tabm => {
                let kind = if self == Self::Mlp {
                    NetKind::Mlp
                } else {
                    NetKind::Tabm
                };
                let mut p = NeuralParams::new(kind);
                for (name, value) in overrides {
                    p.set(name, value)?;
                }
                p.check()?;
                return Ok(ModelParams::Neural(p));
            }
            Self::RandomForest | Self::DecisionTree => {
                let kind = if self == Self::RandomForest {
                    ForestKind::RandomForest
                } else {
                    ForestKind::DecisionTree
                };
                let mut p = ForestParams::new(kind);
                for (name, value) in overrides {
                    p.set(name, value)?;
                }
                return Ok(ModelParams::Forest(p));
            }
        };
        let mut p = GbdtParams::new(growth);
        for (name, value) in overrides {
            p.set(name, value)?;
        }
        Ok(ModelParams::Gbdt(p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_list_the_choices() {
        for f in Family::ALL {
            assert_eq!(Family::parse(f.name()).expect("known"), f);
        }
        let m = Family::parse("xgboost").expect_err("unknown").to_string();
        assert!(
            m.contains("`xgboost`") && m.contains("gbdt-leafwise"),
            "{m}"
        );
        let p = Family::GbdtDepthwise
            .params(&[("max_depth".into(), "4".into())])
            .expect("ok");
        assert!(matches!(p, ModelParams::Gbdt(ref g) if g.max_depth == 4));
        let p = Family::RandomForest
            .params(&[("criterion".into(), "entropy".into())])
            .expect("ok");
        assert!(matches!(p, ModelParams::Forest(ref f) if f.n_trees == 100));
        assert!(
            Family::GbdtLeafwise
                .params(&[("nope".into(), "1".into())])
                .is_err()
        );
        let p = Family::Tabm
            .params(&[("k".into(), "4".into()), ("seed".into(), "3".into())])
            .expect("ok");
        assert!(matches!(p, ModelParams::Neural(ref n) if n.k == 4 && n.seed == 3));
        let m = Family::Mlp
            .params(&[("dropout".into(), "1.5".into())])
            .expect_err("invalid")
            .to_string();
        assert!(m.contains("`dropout` = 1.5"), "{m}");
        let m = Family::Mlp
            .params(&[("depht".into(), "2".into())])
            .expect_err("unknown")
            .to_string();
        assert!(m.contains("`depht`"), "{m}");
    }
}
