//! A trial's parameters turned into a model family and its parameters.
//!
//! A search space names the family with a `family` parameter (a categorical over
//! `tabtune train --model` names) or a fixed `family`; every other parameter, sampled or
//! fixed, is passed to the family as a `--param NAME=VALUE` override would be, so a sweep and
//! `tabtune train` accept exactly the same names and values.

use std::collections::BTreeMap;

use serde_json::Value;
use tabtune_train::{Family, ModelParams};
use tabtune_tune::{Choice, ParamValue};

use crate::error::{PipelineError, Result};

/// The parameter (sampled or fixed) that names the model family.
pub const FAMILY_PARAM: &str = "family";
/// The parameter (sampled or fixed) that sets how many copies of each extra training file
/// (`[[data.extra-train]]`) a trial appends to its training rows (0..=4); without it, each
/// file's configured `repeats`.
pub const EXTRA_REPEATS_PARAM: &str = "extra_repeats";

/// A trial's `extra_repeats` (sampled, else fixed), if any, checked to be in 0..=4.
pub fn extra_repeats(
    params: &BTreeMap<String, ParamValue>,
    fixed: &BTreeMap<String, Value>,
) -> Result<Option<usize>> {
    let text = match (
        params.get(EXTRA_REPEATS_PARAM),
        fixed.get(EXTRA_REPEATS_PARAM),
    ) {
        (Some(v), _) => param_text(v),
        (None, Some(v)) => value_text(v).unwrap_or_else(|| v.to_string()),
        (None, None) => return Ok(None),
    };
    parse_repeats(&text).map(Some)
}

/// `extra_repeats` as text (a `--param` value) checked to be an integer in 0..=4.
pub fn parse_repeats(text: &str) -> Result<usize> {
    let max = tabtune_features::config::MAX_EXTRA_REPEATS;
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|x| x.fract() == 0.0 && (0.0..=max as f64).contains(x))
        .map(|x| x as usize)
        .ok_or_else(|| PipelineError::TrialParam {
            param: EXTRA_REPEATS_PARAM.into(),
            value: text.to_owned(),
            expected: format!("an integer in 0..={max}"),
        })
}

/// `NAME=VALUE` overrides.
pub type Overrides = Vec<(String, String)>;

/// `NAME=VALUE` overrides without `extra_repeats`, and its value when given.
pub fn split_extra_repeats(overrides: &[(String, String)]) -> Result<(Overrides, Option<usize>)> {
    let mut rest = Vec::with_capacity(overrides.len());
    let mut repeats = None;
    for (k, v) in overrides {
        if k == EXTRA_REPEATS_PARAM {
            repeats = Some(parse_repeats(v)?);
        } else {
            rest.push((k.clone(), v.clone()));
        }
    }
    Ok((rest, repeats))
}

fn value_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn param_text(v: &ParamValue) -> String {
    match v {
        ParamValue::Float(x) => format!("{x}"),
        ParamValue::Int(i) => i.to_string(),
        ParamValue::Choice(Choice::Str(s)) => s.clone(),
        ParamValue::Choice(c) => c.to_json().to_string(),
    }
}

