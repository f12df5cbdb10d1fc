//! Dataset downloads for `tabtune data fetch`: public URLs and the Kaggle API, zip members,
//! sha256 verification, atomic writes. Nothing is written unless the checksum matches.

use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::config::{FetchKind, FetchSource};
use crate::error::{FeaturesError, Result};
use crate::io::{sha256_file, write_bytes_atomic};

/// Environment variable with the Kaggle user name.
pub const KAGGLE_USERNAME: &str = "KAGGLE_USERNAME";
/// Environment variable with the Kaggle API key.
pub const KAGGLE_KEY: &str = "KAGGLE_KEY";
/// Environment variable with the folder holding `kaggle.json` (default `~/.kaggle`).
pub const KAGGLE_CONFIG_DIR: &str = "KAGGLE_CONFIG_DIR";
const KAGGLE_API: &str = "https://www.kaggle.com/api/v1";

/// What `fetch` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FetchStatus {
    /// The file was there with the right checksum; nothing was downloaded.
    AlreadyPresent,
    /// The file was downloaded and verified.
    Downloaded,
}

/// The result of fetching one source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchOutcome {
    /// The file in the data folder.
    pub file: PathBuf,
    /// What happened.
    pub status: FetchStatus,
    /// Its sha256.
    pub sha256: String,
}

/// Fetches one source into `dir`. An existing file with the right checksum is kept; one with
/// another checksum is an error unless `force`. `progress(done, total)` is called as bytes
/// arrive.
pub fn fetch(
    source: &FetchSource,
    dir: &Path,
    force: bool,
    progress: &mut dyn FnMut(u64, Option<u64>),
) -> Result<FetchOutcome> {
    let target = dir.join(&source.file);
    if target.exists() {
        let sha256 = sha256_file(&target)?;
        if sha256 == source.sha256 {
            return Ok(FetchOutcome {
                file: target,
                status: FetchStatus::AlreadyPresent,
                sha256,
            });
        }
        if !force {
            return Err(FeaturesError::Fetch(format!(
                "{} exists with sha256 {sha256}, but source `{}` expects {}; move it away or \
                 pass --force to replace it",
                target.display(),
                source.name,
                source.sha256
            )));
        }
    }
    let (url, auth) = match &source.kind {
        FetchKind::Url(url) => (url.clone(), None),
        FetchKind::KaggleCompetition(competition) => {
            let member = source.member.as_deref().unwrap_or(&source.file);
            (
                kaggle_url(competition, member),
                Some(kaggle_credentials(competition)?),
            )
        }
    };
    let body = download(&url, auth.as_deref(), source, dir, progress)?;
    let bytes = match &source.member {
        Some(member) if body.starts_with(b"PK\x03\x04") => unzip(&body, member, &url)?,
        None if body.starts_with(b"PK\x03\x04") => {
            return Err(FeaturesError::Fetch(format!(
                "{url} returned a zip archive; set `member` in the source `{}` to the file inside",
                source.name
            )));
        }
        _ => body,
    };
    let sha256 = crate::io::hex(&Sha256::digest(&bytes));
    if sha256 != source.sha256 {
        return Err(FeaturesError::Fetch(format!(
            "{url}: downloaded {} has sha256 {sha256}, expected {}; nothing was written (the \
             source may have changed: check it, then update `sha256` in the config)",
            source.file, source.sha256
        )));
    }
    write_bytes_atomic(&target, &bytes)?;
    Ok(FetchOutcome {
        file: target,
        status: FetchStatus::Downloaded,
        sha256,
    })
}

/// The Kaggle API URL of one competition file.
fn kaggle_url(competition: &str, file: &str) -> String {
    format!("{KAGGLE_API}/competitions/data/download/{competition}/{file}")
}

/// `Basic` credentials from the environment or `kaggle.json`.
fn kaggle_credentials(competition: &str) -> Result<String> {
    let from_env = std::env::var(KAGGLE_USERNAME)
        .ok()
        .zip(std::env::var(KAGGLE_KEY).ok());
    let (user, key) = match from_env {
        Some(pair) => pair,
        None => {
            let dir = std::env::var_os(KAGGLE_CONFIG_DIR)
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".kaggle")));
            kaggle_json_credentials(dir.as_deref(), competition)?
        }
    };
    Ok(format!(
        "Basic {}",
        base64(format!("{user}:{key}").as_bytes())
    ))
}

/// Credentials from `kaggle.json` in `dir` (`$KAGGLE_CONFIG_DIR` or `~/.kaggle`).
fn kaggle_json_credentials(dir: Option<&Path>, competition: &str) -> Result<(String, String)> {
    let path = dir
        .map(|d| d.join("kaggle.json"))
        .ok_or_else(|| no_credentials(competition))?;
    let text = std::fs::read_to_string(&path).map_err(|_| no_credentials(competition))?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        FeaturesError::Fetch(format!(
            "{}: not valid JSON ({e}); expected {{\"username\": ..., \"key\": ...}}",
            path.display()
        ))
    })?;
    let field = |k: &str| {
        json.get(k)
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
    };
    field("username").zip(field("key")).ok_or_else(|| {
        FeaturesError::Fetch(format!(
            "{}: expected the fields \"username\" and \"key\"",
            path.display()
        ))
    })
}

