//! The fitted preprocessor as a subgraph: raw record columns in (numbers as double, categorical
//! columns as strings, each `[N, 1]`), the model's feature matrix out (`[N, n_features]`
//! float), computed as `Preprocessor::transform` computes it.
//!
//! Numbers: tabtune reads them as f64, computes every step in f64 and rounds the finished
//! feature to f32 once; the graph does the same (double ops, one Cast to float at the end), so
//! the features are the same f32 values and split thresholds compare the same way. The order of
//! the arithmetic follows the Rust code operation by operation.

use std::collections::HashMap;

use tabtune_features::engineer::{Feature, Role};
use tabtune_features::transform::{QuantileBinsFitted, RoundToLevels, StandardScalerFitted};
use tabtune_features::{CategoricalStep, ColumnKind, NumericStep, Preprocessor};

use crate::error::{OnnxError, Result};
use crate::graph::{Builder, ML};
use crate::proto::{Attr, DataType, Dim, ValueInfo};

/// The batch dimension's name in every input and output.
pub(crate) const BATCH: &str = "N";

/// A graph input: a raw record column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputColumn {
    /// The column (and input) name.
    pub name: String,
    /// Whether it is categorical (a string input) rather than numeric (a double input).
    pub categorical: bool,
}

/// The graph's raw inputs: `column -> (graph value, categorical)`.
pub(crate) type RawInputs = HashMap<String, (String, bool)>;

/// The graph inputs of `pre` (the schema's feature columns, in schema order) and the
/// subgraph computing its output features; returns the inputs, the raw input values (for
/// [`features`] of other preprocessors over the same columns) and the `[N, n_features]`
/// float feature matrix.
pub(crate) fn build(
    g: &mut Builder,
    pre: &Preprocessor,
) -> Result<(Vec<InputColumn>, RawInputs, String)> {
    let mut columns = Vec::new();
    let mut raw = HashMap::new();
    for spec in pre.schema.feature_columns() {
        let categorical = matches!(spec.kind, ColumnKind::Categorical { .. });
        let name = g.input(ValueInfo {
            name: spec.name.clone(),
            elem_type: if categorical {
                DataType::String
            } else {
                DataType::Double
            },
            shape: vec![Dim::Named(BATCH.into()), Dim::Fixed(1)],
            doc: spec.expectation(),
        });
        raw.insert(spec.name.clone(), (name, categorical));
        columns.push(InputColumn {
            name: spec.name.clone(),
            categorical,
        });
    }
    let features = features(g, &raw, pre)?;
    Ok((columns, raw, features))
}

/// The subgraph computing `pre`'s output features (`[N, n_features]` float) from the raw
/// inputs `raw`.
pub(crate) fn features(g: &mut Builder, raw: &RawInputs, pre: &Preprocessor) -> Result<String> {
    if let Some(spec) = pre
        .schema
        .feature_columns()
        .find(|c| !raw.contains_key(&c.name))
    {
        return Err(OnnxError::step(
            "input",
            format!("column `{}` is not an input of the graph", spec.name),
        ));
    }
    let mut p = Pre { g, raw };
    let mut outputs: Vec<String> = Vec::new();
    let mut bins = Vec::new();
    for step in &pre.numeric {
        let (value, binned) = p.numeric(step)?;
        outputs.push(value);
        bins.extend(binned);
    }
    let mut e = Engineer {
        pre,
        cache: HashMap::new(),
    };
    for step in &pre.engineered {
        let what = format!("engineered feature {}", step.feature.name());
        let mut v = e.feature(&mut p, step.feature, &what)?;
        if let Some(s) = &step.scale {
            v = p.scale(&v, s, &what)?;
        }
        outputs.push(v);
    }
    outputs.extend(bins);
    for step in &pre.categorical {
        outputs.push(p.categorical(step)?);
    }
    if outputs.is_empty() {
        return Err(OnnxError::step(
            "output",
            "the preprocessor has no output features",
        ));
    }
    let all = p.g.concat(&outputs, 1, "preprocessed");
    let width: usize = pre
        .categorical
        .iter()
        .map(|c| match c {
            CategoricalStep::OneHot { fitted, .. } => fitted.seen.len() + 1,
            CategoricalStep::Ordinal { .. } => 1,
        })
        .sum::<usize>()
        + outputs.len()
        - pre.categorical.len();
    if width != pre.output.len() {
        return Err(OnnxError::step(
            "output",
            format!(
                "the steps make {width} features but the preprocessor lists {} output names",
                pre.output.len()
            ),
        ));
    }
    let kept = match &pre.keep {
        Some(keep) => {
            let mut indices = Vec::with_capacity(keep.len());
            for name in keep {
                let Some(i) = pre.output.iter().position(|o| o == name) else {
                    return Err(OnnxError::step(
                        "feature subset",
                        format!("`{name}` is not an output of the preprocessor"),
                    ));
                };
                indices.push(i as i64);
            }
            p.g.columns(&all, &indices, "kept")
        }
        None => all,
    };
    Ok(p.g.cast(&kept, DataType::Float, "features"))
}

