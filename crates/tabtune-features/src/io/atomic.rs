//! Safe output writes. A path names one of:
//! - `-`: standard output, written through;
//! - a regular file, or a path that does not exist yet: written atomically (a temporary file
//!   beside it, flushed, synced and renamed over it), so a reader never sees a half-written
//!   file. A symbolic link is resolved first and its target replaced: the link stays a link
//!   (`--output /dev/stdout` must never replace the system's link with a file);
//! - a FIFO or a character device (`/dev/null`, `/dev/full`, a terminal), and any path in
//!   `/proc` or `/dev` (`/proc/self/fd/1`, `/dev/stdout` of a redirected shell): written
//!   through in place (appended), never replaced (a failed write into a stream may leave part
//!   of the output in it, as with any pipe);
//! - anything else (a folder, a block device, a socket) is refused with an error naming it.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{FeaturesError, Result};

/// The most symbolic links followed when resolving an output path (Linux's own limit).
const MAX_LINKS: usize = 40;

/// Where a write to a path goes (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutputTarget {
    /// `-`: standard output.
    Stdout,
    /// A regular file or a new file, replaced atomically; a symbolic link is already resolved
    /// to the file it points to.
    File(PathBuf),
    /// A FIFO or a character device, written through in place.
    Stream(PathBuf),
}

impl OutputTarget {
    /// Decides where a write to `path` goes, following symbolic links (dangling ones too: the
    /// file is created where the link points).
    pub fn resolve(path: &Path) -> Result<Self> {
        if path.as_os_str() == "-" {
            return Ok(Self::Stdout);
        }
        match std::fs::metadata(path) {
            Ok(meta) => {
                let kind = meta.file_type();
                if kind.is_file() && in_system_tree(path) {
                    // `/proc/self/fd/1`, `/dev/stdout` of a redirected stream: append through
                    // the link, never rename inside /proc or /dev.
                    return Ok(Self::Stream(path.to_owned()));
                }
                if kind.is_file() {
                    let is_link =
                        std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
                    if is_link {
                        let real =
                            std::fs::canonicalize(path).map_err(|e| FeaturesError::io(path, e))?;
                        return Ok(Self::File(real));
                    }
                    return Ok(Self::File(path.to_owned()));
                }
                if is_stream(kind) {
                    return Ok(Self::Stream(path.to_owned()));
                }
                Err(FeaturesError::bad_file(
                    path,
                    format!(
                        "is {}; expected a file name, `-` (standard output), a FIFO or a \
                         character device",
                        describe(kind)
                    ),
                ))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Ok(Self::File(resolve_dangling(path)?))
            }
            Err(e) => Err(FeaturesError::io(path, e)),
        }
    }
}

/// Whether the folder holding `path` is under `/proc` or `/dev`, where nothing is renamed.
fn in_system_tree(path: &Path) -> bool {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::canonicalize(parent).is_ok_and(|p| p.starts_with("/proc") || p.starts_with("/dev"))
}

#[cfg(unix)]
fn is_stream(kind: std::fs::FileType) -> bool {
    use std::os::unix::fs::FileTypeExt as _;
    kind.is_fifo() || kind.is_char_device()
}

#[cfg(not(unix))]
fn is_stream(_: std::fs::FileType) -> bool {
    false
}

fn describe(kind: std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt as _;
        if kind.is_block_device() {
            return "a block device";
        }
        if kind.is_socket() {
            return "a socket";
        }
    }
    if kind.is_dir() {
        "a folder"
    } else {
        "not a regular file"
    }
}

/// A path that does not exist: itself, or, when it is a dangling symbolic link (chain), the
/// path the last link points to.
fn resolve_dangling(path: &Path) -> Result<PathBuf> {
    let mut current = path.to_owned();
    for _ in 0..MAX_LINKS {
        let is_link = std::fs::symlink_metadata(&current).is_ok_and(|m| m.file_type().is_symlink());
        if !is_link {
            return Ok(current);
        }
        let link = std::fs::read_link(&current).map_err(|e| FeaturesError::io(&current, e))?;
        current = match current.parent() {
            Some(parent) if link.is_relative() => parent.join(link),
            _ => link,
        };
    }
    Err(FeaturesError::bad_file(
        path,
        format!("more than {MAX_LINKS} symbolic links to follow; expected a file name"),
    ))
}

