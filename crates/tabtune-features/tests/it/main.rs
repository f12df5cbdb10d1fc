//! Integration tests of tabtune-features: real datasets, every bad-input kind, the fitted
//! preprocessor's round trip.

mod bad_input;
mod pipeline;
mod real_data;

use std::path::{Path, PathBuf};

use tabtune_features::Config;

/// The default config with every feature step on (`tabtune_test::engineered_config`).
pub fn config() -> Config {
    Config::from_toml(
        &tabtune_test::engineered_config_text(),
        std::path::Path::new("obesity-engineered.toml"),
    )
    .expect("the engineered config is valid")
}

/// Writes `contents` to `name` in a fresh temporary folder.
pub fn write_file(contents: impl AsRef<[u8]>, name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(name);
    std::fs::write(&path, contents).expect("write fixture");
    (dir, path)
}

/// A file name for messages.
pub fn name(path: &Path) -> String {
    path.display().to_string()
}
