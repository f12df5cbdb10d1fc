//! Self-contained HTML reports (inline CSS and SVG charts drawn with plotters, no scripts, no
//! network): the EDA report, and the building blocks later reports share.

pub mod charts;
mod eda;
pub mod html;

pub use eda::{EdaInput, eda_html};
