//! Standard scaling.

use serde::{Deserialize, Serialize};

/// Unfitted standard scaler: `(x − mean) / std` with the training rows' mean and population
/// standard deviation (as scikit-learn's `StandardScaler`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StandardScaler;

/// Fitted standard scaler.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StandardScalerFitted {
    /// Training mean.
    pub mean: f64,
    /// Training population standard deviation; 1 when the column is constant, so that a
    /// constant column maps to 0 instead of NaN.
    pub std: f64,
}

impl StandardScaler {
    /// Fits mean and standard deviation (two passes, in row order: deterministic).
    pub fn fit(self, values: &[f64]) -> StandardScalerFitted {
        let n = values.len().max(1) as f64;
        let mean = values.iter().sum::<f64>() / n;
        let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
        let std = var.sqrt();
        StandardScalerFitted {
            mean,
            std: if std > 0.0 && std.is_finite() {
                std
            } else {
                1.0
            },
        }
    }
}

impl StandardScalerFitted {
    /// Scales in place.
    pub fn apply(&self, values: &mut [f64]) {
        for v in values {
            *v = (*v - self.mean) / self.std;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaling_by_hand() {
        let fitted = StandardScaler.fit(&[1.0, 2.0, 3.0, 4.0]);
        assert!((fitted.mean - 2.5).abs() < 1e-15);
        assert!((fitted.std - 1.25_f64.sqrt()).abs() < 1e-15);
        let mut v = vec![2.5, 5.0];
        fitted.apply(&mut v);
        assert!(v[0].abs() < 1e-15);
        assert!((v[1] - 2.5 / 1.25_f64.sqrt()).abs() < 1e-12);
    }

    #[test]
    fn constant_columns_map_to_zero() {
        let fitted = StandardScaler.fit(&[3.0, 3.0]);
        assert!((fitted.std - 1.0).abs() < f64::EPSILON);
        let mut v = vec![3.0];
        fitted.apply(&mut v);
        assert!(v[0].abs() < f64::EPSILON);
    }
}