/// Writes `path` safely (see the module docs): `write` fills a buffered file. For a regular or
/// new file that is a temporary file in the same folder, renamed over the target only when
/// `write` succeeds (parent folders are created; an existing file's permissions are kept);
/// `-`, FIFOs and character devices are written through.
pub fn write_atomic<F>(path: &Path, write: F) -> Result<()>
where
    F: FnOnce(&mut BufWriter<File>) -> Result<()>,
{
    match OutputTarget::resolve(path)? {
        OutputTarget::Stdout => {
            let file = stdout_file().map_err(|e| FeaturesError::io(path, e))?;
            write_through(path, file, write)
        }
        OutputTarget::Stream(target) => {
            // No create, no truncate: the device or FIFO stays what it is (and a redirected
            // stdout reached through /proc is appended to, as the shell opened it).
            let file = File::options()
                .append(true)
                .open(&target)
                .map_err(|e| FeaturesError::io(&target, e))?;
            write_through(&target, file, write)
        }
        OutputTarget::File(target) => replace_file(&target, write),
    }
}

/// Standard output as a `File` (a duplicate of descriptor 1: same position and mode).
#[cfg(unix)]
fn stdout_file() -> std::io::Result<File> {
    use std::os::fd::AsFd as _;
    let fd = std::io::stdout().as_fd().try_clone_to_owned()?;
    Ok(File::from(fd))
}

#[cfg(not(unix))]
fn stdout_file() -> std::io::Result<File> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "writing to `-` (standard output) is supported on Unix only",
    ))
}

fn write_through<F>(path: &Path, file: File, write: F) -> Result<()>
where
    F: FnOnce(&mut BufWriter<File>) -> Result<()>,
{
    let mut out = BufWriter::new(file);
    write(&mut out)?;
    out.into_inner()
        .map_err(|e| FeaturesError::io(path, e.into_error()))?;
    Ok(())
}

fn replace_file<F>(path: &Path, write: F) -> Result<()>
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
    // Temporary files are created private (0600); what we publish is an ordinary file, or keeps
    // the permissions of the file it replaces.
    let existing = std::fs::metadata(path).ok().map(|m| m.permissions());
    #[cfg(unix)]
    builder.permissions(
        existing
            .clone()
            .unwrap_or_else(|| std::os::unix::fs::PermissionsExt::from_mode(0o644)),
    );
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
    #[cfg(not(unix))]
    if let Some(p) = existing {
        let _ = std::fs::set_permissions(&tmp_path, p);
    }
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

/// The sha256 of bytes, as lower-case hex.
pub fn sha256_bytes(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// The sha256 of a JSON value in a canonical form: compact, object keys sorted (by their
/// UTF-8 bytes) at every level, numbers and strings as `serde_json` writes them. The same
/// value gives the same digest whatever the key order or whitespace of the file it came from
/// (used for `bundle.json`'s own checksum).
pub fn canonical_json_sha256(value: &serde_json::Value) -> String {
    let mut out = Vec::new();
    canonical(value, &mut out);
    sha256_bytes(&out)
}

fn canonical(value: &serde_json::Value, out: &mut Vec<u8>) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                canonical(&Value::String(key.clone()), out);
                out.push(b':');
                canonical(&map[key.as_str()], out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                canonical(item, out);
            }
            out.push(b']');
        }
        scalar => {
            serde_json::to_writer(&mut *out, scalar).expect("a JSON scalar always serializes");
        }
    }
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

