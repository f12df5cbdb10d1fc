//! Layer 3: resolved settings with no `Option`s left, every name checked against the schema.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::file::{ColumnFile, ConfigFile, InputsFile, SourceFile};
use crate::engineer::{Feature, Inputs, Role};
use crate::error::{FeaturesError, Result};
use crate::schema::{ColumnKind, ColumnSpec, Schema};
use crate::units;

/// The metric a task is judged on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Metric {
    /// Share of correct labels (higher is better).
    Accuracy,
    /// Multi-class log loss (lower is better).
    Logloss,
}

impl Metric {
    /// The name configs and reports use (`accuracy`, `logloss`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Accuracy => "accuracy",
            Self::Logloss => "logloss",
        }
    }

    /// Parses a metric name (`accuracy`, `logloss` or `log_loss`).
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "accuracy" => Some(Self::Accuracy),
            "logloss" | "log_loss" => Some(Self::Logloss),
            _ => None,
        }
    }

    /// Whether the metric is maximised (accuracy) or minimised (log loss).
    pub fn direction(self) -> Direction {
        match self {
            Self::Accuracy => Direction::Maximize,
            Self::Logloss => Direction::Minimize,
        }
    }
}

/// Whether a score is minimised or maximised: the objective of a study (Optuna's
/// `StudyDirection`), the promotion rule of the registry, the metric of a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Direction {
    /// Smaller is better (log loss).
    Minimize,
    /// Larger is better (accuracy).
    Maximize,
}

impl Direction {
    /// The upper-case name Optuna stores (`MINIMIZE`, `MAXIMIZE`).
    pub fn as_optuna(self) -> &'static str {
        match self {
            Self::Minimize => "MINIMIZE",
            Self::Maximize => "MAXIMIZE",
        }
    }

    /// Parses Optuna's stored name or the lower-case name of a config file.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "MINIMIZE" | "minimize" => Some(Self::Minimize),
            "MAXIMIZE" | "maximize" => Some(Self::Maximize),
            _ => None,
        }
    }

    /// Whether `new` is strictly better than `old` in this direction.
    pub fn beats(self, new: f64, old: f64) -> bool {
        match self {
            Self::Minimize => new < old,
            Self::Maximize => new > old,
        }
    }

    /// `value` turned so that smaller is better (samplers and pruners work on this).
    pub fn as_loss(self, value: f64) -> f64 {
        match self {
            Self::Minimize => value,
            Self::Maximize => -value,
        }
    }
}

/// How a `data fetch` source is downloaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FetchKind {
    /// A public URL.
    Url(String),
    /// A file of a Kaggle competition, through the Kaggle API.
    KaggleCompetition(String),
}

/// One `[[data.sources]]` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchSource {
    /// Name selected by `--source`.
    pub name: String,
    /// Where it comes from.
    pub kind: FetchKind,
    /// File inside a zip archive.
    pub member: Option<String>,
    /// File name in the data folder.
    pub file: String,
    /// Expected sha256, lower-case hex.
    pub sha256: String,
}

/// Resolved `[data]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataSettings {
    /// Folder holding the files.
    pub dir: PathBuf,
    /// Training file name (inside `dir`).
    pub train: String,
    /// File to predict.
    pub test: Option<String>,
    /// Monitoring "current" file.
    pub current: Option<String>,
    /// Download sources.
    pub sources: Vec<FetchSource>,
    /// `[[data.extra-train]]`: files appended to the training rows of every fold.
    pub extra_train: Vec<ExtraTrain>,
}

/// The most copies of an extra training file a run may append.
pub const MAX_EXTRA_REPEATS: usize = 4;

/// One `[[data.extra-train]]` entry: a labelled file in the schema (columns renamed by
/// `columns`) whose rows only ever train models: appended `repeats` times to every fold's
/// training rows and to the final model's rows, never validated or scored on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtraTrain {
    /// Its name (reports).
    pub name: String,
    /// The file, inside `data.dir`.
    pub file: String,
    /// File column name -> schema column name.
    pub columns: std::collections::BTreeMap<String, String>,
    /// Copies appended (0..=[`MAX_EXTRA_REPEATS`]) unless a sweep samples `extra_repeats`.
    pub repeats: usize,
}

