//! Writing a [`FeatureMatrix`] as CSV or Parquet: the id column first (when present), the
//! features, then the target's class name (when present).

use std::path::Path;

use crate::error::{FeaturesError, Result};
use crate::preprocess::FeatureMatrix;

/// Output file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    /// Comma-separated text.
    Csv,
    /// Apache Parquet (needs the `polars` feature).
    Parquet,
}

impl OutputFormat {
    /// The format a file name's extension asks for.
    pub fn from_path(path: &Path) -> Result<Self> {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("csv") => Ok(Self::Csv),
            Some("parquet" | "pq") => Ok(Self::Parquet),
            _ => Err(FeaturesError::bad_file(
                path,
                "unknown output format; expected a file name ending in .csv or .parquet",
            )),
        }
    }
}

/// Writes the matrix atomically. `id_name` and `target_name` name those columns.
pub fn write_matrix(
    path: &Path,
    matrix: &FeatureMatrix,
    id_name: &str,
    target_name: &str,
) -> Result<()> {
    match OutputFormat::from_path(path)? {
        OutputFormat::Csv => write_csv(path, matrix, id_name, target_name),
        OutputFormat::Parquet => write_parquet(path, matrix, id_name, target_name),
    }
}

fn write_csv(path: &Path, m: &FeatureMatrix, id_name: &str, target_name: &str) -> Result<()> {
    super::write_atomic(path, |out| {
        let to_err = |e: csv::Error| FeaturesError::Write {
            path: path.to_owned(),
            message: e.to_string(),
        };
        let mut w = csv::Writer::from_writer(out);
        let mut header: Vec<&str> = Vec::with_capacity(m.names.len() + 2);
        if m.ids.is_some() {
            header.push(id_name);
        }
        header.extend(m.names.iter().map(String::as_str));
        if m.target.is_some() {
            header.push(target_name);
        }
        w.write_record(&header).map_err(to_err)?;
        let mut record: Vec<String> = Vec::with_capacity(header.len());
        for i in 0..m.values.nrows() {
            record.clear();
            if let Some(ids) = &m.ids {
                record.push(ids[i].clone());
            }
            // f32 Display is the shortest text that reads back to the same f32.
            record.extend(m.values.row(i).iter().map(f32::to_string));
            if let Some(t) = &m.target {
                record.push(m.classes[t[i] as usize].clone());
            }
            w.write_record(&record).map_err(to_err)?;
        }
        w.flush().map_err(|e| FeaturesError::io(path, e))
    })
}

#[cfg(feature = "polars")]
fn write_parquet(path: &Path, m: &FeatureMatrix, id_name: &str, target_name: &str) -> Result<()> {
    super::parquet::write_matrix(path, m, id_name, target_name)
}

#[cfg(not(feature = "polars"))]
fn write_parquet(path: &Path, _: &FeatureMatrix, _: &str, _: &str) -> Result<()> {
    Err(FeaturesError::bad_file(
        path,
        "Parquet output needs tabtune-features' `polars` feature; write .csv instead",
    ))
}
