//! Units of measure that `[transforms] convert` and the engineered features understand.

/// Length units and their size in metres; mass units and their size in kilograms.
const UNITS: [(&str, Dimension, f64); 8] = [
    ("m", Dimension::Length, 1.0),
    ("cm", Dimension::Length, 0.01),
    ("mm", Dimension::Length, 0.001),
    ("in", Dimension::Length, 0.0254),
    ("ft", Dimension::Length, 0.3048),
    ("kg", Dimension::Mass, 1.0),
    ("g", Dimension::Mass, 0.001),
    ("lb", Dimension::Mass, 0.453_592_37),
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Dimension {
    Length,
    Mass,
}

/// The names of the known units, for error messages.
pub fn known_units() -> String {
    UNITS.iter().map(|u| u.0).collect::<Vec<_>>().join(", ")
}

/// The factor that converts a value in `from` into `to` (`value_to = value_from · factor`), or
/// `None` when either unit is unknown or they measure different things.
pub fn factor(from: &str, to: &str) -> Option<f64> {
    let find = |name: &str| UNITS.iter().find(|u| u.0 == name);
    let (from, to) = (find(from)?, find(to)?);
    (from.1 == to.1).then(|| from.2 / to.2)
}

#[cfg(test)]
mod tests {
    use super::factor;

    #[test]
    fn conversions() {
        assert_eq!(factor("m", "cm"), Some(100.0));
        assert_eq!(factor("cm", "m"), Some(0.01));
        assert_eq!(factor("kg", "kg"), Some(1.0));
        assert!((factor("lb", "kg").expect("known") - 0.453_592_37).abs() < 1e-15);
        assert_eq!(factor("m", "kg"), None);
        assert_eq!(factor("parsec", "m"), None);
    }
}
