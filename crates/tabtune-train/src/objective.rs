//! What the tuner's objectives need from the trainer: a trial's parameters turned into a model
//! family and its parameters, and out-of-fold predictions kept per trial for the decision
//! layer.
//!
//! A search space names the family with a `family` parameter (a categorical over
//! `tabtune train --model` names) or a fixed `family`; every other parameter, sampled or
//! fixed, is passed to the family as a `--param NAME=VALUE` override would be, so a sweep and
//! `tabtune train` accept exactly the same names and values.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use ndarray::Array2;
use serde_json::Value;
use tabtune_features::io::write_bytes_atomic;
use tabtune_tune::{Choice, ParamValue};

use crate::error::{Result, TrainError};
use crate::family::{Family, ModelParams};

/// The parameter (sampled or fixed) that names the model family.
pub const FAMILY_PARAM: &str = "family";

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
            return Err(TrainError::Invalid(format!(
                "parameter `{FAMILY_PARAM}` must be a model name, got {other}"
            )));
        }
        None => match fixed.get(FAMILY_PARAM) {
            Some(Value::String(s)) => s.clone(),
            Some(other) => {
                return Err(TrainError::Invalid(format!(
                    "fixed `{FAMILY_PARAM}` must be a model name, got {other}"
                )));
            }
            None => {
                return Err(TrainError::Invalid(format!(
                    "the search space names no model: add a `{FAMILY_PARAM}` parameter or a \
                     fixed `{FAMILY_PARAM}`"
                )));
            }
        },
    };
    let family = Family::parse(&family)?;
    let mut overrides: Vec<(String, String)> = Vec::new();
    for (k, v) in fixed {
        if k == FAMILY_PARAM || params.contains_key(k) {
            continue;
        }
        let text = value_text(v).ok_or_else(|| {
            TrainError::Invalid(format!(
                "fixed parameter `{k}` must be a string, number or bool, got {v}"
            ))
        })?;
        overrides.push((k.clone(), text));
    }
    for (k, v) in params {
        if k != FAMILY_PARAM {
            overrides.push((k.clone(), param_text(v)));
        }
    }
    let p = family
        .params(&overrides)
        .map_err(|e| TrainError::Invalid(format!("model `{}`: {e}", family.name())))?;
    Ok((family, p))
}

const OOF_MAGIC: &[u8; 8] = b"TTOOF001";

/// Out-of-fold probabilities of the trials of one study, one file per trial number
/// (`trial-<n>.oof`: magic, rows and columns as u64 LE, then f32 LE values row-major), so the
/// decision layer can blend the top trials after the sweep without retraining them.
#[derive(Clone, Debug)]
pub struct OofStore {
    dir: PathBuf,
}

impl OofStore {
    /// A store in `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, number: u64) -> PathBuf {
        self.dir.join(format!("trial-{number}.oof"))
    }

    /// Writes trial `number`'s OOF matrix (atomically: a temporary file renamed into place).
    pub fn put(&self, number: u64, oof: &Array2<f64>) -> Result<()> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| TrainError::Invalid(format!("{}: {e}", self.dir.display())))?;
        let (r, c) = oof.dim();
        let mut buf = Vec::with_capacity(24 + r * c * 4);
        buf.extend_from_slice(OOF_MAGIC);
        buf.extend_from_slice(&(r as u64).to_le_bytes());
        buf.extend_from_slice(&(c as u64).to_le_bytes());
        for v in oof {
            buf.extend_from_slice(&(*v as f32).to_le_bytes());
        }
        write_bytes_atomic(&self.path(number), &buf)?;
        Ok(())
    }

    /// Reads trial `number`'s OOF matrix; `None` when the trial has none.
    pub fn get(&self, number: u64) -> Result<Option<Array2<f64>>> {
        let path = self.path(number);
        let bad = |why: &str| TrainError::Invalid(format!("{}: {why}", path.display()));
        let mut f = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(bad(&e.to_string())),
        };
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes).map_err(|e| bad(&e.to_string()))?;
        if bytes.len() < 24 || &bytes[..8] != OOF_MAGIC {
            return Err(bad("not an out-of-fold prediction file (bad magic)"));
        }
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&bytes[i..i + 8]);
            u64::from_le_bytes(w) as usize
        };
        let (r, c) = (word(8), word(16));
        let want = r
            .checked_mul(c)
            .and_then(|n| n.checked_mul(4))
            .map(|n| n + 24);
        if want != Some(bytes.len()) {
            return Err(bad(&format!(
                "{r}x{c} values announced but the file has {} bytes",
                bytes.len()
            )));
        }
        let values: Vec<f64> = bytes[24..]
            .chunks_exact(4)
            .map(|b| f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
            .collect();
        Array2::from_shape_vec((r, c), values)
            .map(Some)
            .map_err(|e| bad(&e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

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
    fn oof_matrices_round_trip_and_damage_is_reported() {
        let dir = std::env::temp_dir().join(format!("tabtune-oof-{}", std::process::id()));
        let store = OofStore::new(&dir);
        let m = array![[0.25, 0.75], [0.5, 0.5], [1.0, 0.0]];
        store.put(3, &m).unwrap();
        assert_eq!(store.get(3).unwrap().unwrap(), m);
        assert!(store.get(4).unwrap().is_none());
        std::fs::write(
            dir.join("trial-5.oof"),
            b"TTOOF001\x09\0\0\0\0\0\0\0\x02\0\0\0\0\0\0\0",
        )
        .unwrap();
        let e = store.get(5).unwrap_err().to_string();
        assert!(e.contains("trial-5.oof") && e.contains("9x2"), "{e}");
        std::fs::write(dir.join("trial-6.oof"), b"garbage").unwrap();
        assert!(store.get(6).unwrap_err().to_string().contains("bad magic"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
