//! Schema, validated loading, feature engineering, fitted preprocessors, cross-validation
//! splits and column statistics for tabtune.
//!
//! Owns: the config file format (`configs/*.toml`), the [`Schema`], loading CSV/Parquet into a
//! validated [`Table`] with row-level [`ValidationReport`]s, engineered features ([`engineer`]),
//! transforms ([`transform`]), the fitted [`Preprocessor`] (JSON), [`KFold`] splits and
//! [`stats`], and the [`drift`] tests monitoring uses. Must not depend on burn, tokio or clap.
//!
//! Cargo features:
//! - `polars`: Parquet input and output through polars.
//! - `report`: self-contained HTML reports with SVG charts ([`report`]).
//! - `fetch`: dataset downloads for `tabtune data fetch` ([`fetch`]).
#![warn(missing_docs)]

pub mod config;
pub mod drift;
pub mod engineer;
mod error;
#[cfg(feature = "fetch")]
pub mod fetch;
mod hash;
pub mod io;
mod preprocess;
#[cfg(feature = "report")]
pub mod report;
pub mod rng;
mod schema;
mod split;
pub mod stats;
mod table;
pub mod text;
pub mod transform;
pub mod units;
mod validate;

pub use config::{Config, Direction, Metric};
pub use error::{FeaturesError, Result};
pub use preprocess::{
    CategoricalStep, EngineeredStep, FeatureMatrix, FittedOn, NumericStep,
    PREPROCESSOR_FORMAT_VERSION, Preprocessor, PreprocessorSpec,
};
pub use schema::{ColumnKind, ColumnSpec, Schema};
pub use split::{Fold, KFold};
pub use table::{Column, ColumnValues, Duplicate, Table};
pub use validate::{Issue, IssueKind, OnInvalid, TargetPresence, ValidationReport};
