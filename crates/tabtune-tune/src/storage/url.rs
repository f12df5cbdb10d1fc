//! Storage URLs, in SQLAlchemy's spelling so the same URL works in `optuna.load_study`.

use std::path::PathBuf;

use crate::error::{Result, TuneError, UrlProblem};

/// Where a study lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StorageUrl {
    /// `sqlite:///relative/path.db` or `sqlite:////absolute/path.db` (SQLAlchemy: three slashes,
    /// then the path).
    Sqlite(PathBuf),
    /// `postgresql://user[:password]@host[:port]/database` (also `postgres://` and
    /// `postgresql+psycopg2://`; the driver part is ignored). Kept as a connection string.
    Postgres(String),
    /// `memory`: a private in-memory database (tests; gone when the storage is dropped).
    Memory,
}

impl StorageUrl {
    /// Parses a storage URL; the error names the URL and the accepted forms.
    pub fn parse(url: &str) -> Result<Self> {
        let bad = |problem: UrlProblem| {
            Err(TuneError::StorageUrl {
                url: redact(url),
                problem,
            })
        };
        let url = url.trim();
        if url == "memory" || url == "memory://" || url == "sqlite:///:memory:" {
            return Ok(Self::Memory);
        }
        let Some((scheme, rest)) = url.split_once("://") else {
            return bad(UrlProblem::NoScheme);
        };
        let scheme = scheme.split('+').next().unwrap_or(scheme);
        match scheme {
            "sqlite" => {
                let Some(path) = rest.strip_prefix('/') else {
                    return bad(UrlProblem::SqliteSlashes);
                };
                if path.is_empty() {
                    return bad(UrlProblem::NoSqliteFile);
                }
                Ok(Self::Sqlite(PathBuf::from(path)))
            }
            "postgresql" | "postgres" => {
                let Some((authority, db)) = rest.split_once('/') else {
                    return bad(UrlProblem::NoDatabaseName);
                };
                if authority.is_empty() || db.is_empty() {
                    return bad(UrlProblem::NoHostOrDatabase);
                }
                Ok(Self::Postgres(format!("postgresql://{rest}")))
            }
            other => bad(UrlProblem::UnknownScheme {
                scheme: other.to_owned(),
            }),
        }
    }
}

/// `url` with any password replaced by `***`, for messages and logs.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sqlalchemy_urls() {
        assert_eq!(
            StorageUrl::parse("sqlite:///runs/study.db").unwrap(),
            StorageUrl::Sqlite("runs/study.db".into())
        );
        assert_eq!(
            StorageUrl::parse("sqlite:////tmp/s.db").unwrap(),
            StorageUrl::Sqlite("/tmp/s.db".into())
        );
        assert_eq!(StorageUrl::parse("memory").unwrap(), StorageUrl::Memory);
        assert_eq!(
            StorageUrl::parse("postgresql+psycopg2://u:pw@h:5432/db").unwrap(),
            StorageUrl::Postgres("postgresql://u:pw@h:5432/db".into())
        );
    }

    #[test]
    fn bad_urls_say_what_is_expected_and_hide_passwords() {
        for (url, why) in [
            ("study.db", "no scheme"),
            ("sqlite://study.db", "three slashes"),
            ("sqlite:///", "no database file"),
            ("mysql://u@h/db", "unknown scheme `mysql`"),
            ("postgresql://u:secret@h:5432", "no database name"),
        ] {
            let e = StorageUrl::parse(url).unwrap_err().to_string();
            assert!(
                e.contains(why) && e.contains("expected sqlite:///PATH"),
                "{url}: {e}"
            );
            assert!(!e.contains("secret"), "{e}");
        }
    }
}
