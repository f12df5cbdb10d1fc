//! The preprocessing pipeline: engineered features plus transforms, fitted on training rows
//! (`PreprocessorSpec::fit`) into a serializable [`Preprocessor`] that applies anywhere.
//!
//! Output columns, in order: the schema's numeric columns (converted, rounded, log1p'd, scaled
//! as configured), the engineered features (continuous ones scaled, flags as 0/1), the
//! quantile bins, then the categorical encodings.

use std::path::Path;

use ndarray::{Array2, ShapeBuilder as _};
use serde::{Deserialize, Serialize};

use crate::config::{Config, Encoding, TransformSettings};
use crate::engineer::{Feature, Inputs, engineer};
use crate::error::{FeaturesError, Result};
use crate::schema::{ColumnKind, Schema};
use crate::table::{ColumnValues, Table};
use crate::transform::{
    Convert, LabelEncoder, Log1p, OneHot, OneHotFitted, Ordinal, OrdinalFitted, QuantileBins,
    QuantileBinsFitted, RoundToLevels, StandardScaler, StandardScalerFitted,
};

/// Version of the preprocessor JSON format; bumped on every incompatible change.
pub const PREPROCESSOR_FORMAT_VERSION: u32 = 1;

/// A feature matrix ready for a model.
#[derive(Clone, Debug, PartialEq)]
pub struct FeatureMatrix {
    /// Output column names.
    pub names: Vec<String>,
    /// Values, shape `[n_rows, n_features]`, column-major (each feature contiguous).
    pub values: Array2<f32>,
    /// Labels `0..n_classes`, when the table had the target.
    pub target: Option<Vec<u32>>,
    /// Row ids, when the table had them.
    pub ids: Option<Vec<String>>,
    /// Source row numbers.
    pub rows: Vec<usize>,
    /// Class names (label → name).
    pub classes: Vec<String>,
    /// Columns that hold categorical level codes (`encode = "ordinal"`: 0, 1, ... in training
    /// order, −1 for a level never seen in training), for models that split categories.
    pub categorical: Vec<usize>,
}

/// The unfitted pipeline, built from a config.
#[derive(Clone, Debug, PartialEq)]
pub struct PreprocessorSpec {
    schema: Schema,
    features: Vec<Feature>,
    inputs: Inputs,
    transforms: TransformSettings,
    keep: Option<Vec<String>>,
}

/// How one numeric schema column is transformed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NumericStep {
    /// Schema column.
    pub column: String,
    /// Unit conversion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub convert: Option<Convert>,
    /// Rounding to levels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub round: Option<RoundToLevels>,
    /// Quantile bins (on the converted, rounded value), output `<column>_bin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bins: Option<QuantileBinsFitted>,
    /// log1p, output renamed `log1p_<column>`.
    #[serde(default)]
    pub log1p: bool,
    /// Scaling of the final value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<StandardScalerFitted>,
}

/// How one engineered feature is transformed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EngineeredStep {
    /// The feature.
    pub feature: Feature,
    /// Scaling (continuous features only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<StandardScalerFitted>,
}

/// How one categorical schema column is encoded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "encoding", rename_all = "kebab-case")]
pub enum CategoricalStep {
    /// One-hot with an unknown slot.
    OneHot {
        /// Schema column.
        column: String,
        /// Fitted levels.
        fitted: OneHotFitted,
    },
    /// Ordinal.
    Ordinal {
        /// Schema column.
        column: String,
        /// Fitted levels.
        fitted: OrdinalFitted,
    },
}

/// Where the preprocessor was fitted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FittedOn {
    /// The training file.
    pub file: String,
    /// Training rows used.
    pub rows: usize,
}

/// A fitted preprocessor. Serializes to JSON; a reloaded one gives bit-identical output.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Preprocessor {
    /// [`PREPROCESSOR_FORMAT_VERSION`] when written.
    pub format_version: u32,
    /// The schema the input must match.
    pub schema: Schema,
    /// Role mapping of the engineered features.
    pub inputs: Inputs,
    /// Numeric schema columns.
    pub numeric: Vec<NumericStep>,
    /// Engineered features.
    pub engineered: Vec<EngineeredStep>,
    /// Categorical schema columns.
    pub categorical: Vec<CategoricalStep>,
    /// The target's classes.
    pub labels: LabelEncoder,
    /// Output column names of the steps, in order.
    pub output: Vec<String>,
    /// Provenance.
    pub fitted_on: FittedOn,
    /// A feature subset (`tabtune select`): only these output columns, in `output` order, reach
    /// the model. Absent: all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep: Option<Vec<String>>,
}

