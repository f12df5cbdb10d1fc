//! Atomic writes: write into a temporary file beside the target, then rename over it, so a
//! reader never sees a half-written file.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::{FeaturesError, Result};

/// Writes `path` atomically: `write` fills a temporary file in the same folder, which is
/// flushed, synced and renamed over `path` only when `write` succeeds. Parent folders are
/// created.
pub fn write_atomic<F>(path: &Path, write: F) -> Result<()>
where
    F: FnOnce(&mut BufWriter<File>) -> Result<()>,
{
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(|e| FeaturesError::io(dir, e))?;
    let mut builder = tempfile::Builder::new();
    builder.prefix(".tabtune-").suffix(".tmp");
    // Temporary files are created private (0600); what we publish is an ordinary file.
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644));
    let tmp = builder
        .tempfile_in(dir)
        .map_err(|e| FeaturesError::io(dir, e))?;
    let (file, tmp_path) = tmp.into_parts();
    let mut out = BufWriter::new(file);
    write(&mut out)?;
    let file = out
        .into_inner()
        .map_err(|e| FeaturesError::io(path, e.into_error()))?;
    file.sync_all().map_err(|e| FeaturesError::io(path, e))?;
    tmp_path
        .persist(path)
        .map_err(|e| FeaturesError::io(path, e.error))?;
    Ok(())
}

/// The sha256 of a file, as lower-case hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = File::open(path).map_err(|e| FeaturesError::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| FeaturesError::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

/// Lower-case hex of bytes.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Writes `bytes` to `path` atomically (see [`write_atomic`]).
pub fn write_bytes_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic(path, |w| {
        w.write_all(bytes).map_err(|e| FeaturesError::io(path, e))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_leaves_no_file_and_no_temp() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("out.txt");
        let err = write_atomic(&target, |w| {
            w.write_all(b"half")
                .map_err(|e| FeaturesError::io("x", e))?;
            Err(FeaturesError::Shape("boom".into()))
        });
        assert!(err.is_err());
        assert!(!target.exists());
        assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 0);
    }

    #[test]
    fn a_write_replaces_the_old_file_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("sub/out.txt");
        write_bytes_atomic(&target, b"one").expect("first");
        write_bytes_atomic(&target, b"two").expect("second");
        assert_eq!(std::fs::read(&target).expect("read"), b"two");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&target)
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(
                mode & 0o777,
                0o644,
                "published files are world-readable like any other"
            );
        }
        assert_eq!(
            sha256_file(&target).expect("hash"),
            "3fc4ccfe745870e2c0d99f71f30ff0656c8dedd41cc1d7d3d376b0dbe685e2f3"
        );
    }
}
