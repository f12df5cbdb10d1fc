//! Engineered features (DESIGN.md §3): anthropometric and lifestyle formulas over columns that
//! the config maps to roles (`[features.inputs]`), so nothing here is tied to one dataset.
//!
//! Units: height is read in metres (a schema unit of `cm` is converted first), weight in kg,
//! age in years. Rounding is half away from zero (`f64::round`).

use serde::{Deserialize, Serialize};

use crate::error::{FeaturesError, Result};
use crate::table::Table;

/// Body-mass index in kg/m²: `weight_kg / height_m²`.
pub fn bmi(weight_kg: f64, height_m: f64) -> f64 {
    weight_kg / (height_m * height_m)
}

/// Body-surface area in m², Mosteller's formula: `sqrt(height_cm · weight_kg / 3600)`.
pub fn bsa_mosteller(height_cm: f64, weight_kg: f64) -> f64 {
    (height_cm * weight_kg / 3600.0).sqrt()
}

/// Ideal body weight in kg, Devine's formula: `50` (male) or `45.5` (female)
/// `+ 0.9055 · (height_cm − 152.4)` (2.3 kg per inch over five feet).
pub fn ibw_devine(height_cm: f64, male: bool) -> f64 {
    let base = if male { 50.0 } else { 45.5 };
    base + 0.9055 * (height_cm - 152.4)
}

/// Basal metabolic rate in kcal/day, Mifflin–St Jeor:
/// `10 · weight_kg + 6.25 · height_cm − 5 · age_years + 5` (male) or `− 161` (female).
pub fn bmr_mifflin(weight_kg: f64, height_cm: f64, age_years: f64, male: bool) -> f64 {
    let sex = if male { 5.0 } else { -161.0 };
    10.0 * weight_kg + 6.25 * height_cm - 5.0 * age_years + sex
}

/// Physical activity level (dimensionless): `1.2 + 0.175 · clamp(activity, 0, 3)`, where
/// activity is 0 (none) .. 3 (4-5 days a week); 1.2 is sedentary, 1.725 very active.
pub fn pal(activity: f64) -> f64 {
    1.2 + 0.175 * activity.clamp(0.0, 3.0)
}

/// Total daily energy expenditure in kcal/day: `BMR · PAL`.
pub fn tdee(bmr: f64, pal: f64) -> f64 {
    bmr * pal
}

/// One engineered feature.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Feature {
    /// Body-mass index, kg/m² ([`bmi`]).
    Bmi,
    /// Body-surface area, m² ([`bsa_mosteller`]).
    Bsa,
    /// Ideal body weight, kg ([`ibw_devine`]).
    Ibw,
    /// Weight − ideal body weight, kg.
    DiffIbw,
    /// Basal metabolic rate, kcal/day ([`bmr_mifflin`]).
    Bmr,
    /// Physical activity level ([`pal`]).
    Pal,
    /// Total daily energy expenditure, kcal/day ([`tdee`]).
    Tdee,
    /// Flag: sufficient water consumption, `water ≥ 2`.
    Swc,
    /// Flag: sedentary, `activity ≤ 1`.
    Is,
    /// Flag: the usual number of main meals, `round(meals) = 3`.
    Inmm,
    /// Flag: eats vegetables at every meal, `round(vegetables) = 3`.
    Evemm,
    /// Flag: healthy habits, `high-calorie food = no ∧ vegetables ≥ 2 ∧ smoking = no ∧
    /// activity ≥ 1`.
    Hh,
}

/// The input roles a feature reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Height, numeric, unit `m` or `cm`.
    Height,
    /// Weight, numeric, kg.
    Weight,
    /// Age, numeric, years.
    Age,
    /// Sex, categorical, with `male-level`.
    Sex,
    /// Physical activity level, numeric.
    Activity,
    /// Water intake level, numeric.
    Water,
    /// Number of main meals, numeric.
    Meals,
    /// Vegetable consumption level, numeric.
    Vegetables,
    /// Frequent high-calorie food, categorical yes/no with `yes-level`.
    HighCalorieFood,
    /// Smoking, categorical yes/no with `yes-level`.
    Smoking,
}

impl Role {
    /// The key in `[features.inputs]`.
    pub fn key(self) -> &'static str {
        match self {
            Self::Height => "height",
            Self::Weight => "weight",
            Self::Age => "age",
            Self::Sex => "sex",
            Self::Activity => "activity",
            Self::Water => "water",
            Self::Meals => "meals",
            Self::Vegetables => "vegetables",
            Self::HighCalorieFood => "high-calorie-food",
            Self::Smoking => "smoking",
        }
    }

    /// Whether the role's column is categorical (else numeric).
    pub fn is_categorical(self) -> bool {
        matches!(self, Self::Sex | Self::HighCalorieFood | Self::Smoking)
    }
}

