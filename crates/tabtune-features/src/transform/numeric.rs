//! Stateless numeric transforms.

use serde::{Deserialize, Serialize};

/// Unit conversion: `x · factor` (for example metres to centimetres, factor 100).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Convert {
    /// Multiplier from the schema unit to the target unit.
    pub factor: f64,
    /// The target unit.
    pub to: String,
}

impl Convert {
    /// Applies the conversion in place.
    pub fn apply(&self, values: &mut [f64]) {
        for v in values {
            *v *= self.factor;
        }
    }
}

/// Rounds to the nearest whole level (half away from zero) and clamps into `[low, high]`:
/// ordinal answers stored as floats by synthetic data generators.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoundToLevels {
    /// Lowest level.
    pub low: f64,
    /// Highest level.
    pub high: f64,
}

impl RoundToLevels {
    /// Applies the rounding in place.
    pub fn apply(&self, values: &mut [f64]) {
        for v in values {
            *v = v.round().clamp(self.low, self.high);
        }
    }
}

/// `ln(1 + x)`, for right-skewed non-negative values. Defined for `x > -1`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Log1p;

impl Log1p {
    /// Applies `ln(1 + x)` in place; returns the index of the first value `≤ -1` as an error.
    pub fn apply(self, values: &mut [f64]) -> Result<(), usize> {
        if let Some(bad) = values.iter().position(|&v| v <= -1.0) {
            return Err(bad);
        }
        for v in values {
            *v = v.ln_1p();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn convert_metres_to_centimetres() {
        let mut v = vec![1.75, 1.6];
        Convert {
            factor: 100.0,
            to: "cm".into(),
        }
        .apply(&mut v);
        assert_eq!(v, vec![175.0, 160.0]);
    }

    #[test]
    fn round_to_levels_rounds_half_away_and_clamps() {
        let mut v = vec![2.49, 2.5, 0.2, 3.7, 1.0];
        RoundToLevels {
            low: 1.0,
            high: 3.0,
        }
        .apply(&mut v);
        assert_eq!(v, vec![2.0, 3.0, 1.0, 3.0, 1.0]);
    }

    #[test]
    fn log1p_by_hand_and_domain() {
        let mut v = vec![0.0, std::f64::consts::E - 1.0];
        Log1p.apply(&mut v).expect("in domain");
        assert!(v[0].abs() < 1e-15 && (v[1] - 1.0).abs() < 1e-15);
        let mut bad = vec![0.5, -1.0];
        assert_eq!(Log1p.apply(&mut bad), Err(1));
        assert_eq!(bad, vec![0.5, -1.0], "nothing is changed on error");
    }
}
