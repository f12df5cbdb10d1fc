//! Monitoring: a current table (a file, or the server's window of recent requests) against a
//! reference (usually the training data). Data drift per column with Evidently's default tests,
//! target and prediction drift, data quality, and model performance when labels are known; HTML
//! renderings with feature `report`.

mod drift;
#[cfg(feature = "report")]
mod html;
mod performance;
mod quality;

pub use drift::{DriftReport, FeatureDrift, TargetDrift, data_drift, feature_drift, target_drift};
#[cfg(feature = "report")]
pub use html::{
    drift_html, feature_drift_html, monitor_html, performance_html, quality_html, target_drift_html,
};
pub use performance::{ClassScores, Performance, performance};
pub use quality::{ColumnQuality, ColumnSummary, LevelCount, QualityReport, data_quality};