impl PreprocessorSpec {
    /// The pipeline a config describes.
    pub fn from_config(config: &Config) -> Self {
        Self {
            schema: config.schema.clone(),
            features: config.features.clone(),
            inputs: config.inputs.clone(),
            transforms: config.transforms.clone(),
            keep: None,
        }
    }

    /// The same pipeline keeping only the output features `names` (checked when fitted:
    /// every name must be an output of the pipeline).
    #[must_use]
    pub fn with_features(mut self, names: Vec<String>) -> Self {
        self.keep = Some(names);
        self
    }

    /// The feature subset, if any.
    pub fn kept_features(&self) -> Option<&[String]> {
        self.keep.as_deref()
    }

    /// The schema the pipeline reads.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// Fits every fitted transform on `train` (which must be non-empty).
    pub fn fit(&self, train: &Table) -> Result<Preprocessor> {
        check_table(&self.schema, train)?;
        if train.n_rows() == 0 {
            return Err(FeaturesError::Shape(format!(
                "{}: cannot fit a preprocessor on zero rows",
                train.source.display()
            )));
        }
        let t = &self.transforms;
        let mut numeric = Vec::new();
        for spec in self.schema.feature_columns() {
            let ColumnKind::Numeric { range, .. } = &spec.kind else {
                continue;
            };
            let name = spec.name.as_str();
            let convert = t
                .convert
                .iter()
                .find(|(c, _, _)| c == name)
                .map(|(_, factor, to)| Convert {
                    factor: *factor,
                    to: to.clone(),
                });
            let round = t.round.iter().any(|c| c == name).then(|| {
                let (lo, hi) = range.unwrap_or((f64::NEG_INFINITY, f64::INFINITY));
                let f = convert.as_ref().map_or(1.0, |c| c.factor);
                RoundToLevels {
                    low: (lo * f).ceil(),
                    high: (hi * f).floor(),
                }
            });
            let mut step = NumericStep {
                column: name.to_owned(),
                convert,
                round,
                bins: None,
                log1p: t.log1p.iter().any(|c| c == name),
                scale: None,
            };
            let mut values = train
                .numeric(name)
                .expect("check_table verified the column")
                .to_vec();
            let bins = t.bins.iter().find(|(c, _)| c == name).map(|(_, n)| *n);
            step.pre_log(&mut values);
            if let Some(n) = bins {
                step.bins = Some(QuantileBins { bins: n }.fit(&values));
            }
            step.log(&mut values, train)?;
            if t.scale {
                step.scale = Some(StandardScaler.fit(&values));
            }
            numeric.push(step);
        }
        let engineered_values = engineer(train, &self.features, &self.inputs)?;
        let engineered = engineered_values
            .iter()
            .map(|e| EngineeredStep {
                feature: e.feature,
                scale: (t.scale && !e.feature.is_flag()).then(|| StandardScaler.fit(&e.values)),
            })
            .collect();
        let mut categorical = Vec::new();
        for spec in self.schema.feature_columns() {
            let Some((levels, codes)) = train.categorical(&spec.name) else {
                continue;
            };
            let column = spec.name.clone();
            categorical.push(match t.encode {
                Encoding::OneHot => CategoricalStep::OneHot {
                    column,
                    fitted: OneHot.fit(levels, codes),
                },
                Encoding::Ordinal => CategoricalStep::Ordinal {
                    column,
                    fitted: Ordinal.fit(levels, codes),
                },
            });
        }
        let mut p = Preprocessor {
            format_version: PREPROCESSOR_FORMAT_VERSION,
            schema: self.schema.clone(),
            inputs: self.inputs.clone(),
            numeric,
            engineered,
            categorical,
            labels: LabelEncoder::new(self.schema.classes().to_vec()),
            output: Vec::new(),
            fitted_on: FittedOn {
                file: train.source.display().to_string(),
                rows: train.n_rows(),
            },
            keep: None,
        };
        p.output = p.output_names();
        if let Some(keep) = &self.keep {
            p.keep = Some(check_subset(&p.output, keep)?);
        }
        Ok(p)
    }
}