/// Categorical encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Encoding {
    /// One column per level seen in training plus an `<unknown>` slot.
    OneHot,
    /// The level's index among the levels seen in training; unknown levels become -1.
    Ordinal,
}

/// Resolved `[transforms]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TransformSettings {
    /// `(column, factor, target unit)`.
    pub convert: Vec<(String, f64, String)>,
    /// Columns rounded and clamped into their range.
    pub round: Vec<String>,
    /// `(column, bins)`.
    pub bins: Vec<(String, usize)>,
    /// Columns replaced by log1p.
    pub log1p: Vec<String>,
    /// Standard scaling of continuous outputs.
    pub scale: bool,
    /// Categorical encoding.
    pub encode: Encoding,
    /// Drop duplicate training rows.
    pub dedup: bool,
}

/// Resolved `[cv]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CvSettings {
    /// Folds (≥ 2).
    pub folds: usize,
    /// Repeats (≥ 1).
    pub repeats: usize,
    /// Shuffle seed.
    pub seed: u64,
    /// Stratify by class.
    pub stratify: bool,
}

/// A whole resolved config.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// The file it came from.
    pub path: PathBuf,
    /// `[task] name`.
    pub name: String,
    /// `[task] metric`.
    pub metric: Metric,
    /// `[data]`.
    pub data: DataSettings,
    /// `[schema]`.
    pub schema: Schema,
    /// `[features] enabled`, in the order given.
    pub features: Vec<Feature>,
    /// `[features.inputs]`.
    pub inputs: Inputs,
    /// `[transforms]`.
    pub transforms: TransformSettings,
    /// `[cv]`.
    pub cv: CvSettings,
    /// `[eda] columns`.
    pub eda_columns: Vec<String>,
    /// `[run]` as written: experiment settings, which this crate does not interpret (the
    /// experiment layer, `tabtune-pipeline`, resolves them).
    pub run: Option<toml::Table>,
}

/// Collects the location for error messages.
struct Ctx<'a> {
    path: &'a Path,
}

impl Ctx<'_> {
    fn err(&self, key: impl Into<String>, message: impl Into<String>) -> FeaturesError {
        FeaturesError::ConfigValue {
            path: self.path.to_owned(),
            key: key.into(),
            message: message.into(),
        }
    }

    fn required<T>(&self, value: Option<T>, key: &str) -> Result<T> {
        value.ok_or_else(|| self.err(key, "is required but missing"))
    }
}

impl Config {
    /// Reads and resolves a config file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| FeaturesError::ConfigParse {
            path: path.to_owned(),
            message: format!("cannot read the config file: {e}"),
        })?;
        Self::from_toml(&text, path)
    }

    /// Parses and resolves config text; `path` is used in messages and for the default name.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self> {
        let file: ConfigFile = toml::from_str(text).map_err(|e| FeaturesError::ConfigParse {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        resolve(file, path)
    }

    /// The path of a data file named in `[data]`.
    pub fn data_path(&self, file: &str) -> PathBuf {
        self.data.dir.join(file)
    }

    /// The training file's path.
    pub fn train_path(&self) -> PathBuf {
        self.data_path(&self.data.train)
    }
}

