//! Out-of-fold predictions kept per trial, so the decision layer can blend trials after the
//! sweep without retraining them.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use ndarray::Array2;
use tabtune_features::io::write_bytes_atomic;

use crate::error::{PipelineError, Result};

const OOF_MAGIC: &[u8; 8] = b"TTOOF001";

/// Out-of-fold probabilities of the trials of one study, one file per trial number
/// (`trial-<n>.oof`: magic, rows and columns as u64 LE, then f32 LE values row-major).
#[derive(Clone, Debug)]
pub struct OofStore {
    dir: PathBuf,
}

impl OofStore {
    /// A store in `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, number: u64) -> PathBuf {
        self.dir.join(format!("trial-{number}.oof"))
    }

    /// Writes trial `number`'s OOF matrix (atomically: a temporary file renamed into place).
    pub fn put(&self, number: u64, oof: &Array2<f64>) -> Result<()> {
        std::fs::create_dir_all(&self.dir).map_err(|source| PipelineError::Io {
            path: self.dir.clone(),
            source,
        })?;
        let (r, c) = oof.dim();
        let mut buf = Vec::with_capacity(24 + r * c * 4);
        buf.extend_from_slice(OOF_MAGIC);
        buf.extend_from_slice(&(r as u64).to_le_bytes());
        buf.extend_from_slice(&(c as u64).to_le_bytes());
        for v in oof {
            buf.extend_from_slice(&(*v as f32).to_le_bytes());
        }
        write_bytes_atomic(&self.path(number), &buf)?;
        Ok(())
    }

    /// Reads trial `number`'s OOF matrix; `None` when the trial has none.
    pub fn get(&self, number: u64) -> Result<Option<Array2<f64>>> {
        let path = self.path(number);
        let bad = |reason: String| PipelineError::OofFile {
            path: path.clone(),
            reason,
        };
        let mut f = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(bad(e.to_string())),
        };
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes).map_err(|e| bad(e.to_string()))?;
        if bytes.len() < 24 || &bytes[..8] != OOF_MAGIC {
            return Err(bad("not an out-of-fold prediction file (bad magic)".into()));
        }
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&bytes[i..i + 8]);
            u64::from_le_bytes(w) as usize
        };
        let (r, c) = (word(8), word(16));
        let want = r
            .checked_mul(c)
            .and_then(|n| n.checked_mul(4))
            .map(|n| n + 24);
        if want != Some(bytes.len()) {
            return Err(bad(format!(
                "{r}x{c} values announced but the file has {} bytes",
                bytes.len()
            )));
        }
        let values: Vec<f64> = bytes[24..]
            .chunks_exact(4)
            .map(|b| f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
            .collect();
        Array2::from_shape_vec((r, c), values)
            .map(Some)
            .map_err(|e| bad(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn oof_matrices_round_trip_and_damage_is_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = OofStore::new(dir.path());
        let m = array![[0.25, 0.75], [0.5, 0.5], [1.0, 0.0]];
        store.put(3, &m).unwrap();
        assert_eq!(store.get(3).unwrap().unwrap(), m);
        assert!(store.get(4).unwrap().is_none());
        std::fs::write(
            dir.path().join("trial-5.oof"),
            b"TTOOF001\x09\0\0\0\0\0\0\0\x02\0\0\0\0\0\0\0",
        )
        .unwrap();
        let e = store.get(5).unwrap_err().to_string();
        assert!(e.contains("trial-5.oof") && e.contains("9x2"), "{e}");
        std::fs::write(dir.path().join("trial-6.oof"), b"garbage").unwrap();
        assert!(store.get(6).unwrap_err().to_string().contains("bad magic"));
    }
}