/// The subgraph builder with the raw inputs at hand.
struct Pre<'a, 'g> {
    g: &'g mut Builder,
    raw: &'a HashMap<String, (String, bool)>,
}

impl Pre<'_, '_> {
    /// The numeric input `column`, or an error naming `what`.
    fn numeric_input(&self, column: &str, what: &str) -> Result<String> {
        match self.raw.get(column) {
            Some((name, false)) => Ok(name.clone()),
            Some((_, true)) => Err(OnnxError::step(
                what,
                format!("column `{column}` is categorical in the schema, expected numeric"),
            )),
            None => Err(OnnxError::step(
                what,
                format!("column `{column}` is not a feature column of the schema"),
            )),
        }
    }

    /// The categorical (string) input `column`, or an error naming `what`.
    fn categorical_input(&self, column: &str, what: &str) -> Result<String> {
        match self.raw.get(column) {
            Some((name, true)) => Ok(name.clone()),
            Some((_, false)) => Err(OnnxError::step(
                what,
                format!("column `{column}` is numeric in the schema, expected categorical"),
            )),
            None => Err(OnnxError::step(
                what,
                format!("column `{column}` is not a feature column of the schema"),
            )),
        }
    }

    /// One numeric column: conversion, rounding, (bins), log1p, scaling. Returns the value
    /// and its bin column, if any.
    fn numeric(&mut self, step: &NumericStep) -> Result<(String, Option<String>)> {
        let what = format!("numeric column {}", step.column);
        let mut v = self.numeric_input(&step.column, &what)?;
        let hint = step.column.clone();
        if let Some(c) = &step.convert {
            finite(c.factor, &what, "conversion factor")?;
            let f = self.g.f64(c.factor);
            v = self.g.mul(&v, &f, &format!("{hint}.{}", c.to));
        }
        if let Some(r) = &step.round {
            v = self.round_to_levels(&v, r, &what, &hint)?;
        }
        let binned = match &step.bins {
            Some(b) => Some(self.bins(&v, b, &what, &format!("{}_bin", step.column))?),
            None => None,
        };
        if step.log1p {
            // ONNX has no log1p: ln(1 + x), which differs from log1p by about an ulp of a
            // double; the feature is rounded to f32 afterwards.
            let one = self.g.f64(1.0);
            let shifted = self.g.add(&v, &one, &format!("{hint}.plus1"));
            v = self
                .g
                .unary("Log", &shifted, &format!("log1p_{}", step.column));
        }
        if let Some(s) = &step.scale {
            v = self.scale(&v, s, &what)?;
        }
        Ok((v, binned))
    }

    /// `(x − mean) / std`.
    fn scale(&mut self, v: &str, s: &StandardScalerFitted, what: &str) -> Result<String> {
        finite(s.mean, what, "scaler mean")?;
        finite(s.std, what, "scaler standard deviation")?;
        let mean = self.g.f64(s.mean);
        let std = self.g.f64(s.std);
        let centered = self.g.sub(v, &mean, "centered");
        Ok(self.g.div(&centered, &std, "scaled"))
    }