fn resolve(file: ConfigFile, path: &Path) -> Result<Config> {
    let ctx = Ctx { path };
    let task = file.task.unwrap_or_default();
    let name = task.name.unwrap_or_else(|| {
        path.file_stem()
            .map_or_else(|| "task".to_owned(), |s| s.to_string_lossy().into_owned())
    });
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(ctx.err(
            "task.name",
            format!("`{name}` must be non-empty ASCII letters, digits, `-`, `_` or `.`"),
        ));
    }
    let metric = match task.metric.as_deref().unwrap_or("accuracy") {
        "accuracy" => Metric::Accuracy,
        "logloss" => Metric::Logloss,
        other => {
            return Err(ctx.err(
                "task.metric",
                format!("`{other}`, expected \"accuracy\" or \"logloss\""),
            ));
        }
    };
    let schema = resolve_schema(&ctx, file.schema.unwrap_or_default())?;
    let data = resolve_data(&ctx, file.data.unwrap_or_default())?;
    let features_file = file.features.unwrap_or_default();
    let mut features = Vec::new();
    for (i, name) in features_file.enabled.unwrap_or_default().iter().enumerate() {
        let key = format!("features.enabled[{i}]");
        let feature = Feature::parse(name).ok_or_else(|| {
            let all: Vec<_> = Feature::ALL.iter().map(|f| f.name()).collect();
            ctx.err(
                &key,
                format!(
                    "unknown feature `{name}`, expected one of {}",
                    all.join(", ")
                ),
            )
        })?;
        if features.contains(&feature) {
            return Err(ctx.err(key, format!("`{name}` is listed twice")));
        }
        if schema.column(name).is_some() {
            return Err(ctx.err(key, format!("`{name}` is also a schema column; rename one")));
        }
        features.push(feature);
    }
    let inputs = resolve_inputs(
        &ctx,
        &schema,
        &features,
        features_file.inputs.unwrap_or_default(),
    )?;
    let transforms = resolve_transforms(&ctx, &schema, file.transforms.unwrap_or_default())?;
    let cv_file = file.cv.unwrap_or_default();
    let folds = cv_file.folds.unwrap_or(5);
    if folds < 2 {
        return Err(ctx.err("cv.folds", format!("{folds}, expected an integer ≥ 2")));
    }
    let repeats = cv_file.repeats.unwrap_or(1);
    if repeats < 1 {
        return Err(ctx.err("cv.repeats", format!("{repeats}, expected an integer ≥ 1")));
    }
    let seed = cv_file.seed.unwrap_or(42);
    let seed = u64::try_from(seed)
        .map_err(|_| ctx.err("cv.seed", format!("{seed}, expected an integer ≥ 0")))?;
    let cv = CvSettings {
        folds: folds as usize,
        repeats: repeats as usize,
        seed,
        stratify: cv_file.stratify.unwrap_or(true),
    };
    let eda_columns = match file.eda.and_then(|e| e.columns) {
        Some(cols) => {
            for (i, c) in cols.iter().enumerate() {
                let engineered = features.iter().any(|f| f.name() == c && !f.is_flag());
                let numeric = schema.column(c).is_some_and(ColumnSpec::is_numeric);
                if !engineered && !numeric {
                    return Err(ctx.err(
                        format!("eda.columns[{i}]"),
                        format!("`{c}` is neither a numeric schema column nor an enabled continuous engineered feature"),
                    ));
                }
            }
            cols
        }
        None => schema
            .feature_columns()
            .filter(|c| c.is_numeric())
            .map(|c| c.name.clone())
            .collect(),
    };
    let run = file.run;
    Ok(Config {
        path: path.to_owned(),
        name,
        metric,
        data,
        schema,
        features,
        inputs,
        transforms,
        cv,
        eda_columns,
        run,
    })
}