/// Writes `bytes` to `path` safely (see [`write_atomic`]).
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
            // A replaced file keeps its own permissions (a private file stays private).
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600))
                .expect("chmod");
            write_bytes_atomic(&target, b"three").expect("third");
            let mode = std::fs::metadata(&target)
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
            write_bytes_atomic(&target, b"two").expect("again");
        }
        assert_eq!(
            sha256_file(&target).expect("hash"),
            "3fc4ccfe745870e2c0d99f71f30ff0656c8dedd41cc1d7d3d376b0dbe685e2f3"
        );
        assert_eq!(
            sha256_bytes(b"two"),
            "3fc4ccfe745870e2c0d99f71f30ff0656c8dedd41cc1d7d3d376b0dbe685e2f3"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_stays_a_link_and_its_target_is_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let real = dir.path().join("real.csv");
        std::fs::write(&real, "old").expect("write");
        let link = dir.path().join("link.csv");
        std::os::unix::fs::symlink("real.csv", &link).expect("symlink");
        write_bytes_atomic(&link, b"new").expect("through the link");
        assert!(
            std::fs::symlink_metadata(&link)
                .expect("meta")
                .file_type()
                .is_symlink(),
            "the link was replaced by a file"
        );
        assert_eq!(std::fs::read(&real).expect("read"), b"new");
        // A dangling link: the file is created where it points.
        let dangling = dir.path().join("dangling.csv");
        std::os::unix::fs::symlink(dir.path().join("sub/made.csv"), &dangling).expect("symlink");
        write_bytes_atomic(&dangling, b"made").expect("through the dangling link");
        assert!(
            std::fs::symlink_metadata(&dangling)
                .expect("meta")
                .file_type()
                .is_symlink()
        );
        assert_eq!(
            std::fs::read(dir.path().join("sub/made.csv")).expect("read"),
            b"made"
        );
        // A loop of links is an error naming the path, not a hang.
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::os::unix::fs::symlink(&b, &a).expect("symlink");
        std::os::unix::fs::symlink(&a, &b).expect("symlink");
        let err = write_bytes_atomic(&a, b"x").expect_err("loop");
        assert!(err.to_string().contains("symbolic links"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_is_written_through_and_stays_a_fifo() {
        use std::os::unix::fs::FileTypeExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("pipe");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo runs");
        assert!(made.success(), "mkfifo failed");
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::read(&fifo).expect("read the fifo"))
        };
        write_bytes_atomic(&fifo, b"through the pipe").expect("write");
        assert_eq!(reader.join().expect("reader"), b"through the pipe");
        let kind = std::fs::symlink_metadata(&fifo).expect("meta").file_type();
        assert!(kind.is_fifo(), "the FIFO was replaced: {kind:?}");
        assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 1);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn character_devices_are_written_in_place_never_replaced() {
        use std::os::unix::fs::FileTypeExt as _;
        write_bytes_atomic(Path::new("/dev/null"), b"discarded").expect("/dev/null");
        let err = write_bytes_atomic(Path::new("/dev/full"), b"no room").expect_err("full");
        assert!(err.to_string().contains("/dev/full"), "{err}");
        assert!(!err.is_bad_input(), "a device error is a runtime failure");
        for device in ["/dev/null", "/dev/full"] {
            let kind = std::fs::symlink_metadata(device).expect("meta").file_type();
            assert!(kind.is_char_device(), "{device} is no longer a device");
        }
        // Whatever fd 1 is (a pipe, a terminal, a redirected file), it is written through.
        let fd1 = OutputTarget::resolve(Path::new("/proc/self/fd/1")).expect("fd 1");
        assert_eq!(fd1, OutputTarget::Stream(PathBuf::from("/proc/self/fd/1")));
        assert_eq!(
            OutputTarget::resolve(Path::new("-")).expect("stdout"),
            OutputTarget::Stdout
        );
    }

    #[test]
    fn canonical_digests_ignore_key_order_and_whitespace_only() {
        let a: serde_json::Value =
            serde_json::from_str(r#"{"b": [1, {"y": 2.5, "x": "é"}], "a": null}"#).expect("a");
        let b: serde_json::Value =
            serde_json::from_str(r#"{"a":null,"b":[1,{"x":"é","y":2.5}]}"#).expect("b");
        assert_eq!(canonical_json_sha256(&a), canonical_json_sha256(&b));
        let mut out = Vec::new();
        canonical(&a, &mut out);
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            r#"{"a":null,"b":[1,{"x":"é","y":2.5}]}"#
        );
        let c: serde_json::Value =
            serde_json::from_str(r#"{"a":null,"b":[1,{"x":"é","y":2.51}]}"#).expect("c");
        assert_ne!(canonical_json_sha256(&a), canonical_json_sha256(&c));
    }

    #[test]
    fn a_folder_is_refused_by_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = write_bytes_atomic(dir.path(), b"x").expect_err("folder");
        let text = err.to_string();
        assert!(
            text.contains(&dir.path().display().to_string()) && text.contains("a folder"),
            "{text}"
        );
        assert!(err.is_bad_input());
    }
}