impl Feature {
    /// Every feature, in output order.
    pub const ALL: [Feature; 12] = [
        Self::Bmi,
        Self::Bsa,
        Self::Ibw,
        Self::DiffIbw,
        Self::Bmr,
        Self::Pal,
        Self::Tdee,
        Self::Swc,
        Self::Is,
        Self::Inmm,
        Self::Evemm,
        Self::Hh,
    ];

    /// The output column name (as written in the config).
    pub fn name(self) -> &'static str {
        match self {
            Self::Bmi => "BMI",
            Self::Bsa => "BSA",
            Self::Ibw => "IBW",
            Self::DiffIbw => "DIFF_IBW",
            Self::Bmr => "BMR",
            Self::Pal => "PAL",
            Self::Tdee => "TDEE",
            Self::Swc => "SWC",
            Self::Is => "IS",
            Self::Inmm => "INMM",
            Self::Evemm => "EVEMM",
            Self::Hh => "HH",
        }
    }

    /// Parses a config name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Whether the output is a 0/1 flag (else continuous).
    pub fn is_flag(self) -> bool {
        matches!(
            self,
            Self::Swc | Self::Is | Self::Inmm | Self::Evemm | Self::Hh
        )
    }

    /// The input roles the formula reads.
    pub fn roles(self) -> &'static [Role] {
        match self {
            Self::Bmi | Self::Bsa => &[Role::Height, Role::Weight],
            Self::Ibw => &[Role::Height, Role::Sex],
            Self::DiffIbw => &[Role::Height, Role::Weight, Role::Sex],
            Self::Bmr => &[Role::Height, Role::Weight, Role::Age, Role::Sex],
            Self::Pal | Self::Is => &[Role::Activity],
            Self::Tdee => &[
                Role::Height,
                Role::Weight,
                Role::Age,
                Role::Sex,
                Role::Activity,
            ],
            Self::Swc => &[Role::Water],
            Self::Inmm => &[Role::Meals],
            Self::Evemm => &[Role::Vegetables],
            Self::Hh => &[
                Role::HighCalorieFood,
                Role::Vegetables,
                Role::Smoking,
                Role::Activity,
            ],
        }
    }
}

/// Which columns the roles map to (`[features.inputs]`), resolved and checked against the
/// schema by the config.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[allow(missing_docs)]
pub struct Inputs {
    pub height: Option<String>,
    /// Metres per unit of the height column (1 for `m`, 0.01 for `cm`).
    pub height_to_m: f64,
    pub weight: Option<String>,
    pub age: Option<String>,
    pub sex: Option<String>,
    pub male_level: Option<String>,
    pub activity: Option<String>,
    pub water: Option<String>,
    pub meals: Option<String>,
    pub vegetables: Option<String>,
    pub high_calorie_food: Option<String>,
    pub smoking: Option<String>,
    pub yes_level: Option<String>,
}

impl Inputs {
    /// The column mapped to a role.
    pub fn column(&self, role: Role) -> Option<&str> {
        match role {
            Role::Height => self.height.as_deref(),
            Role::Weight => self.weight.as_deref(),
            Role::Age => self.age.as_deref(),
            Role::Sex => self.sex.as_deref(),
            Role::Activity => self.activity.as_deref(),
            Role::Water => self.water.as_deref(),
            Role::Meals => self.meals.as_deref(),
            Role::Vegetables => self.vegetables.as_deref(),
            Role::HighCalorieFood => self.high_calorie_food.as_deref(),
            Role::Smoking => self.smoking.as_deref(),
        }
    }
}

/// An engineered output column.
#[derive(Clone, Debug, PartialEq)]
pub struct Engineered {
    /// The feature.
    pub feature: Feature,
    /// One value per table row (flags are 0.0 / 1.0).
    pub values: Vec<f64>,
}

/// Reads the columns behind the roles once per table.
struct Columns<'a> {
    table: &'a Table,
    inputs: &'a Inputs,
}

impl<'a> Columns<'a> {
    fn numeric(&self, role: Role) -> Result<&'a [f64]> {
        let name = self.name(role)?;
        self.table.numeric(name).ok_or_else(|| {
            FeaturesError::Shape(format!(
                "{}: engineered features need numeric column `{name}` ({}), which the table lacks",
                self.table.source.display(),
                role.key()
            ))
        })
    }

    /// Per row: whether the categorical column behind `role` equals `level`.
    fn is_level(&self, role: Role, level: Option<&str>) -> Result<Vec<bool>> {
        let name = self.name(role)?;
        let (levels, codes) = self.table.categorical(name).ok_or_else(|| {
            FeaturesError::Shape(format!(
                "{}: engineered features need categorical column `{name}` ({}), which the \
                 table lacks",
                self.table.source.display(),
                role.key()
            ))
        })?;
        let level = level.ok_or_else(|| {
            FeaturesError::Shape(format!(
                "features.inputs: no level given for `{}`",
                role.key()
            ))
        })?;
        let code = levels.iter().position(|l| l == level).map(|p| p as u32);
        Ok(codes.iter().map(|&c| Some(c) == code).collect())
    }

    fn name(&self, role: Role) -> Result<&'a str> {
        self.inputs.column(role).ok_or_else(|| {
            FeaturesError::Shape(format!("features.inputs.{} is not set", role.key()))
        })
    }
}