fn resolve_schema(ctx: &Ctx<'_>, file: super::file::SchemaFile) -> Result<Schema> {
    let target = ctx.required(file.target, "schema.target")?;
    let columns_file = ctx.required(file.columns, "schema.columns")?;
    let mut columns = Vec::with_capacity(columns_file.len());
    let mut seen = HashSet::new();
    for (i, col) in columns_file.into_iter().enumerate() {
        let spec = resolve_column(ctx, i, col)?;
        if !seen.insert(spec.name.clone()) {
            return Err(ctx.err(
                format!("schema.columns[{i}].name"),
                format!("column `{}` is listed twice", spec.name),
            ));
        }
        if file.id.as_deref() == Some(spec.name.as_str()) {
            return Err(ctx.err(
                format!("schema.columns[{i}]"),
                format!("`{}` is the id column; it needs no entry", spec.name),
            ));
        }
        columns.push(spec);
    }
    let Some(target_spec) = columns.iter().find(|c| c.name == target) else {
        return Err(ctx.err(
            "schema.target",
            format!("`{target}` is not one of schema.columns"),
        ));
    };
    if target_spec.is_numeric() {
        return Err(ctx.err(
            "schema.target",
            format!("`{target}` must be a categorical column (its levels are the classes)"),
        ));
    }
    if target_spec.levels().is_some_and(|l| l.len() < 2) {
        return Err(ctx.err(
            "schema.target",
            format!("`{target}` needs at least 2 classes"),
        ));
    }
    if columns.len() < 2 {
        return Err(ctx.err(
            "schema.columns",
            "needs at least one feature column besides the target",
        ));
    }
    if file.id.as_deref() == Some("") {
        return Err(ctx.err("schema.id", "must not be empty"));
    }
    Ok(Schema {
        columns,
        target,
        id: file.id,
    })
}

fn resolve_column(ctx: &Ctx<'_>, i: usize, col: ColumnFile) -> Result<ColumnSpec> {
    let key = |field: &str| format!("schema.columns[{i}].{field}");
    let name = ctx.required(col.name, &key("name"))?;
    if name.is_empty() {
        return Err(ctx.err(key("name"), "must not be empty"));
    }
    let kind = ctx.required(col.kind, &key("type"))?;
    let kind = match kind.as_str() {
        "numeric" => {
            if col.levels.is_some() {
                return Err(ctx.err(
                    key("levels"),
                    format!("column `{name}` is numeric; levels are for categorical columns"),
                ));
            }
            let range = match col.range {
                None => None,
                Some(r) if r.len() == 2 && r[0].is_finite() && r[1].is_finite() && r[0] <= r[1] => {
                    Some((r[0], r[1]))
                }
                Some(r) => {
                    return Err(ctx.err(
                        key("range"),
                        format!("{r:?}, expected [min, max] with finite min ≤ max"),
                    ));
                }
            };
            ColumnKind::Numeric {
                unit: col.unit,
                range,
            }
        }
        "categorical" => {
            if col.range.is_some() || col.unit.is_some() {
                return Err(ctx.err(
                    key("range"),
                    format!(
                        "column `{name}` is categorical; range and unit are for numeric columns"
                    ),
                ));
            }
            let levels = ctx.required(col.levels, &key("levels"))?;
            if levels.is_empty() {
                return Err(ctx.err(key("levels"), "must list at least one level"));
            }
            let mut seen = HashSet::new();
            for (j, l) in levels.iter().enumerate() {
                if l.is_empty() {
                    return Err(ctx.err(format!("{}[{j}]", key("levels")), "empty level"));
                }
                if !seen.insert(l) {
                    return Err(ctx.err(
                        format!("{}[{j}]", key("levels")),
                        format!("level `{l}` is listed twice"),
                    ));
                }
            }
            ColumnKind::Categorical { levels }
        }
        other => {
            return Err(ctx.err(
                key("type"),
                format!("`{other}`, expected \"numeric\" or \"categorical\""),
            ));
        }
    };
    Ok(ColumnSpec {
        name,
        kind,
        description: col.description,
    })
}

