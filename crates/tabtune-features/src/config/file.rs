//! Layer 1: the TOML schema of `configs/*.toml`, every field optional and documented with its
//! default. Unknown keys are rejected (`deny_unknown_fields`).

use serde::Deserialize;

/// A whole config file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ConfigFile {
    /// `[task]`.
    pub task: Option<TaskFile>,
    /// `[data]`.
    pub data: Option<DataFile>,
    /// `[schema]` (required).
    pub schema: Option<SchemaFile>,
    /// `[features]`.
    pub features: Option<FeaturesFile>,
    /// `[transforms]`.
    pub transforms: Option<TransformsFile>,
    /// `[cv]`.
    pub cv: Option<CvFile>,
    /// `[eda]`.
    pub eda: Option<EdaFile>,
    /// `[run]`: experiment settings, kept as written for the experiment layer
    /// (`tabtune-pipeline` checks them when `tabtune run` reads them).
    pub run: Option<toml::Table>,
}

/// `[task]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TaskFile {
    /// Default: the config file's stem.
    pub name: Option<String>,
    /// `accuracy` (default) or `logloss`.
    pub metric: Option<String>,
}

/// `[data]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DataFile {
    /// Default: `data`.
    pub dir: Option<String>,
    /// Required.
    pub train: Option<String>,
    /// Default: none.
    pub test: Option<String>,
    /// Default: none.
    pub current: Option<String>,
    /// Default: none.
    pub sources: Option<Vec<SourceFile>>,
    /// Default: none. Extra labelled files appended to the training rows of every fold.
    pub extra_train: Option<Vec<ExtraTrainFile>>,
}

/// `[[data.extra-train]]`: a labelled file appended to the training rows of every fold
/// (never to validation rows, never scored on).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ExtraTrainFile {
    /// Default: the file's stem.
    pub name: Option<String>,
    /// Required: the file, inside `data.dir`.
    pub file: Option<String>,
    /// Default: none. The file's column names mapped to the schema's (`{ "Sex" = "Gender" }`).
    pub columns: Option<std::collections::BTreeMap<String, String>>,
    /// Default: 1. Copies appended (0..=4) unless a sweep samples `extra_repeats`.
    pub repeats: Option<i64>,
}

/// `[[data.sources]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SourceFile {
    /// Required: the name `data fetch --source` selects.
    pub name: Option<String>,
    /// Required: `url` or `kaggle-competition`.
    pub kind: Option<String>,
    /// For `url`.
    pub url: Option<String>,
    /// For `kaggle-competition`.
    pub competition: Option<String>,
    /// File inside a zip archive.
    pub member: Option<String>,
    /// Required: file name written into the data folder.
    pub file: Option<String>,
    /// Required: expected sha256 of `file`.
    pub sha256: Option<String>,
}

/// `[schema]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SchemaFile {
    /// Required.
    pub target: Option<String>,
    /// Default: none.
    pub id: Option<String>,
    /// Required, at least one feature column.
    pub columns: Option<Vec<ColumnFile>>,
}

/// `[[schema.columns]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ColumnFile {
    /// Required.
    pub name: Option<String>,
    /// Required: `numeric` or `categorical`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Numeric only.
    pub unit: Option<String>,
    /// Numeric only: inclusive `[min, max]`.
    pub range: Option<Vec<f64>>,
    /// Categorical only, required there.
    pub levels: Option<Vec<String>>,
    /// Free text.
    pub description: Option<String>,
}

/// `[features]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FeaturesFile {
    /// Default: none.
    pub enabled: Option<Vec<String>>,
    /// Column roles the formulas read.
    pub inputs: Option<InputsFile>,
}

/// `[features.inputs]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[allow(missing_docs)]
pub struct InputsFile {
    pub height: Option<String>,
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

/// `[transforms]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TransformsFile {
    /// Default: none.
    pub convert: Option<Vec<ConvertFile>>,
    /// Default: none.
    pub round: Option<Vec<String>>,
    /// Default: none.
    pub bins: Option<Vec<BinsFile>>,
    /// Default: none.
    pub log1p: Option<Vec<String>>,
    /// Default: true.
    pub scale: Option<bool>,
    /// Default: `one-hot`.
    pub encode: Option<String>,
    /// Default: false.
    pub dedup: Option<bool>,
}

/// One `[[transforms.convert]]` entry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ConvertFile {
    /// Required.
    pub column: Option<String>,
    /// Required: target unit.
    pub to: Option<String>,
}

/// One `[[transforms.bins]]` entry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BinsFile {
    /// Required.
    pub column: Option<String>,
    /// Default: 4.
    pub bins: Option<i64>,
}

/// `[cv]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CvFile {
    /// Default: 5.
    pub folds: Option<i64>,
    /// Default: 1.
    pub repeats: Option<i64>,
    /// Default: 42.
    pub seed: Option<i64>,
    /// Default: true.
    pub stratify: Option<bool>,
}

/// `[eda]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct EdaFile {
    /// Default: every numeric schema column.
    pub columns: Option<Vec<String>>,
}