fn no_credentials(competition: &str) -> FeaturesError {
    FeaturesError::Fetch(format!(
        "no Kaggle credentials: set {KAGGLE_USERNAME} and {KAGGLE_KEY}, or put kaggle.json (from \
         kaggle.com > Settings > API > Create New Token) in ~/.kaggle/; accept the rules of \
         https://www.kaggle.com/competitions/{competition} first"
    ))
}

fn download(
    url: &str,
    auth: Option<&str>,
    source: &FetchSource,
    dir: &Path,
    progress: &mut dyn FnMut(u64, Option<u64>),
) -> Result<Vec<u8>> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(20)))
        .timeout_global(Some(Duration::from_mins(30)))
        .user_agent(concat!("tabtune/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let mut request = agent.get(url);
    if let Some(auth) = auth {
        request = request.header("Authorization", auth);
    }
    let offline = |e: &dyn std::fmt::Display| {
        FeaturesError::Fetch(format!(
            "cannot download {url}: {e}\nOffline? Get `{}` (sha256 {}) another way and copy it \
             into {}, or point --data-dir / TABTUNE_DATA_DIR at a folder that has it; then run \
             this command again to verify it.",
            source.file,
            source.sha256,
            dir.display()
        ))
    };
    let mut response = match request.call() {
        Ok(r) => r,
        Err(ureq::Error::StatusCode(code @ (401 | 403))) => {
            return Err(FeaturesError::Fetch(format!(
                "{url}: HTTP {code}: the server refused the credentials; for Kaggle, check \
                 {KAGGLE_USERNAME}/{KAGGLE_KEY} and accept the competition's rules on its page"
            )));
        }
        Err(ureq::Error::StatusCode(code)) => {
            return Err(FeaturesError::Fetch(format!("{url}: HTTP {code}")));
        }
        Err(e) => return Err(offline(&e)),
    };
    let total = response
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut reader = response.body_mut().as_reader();
    let mut body = Vec::with_capacity(total.unwrap_or(1 << 20) as usize);
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = reader.read(&mut buf).map_err(|e| offline(&e))?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&buf[..n]);
        progress(body.len() as u64, total);
    }
    Ok(body)
}

