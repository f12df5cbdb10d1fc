//! The model families `tabtune train --model` accepts.

use tabtune_models::gbdt::{GbdtParams, Growth};

use crate::error::{Result, TrainError};

/// A model family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// Gradient boosting with leaf-wise growth (LightGBM style).
    GbdtLeafwise,
    /// Gradient boosting with depth-wise growth (XGBoost `hist` style).
    GbdtDepthwise,
    /// Gradient boosting with oblivious trees (CatBoost style).
    GbdtOblivious,
}

impl Family {
    /// Every family, in the order the CLI lists them.
    pub const ALL: [Family; 3] = [Self::GbdtLeafwise, Self::GbdtDepthwise, Self::GbdtOblivious];

    /// The CLI name.
    pub fn name(self) -> &'static str {
        match self {
            Self::GbdtLeafwise => "gbdt-leafwise",
            Self::GbdtDepthwise => "gbdt-depthwise",
            Self::GbdtOblivious => "gbdt-oblivious",
        }
    }

    /// Parses a CLI name.
    pub fn parse(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|f| f.name() == name)
            .ok_or_else(|| {
                let all: Vec<&str> = Self::ALL.iter().map(|f| f.name()).collect();
                TrainError::Invalid(format!(
                    "unknown model `{name}`; expected one of {}",
                    all.join(", ")
                ))
            })
    }

    /// Default parameters, with `name=value` overrides applied.
    pub fn params(self, overrides: &[(String, String)]) -> Result<GbdtParams> {
        let growth = match self {
            Self::GbdtLeafwise => Growth::LeafWise,
            Self::GbdtDepthwise => Growth::DepthWise,
            Self::GbdtOblivious => Growth::Oblivious,
        };
        let mut p = GbdtParams::new(growth);
        for (name, value) in overrides {
            p.set(name, value)?;
        }
        Ok(p)
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
        assert_eq!(p.max_depth, 4);
        assert!(
            Family::GbdtLeafwise
                .params(&[("nope".into(), "1".into())])
                .is_err()
        );
    }
}
