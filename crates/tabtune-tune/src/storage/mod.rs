//! Study storage in Optuna's RDB schema (alembic revision `v3.2.0.a`), so that
//! `optuna.load_study` and optuna-dashboard read tabtune's studies and tabtune reads Optuna's.
//!
//! [`open`] takes a URL in SQLAlchemy's spelling: `sqlite:///relative.db`,
//! `sqlite:////absolute.db`, `postgresql://user@host:port/db`, or `memory`. SQLite files run in
//! WAL mode with a busy timeout, so several processes on one machine share a file; PostgreSQL
//! serves many workers on many machines. Trial numbers are assigned inside a transaction that
//! holds the study's lock, so they never collide.

mod base;
mod conn;
mod sql;
mod time;
mod url;

pub use base::{AttrKind, NewTrial, Storage, StudyRecord};
pub use sql::{ALEMBIC_REVISION, OPTUNA_LIBRARY_VERSION, SCHEMA_VERSION, SqlStorage, open};
pub use time::{format_us, now_us, parse_us};
pub use url::{StorageUrl, redact};