    /// Rust's `f64::round` (half away from zero; ONNX `Round` rounds half to even):
    /// `floor(x) + 1` when the fraction `x − floor(x)` (exact in binary floating point) is
    /// ≥ 0.5 for x ≥ 0, or > 0.5 for x < 0; NaN stays NaN.
    fn round_half_away(&mut self, v: &str, hint: &str) -> String {
        let floor = self.g.unary("Floor", v, &format!("{hint}.floor"));
        let fraction = self.g.sub(v, &floor, &format!("{hint}.fraction"));
        let zero = self.g.f64(0.0);
        let half = self.g.f64(0.5);
        let non_negative = self.g.binary("GreaterOrEqual", v, &zero, "non_negative");
        let up_positive = self
            .g
            .binary("GreaterOrEqual", &fraction, &half, "half_or_more");
        let up_negative = self.g.binary("Greater", &fraction, &half, "over_half");
        // (x ≥ 0 ∧ fraction ≥ ½) ∨ (¬(x ≥ 0) ∧ fraction > ½); onnxruntime has no bool Where.
        let negative = self.g.unary("Not", &non_negative, "negative");
        let a = self
            .g
            .binary("And", &non_negative, &up_positive, "round_up");
        let b = self.g.binary("And", &negative, &up_negative, "round_up");
        let up = self.g.binary("Or", &a, &b, "round_up");
        let up = self.g.cast(&up, DataType::Double, "round_up");
        self.g.add(&floor, &up, &format!("{hint}.rounded"))
    }

    /// `round(x).clamp(low, high)`, NaN staying NaN (as `f64::clamp`).
    fn round_to_levels(
        &mut self,
        v: &str,
        r: &RoundToLevels,
        what: &str,
        hint: &str,
    ) -> Result<String> {
        if r.low.is_nan() || r.high.is_nan() || r.low > r.high {
            return Err(OnnxError::step(
                what,
                format!(
                    "rounding levels [{}, {}] are not an interval",
                    r.low, r.high
                ),
            ));
        }
        let rounded = self.round_half_away(v, hint);
        Ok(self.clamp(&rounded, r.low, r.high, hint))
    }

    /// `x.clamp(low, high)` with `f64::clamp`'s NaN (NaN in, NaN out); infinite bounds are
    /// no bounds.
    fn clamp(&mut self, v: &str, low: f64, high: f64, hint: &str) -> String {
        let mut v = v.to_owned();
        if high < f64::INFINITY {
            let h = self.g.f64(high);
            let over = self.g.binary("Greater", &v, &h, "over");
            v = self.g.where_(&over, &h, &v, &format!("{hint}.clamped"));
        }
        if low > f64::NEG_INFINITY {
            let l = self.g.f64(low);
            let under = self.g.binary("Less", &v, &l, "under");
            v = self.g.where_(&under, &l, &v, &format!("{hint}.clamped"));
        }
        v
    }

    /// The bin index: the number of inner edges strictly below the value (NaN: 0).
    fn bins(&mut self, v: &str, b: &QuantileBinsFitted, what: &str, hint: &str) -> Result<String> {
        if b.edges.iter().any(|e| e.is_nan()) {
            return Err(OnnxError::step(
                what,
                format!("quantile bin edges {:?} hold NaN", b.edges),
            ));
        }
        if b.edges.is_empty() {
            // One bin: 0 for every value (NaN too: NaN < −∞ is false).
            let lowest = self.g.f64(f64::NEG_INFINITY);
            let below = self.g.binary("Less", v, &lowest, "below");
            return Ok(self.g.cast(&below, DataType::Double, hint));
        }
        let edges = self
            .g
            .f64_tensor("bin_edges", &[1, b.edges.len()], b.edges.clone());
        // [1, E] < [N, 1] -> [N, E]
        let below = self.g.binary("Less", &edges, v, "edges_below");
        let below = self.g.cast(&below, DataType::Double, "edges_below");
        Ok(self.g.reduce_sum(&below, &[1], true, hint))
    }