fn check_scaler(column: &str, s: &StandardScalerFitted) -> std::result::Result<(), String> {
    if s.mean.is_finite() && s.std.is_finite() && s.std > 0.0 {
        Ok(())
    } else {
        Err(format!(
            "`{column}` scaling has mean {} and standard deviation {}; expected finite numbers \
             and a deviation > 0",
            s.mean, s.std
        ))
    }
}

impl NumericStep {
    /// Conversion and rounding (the value that bins see).
    fn pre_log(&self, values: &mut [f64]) {
        if let Some(c) = &self.convert {
            c.apply(values);
        }
        if let Some(r) = &self.round {
            r.apply(values);
        }
    }

    fn log(&self, values: &mut [f64], table: &Table) -> Result<()> {
        if self.log1p {
            Log1p.apply(values).map_err(|i| {
                FeaturesError::Shape(format!(
                    "{}, row {}, column {}: log1p needs values > -1, found {}",
                    table.source.display(),
                    table.rows[i],
                    self.column,
                    values[i]
                ))
            })?;
        }
        Ok(())
    }

    fn output_name(&self) -> String {
        if self.log1p {
            format!("log1p_{}", self.column)
        } else {
            self.column.clone()
        }
    }
}

/// A feature subset checked against the pipeline's outputs, in output order.
fn check_subset(output: &[String], keep: &[String]) -> Result<Vec<String>> {
    if keep.is_empty() {
        return Err(FeaturesError::Shape(
            "feature subset: it is empty; keep at least one feature".into(),
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for name in keep {
        if !output.contains(name) {
            return Err(FeaturesError::Shape(format!(
                "feature subset: `{name}` is not a feature of this pipeline; its features are: {}",
                output.join(", ")
            )));
        }
        if !seen.insert(name.as_str()) {
            return Err(FeaturesError::Shape(format!(
                "feature subset: `{name}` is listed twice"
            )));
        }
    }
    Ok(output
        .iter()
        .filter(|n| seen.contains(n.as_str()))
        .cloned()
        .collect())
}

/// Checks that a table's columns are the schema's feature columns with the same kinds/levels.
fn check_table(schema: &Schema, table: &Table) -> Result<()> {
    for spec in schema.feature_columns() {
        let Some(col) = table.column(&spec.name) else {
            return Err(FeaturesError::Shape(format!(
                "{}: column `{}` is missing",
                table.source.display(),
                spec.name
            )));
        };
        let same = match (&spec.kind, &col.values) {
            (ColumnKind::Numeric { .. }, ColumnValues::Numeric(_)) => true,
            (ColumnKind::Categorical { levels }, ColumnValues::Categorical { levels: l, .. }) => {
                levels == l
            }
            _ => false,
        };
        if !same {
            return Err(FeaturesError::Shape(format!(
                "{}: column `{}` does not match the preprocessor's schema ({})",
                table.source.display(),
                spec.name,
                spec.expectation()
            )));
        }
    }
    Ok(())
}

impl Preprocessor {
    fn output_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.numeric.iter().map(NumericStep::output_name).collect();
        names.extend(self.engineered.iter().map(|e| e.feature.name().to_owned()));
        names.extend(
            self.numeric
                .iter()
                .filter(|s| s.bins.is_some())
                .map(|s| format!("{}_bin", s.column)),
        );
        for c in &self.categorical {
            match c {
                CategoricalStep::OneHot { column, fitted } => names.extend(fitted.names(column)),
                CategoricalStep::Ordinal { column, .. } => names.push(column.clone()),
            }
        }
        names
    }

    /// The output columns holding ordinal level codes.
    pub fn categorical_columns(&self) -> Vec<usize> {
        let mut column = self.output.len() - self.categorical_width();
        let mut out = Vec::new();
        for c in &self.categorical {
            match c {
                CategoricalStep::OneHot { fitted, .. } => column += fitted.seen.len() + 1,
                CategoricalStep::Ordinal { .. } => {
                    out.push(column);
                    column += 1;
                }
            }
        }
        out
    }

    /// Number of output columns of the categorical encodings.
    fn categorical_width(&self) -> usize {
        self.categorical
            .iter()
            .map(|c| match c {
                CategoricalStep::OneHot { fitted, .. } => fitted.seen.len() + 1,
                CategoricalStep::Ordinal { .. } => 1,
            })
            .sum()
    }

    /// Number of features the model sees (the subset's size when there is one).
    pub fn n_features(&self) -> usize {
        self.keep.as_ref().map_or(self.output.len(), Vec::len)
    }

    /// The features the model sees, in order (the subset when there is one).
    pub fn feature_names(&self) -> &[String] {
        self.keep.as_deref().unwrap_or(&self.output)
    }

    /// Applies the fitted pipeline to any table with the same schema.
    pub fn transform(&self, table: &Table) -> Result<FeatureMatrix> {
        check_table(&self.schema, table)?;
        let n = table.n_rows();
        // Column-major output: every step writes its column contiguously.
        let mut values = Array2::<f32>::zeros((n, self.output.len()).f());
        let mut next = 0;
        let mut put = |values: &mut Array2<f32>, column: &[f64]| {
            for (dst, &src) in values.column_mut(next).iter_mut().zip(column) {
                *dst = src as f32;
            }
            next += 1;
        };
        let mut bins: Vec<Vec<f64>> = Vec::new();
        for step in &self.numeric {
            let mut column = table
                .numeric(&step.column)
                .expect("check_table verified the column")
                .to_vec();
            step.pre_log(&mut column);
            if let Some(b) = &step.bins {
                bins.push(b.apply(&column));
            }
            step.log(&mut column, table)?;
            if let Some(s) = &step.scale {
                s.apply(&mut column);
            }
            put(&mut values, &column);
        }
        let features: Vec<Feature> = self.engineered.iter().map(|e| e.feature).collect();
        for (step, mut e) in self
            .engineered
            .iter()
            .zip(engineer(table, &features, &self.inputs)?)
        {
            if let Some(s) = &step.scale {
                s.apply(&mut e.values);
            }
            put(&mut values, &e.values);
        }
        for b in &bins {
            put(&mut values, b);
        }
        let mut next_column = self.output.len() - self.categorical_width();
        for c in &self.categorical {
            match c {
                CategoricalStep::OneHot { column, fitted } => {
                    let (levels, codes) = table
                        .categorical(column)
                        .expect("check_table verified the column");
                    for (row, slot) in fitted.slots(levels, codes).into_iter().enumerate() {
                        values[[row, next_column + slot]] = 1.0;
                    }
                    next_column += fitted.seen.len() + 1;
                }
                CategoricalStep::Ordinal { column, fitted } => {
                    let (levels, codes) = table
                        .categorical(column)
                        .expect("check_table verified the column");
                    for (dst, v) in values
                        .column_mut(next_column)
                        .iter_mut()
                        .zip(fitted.apply(levels, codes))
                    {
                        *dst = v as f32;
                    }
                    next_column += 1;
                }
            }
        }
        debug_assert_eq!(next_column, self.output.len());
        let mut categorical = self.categorical_columns();
        let mut names = self.output.clone();
        if let Some(keep) = &self.keep {
            let idx: Vec<usize> = (0..names.len())
                .filter(|&i| keep.contains(&names[i]))
                .collect();
            let mut kept = Array2::<f32>::zeros((n, idx.len()).f());
            for (j, &i) in idx.iter().enumerate() {
                kept.column_mut(j).assign(&values.column(i));
            }
            values = kept;
            categorical = categorical
                .iter()
                .filter_map(|c| idx.iter().position(|i| i == c))
                .collect();
            names = idx.iter().map(|&i| names[i].clone()).collect();
        }
        Ok(FeatureMatrix {
            names,
            values,
            target: table.target.clone(),
            ids: table.ids.clone(),
            rows: table.rows.clone(),
            classes: self.labels.classes.clone(),
            categorical,
        })
    }

    /// The preprocessor as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a preprocessor always serializes")
    }

    /// Reads a preprocessor from JSON; `path` is used in messages.
    pub fn from_json(text: &str, path: &Path) -> Result<Self> {
        let err = |message: String| FeaturesError::Preprocessor {
            path: path.to_owned(),
            message,
        };
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| err(format!("not valid JSON: {e}")))?;
        match value
            .get("format_version")
            .and_then(serde_json::Value::as_u64)
        {
            Some(v) if v == u64::from(PREPROCESSOR_FORMAT_VERSION) => {}
            Some(v) => {
                return Err(err(format!(
                    "format version {v}, this tabtune reads version {PREPROCESSOR_FORMAT_VERSION}; \
                     refit it with `tabtune features`"
                )));
            }
            None => return Err(err("no `format_version`: not a tabtune preprocessor".into())),
        }
        let p: Self = serde_json::from_value(value).map_err(|e| err(format!("invalid: {e}")))?;
        p.check_structure().map_err(err)?;
        if p.output != p.output_names() {
            return Err(err(
                "its `output` names do not match its steps (edited by hand?)".into(),
            ));
        }
        if let Some(keep) = &p.keep {
            let checked = check_subset(&p.output, keep).map_err(|e| err(e.to_string()))?;
            if &checked != keep {
                return Err(err(
                    "its `keep` features are not in output order (edited by hand?)".into(),
                ));
            }
        }
        Ok(p)
    }

    /// Checks what [`transform`](Self::transform) relies on, for a preprocessor read from a
    /// file: a valid schema, one step per schema feature column and of its kind, the label
    /// encoder's classes equal to the schema's, finite fitted numbers (a clamp with low > high
    /// or a NaN bound would panic). Returns what is wrong.
    pub fn check_structure(&self) -> std::result::Result<(), String> {
        use crate::text::clip;
        self.schema
            .check()
            .map_err(|e| format!("its schema: {e}"))?;
        let finite = |what: String, v: f64| {
            if v.is_finite() {
                Ok(())
            } else {
                Err(format!("{what} is {v}; expected a finite number"))
            }
        };
        let numeric: Vec<&str> = self
            .schema
            .feature_columns()
            .filter(|c| c.is_numeric())
            .map(|c| c.name.as_str())
            .collect();
        let steps: Vec<&str> = self.numeric.iter().map(|s| s.column.as_str()).collect();
        if steps != numeric {
            return Err(format!(
                "its numeric steps ({}) are not the schema's numeric feature columns ({})",
                crate::text::list(&steps),
                crate::text::list(&numeric)
            ));
        }
        for step in &self.numeric {
            let column = clip(&step.column);
            if let Some(c) = &step.convert {
                finite(format!("`{column}` conversion factor"), c.factor)?;
            }
            if let Some(r) = &step.round
                && (r.low.is_nan() || r.high.is_nan() || r.low > r.high)
            {
                return Err(format!(
                    "`{column}` rounds into [{}, {}]; expected low ≤ high",
                    r.low, r.high
                ));
            }
            if let Some(b) = &step.bins
                && let Some(e) = b.edges.iter().find(|e| !e.is_finite())
            {
                return Err(format!("`{column}` bin edge {e}; expected finite edges"));
            }
            if let Some(sc) = &step.scale {
                check_scaler(&column, sc)?;
            }
        }
        for step in &self.engineered {
            if let Some(sc) = &step.scale {
                check_scaler(step.feature.name(), sc)?;
            }
        }
        finite("`height_to_m`".into(), self.inputs.height_to_m)?;
        let categorical: Vec<&str> = self
            .schema
            .feature_columns()
            .filter(|c| !c.is_numeric())
            .map(|c| c.name.as_str())
            .collect();
        let steps: Vec<&str> = self
            .categorical
            .iter()
            .map(|c| match c {
                CategoricalStep::OneHot { column, .. }
                | CategoricalStep::Ordinal { column, .. } => column.as_str(),
            })
            .collect();
        if steps != categorical {
            return Err(format!(
                "its categorical steps ({}) are not the schema's categorical feature columns ({})",
                crate::text::list(&steps),
                crate::text::list(&categorical)
            ));
        }
        if self.labels.classes != self.schema.classes() {
            return Err(format!(
                "its classes ({}) are not the schema's target levels ({})",
                crate::text::list(&self.labels.classes),
                crate::text::list(self.schema.classes())
            ));
        }
        Ok(())
    }

    /// Writes the preprocessor as JSON, atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        crate::io::write_atomic(path, |w| {
            use std::io::Write as _;
            w.write_all(self.to_json().as_bytes())
                .map_err(|e| FeaturesError::io(path, e))
        })
    }

    /// Reads a preprocessor written by [`Preprocessor::save`].
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| FeaturesError::io(path, e))?;
        Self::from_json(&text, path)
    }
}