fn resolve_data(ctx: &Ctx<'_>, file: super::file::DataFile) -> Result<DataSettings> {
    let train = ctx.required(file.train, "data.train")?;
    let sources = file
        .sources
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, s)| resolve_source(ctx, i, s))
        .collect::<Result<Vec<_>>>()?;
    let mut extra_train: Vec<ExtraTrain> = Vec::new();
    for (i, e) in file.extra_train.unwrap_or_default().into_iter().enumerate() {
        let key = |field: &str| format!("data.extra-train[{i}].{field}");
        let name_of = ctx.required(e.file, &key("file"))?;
        if name_of.trim().is_empty() {
            return Err(ctx.err(key("file"), "is empty"));
        }
        let name = e.name.unwrap_or_else(|| {
            Path::new(&name_of)
                .file_stem()
                .map_or_else(|| name_of.clone(), |s| s.to_string_lossy().into_owned())
        });
        if extra_train.iter().any(|x| x.name == name) {
            return Err(ctx.err(key("name"), format!("`{name}` is used twice")));
        }
        let repeats = e.repeats.unwrap_or(1);
        let repeats = usize::try_from(repeats)
            .ok()
            .filter(|&r| r <= MAX_EXTRA_REPEATS)
            .ok_or_else(|| {
                ctx.err(
                    key("repeats"),
                    format!("{repeats}, expected an integer in 0..={MAX_EXTRA_REPEATS}"),
                )
            })?;
        extra_train.push(ExtraTrain {
            name,
            file: name_of,
            columns: e.columns.unwrap_or_default(),
            repeats,
        });
    }
    Ok(DataSettings {
        dir: PathBuf::from(file.dir.unwrap_or_else(|| "data".to_owned())),
        train,
        test: file.test,
        current: file.current,
        sources,
        extra_train,
    })
}

fn resolve_source(ctx: &Ctx<'_>, i: usize, s: SourceFile) -> Result<FetchSource> {
    let key = |field: &str| format!("data.sources[{i}].{field}");
    let name = ctx.required(s.name, &key("name"))?;
    let kind = match ctx.required(s.kind, &key("kind"))?.as_str() {
        "url" => FetchKind::Url(ctx.required(s.url, &key("url"))?),
        "kaggle-competition" => {
            FetchKind::KaggleCompetition(ctx.required(s.competition, &key("competition"))?)
        }
        other => {
            return Err(ctx.err(
                key("kind"),
                format!("`{other}`, expected \"url\" or \"kaggle-competition\""),
            ));
        }
    };
    let file = ctx.required(s.file, &key("file"))?;
    if file.is_empty() || file.contains(['/', '\\']) || file == ".." {
        return Err(ctx.err(key("file"), format!("`{file}`, expected a plain file name")));
    }
    let sha256 = ctx.required(s.sha256, &key("sha256"))?.to_ascii_lowercase();
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ctx.err(key("sha256"), format!("`{sha256}`, expected 64 hex digits")));
    }
    Ok(FetchSource {
        name,
        kind,
        member: s.member,
        file,
        sha256,
    })
}

