//! Configuration: the TOML file (`file`), and the resolved settings (`resolved`) that the rest
//! of the crate works with.

mod file;
mod resolved;

pub use file::ConfigFile;
pub use resolved::{
    Config, CvSettings, DataSettings, Encoding, FetchKind, FetchSource, Metric, RunSettings,
    RunSweep, TransformSettings,
};