    /// A categorical column's encoding: one-hot with the unknown slot, or ordinal (−1 for
    /// levels training never saw). Strings training never saw (levels of the schema that were
    /// absent, and anything else) take the unknown slot.
    fn categorical(&mut self, step: &CategoricalStep) -> Result<String> {
        match step {
            CategoricalStep::OneHot { column, fitted } => {
                let what = format!("one-hot column {column}");
                let input = self.categorical_input(column, &what)?;
                let n = fitted.seen.len();
                let (keys, values) = positions(&fitted.seen);
                let slot = self.g.node_in(
                    ML,
                    "LabelEncoder",
                    &[&input],
                    vec![
                        ("keys_strings", Attr::Strings(keys)),
                        ("values_int64s", Attr::Ints(values)),
                        ("default_int64", Attr::Int(n as i64)),
                    ],
                    &format!("{column}.slot"),
                );
                let slot = self.g.reshape(&slot, &[-1], &format!("{column}.slot"));
                let mut identity = vec![0.0; (n + 1) * (n + 1)];
                for i in 0..=n {
                    identity[i * (n + 1) + i] = 1.0;
                }
                let table =
                    self.g
                        .f64_tensor(&format!("{column}.one_hot"), &[n + 1, n + 1], identity);
                Ok(self.g.node(
                    "Gather",
                    &[&table, &slot],
                    vec![("axis", Attr::Int(0))],
                    &format!("{column}.one_hot"),
                ))
            }
            CategoricalStep::Ordinal { column, fitted } => {
                let what = format!("ordinal column {column}");
                let input = self.categorical_input(column, &what)?;
                let (keys, values) = positions(&fitted.seen);
                let code = self.g.node_in(
                    ML,
                    "LabelEncoder",
                    &[&input],
                    vec![
                        ("keys_strings", Attr::Strings(keys)),
                        ("values_int64s", Attr::Ints(values)),
                        ("default_int64", Attr::Int(-1)),
                    ],
                    &format!("{column}.code"),
                );
                Ok(self
                    .g
                    .cast(&code, DataType::Double, &format!("{column}.code")))
            }
        }
    }
}

/// Each distinct level with its position among `seen` (the first one for a repeated level, as
/// `Iterator::position` finds it).
fn positions(seen: &[String]) -> (Vec<String>, Vec<i64>) {
    let mut keys = Vec::new();
    let mut values = Vec::new();
    for (i, level) in seen.iter().enumerate() {
        if !keys.contains(level) {
            keys.push(level.clone());
            values.push(i as i64);
        }
    }
    (keys, values)
}

fn finite(v: f64, what: &str, name: &str) -> Result<()> {
    if v.is_finite() {
        Ok(())
    } else {
        Err(OnnxError::step(
            what,
            format!("{name} is {v}, expected a finite number"),
        ))
    }
}

/// The engineered features, with the role columns they share computed once.
struct Engineer<'p> {
    pre: &'p Preprocessor,
    cache: HashMap<&'static str, String>,
}