/// Computes `features` for every row of `table`.
pub fn engineer(table: &Table, features: &[Feature], inputs: &Inputs) -> Result<Vec<Engineered>> {
    let cols = Columns { table, inputs };
    let needs = |role: Role| features.iter().any(|f| f.roles().contains(&role));
    let n = table.n_rows();
    let height_m: Vec<f64> = if needs(Role::Height) {
        cols.numeric(Role::Height)?
            .iter()
            .map(|h| h * inputs.height_to_m)
            .collect()
    } else {
        Vec::new()
    };
    let male = if needs(Role::Sex) {
        cols.is_level(Role::Sex, inputs.male_level.as_deref())?
    } else {
        Vec::new()
    };
    let get = |role: Role| {
        if needs(role) {
            cols.numeric(role)
        } else {
            Ok(&[][..])
        }
    };
    let weight = get(Role::Weight)?;
    let age = get(Role::Age)?;
    let activity = get(Role::Activity)?;
    let water = get(Role::Water)?;
    let meals = get(Role::Meals)?;
    let vegetables = get(Role::Vegetables)?;
    let yes = inputs.yes_level.as_deref();
    let favc = if needs(Role::HighCalorieFood) {
        cols.is_level(Role::HighCalorieFood, yes)?
    } else {
        Vec::new()
    };
    let smoke = if needs(Role::Smoking) {
        cols.is_level(Role::Smoking, yes)?
    } else {
        Vec::new()
    };
    let flag = |b: bool| if b { 1.0 } else { 0.0 };

    let out = features
        .iter()
        .map(|&feature| {
            let values: Vec<f64> = (0..n)
                .map(|i| match feature {
                    Feature::Bmi => bmi(weight[i], height_m[i]),
                    Feature::Bsa => bsa_mosteller(height_m[i] * 100.0, weight[i]),
                    Feature::Ibw => ibw_devine(height_m[i] * 100.0, male[i]),
                    Feature::DiffIbw => weight[i] - ibw_devine(height_m[i] * 100.0, male[i]),
                    Feature::Bmr => bmr_mifflin(weight[i], height_m[i] * 100.0, age[i], male[i]),
                    Feature::Pal => pal(activity[i]),
                    Feature::Tdee => tdee(
                        bmr_mifflin(weight[i], height_m[i] * 100.0, age[i], male[i]),
                        pal(activity[i]),
                    ),
                    Feature::Swc => flag(water[i] >= 2.0),
                    Feature::Is => flag(activity[i] <= 1.0),
                    Feature::Inmm => flag(meals[i].round() == 3.0),
                    Feature::Evemm => flag(vegetables[i].round() == 3.0),
                    Feature::Hh => {
                        flag(!favc[i] && vegetables[i] >= 2.0 && !smoke[i] && activity[i] >= 1.0)
                    }
                })
                .collect();
            Engineered { feature, values }
        })
        .collect();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{Column, ColumnValues};
    use std::path::PathBuf;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-9, "{a} != {b}");
    }

    // Hand-computed values for a 1.80 m, 80 kg, 30-year-old man and a 1.60 m, 60 kg,
    // 25-year-old woman.
    #[test]
    fn bmi_by_hand() {
        close(bmi(80.0, 1.8), 80.0 / 3.24); // 24.691358...
        close(bmi(60.0, 1.6), 23.4375);
    }

    #[test]
    fn bsa_by_hand() {
        close(bsa_mosteller(180.0, 80.0), 2.0); // sqrt(14400 / 3600) = sqrt(4)
        close(bsa_mosteller(160.0, 60.0), (9600.0_f64 / 3600.0).sqrt()); // 1.632993...
    }

    #[test]
    fn ibw_by_hand() {
        close(ibw_devine(180.0, true), 50.0 + 0.9055 * 27.6); // 74.9918
        close(ibw_devine(180.0, true), 74.9918);
        close(ibw_devine(160.0, false), 45.5 + 0.9055 * 7.6); // 52.3818
        close(ibw_devine(160.0, false), 52.3818);
    }

    #[test]
    fn bmr_pal_tdee_by_hand() {
        close(
            bmr_mifflin(80.0, 180.0, 30.0, true),
            800.0 + 1125.0 - 150.0 + 5.0,
        ); // 1780
        close(
            bmr_mifflin(60.0, 160.0, 25.0, false),
            600.0 + 1000.0 - 125.0 - 161.0,
        ); // 1314
        close(pal(0.0), 1.2);
        close(pal(2.0), 1.55);
        close(pal(7.0), 1.725); // clamped to 3
        close(pal(-1.0), 1.2); // clamped to 0
        close(tdee(1780.0, 1.55), 2759.0);
    }

    fn two_people() -> (Table, Inputs) {
        let cat = |levels: &[&str], codes: Vec<u32>| ColumnValues::Categorical {
            levels: levels.iter().map(|s| (*s).to_owned()).collect(),
            codes,
        };
        let table = Table {
            source: PathBuf::from("people.csv"),
            columns: vec![
                Column {
                    name: "sex".into(),
                    values: cat(&["F", "M"], vec![1, 0]),
                },
                Column {
                    name: "age".into(),
                    values: ColumnValues::Numeric(vec![30.0, 25.0]),
                },
                Column {
                    name: "h".into(),
                    values: ColumnValues::Numeric(vec![180.0, 160.0]),
                },
                Column {
                    name: "w".into(),
                    values: ColumnValues::Numeric(vec![80.0, 60.0]),
                },
                Column {
                    name: "faf".into(),
                    values: ColumnValues::Numeric(vec![2.0, 0.6]),
                },
                Column {
                    name: "ch2o".into(),
                    values: ColumnValues::Numeric(vec![2.0, 1.9]),
                },
                Column {
                    name: "ncp".into(),
                    values: ColumnValues::Numeric(vec![2.5, 3.4]),
                },
                Column {
                    name: "fcvc".into(),
                    values: ColumnValues::Numeric(vec![2.0, 2.49]),
                },
                Column {
                    name: "favc".into(),
                    values: cat(&["no", "yes"], vec![0, 1]),
                },
                Column {
                    name: "smoke".into(),
                    values: cat(&["no", "yes"], vec![0, 0]),
                },
            ],
            ids: None,
            target: None,
            rows: vec![2, 3],
            train_only: 0,
        };
        let inputs = Inputs {
            height: Some("h".into()),
            height_to_m: 0.01,
            weight: Some("w".into()),
            age: Some("age".into()),
            sex: Some("sex".into()),
            male_level: Some("M".into()),
            activity: Some("faf".into()),
            water: Some("ch2o".into()),
            meals: Some("ncp".into()),
            vegetables: Some("fcvc".into()),
            high_calorie_food: Some("favc".into()),
            smoking: Some("smoke".into()),
            yes_level: Some("yes".into()),
        };
        (table, inputs)
    }

    #[test]
    fn engineer_computes_every_feature_from_mapped_columns() {
        let (table, inputs) = two_people();
        let out = engineer(&table, &Feature::ALL, &inputs).expect("valid inputs");
        let get = |f: Feature| {
            out.iter()
                .find(|e| e.feature == f)
                .expect("present")
                .values
                .clone()
        };
        close(get(Feature::Bmi)[0], 80.0 / 3.24);
        close(get(Feature::Bsa)[0], 2.0);
        close(get(Feature::Ibw)[1], 52.3818);
        close(get(Feature::DiffIbw)[0], 80.0 - 74.9918);
        close(get(Feature::Bmr)[0], 1780.0);
        close(get(Feature::Bmr)[1], 1314.0);
        close(get(Feature::Pal)[1], 1.2 + 0.175 * 0.6);
        close(get(Feature::Tdee)[0], 2759.0);
        assert_eq!(get(Feature::Swc), vec![1.0, 0.0]);
        assert_eq!(get(Feature::Is), vec![0.0, 1.0]);
        assert_eq!(get(Feature::Inmm), vec![1.0, 1.0]); // round(2.5) = 3 (half away from 0)
        assert_eq!(get(Feature::Evemm), vec![0.0, 0.0]);
        // Row 0: no high-calorie food, vegetables 2, no smoking, activity 2 -> healthy.
        // Row 1: high-calorie food -> not healthy.
        assert_eq!(get(Feature::Hh), vec![1.0, 0.0]);
    }

    #[test]
    fn a_missing_role_is_named() {
        let (table, mut inputs) = two_people();
        inputs.age = None;
        let err = engineer(&table, &[Feature::Bmr], &inputs).expect_err("age missing");
        assert!(err.to_string().contains("features.inputs.age"), "{err}");
    }

    #[test]
    fn names_round_trip() {
        for f in Feature::ALL {
            assert_eq!(Feature::parse(f.name()), Some(f));
        }
        assert_eq!(Feature::parse("bmi"), None);
    }
}