fn resolve_inputs(
    ctx: &Ctx<'_>,
    schema: &Schema,
    features: &[Feature],
    file: InputsFile,
) -> Result<Inputs> {
    let mut inputs = Inputs {
        height: file.height,
        height_to_m: 1.0,
        weight: file.weight,
        age: file.age,
        sex: file.sex,
        male_level: file.male_level,
        activity: file.activity,
        water: file.water,
        meals: file.meals,
        vegetables: file.vegetables,
        high_calorie_food: file.high_calorie_food,
        smoking: file.smoking,
        yes_level: file.yes_level,
    };
    let needed: Vec<Role> = {
        let mut v: Vec<Role> = Vec::new();
        for f in features {
            for r in f.roles() {
                if !v.contains(r) {
                    v.push(*r);
                }
            }
        }
        v
    };
    for role in needed {
        let key = format!("features.inputs.{}", role.key());
        let user = features
            .iter()
            .find(|f| f.roles().contains(&role))
            .map_or("", |f| f.name());
        let column = inputs
            .column(role)
            .map(str::to_owned)
            .ok_or_else(|| ctx.err(&key, format!("is required by the enabled feature {user}")))?;
        let spec = schema
            .column(&column)
            .ok_or_else(|| ctx.err(&key, format!("`{column}` is not a schema column")))?;
        if column == schema.target {
            return Err(ctx.err(
                &key,
                format!("`{column}` is the target; features must not read it"),
            ));
        }
        if role.is_categorical() {
            let levels = spec
                .levels()
                .ok_or_else(|| ctx.err(&key, format!("`{column}` must be categorical")))?;
            let (level_key, level) = if role == Role::Sex {
                ("features.inputs.male-level", inputs.male_level.as_deref())
            } else {
                ("features.inputs.yes-level", inputs.yes_level.as_deref())
            };
            let level = level.ok_or_else(|| {
                ctx.err(
                    level_key,
                    format!("is required by the enabled feature {user}"),
                )
            })?;
            if !levels.iter().any(|l| l == level) {
                return Err(ctx.err(
                    level_key,
                    format!(
                        "`{level}` is not a level of `{column}` ({})",
                        levels.join(", ")
                    ),
                ));
            }
        } else if !spec.is_numeric() {
            return Err(ctx.err(&key, format!("`{column}` must be numeric")));
        }
        if role == Role::Height {
            let unit = spec.unit().unwrap_or("");
            inputs.height_to_m = units::factor(unit, "m").ok_or_else(|| {
                ctx.err(&key, format!("`{column}` has unit `{unit}`; the formulas need a length unit in the schema ({})", units::known_units()))
            })?;
        }
        if role == Role::Weight && spec.unit() != Some("kg") {
            return Err(ctx.err(
                &key,
                format!("`{column}` must have unit \"kg\" in the schema"),
            ));
        }
        if role == Role::Age && spec.unit() != Some("years") {
            return Err(ctx.err(
                &key,
                format!("`{column}` must have unit \"years\" in the schema"),
            ));
        }
    }
    Ok(inputs)
}

fn numeric_column<'a>(
    ctx: &Ctx<'_>,
    schema: &'a Schema,
    key: &str,
    name: &str,
) -> Result<&'a ColumnSpec> {
    let spec = schema
        .column(name)
        .ok_or_else(|| ctx.err(key, format!("unknown column `{name}`")))?;
    if name == schema.target {
        return Err(ctx.err(key, format!("`{name}` is the target")));
    }
    if !spec.is_numeric() {
        return Err(ctx.err(
            key,
            format!("`{name}` is categorical; expected a numeric column"),
        ));
    }
    Ok(spec)
}

fn unique(ctx: &Ctx<'_>, list: &[String], key: &str) -> Result<()> {
    let mut seen = HashSet::new();
    for (i, c) in list.iter().enumerate() {
        if !seen.insert(c) {
            return Err(ctx.err(format!("{key}[{i}]"), format!("`{c}` is listed twice")));
        }
    }
    Ok(())
}