impl Engineer<'_> {
    /// The input column of `role`.
    fn role(&self, p: &Pre<'_, '_>, role: Role, what: &str) -> Result<String> {
        let column = self.pre.inputs.column(role).ok_or_else(|| {
            OnnxError::step(what, format!("features.inputs.{} is not set", role.key()))
        })?;
        if role.is_categorical() {
            p.categorical_input(column, what)
        } else {
            p.numeric_input(column, what)
        }
    }

    /// A value computed once per graph.
    fn cached(
        &mut self,
        p: &mut Pre<'_, '_>,
        key: &'static str,
        make: impl FnOnce(&mut Self, &mut Pre<'_, '_>) -> Result<String>,
    ) -> Result<String> {
        if let Some(v) = self.cache.get(key) {
            return Ok(v.clone());
        }
        let v = make(self, p)?;
        self.cache.insert(key, v.clone());
        Ok(v)
    }

    fn height_m(&mut self, p: &mut Pre<'_, '_>, what: &str) -> Result<String> {
        self.cached(p, "height_m", |e, p| {
            let h = e.role(p, Role::Height, what)?;
            finite(
                e.pre.inputs.height_to_m,
                what,
                "features.inputs height unit",
            )?;
            let f = p.g.f64(e.pre.inputs.height_to_m);
            Ok(p.g.mul(&h, &f, "height_m"))
        })
    }

    fn height_cm(&mut self, p: &mut Pre<'_, '_>, what: &str) -> Result<String> {
        let m = self.height_m(p, what)?;
        self.cached(p, "height_cm", |_, p| {
            let hundred = p.g.f64(100.0);
            Ok(p.g.mul(&m, &hundred, "height_cm"))
        })
    }

    /// Whether the categorical column of `role` holds `level` (bool `[N, 1]`).
    fn is_level(
        &mut self,
        p: &mut Pre<'_, '_>,
        role: Role,
        level: Option<&str>,
        what: &str,
    ) -> Result<String> {
        let key = match role {
            Role::Sex => "male",
            Role::HighCalorieFood => "high_calorie_food",
            _ => "smoking",
        };
        let input = self.role(p, role, what)?;
        let level = level.ok_or_else(|| {
            OnnxError::step(
                what,
                format!("features.inputs: no level given for `{}`", role.key()),
            )
        })?;
        self.cached(p, key, |_, p| {
            let code = p.g.node_in(
                ML,
                "LabelEncoder",
                &[&input],
                vec![
                    ("keys_strings", Attr::Strings(vec![level.to_owned()])),
                    ("values_int64s", Attr::Ints(vec![1])),
                    ("default_int64", Attr::Int(0)),
                ],
                key,
            );
            Ok(p.g.cast(&code, DataType::Bool, key))
        })
    }

    fn male(&mut self, p: &mut Pre<'_, '_>, what: &str) -> Result<String> {
        let level = self.pre.inputs.male_level.clone();
        self.is_level(p, Role::Sex, level.as_deref(), what)
    }

    /// `a · x` as the Rust code writes it (`10.0 * weight`).
    fn times(p: &mut Pre<'_, '_>, a: f64, x: &str, hint: &str) -> String {
        let a = p.g.f64(a);
        p.g.mul(&a, x, hint)
    }

    /// Mifflin–St Jeor: `10 · weight + 6.25 · height_cm − 5 · age + (5 | −161)`.
    fn bmr(&mut self, p: &mut Pre<'_, '_>, what: &str) -> Result<String> {
        let weight = self.role(p, Role::Weight, what)?;
        let age = self.role(p, Role::Age, what)?;
        let cm = self.height_cm(p, what)?;
        let male = self.male(p, what)?;
        self.cached(p, "bmr", |_, p| {
            let w = Self::times(p, 10.0, &weight, "bmr.weight");
            let h = Self::times(p, 6.25, &cm, "bmr.height");
            let a = Self::times(p, 5.0, &age, "bmr.age");
            let wh = p.g.add(&w, &h, "bmr.weight_height");
            let wha = p.g.sub(&wh, &a, "bmr.weight_height_age");
            let plus = p.g.f64(5.0);
            let minus = p.g.f64(-161.0);
            let sex = p.g.where_(&male, &plus, &minus, "bmr.sex");
            Ok(p.g.add(&wha, &sex, "BMR"))
        })
    }

    /// `1.2 + 0.175 · clamp(activity, 0, 3)`.
    fn pal(&mut self, p: &mut Pre<'_, '_>, what: &str) -> Result<String> {
        let activity = self.role(p, Role::Activity, what)?;
        self.cached(p, "pal", |_, p| {
            let clamped = p.clamp(&activity, 0.0, 3.0, "activity");
            let scaled = Self::times(p, 0.175, &clamped, "pal.activity");
            let base = p.g.f64(1.2);
            Ok(p.g.add(&base, &scaled, "PAL"))
        })
    }

    /// Devine's ideal body weight: `(50 | 45.5) + 0.9055 · (height_cm − 152.4)`.
    fn ibw(&mut self, p: &mut Pre<'_, '_>, what: &str) -> Result<String> {
        let cm = self.height_cm(p, what)?;
        let male = self.male(p, what)?;
        self.cached(p, "ibw", |_, p| {
            let five_feet = p.g.f64(152.4);
            let over = p.g.sub(&cm, &five_feet, "ibw.over_five_feet");
            let per_cm = Self::times(p, 0.9055, &over, "ibw.per_cm");
            let m = p.g.f64(50.0);
            let f = p.g.f64(45.5);
            let base = p.g.where_(&male, &m, &f, "ibw.base");
            Ok(p.g.add(&base, &per_cm, "IBW"))
        })
    }

    /// `x ≥ a`, `x ≤ a` or `round(x) = a` as 0/1.
    fn flag(p: &mut Pre<'_, '_>, op: &str, x: &str, a: f64, hint: &str) -> String {
        let a = p.g.f64(a);
        let b = p.g.binary(op, x, &a, hint);
        p.g.cast(&b, DataType::Double, hint)
    }

    /// One engineered feature, as `tabtune_features::engineer` computes it.
    fn feature(&mut self, p: &mut Pre<'_, '_>, feature: Feature, what: &str) -> Result<String> {
        let name = feature.name();
        Ok(match feature {
            Feature::Bmi => {
                let weight = self.role(p, Role::Weight, what)?;
                let m = self.height_m(p, what)?;
                let squared = p.g.mul(&m, &m, "height_m_squared");
                p.g.div(&weight, &squared, name)
            }
            Feature::Bsa => {
                let weight = self.role(p, Role::Weight, what)?;
                let cm = self.height_cm(p, what)?;
                let product = p.g.mul(&cm, &weight, "bsa.product");
                let d = p.g.f64(3600.0);
                let q = p.g.div(&product, &d, "bsa.quotient");
                p.g.unary("Sqrt", &q, name)
            }
            Feature::Ibw => self.ibw(p, what)?,
            Feature::DiffIbw => {
                let weight = self.role(p, Role::Weight, what)?;
                let ibw = self.ibw(p, what)?;
                p.g.sub(&weight, &ibw, name)
            }
            Feature::Bmr => self.bmr(p, what)?,
            Feature::Pal => self.pal(p, what)?,
            Feature::Tdee => {
                let bmr = self.bmr(p, what)?;
                let pal = self.pal(p, what)?;
                p.g.mul(&bmr, &pal, name)
            }
            Feature::Swc => {
                let water = self.role(p, Role::Water, what)?;
                Self::flag(p, "GreaterOrEqual", &water, 2.0, name)
            }
            Feature::Is => {
                let activity = self.role(p, Role::Activity, what)?;
                Self::flag(p, "LessOrEqual", &activity, 1.0, name)
            }
            Feature::Inmm => {
                let meals = self.role(p, Role::Meals, what)?;
                let rounded = p.round_half_away(&meals, "meals");
                Self::flag(p, "Equal", &rounded, 3.0, name)
            }
            Feature::Evemm => {
                let vegetables = self.role(p, Role::Vegetables, what)?;
                let rounded = p.round_half_away(&vegetables, "vegetables");
                Self::flag(p, "Equal", &rounded, 3.0, name)
            }
            Feature::Hh => {
                let yes = self.pre.inputs.yes_level.clone();
                let favc = self.is_level(p, Role::HighCalorieFood, yes.as_deref(), what)?;
                let smoke = self.is_level(p, Role::Smoking, yes.as_deref(), what)?;
                let vegetables = self.role(p, Role::Vegetables, what)?;
                let activity = self.role(p, Role::Activity, what)?;
                let two = p.g.f64(2.0);
                let one = p.g.f64(1.0);
                let no_favc = p.g.unary("Not", &favc, "no_high_calorie_food");
                let no_smoke = p.g.unary("Not", &smoke, "no_smoking");
                let veg =
                    p.g.binary("GreaterOrEqual", &vegetables, &two, "vegetables_2");
                let act = p.g.binary("GreaterOrEqual", &activity, &one, "activity_1");
                let a = p.g.binary("And", &no_favc, &veg, "hh");
                let b = p.g.binary("And", &a, &no_smoke, "hh");
                let c = p.g.binary("And", &b, &act, "hh");
                p.g.cast(&c, DataType::Double, name)
            }
        })
    }
}
