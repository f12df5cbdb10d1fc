//! One connection to SQLite or PostgreSQL behind a tiny common interface, so the storage logic
//! (`sql.rs`) is written once.
//!
//! Statements are written with `?` placeholders; PostgreSQL gets `$n` with a cast per value
//! (its driver checks parameter types strictly, and Optuna's schema uses native enum and
//! timestamp columns there). Enum and timestamp columns are read as `CAST(col AS TEXT)`, which
//! both databases understand.

use std::path::Path;
use std::time::Duration;

use crate::error::{Result, StorageFailure, TuneError};

/// A statement's result: the driver's error, or a row the storage cannot read.
pub type DbResult<T> = std::result::Result<T, StorageFailure>;

/// A value going into or coming out of a statement.
#[derive(Clone, Debug, PartialEq)]
pub enum V {
    /// SQL NULL (read side; write a typed null with `NullFloat` or `Ts(None)`).
    Null,
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A NULL float (PostgreSQL needs the type).
    NullFloat,
    /// Text.
    Text(String),
    /// A value of one of Optuna's enum types (PostgreSQL type name, label).
    Enum(&'static str, &'static str),
    /// A timestamp in Optuna's text form, or NULL.
    Ts(Option<String>),
}

impl V {
    /// The integer, if the value is one.
    pub fn int(&self) -> Option<i64> {
        match self {
            Self::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The float (integers widened), if the value is a number.
    pub fn float(&self) -> Option<f64> {
        match self {
            Self::Float(f) => Some(*f),
            Self::Int(i) => Some(*i as f64),
            _ => None,
        }
    }

    /// The text, if the value is text.
    pub fn text(&self) -> Option<&str> {
        match self {
            Self::Text(s) => Some(s),
            _ => None,
        }
    }
}

/// The database kind (for the few statements that differ).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// An open connection.
pub enum Conn {
    /// SQLite (a file or in memory).
    Sqlite(rusqlite::Connection),
    /// PostgreSQL.
    Postgres(Box<postgres::Client>),
}

/// How long a SQLite writer waits for another process's lock before giving up.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_mins(1);

impl Conn {
    /// Opens (creating) a SQLite file: WAL journal so readers never block the writer, a busy
    /// timeout so concurrent processes wait for each other instead of failing.
    pub fn open_sqlite(path: Option<&Path>, url: &str) -> Result<Self> {
        let err = |operation: &str, e: rusqlite::Error| TuneError::Storage {
            url: url.to_owned(),
            operation: operation.to_owned(),
            source: e.into(),
        };
        let c = match path {
            Some(p) => rusqlite::Connection::open(p).map_err(|e| err("cannot open the file", e))?,
            None => rusqlite::Connection::open_in_memory().map_err(|e| err("in memory", e))?,
        };
        c.busy_timeout(SQLITE_BUSY_TIMEOUT)
            .map_err(|e| err("busy timeout", e))?;
        if path.is_some() {
            // `journal_mode` answers with a row; WAL persists in the file.
            c.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))
                .map_err(|e| err("cannot switch to WAL (is this a SQLite file?)", e))?;
            c.execute_batch("PRAGMA synchronous=NORMAL")
                .map_err(|e| err("pragma synchronous", e))?;
        }
        Ok(Self::Sqlite(c))
    }

    /// Connects to PostgreSQL (no TLS: a local or trusted network, like Optuna's default).
    pub fn open_postgres(conn_str: &str, url: &str) -> Result<Self> {
        let c = postgres::Client::connect(conn_str, postgres::NoTls).map_err(|e| {
            TuneError::Storage {
                url: url.to_owned(),
                operation: "cannot connect to PostgreSQL".to_owned(),
                source: e.into(),
            }
        })?;
        Ok(Self::Postgres(Box::new(c)))
    }