fn unzip(archive: &[u8], member: &str, url: &str) -> Result<Vec<u8>> {
    let err = |m: String| FeaturesError::Fetch(format!("{url}: {m}"));
    let mut zip = zip::ZipArchive::new(Cursor::new(archive))
        .map_err(|e| err(format!("not a readable zip archive: {e}")))?;
    let names: Vec<String> = zip
        .file_names()
        .filter_map(|n| n.ok().map(std::borrow::Cow::into_owned))
        .collect();
    let mut file = zip.by_name(member).map_err(|_| {
        err(format!(
            "the archive has no `{member}`; it holds {}",
            names.join(", ")
        ))
    })?;
    let mut out = Vec::new();
    file.read_to_end(&mut out)
        .map_err(|e| err(format!("cannot extract `{member}`: {e}")))?;
    Ok(out)
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    use super::*;

    /// Serves one HTTP response on loopback; returns the URL and the request head it got.
    fn serve_once(status: &str, body: Vec<u8>) -> (String, std::thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let url = format!("http://{}/file", listener.local_addr().expect("addr"));
        let status = status.to_owned();
        let handle = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("one request");
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut head = String::new();
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).expect("request line");
                if line == "\r\n" || line.is_empty() {
                    break;
                }
                head.push_str(&line);
            }
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            stream.write_all(response.as_bytes()).expect("write head");
            stream.write_all(&body).expect("write body");
            head
        });
        (url, handle)
    }

    fn zip_of(name: &str, contents: &[u8]) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        let mut zip = zip::ZipWriter::new(&mut out);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        zip.start_file(name, options).expect("start");
        zip.write_all(contents).expect("write");
        zip.finish().expect("finish");
        out.into_inner()
    }

    #[test]
    fn downloads_extract_the_member_verify_and_land_atomically() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (url, server) = serve_once("200 OK", zip_of("inner/data.csv", b"two"));
        let mut src = source(&url);
        src.member = Some("inner/data.csv".into());
        let mut seen = 0;
        let out = fetch(&src, dir.path(), false, &mut |done, _| seen = done).expect("fetched");
        assert_eq!(out.status, FetchStatus::Downloaded);
        assert_eq!(
            std::fs::read(dir.path().join("t.csv")).expect("file"),
            b"two"
        );
        assert!(seen > 0, "progress was reported");
        assert!(
            server
                .join()
                .expect("server")
                .starts_with("GET /file HTTP/1.1")
        );
    }

    #[test]
    fn a_checksum_mismatch_writes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (url, server) = serve_once("200 OK", b"three".to_vec());
        let m = fetch(&source(&url), dir.path(), false, &mut |_, _| {})
            .expect_err("mismatch")
            .to_string();
        server.join().expect("server");
        assert!(
            m.contains("has sha256") && m.contains("nothing was written"),
            "{m}"
        );
        assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 0);
    }

    #[test]
    fn zip_problems_and_http_errors_are_explained() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (url, server) = serve_once("200 OK", zip_of("other.csv", b"two"));
        let mut src = source(&url);
        src.member = Some("data.csv".into());
        let m = fetch(&src, dir.path(), false, &mut |_, _| {})
            .expect_err("no member")
            .to_string();
        server.join().expect("server");
        assert!(
            m.contains("the archive has no `data.csv`; it holds other.csv"),
            "{m}"
        );

        let (url, server) = serve_once("200 OK", zip_of("other.csv", b"two"));
        let m = fetch(&source(&url), dir.path(), false, &mut |_, _| {})
            .expect_err("zip")
            .to_string();
        server.join().expect("server");
        assert!(m.contains("returned a zip archive; set `member`"), "{m}");

        let (url, server) = serve_once("403 Forbidden", Vec::new());
        let m = fetch(&source(&url), dir.path(), false, &mut |_, _| {})
            .expect_err("403")
            .to_string();
        server.join().expect("server");
        assert!(
            m.contains("HTTP 403") && m.contains("accept the competition's rules"),
            "{m}"
        );
    }

    #[test]
    fn kaggle_credentials_from_kaggle_json() {
        let dir = tempfile::tempdir().expect("tempdir");
        let m = kaggle_json_credentials(Some(dir.path()), "comp")
            .expect_err("none")
            .to_string();
        assert!(
            m.contains("no Kaggle credentials") && m.contains("competitions/comp"),
            "{m}"
        );
        let file = dir.path().join("kaggle.json");
        std::fs::write(&file, "{oops").expect("write");
        let m = kaggle_json_credentials(Some(dir.path()), "comp")
            .expect_err("json")
            .to_string();
        assert!(m.contains("kaggle.json: not valid JSON"), "{m}");
        std::fs::write(&file, r#"{"username": "u"}"#).expect("write");
        let m = kaggle_json_credentials(Some(dir.path()), "comp")
            .expect_err("key")
            .to_string();
        assert!(
            m.contains("expected the fields \"username\" and \"key\""),
            "{m}"
        );
        std::fs::write(&file, r#"{"username": "u", "key": "k"}"#).expect("write");
        let pair = kaggle_json_credentials(Some(dir.path()), "comp").expect("ok");
        assert_eq!(pair, ("u".to_owned(), "k".to_owned()));
        assert_eq!(
            kaggle_url("playground-series-s4e2", "train.csv"),
            "https://www.kaggle.com/api/v1/competitions/data/download/playground-series-s4e2/train.csv"
        );
    }

    fn source(url: &str) -> FetchSource {
        FetchSource {
            name: "t".into(),
            kind: FetchKind::Url(url.into()),
            member: None,
            file: "t.csv".into(),
            sha256: "3fc4ccfe745870e2c0d99f71f30ff0656c8dedd41cc1d7d3d376b0dbe685e2f3".into(),
        }
    }

    #[test]
    fn base64_known_values() {
        assert_eq!(base64(b"user:key"), "dXNlcjprZXk=");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"abc"), "YWJj");
    }

    #[test]
    fn a_present_file_with_the_right_checksum_is_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("t.csv"), b"two").expect("write");
        let out = fetch(
            &source("http://127.0.0.1:9/none"),
            dir.path(),
            false,
            &mut |_, _| {},
        )
        .expect("no download needed");
        assert_eq!(out.status, FetchStatus::AlreadyPresent);
    }

    #[test]
    fn a_present_file_with_another_checksum_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("t.csv"), b"three").expect("write");
        let m = fetch(
            &source("http://127.0.0.1:9/none"),
            dir.path(),
            false,
            &mut |_, _| {},
        )
        .expect_err("mismatch")
        .to_string();
        assert!(m.contains("--force") && m.contains("t.csv"), "{m}");
    }

    #[test]
    fn an_unreachable_server_explains_what_to_do_offline() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
        let err = fetch(
            &source("http://127.0.0.1:9/none"),
            dir.path(),
            false,
            &mut |_, _| {},
        )
        .expect_err("offline");
        let m = err.to_string();
        assert!(err.is_bad_input());
        assert!(
            m.contains("Offline?") && m.contains("TABTUNE_DATA_DIR") && m.contains("t.csv"),
            "{m}"
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).expect("list").count(),
            0,
            "nothing written"
        );
    }
}
