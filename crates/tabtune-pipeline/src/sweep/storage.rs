//! Where studies live: the storage URL, and each study's folder of files (its report, its
//! out-of-fold predictions, the feature list of a selection study).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tabtune_tune::storage::{Storage, open};

use crate::error::{PipelineError, Result};

/// Where studies go when no storage URL is given (relative to the current directory).
pub const DEFAULT_STORAGE: &str = "sqlite:///reports/studies.db";

/// Opens the storage, creating the folder of the default SQLite file.
pub fn open_storage(url: &str) -> Result<Arc<dyn Storage>> {
    if url == DEFAULT_STORAGE {
        std::fs::create_dir_all("reports").map_err(|source| PipelineError::Io {
            path: PathBuf::from("reports"),
            source,
        })?;
    }
    Ok(Arc::new(open(url)?))
}

/// Where a study's files go: `reports/studies/<study>/`.
pub fn study_dir(study: &str) -> PathBuf {
    Path::new("reports/studies").join(sanitize(study))
}

/// A study name as a file name: anything but ASCII letters, digits, `-`, `_` and `.` becomes
/// `_`.
pub fn sanitize(study: &str) -> String {
    study
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn study_names_become_safe_folder_names() {
        assert_eq!(sanitize("obesity-gbdt"), "obesity-gbdt");
        assert_eq!(sanitize("a/b c@d"), "a_b_c_d");
        assert_eq!(study_dir("x/y"), PathBuf::from("reports/studies/x_y"));
    }
}
