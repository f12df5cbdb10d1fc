//! Categorical encodings: one-hot with an explicit unknown slot, ordinal, and the target's label
//! encoding.

use serde::{Deserialize, Serialize};

/// Name suffix of the one-hot slot for levels never seen in training: `<column>=<unknown>`.
pub const UNKNOWN_SLOT: &str = "<unknown>";

/// Unfitted one-hot encoding.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OneHot;

/// Fitted one-hot encoding: one output per level seen in training (schema order) plus the
/// unknown slot, which is 1 for any level that training never saw (for example a level that
/// only occurs in the test file).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OneHotFitted {
    /// The levels seen in training, in schema order.
    pub seen: Vec<String>,
}

impl OneHot {
    /// Keeps the levels (of `levels`) that occur in `codes`.
    pub fn fit(self, levels: &[String], codes: &[u32]) -> OneHotFitted {
        OneHotFitted {
            seen: seen_levels(levels, codes),
        }
    }
}

fn seen_levels(levels: &[String], codes: &[u32]) -> Vec<String> {
    let mut present = vec![false; levels.len()];
    for &c in codes {
        present[c as usize] = true;
    }
    levels
        .iter()
        .zip(present)
        .filter(|(_, p)| *p)
        .map(|(l, _)| l.clone())
        .collect()
}

/// For every level of `levels`, its position among `seen`.
fn positions(seen: &[String], levels: &[String]) -> Vec<Option<usize>> {
    levels
        .iter()
        .map(|l| seen.iter().position(|s| s == l))
        .collect()
}

impl OneHotFitted {
    /// Output column names: `<column>=<level>` per seen level, then `<column>=<unknown>`.
    pub fn names(&self, column: &str) -> Vec<String> {
        let mut names: Vec<String> = self.seen.iter().map(|l| format!("{column}={l}")).collect();
        names.push(format!("{column}={UNKNOWN_SLOT}"));
        names
    }

    /// Per row, the output column that is 1: the level's position among `seen`, or
    /// `seen.len()` (the unknown slot).
    pub fn slots(&self, levels: &[String], codes: &[u32]) -> Vec<usize> {
        let slot = positions(&self.seen, levels);
        codes
            .iter()
            .map(|&c| slot[c as usize].unwrap_or(self.seen.len()))
            .collect()
    }

    /// The output columns (`seen.len() + 1` of them), each with one value per row.
    pub fn apply(&self, levels: &[String], codes: &[u32]) -> Vec<Vec<f64>> {
        let mut out = vec![vec![0.0; codes.len()]; self.seen.len() + 1];
        for (row, k) in self.slots(levels, codes).into_iter().enumerate() {
            out[k][row] = 1.0;
        }
        out
    }
}

/// Unfitted ordinal encoding.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ordinal;

/// Fitted ordinal encoding: the index of the level among those seen in training, −1 for a level
/// training never saw.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrdinalFitted {
    /// The levels seen in training, in schema order.
    pub seen: Vec<String>,
}

impl Ordinal {
    /// Keeps the levels (of `levels`) that occur in `codes`.
    pub fn fit(self, levels: &[String], codes: &[u32]) -> OrdinalFitted {
        OrdinalFitted {
            seen: seen_levels(levels, codes),
        }
    }
}

impl OrdinalFitted {
    /// One value per row.
    pub fn apply(&self, levels: &[String], codes: &[u32]) -> Vec<f64> {
        let slot = positions(&self.seen, levels);
        codes
            .iter()
            .map(|&c| slot[c as usize].map_or(-1.0, |p| p as f64))
            .collect()
    }
}

/// The target's label encoding: class name ↔ index `0..n_classes`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelEncoder {
    /// Class names; the index is the label.
    pub classes: Vec<String>,
}

impl LabelEncoder {
    /// The encoder for a fixed class list (the schema's target levels).
    pub fn new(classes: Vec<String>) -> Self {
        Self { classes }
    }

    /// The label of a class name.
    pub fn encode(&self, class: &str) -> Option<u32> {
        self.classes
            .iter()
            .position(|c| c == class)
            .map(|p| p as u32)
    }

    /// The class name of a label.
    pub fn decode(&self, label: u32) -> Option<&str> {
        self.classes.get(label as usize).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn levels() -> Vec<String> {
        ["no", "Sometimes", "Frequently", "Always"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect()
    }

    #[test]
    fn one_hot_maps_levels_unseen_in_training_to_the_unknown_slot() {
        let fitted = OneHot.fit(&levels(), &[0, 1, 1, 2]);
        assert_eq!(fitted.seen, vec!["no", "Sometimes", "Frequently"]);
        assert_eq!(
            fitted.names("CALC"),
            vec![
                "CALC=no",
                "CALC=Sometimes",
                "CALC=Frequently",
                "CALC=<unknown>"
            ]
        );
        // "Always" (code 3) never occurred in training.
        let out = fitted.apply(&levels(), &[3, 0, 2]);
        assert_eq!(
            out,
            vec![
                vec![0.0, 1.0, 0.0],
                vec![0.0; 3],
                vec![0.0, 0.0, 1.0],
                vec![1.0, 0.0, 0.0]
            ]
        );
    }

    #[test]
    fn ordinal_uses_minus_one_for_unseen() {
        let fitted = Ordinal.fit(&levels(), &[0, 2]);
        assert_eq!(fitted.apply(&levels(), &[2, 1, 0]), vec![1.0, -1.0, 0.0]);
    }

    #[test]
    fn label_encoder_round_trips() {
        let enc = LabelEncoder::new(vec!["a".into(), "b".into()]);
        assert_eq!(enc.encode("b"), Some(1));
        assert_eq!(enc.decode(1), Some("b"));
        assert_eq!(enc.encode("c"), None);
        assert_eq!(enc.decode(2), None);
    }
}
