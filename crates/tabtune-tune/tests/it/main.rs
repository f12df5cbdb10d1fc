//! Integration tests of tabtune-tune's storage, studies and executor: round trips through
//! SQLite, in-memory SQLite and PostgreSQL, interop with the real `optuna` package, several
//! processes on one SQLite file, three workers on PostgreSQL, kill -9 and resume.

// Helpers shared by the tests unwrap too (clippy's allow-unwrap-in-tests covers #[test] only).
#![allow(clippy::unwrap_used)]

mod common;
mod concurrency;
mod executor;
mod interop;
mod storage;