fn resolve_transforms(
    ctx: &Ctx<'_>,
    schema: &Schema,
    file: super::file::TransformsFile,
) -> Result<TransformSettings> {
    let mut convert = Vec::new();
    for (i, c) in file.convert.unwrap_or_default().into_iter().enumerate() {
        let key = format!("transforms.convert[{i}]");
        let column = ctx.required(c.column, &format!("{key}.column"))?;
        let to = ctx.required(c.to, &format!("{key}.to"))?;
        let spec = numeric_column(ctx, schema, &format!("{key}.column"), &column)?;
        let from = spec.unit().ok_or_else(|| {
            ctx.err(
                format!("{key}.column"),
                format!("`{column}` has no unit in the schema"),
            )
        })?;
        let factor = units::factor(from, &to).ok_or_else(|| {
            ctx.err(
                format!("{key}.to"),
                format!(
                    "cannot convert `{column}` from `{from}` to `{to}` (known units: {})",
                    units::known_units()
                ),
            )
        })?;
        if convert
            .iter()
            .any(|(c, _, _): &(String, f64, String)| *c == column)
        {
            return Err(ctx.err(
                format!("{key}.column"),
                format!("`{column}` is converted twice"),
            ));
        }
        convert.push((column, factor, to));
    }
    let round = file.round.unwrap_or_default();
    unique(ctx, &round, "transforms.round")?;
    for (i, c) in round.iter().enumerate() {
        numeric_column(ctx, schema, &format!("transforms.round[{i}]"), c)?;
    }
    let mut bins = Vec::new();
    for (i, b) in file.bins.unwrap_or_default().into_iter().enumerate() {
        let key = format!("transforms.bins[{i}]");
        let column = ctx.required(b.column, &format!("{key}.column"))?;
        numeric_column(ctx, schema, &format!("{key}.column"), &column)?;
        let n = b.bins.unwrap_or(4);
        if !(2..=1000).contains(&n) {
            return Err(ctx.err(
                format!("{key}.bins"),
                format!("{n}, expected an integer in 2..=1000"),
            ));
        }
        if bins.iter().any(|(c, _): &(String, usize)| *c == column) {
            return Err(ctx.err(
                format!("{key}.column"),
                format!("`{column}` is binned twice"),
            ));
        }
        bins.push((column, n as usize));
    }
    let log1p = file.log1p.unwrap_or_default();
    unique(ctx, &log1p, "transforms.log1p")?;
    for (i, c) in log1p.iter().enumerate() {
        let spec = numeric_column(ctx, schema, &format!("transforms.log1p[{i}]"), c)?;
        if let Some((lo, _)) = spec.range()
            && lo <= -1.0
        {
            return Err(ctx.err(
                format!("transforms.log1p[{i}]"),
                format!("`{c}` allows values ≤ -1 (range starts at {lo}); log1p needs > -1"),
            ));
        }
    }
    let encode = match file.encode.as_deref().unwrap_or("one-hot") {
        "one-hot" => Encoding::OneHot,
        "ordinal" => Encoding::Ordinal,
        other => {
            return Err(ctx.err(
                "transforms.encode",
                format!("`{other}`, expected \"one-hot\" or \"ordinal\""),
            ));
        }
    };
    Ok(TransformSettings {
        convert,
        round,
        bins,
        log1p,
        scale: file.scale.unwrap_or(true),
        encode,
        dedup: file.dedup.unwrap_or(false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT: &str = include_str!("../../../../configs/obesity.toml");

    fn parse(text: &str) -> Result<Config> {
        Config::from_toml(text, Path::new("configs/test.toml"))
    }

    fn message(text: &str) -> String {
        parse(text).expect_err("must be rejected").to_string()
    }

    #[test]
    fn the_default_config_resolves() {
        let c = parse(DEFAULT).expect("default config is valid");
        assert_eq!(c.name, "obesity");
        assert_eq!(c.schema.classes().len(), 7);
        assert_eq!(c.schema.feature_columns().count(), 16);
        // The raw columns train better on this workload (the config's [features] comment).
        assert!(c.features.is_empty());
        assert!(c.transforms.round.is_empty() && c.transforms.bins.is_empty());
        assert!((c.inputs.height_to_m - 1.0).abs() < f64::EPSILON);
        assert_eq!(
            c.transforms.convert,
            vec![("Height".to_owned(), 100.0, "cm".to_owned())]
        );
        assert_eq!(
            c.cv,
            CvSettings {
                folds: 5,
                repeats: 1,
                seed: 42,
                stratify: true
            }
        );
        assert_eq!(c.data.sources.len(), 3);
    }

    #[test]
    fn unknown_keys_name_the_key_and_the_file() {
        let m = message(&DEFAULT.replace("[cv]\n", "[cv]\nfoldz = 3\n"));
        assert!(
            m.contains("configs/test.toml") && m.contains("foldz"),
            "{m}"
        );
        let m = message(&format!("{DEFAULT}\n[extra]\nx = 1\n"));
        assert!(
            m.contains("configs/test.toml") && m.contains("extra"),
            "{m}"
        );
    }

    #[test]
    fn invalid_values_name_the_key() {
        let cases = [
            ("folds = 5", "folds = 1", "`cv.folds`"),
            (
                "Default: 1.\nrepeats = 1",
                "Default: 1.\nrepeats = 0",
                "`cv.repeats`",
            ),
            ("seed = 42", "seed = -1", "`cv.seed`"),
            ("metric = \"accuracy\"", "metric = \"f1\"", "`task.metric`"),
            (
                "encode = \"one-hot\"",
                "encode = \"dummy\"",
                "`transforms.encode`",
            ),
            (
                "log1p = [\"Age\"]",
                "log1p = [\"Agee\"]",
                "`transforms.log1p[0]`",
            ),
            (
                "log1p = [\"Age\"]",
                "log1p = [\"Gender\"]",
                "`transforms.log1p[0]`",
            ),
            (
                "round = [\"FCVC\",",
                "round = [\"FCVC\", \"FCVC\",",
                "`transforms.round[1]`",
            ),
            ("bins = 4 }", "bins = 1 }", "`transforms.bins[0].bins`"),
            ("to = \"cm\"", "to = \"kg\"", "`transforms.convert[0].to`"),
            (
                "\"BMI\", \"BSA\"",
                "\"BMI\", \"BMX\"",
                "`features.enabled[1]`",
            ),
            (
                "male-level = \"Male\"",
                "male-level = \"M\"",
                "`features.inputs.male-level`",
            ),
            ("height = \"Height\"\n", "", "`features.inputs.height`"),
            (
                "target = \"NObeyesdad\"",
                "target = \"Gender2\"",
                "`schema.target`",
            ),
            (
                "target = \"NObeyesdad\"",
                "target = \"Age\"",
                "`schema.target`",
            ),
            (
                "range = [0.5, 2.5]",
                "range = [2.5, 0.5]",
                "`schema.columns[2].range`",
            ),
            (
                "type = \"numeric\"\nunit = \"years\"",
                "type = \"number\"\nunit = \"years\"",
                "`schema.columns[1].type`",
            ),
            (
                "levels = [\"Female\", \"Male\"]",
                "levels = [\"Male\", \"Male\"]",
                "`schema.columns[0].levels[1]`",
            ),
            (
                "sha256 = \"2060394fe563eefcdd81545c42435d399cd4fcfc6f12b75579db562adbefadcb\"",
                "sha256 = \"abc\"",
                "`data.sources[0].sha256`",
            ),
            ("train = \"s4e2_train.csv\"\n", "", "`data.train`"),
            (
                "\"BMI\", \"FAF\"",
                "\"BMI\", \"Gender\"",
                "`eda.columns[4]`",
            ),
        ];
        // The default config with every feature step on, so that each key has a value to spoil.
        let full = tabtune_test::engineered_config_text();
        for (from, to, key) in cases {
            assert!(full.contains(from), "test setup: {from}");
            let m = message(&full.replacen(from, to, 1));
            assert!(
                m.contains(key) && m.contains("configs/test.toml"),
                "{key}: {m}"
            );
        }
    }

    #[test]
    fn a_missing_config_file_is_bad_input() {
        let err = Config::load(Path::new("no/such/config.toml")).expect_err("missing");
        assert!(err.is_bad_input());
        assert!(
            err.to_string()
                .starts_with("no/such/config.toml: cannot read the config file")
        );
    }

    #[test]
    fn defaults_apply_when_keys_are_absent() {
        let minimal = r#"
[data]
train = "t.csv"
[schema]
target = "y"
[[schema.columns]]
name = "x"
type = "numeric"
[[schema.columns]]
name = "y"
type = "categorical"
levels = ["a", "b"]
"#;
        let c = parse(minimal).expect("minimal config");
        assert_eq!(c.name, "test");
        assert_eq!(c.metric, Metric::Accuracy);
        assert_eq!(c.data.dir, PathBuf::from("data"));
        assert!(c.features.is_empty());
        assert!(c.transforms.scale);
        assert_eq!(c.transforms.encode, Encoding::OneHot);
        assert_eq!(
            c.cv,
            CvSettings {
                folds: 5,
                repeats: 1,
                seed: 42,
                stratify: true
            }
        );
        assert_eq!(c.eda_columns, vec!["x".to_owned()]);
    }
}