    /// Which database this is.
    pub fn dialect(&self) -> Dialect {
        match self {
            Self::Sqlite(_) => Dialect::Sqlite,
            Self::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Runs statements without parameters (DDL, BEGIN, COMMIT).
    pub fn batch(&mut self, sql: &str) -> DbResult<()> {
        match self {
            Self::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Self::Postgres(c) => Ok(c.batch_execute(sql)?),
        }
    }

    /// Runs one statement, returning the number of rows changed.
    pub fn exec(&mut self, sql: &str, params: &[V]) -> DbResult<u64> {
        match self {
            Self::Sqlite(c) => {
                let mut st = c.prepare_cached(sql)?;
                Ok(st.execute(rusqlite::params_from_iter(params.iter().map(sqlite_value)))? as u64)
            }
            Self::Postgres(c) => {
                let sql = pg_sql(sql, params);
                let boxed = pg_params(params);
                let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
                    boxed.iter().map(|b| &**b as _).collect();
                Ok(c.execute(sql.as_str(), &refs)?)
            }
        }
    }

    /// Runs one query, returning every row.
    pub fn query(&mut self, sql: &str, params: &[V]) -> DbResult<Vec<Vec<V>>> {
        match self {
            Self::Sqlite(c) => {
                let mut st = c.prepare_cached(sql)?;
                let n = st.column_count();
                let mut rows =
                    st.query(rusqlite::params_from_iter(params.iter().map(sqlite_value)))?;
                let mut out = Vec::new();
                while let Some(row) = rows.next()? {
                    let mut r = Vec::with_capacity(n);
                    for i in 0..n {
                        use rusqlite::types::ValueRef;
                        r.push(match row.get_ref(i)? {
                            ValueRef::Null => V::Null,
                            ValueRef::Integer(x) => V::Int(x),
                            ValueRef::Real(x) => V::Float(x),
                            ValueRef::Text(t) => V::Text(String::from_utf8_lossy(t).into_owned()),
                            ValueRef::Blob(_) => return Err(StorageFailure::Blob { column: i }),
                        });
                    }
                    out.push(r);
                }
                Ok(out)
            }
            Self::Postgres(c) => {
                let sql = pg_sql(sql, params);
                let boxed = pg_params(params);
                let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
                    boxed.iter().map(|b| &**b as _).collect();
                let rows = c.query(sql.as_str(), &refs)?;
                rows.iter().map(pg_row).collect()
            }
        }
    }
}

fn sqlite_value(v: &V) -> rusqlite::types::Value {
    use rusqlite::types::Value;
    match v {
        V::Null | V::NullFloat | V::Ts(None) => Value::Null,
        V::Int(i) => Value::Integer(*i),
        V::Float(f) => Value::Real(*f),
        V::Text(s) | V::Ts(Some(s)) => Value::Text(s.clone()),
        V::Enum(_, label) => Value::Text((*label).to_owned()),
    }
}

/// `?` placeholders to `$n` with the cast each value needs.
fn pg_sql(sql: &str, params: &[V]) -> String {
    let mut out = String::with_capacity(sql.len() + params.len() * 12);
    let mut n = 0;
    for ch in sql.chars() {
        if ch == '?' {
            let cast = match params.get(n) {
                Some(V::Int(_)) => "::int8".to_owned(),
                Some(V::Float(_) | V::NullFloat) => "::float8".to_owned(),
                Some(V::Enum(ty, _)) => format!("::text::{ty}"),
                Some(V::Ts(_)) => "::text::timestamp".to_owned(),
                Some(V::Text(_) | V::Null) | None => "::text".to_owned(),
            };
            n += 1;
            out.push_str(&format!("${n}{cast}"));
        } else {
            out.push(ch);
        }
    }
    out
}

fn pg_params(params: &[V]) -> Vec<Box<dyn postgres::types::ToSql + Sync>> {
    params
        .iter()
        .map(|v| -> Box<dyn postgres::types::ToSql + Sync> {
            match v {
                V::Int(i) => Box::new(*i),
                V::Float(f) => Box::new(*f),
                V::NullFloat => Box::new(None::<f64>),
                V::Null | V::Ts(None) => Box::new(None::<String>),
                V::Text(s) | V::Ts(Some(s)) => Box::new(s.clone()),
                V::Enum(_, label) => Box::new((*label).to_owned()),
            }
        })
        .collect()
}

fn pg_row(row: &postgres::Row) -> DbResult<Vec<V>> {
    use postgres::types::Type;
    let mut out = Vec::with_capacity(row.len());
    for (i, col) in row.columns().iter().enumerate() {
        let e = |source: postgres::Error| StorageFailure::PostgresColumn {
            column: col.name().to_owned(),
            source,
        };
        let t = col.type_();
        let v = if *t == Type::INT4 {
            row.try_get::<_, Option<i32>>(i)
                .map_err(e)?
                .map_or(V::Null, |x| V::Int(i64::from(x)))
        } else if *t == Type::INT8 {
            row.try_get::<_, Option<i64>>(i)
                .map_err(e)?
                .map_or(V::Null, V::Int)
        } else if *t == Type::INT2 {
            row.try_get::<_, Option<i16>>(i)
                .map_err(e)?
                .map_or(V::Null, |x| V::Int(i64::from(x)))
        } else if *t == Type::FLOAT8 {
            row.try_get::<_, Option<f64>>(i)
                .map_err(e)?
                .map_or(V::Null, V::Float)
        } else if *t == Type::FLOAT4 {
            row.try_get::<_, Option<f32>>(i)
                .map_err(e)?
                .map_or(V::Null, |x| V::Float(f64::from(x)))
        } else if *t == Type::BOOL {
            row.try_get::<_, Option<bool>>(i)
                .map_err(e)?
                .map_or(V::Null, |x| V::Int(i64::from(x)))
        } else {
            row.try_get::<_, Option<String>>(i)
                .map_err(e)?
                .map_or(V::Null, V::Text)
        };
        out.push(v);
    }
    Ok(out)
}