/// The family and parameters of a trial: `fixed` first, then the sampled `params` (a sampled
/// value wins over a fixed one of the same name).
pub fn trial_params(
    params: &BTreeMap<String, ParamValue>,
    fixed: &BTreeMap<String, Value>,
) -> Result<(Family, ModelParams)> {
    let family = match params.get(FAMILY_PARAM) {
        Some(ParamValue::Choice(Choice::Str(s))) => s.clone(),
        Some(other) => {
            return Err(PipelineError::TrialParam {
                param: FAMILY_PARAM.into(),
                value: other.to_string(),
                expected: "a model name".into(),
            });
        }
        None => match fixed.get(FAMILY_PARAM) {
            Some(Value::String(s)) => s.clone(),
            Some(other) => {
                return Err(PipelineError::TrialParam {
                    param: format!("fixed {FAMILY_PARAM}"),
                    value: other.to_string(),
                    expected: "a model name".into(),
                });
            }
            None => return Err(PipelineError::NoFamily),
        },
    };
    let family = Family::parse(&family)?;
    let mut overrides: Vec<(String, String)> = Vec::new();
    for (k, v) in fixed {
        if k == FAMILY_PARAM || k == EXTRA_REPEATS_PARAM || params.contains_key(k) {
            continue;
        }
        let text = value_text(v).ok_or_else(|| PipelineError::TrialParam {
            param: format!("fixed {k}"),
            value: v.to_string(),
            expected: "a string, number or bool".into(),
        })?;
        overrides.push((k.clone(), text));
    }
    for (k, v) in params {
        if k != FAMILY_PARAM && k != EXTRA_REPEATS_PARAM {
            overrides.push((k.clone(), param_text(v)));
        }
    }
    let p = family
        .params(&overrides)
        .map_err(|source| PipelineError::FamilyParams {
            family: family.name().to_owned(),
            source,
        })?;
    Ok((family, p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> ParamValue {
        ParamValue::Choice(Choice::Str(v.into()))
    }

    #[test]
    fn sampled_and_fixed_parameters_reach_the_family() {
        let mut params = BTreeMap::new();
        params.insert("family".into(), s("gbdt-depthwise"));
        params.insert("max_depth".into(), ParamValue::Int(4));
        params.insert("learning_rate".into(), ParamValue::Float(0.05));
        let mut fixed = BTreeMap::new();
        fixed.insert("max_depth".into(), Value::from(9));
        fixed.insert("early_stopping_rounds".into(), Value::from(20));
        let (f, p) = trial_params(&params, &fixed).unwrap();
        assert_eq!(f, Family::GbdtDepthwise);
        let ModelParams::Gbdt(g) = p else {
            panic!("gbdt")
        };
        assert_eq!(g.max_depth, 4, "the sampled value wins");
        assert_eq!(g.early_stopping_rounds, 20);
        assert!((g.learning_rate - 0.05).abs() < 1e-12);
    }

    #[test]
    fn a_fixed_family_works_and_bad_ones_are_named() {
        let mut fixed = BTreeMap::new();
        fixed.insert("family".into(), Value::from("random-forest"));
        let (f, _) = trial_params(&BTreeMap::new(), &fixed).unwrap();
        assert_eq!(f, Family::RandomForest);
        let e = trial_params(&BTreeMap::new(), &BTreeMap::new())
            .unwrap_err()
            .to_string();
        assert!(e.contains("names no model"), "{e}");
        let mut params = BTreeMap::new();
        params.insert("family".into(), s("xgboost"));
        let e = trial_params(&params, &BTreeMap::new())
            .unwrap_err()
            .to_string();
        assert!(e.contains("`xgboost`"), "{e}");
        params.insert("family".into(), s("gbdt-leafwise"));
        params.insert("nope".into(), ParamValue::Int(1));
        let e = trial_params(&params, &BTreeMap::new())
            .unwrap_err()
            .to_string();
        assert!(e.contains("gbdt-leafwise") && e.contains("nope"), "{e}");
    }

    #[test]
    fn extra_repeats_is_not_a_model_parameter_and_is_checked() {
        let mut params = BTreeMap::new();
        params.insert("family".into(), s("gbdt-leafwise"));
        params.insert(EXTRA_REPEATS_PARAM.into(), ParamValue::Int(3));
        assert!(trial_params(&params, &BTreeMap::new()).is_ok());
        assert_eq!(extra_repeats(&params, &BTreeMap::new()).unwrap(), Some(3));
        let mut fixed = BTreeMap::new();
        fixed.insert(EXTRA_REPEATS_PARAM.into(), Value::from(2));
        assert_eq!(extra_repeats(&BTreeMap::new(), &fixed).unwrap(), Some(2));
        assert_eq!(
            extra_repeats(&BTreeMap::new(), &BTreeMap::new()).unwrap(),
            None
        );
        for bad in ["5", "-1", "1.5", "many"] {
            let e = parse_repeats(bad).unwrap_err().to_string();
            assert!(e.contains("extra_repeats") && e.contains(bad), "{e}");
        }
        let (rest, r) = split_extra_repeats(&[
            ("extra_repeats".into(), "0".into()),
            ("rounds".into(), "5".into()),
        ])
        .unwrap();
        assert_eq!((rest.len(), r), (1, Some(0)));
    }
}
