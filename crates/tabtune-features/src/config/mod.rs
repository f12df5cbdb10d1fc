//! Configuration: the TOML file (`file`), and the resolved settings (`resolved`) that the rest
//! of the crate works with.

mod file;
mod resolved;

pub use file::ConfigFile;
pub use resolved::{
    Config, CvSettings, DataSettings, Direction, Encoding, ExtraTrain, FetchKind, FetchSource,
    MAX_EXTRA_REPEATS, Metric, TransformSettings,
};
