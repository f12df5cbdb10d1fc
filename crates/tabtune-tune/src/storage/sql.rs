//! [`Storage`] over Optuna's RDB schema, for SQLite and PostgreSQL alike.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use serde_json::Value;

use super::base::{AttrKind, NewTrial, Storage, StudyRecord};
use super::conn::{Conn, Dialect, V};
use super::time::{format_us, now_us, parse_us};
use super::url::{StorageUrl, redact};
use crate::error::{Result, StorageFailure, TuneError};
use crate::model::{Direction, Distribution, FrozenTrial, TrialState};

/// Optuna's alembic revision whose schema this storage reads and writes.
pub const ALEMBIC_REVISION: &str = "v3.2.0.a";
/// Optuna's `version_info.schema_version` for that revision.
pub const SCHEMA_VERSION: i64 = 12;
/// The Optuna release whose schema tabtune writes; stored as `version_info.library_version`
/// (Optuna shows it as "set up by optuna X" in its upgrade messages).
pub const OPTUNA_LIBRARY_VERSION: &str = "5.0.0";

const SCHEMA_SQLITE: &str = include_str!("schema_sqlite.sql");
const SCHEMA_POSTGRES: &str = include_str!("schema_postgres.sql");
/// Key of the PostgreSQL advisory lock taken while creating the schema.
const PG_SCHEMA_LOCK: i64 = 0x0074_6162_7475_6e65;

/// A study database in Optuna's schema: SQLite file, SQLite in memory, or PostgreSQL.
pub struct SqlStorage {
    url: String,
    conn: Mutex<Conn>,
}

/// Opens the storage at `url` (see [`StorageUrl`]), creating Optuna's schema when the database
/// is empty, and checking the alembic revision when it is not.
pub fn open(url: &str) -> Result<SqlStorage> {
    let parsed = StorageUrl::parse(url)?;
    let shown = redact(url.trim());
    let conn = match &parsed {
        StorageUrl::Sqlite(path) => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
                && !parent.is_dir()
            {
                return Err(TuneError::StorageFolder {
                    url: shown,
                    folder: parent.to_owned(),
                });
            }
            if path.is_dir() {
                return Err(TuneError::StorageIsFolder {
                    url: shown,
                    path: path.clone(),
                });
            }
            Conn::open_sqlite(Some(path), &shown)?
        }
        StorageUrl::Memory => Conn::open_sqlite(None, &shown)?,
        StorageUrl::Postgres(s) => Conn::open_postgres(s, &shown)?,
    };
    let storage = SqlStorage {
        url: shown,
        conn: Mutex::new(conn),
    };
    storage.init_schema()?;
    Ok(storage)
}

/// A failed storage operation, naming the URL (password hidden) and the operation.
fn storage_error(url: &str, operation: &str, failure: impl Into<StorageFailure>) -> TuneError {
    TuneError::Storage {
        url: url.to_owned(),
        operation: operation.to_owned(),
        source: failure.into(),
    }
}

fn state_v(s: TrialState) -> V {
    V::Enum("trialstate", s.as_optuna())
}

/// A trial value as Optuna stores it: the float (NULL unless finite) and its type.
fn value_v(v: f64, intermediate: bool) -> (V, V) {
    let ty = if intermediate {
        "trialintermediatevaluetype"
    } else {
        "trialvaluetype"
    };
    if v.is_finite() {
        (V::Float(v), V::Enum(ty, "FINITE"))
    } else if v.is_nan() {
        (V::NullFloat, V::Enum(ty, "NAN"))
    } else if v > 0.0 {
        (V::NullFloat, V::Enum(ty, "INF_POS"))
    } else {
        (V::NullFloat, V::Enum(ty, "INF_NEG"))
    }
}

fn read_value(v: &V, ty: &V) -> Option<f64> {
    match ty.text()? {
        "FINITE" => v.float(),
        "INF_POS" => Some(f64::INFINITY),
        "INF_NEG" => Some(f64::NEG_INFINITY),
        "NAN" => Some(f64::NAN),
        _ => None,
    }
}

fn attr_table(kind: AttrKind, study: bool) -> &'static str {
    match (kind, study) {
        (AttrKind::User, true) => "study_user_attributes",
        (AttrKind::System, true) => "study_system_attributes",
        (AttrKind::User, false) => "trial_user_attributes",
        (AttrKind::System, false) => "trial_system_attributes",
    }
}

/// A transaction's view of the connection: its statements' errors carry the storage URL.
struct Tx<'a> {
    conn: &'a mut Conn,
    url: &'a str,
}

impl Tx<'_> {
    fn err(&self, operation: &str, failure: impl Into<StorageFailure>) -> TuneError {
        storage_error(self.url, operation, failure)
    }

    /// A stored value (state, distribution, parameter) that does not read back.
    fn stored(&self, operation: &str, e: TuneError) -> TuneError {
        self.err(operation, StorageFailure::Stored(Box::new(e)))
    }

    fn exec(&mut self, operation: &str, sql: &str, params: &[V]) -> Result<u64> {
        self.conn
            .exec(sql, params)
            .map_err(|e| storage_error(self.url, operation, e))
    }

    fn query(&mut self, operation: &str, sql: &str, params: &[V]) -> Result<Vec<Vec<V>>> {
        self.conn
            .query(sql, params)
            .map_err(|e| storage_error(self.url, operation, e))
    }

    fn dialect(&self) -> Dialect {
        self.conn.dialect()
    }

    /// Serialises trial creation in one study (PostgreSQL; SQLite's `BEGIN IMMEDIATE` already
    /// holds the database's write lock). Fails when the study does not exist.
    fn lock_study(&mut self, study_id: i64) -> Result<()> {
        let sql = match self.dialect() {
            Dialect::Postgres => {
                "SELECT study_id FROM studies WHERE study_id = ? FOR NO KEY UPDATE"
            }
            Dialect::Sqlite => "SELECT study_id FROM studies WHERE study_id = ?",
        };
        let rows = self.query("locking the study", sql, &[V::Int(study_id)])?;
        if rows.is_empty() {
            return Err(self.err("locking the study", StorageFailure::StudyGone { study_id }));
        }
        Ok(())
    }

    /// Now by the database's clock where several machines may share it (PostgreSQL), by this
    /// machine's clock for SQLite (one machine), in Optuna's naive text form.
    fn db_now(&mut self) -> Result<String> {
        match self.dialect() {
            Dialect::Sqlite => Ok(format_us(now_us())),
            Dialect::Postgres => {
                let rows = self.query(
                    "reading the clock",
                    "SELECT CAST(LOCALTIMESTAMP AS TEXT)",
                    &[],
                )?;
                rows.first()
                    .and_then(|r| r.first())
                    .and_then(V::text)
                    .map(str::to_owned)
                    .ok_or_else(|| {
                        self.err("reading the clock", StorageFailure::NoRow { what: "row" })
                    })
            }
        }
    }

    fn set_attr(
        &mut self,
        kind: AttrKind,
        study: bool,
        id: i64,
        key: &str,
        value: &Value,
    ) -> Result<()> {
        let table = attr_table(kind, study);
        let owner = if study { "study_id" } else { "trial_id" };
        let sql = format!(
            "INSERT INTO {table} ({owner}, \"key\", value_json) VALUES (?, ?, ?) \
             ON CONFLICT ({owner}, \"key\") DO UPDATE SET value_json = excluded.value_json"
        );
        self.exec(
            &format!("writing {table} `{key}`"),
            &sql,
            &[
                V::Int(id),
                V::Text(key.to_owned()),
                V::Text(value.to_string()),
            ],
        )?;
        Ok(())
    }

    fn insert_param(&mut self, trial_id: i64, name: &str, d: &Distribution, x: f64) -> Result<()> {
        self.exec(
            &format!("writing parameter `{name}`"),
            "INSERT INTO trial_params (trial_id, param_name, param_value, distribution_json) \
             VALUES (?, ?, ?, ?)",
            &[
                V::Int(trial_id),
                V::Text(name.to_owned()),
                V::Float(x),
                V::Text(d.to_optuna_json()),
            ],
        )?;
        Ok(())
    }

    fn set_intermediate(&mut self, trial_id: i64, step: u64, value: f64) -> Result<()> {
        let (v, ty) = value_v(value, true);
        self.exec(
            &format!("writing the intermediate value of step {step}"),
            "INSERT INTO trial_intermediate_values \
             (trial_id, step, intermediate_value, intermediate_value_type) VALUES (?, ?, ?, ?) \
             ON CONFLICT (trial_id, step) DO UPDATE SET \
             intermediate_value = excluded.intermediate_value, \
             intermediate_value_type = excluded.intermediate_value_type",
            &[V::Int(trial_id), V::Int(step as i64), v, ty],
        )?;
        Ok(())
    }

    fn create_trial(
        &mut self,
        study_id: i64,
        t: &NewTrial,
        budget: Option<u64>,
    ) -> Result<Option<FrozenTrial>> {
        self.lock_study(study_id)?;
        if let Some(budget) = budget {
            let rows = self.query(
                "counting trials",
                "SELECT COUNT(*) FROM trials WHERE study_id = ? \
                 AND state IN ('COMPLETE', 'PRUNED', 'RUNNING', 'WAITING')",
                &[V::Int(study_id)],
            )?;
            let n = rows
                .first()
                .and_then(|r| r.first())
                .and_then(V::int)
                .unwrap_or(0);
            if n as u64 >= budget {
                return Ok(None);
            }
        }
        let rows = self.query(
            "numbering the trial",
            "SELECT COUNT(*) FROM trials WHERE study_id = ?",
            &[V::Int(study_id)],
        )?;
        let number = rows
            .first()
            .and_then(|r| r.first())
            .and_then(V::int)
            .unwrap_or(0);
        let (state, start) = if t.waiting {
            (TrialState::Waiting, None)
        } else {
            (TrialState::Running, Some(format_us(now_us())))
        };
        let rows = self.query(
            "creating a trial",
            "INSERT INTO trials (number, study_id, state, datetime_start, datetime_complete) \
             VALUES (?, ?, ?, ?, ?) RETURNING trial_id",
            &[
                V::Int(number),
                V::Int(study_id),
                state_v(state),
                V::Ts(start),
                V::Ts(None),
            ],
        )?;
        let trial_id = rows
            .first()
            .and_then(|r| r.first())
            .and_then(V::int)
            .ok_or_else(|| {
                self.err(
                    "creating a trial",
                    StorageFailure::NoRow { what: "trial_id" },
                )
            })?;
        for (name, (d, x)) in &t.params {
            self.insert_param(trial_id, name, d, *x)?;
        }
        for (step, v) in &t.intermediate {
            self.set_intermediate(trial_id, *step, *v)?;
        }
        for (k, v) in &t.user_attrs {
            self.set_attr(AttrKind::User, false, trial_id, k, v)?;
        }
        for (k, v) in &t.system_attrs {
            self.set_attr(AttrKind::System, false, trial_id, k, v)?;
        }
        self.load_trials("t.trial_id = ?", trial_id)
            .map(|mut v| v.pop())
    }

    /// Trials matching `filter` (on `trials t`, one `?` bound to `id`), by number.
    fn load_trials(&mut self, filter: &str, id: i64) -> Result<Vec<FrozenTrial>> {
        let p = [V::Int(id)];
        let rows = self.query(
            "reading trials",
            &format!(
                "SELECT t.trial_id, t.number, CAST(t.state AS TEXT), \
                 CAST(t.datetime_start AS TEXT), CAST(t.datetime_complete AS TEXT) \
                 FROM trials t WHERE {filter} ORDER BY t.number, t.trial_id"
            ),
            &p,
        )?;
        let mut trials = Vec::with_capacity(rows.len());
        let mut index = BTreeMap::new();
        for r in rows {
            let (Some(trial_id), Some(number), Some(state)) = (r[0].int(), r[1].int(), r[2].text())
            else {
                return Err(self.err(
                    "reading trials",
                    StorageFailure::MalformedRow {
                        row: format!("{r:?}"),
                    },
                ));
            };
            let mut t = FrozenTrial::new(trial_id, number as u64);
            t.state = TrialState::parse(state)
                .map_err(|e| self.stored(&format!("reading trial {number}"), e))?;
            t.start_us = r[3].text().and_then(parse_us);
            t.complete_us = r[4].text().and_then(parse_us);
            index.insert(trial_id, trials.len());
            trials.push(t);
        }
        let join = format!("JOIN trials t ON t.trial_id = x.trial_id WHERE {filter}");
        for r in self.query(
            "reading parameters",
            &format!("SELECT x.trial_id, x.param_name, x.param_value, x.distribution_json FROM trial_params x {join}"),
            &p,
        )? {
            let (Some(i), Some(name), Some(json)) =
                (r[0].int().and_then(|id| index.get(&id)), r[1].text(), r[3].text())
            else {
                continue;
            };
            let t = &mut trials[*i];
            let what = format!("reading trial {} parameter `{name}`", t.number);
            let d = Distribution::from_optuna_json(json).map_err(|e| self.stored(&what, e))?;
            let internal = r[2].float().unwrap_or(f64::NAN);
            let value = d.to_external(internal).map_err(|e| self.stored(&what, e))?;
            t.params.insert(name.to_owned(), value);
            t.distributions.insert(name.to_owned(), d);
        }
        for r in self.query(
            "reading values",
            &format!("SELECT x.trial_id, x.value, CAST(x.value_type AS TEXT) FROM trial_values x {join} AND x.objective = 0"),
            &p,
        )? {
            if let Some(i) = r[0].int().and_then(|id| index.get(&id)) {
                trials[*i].value = read_value(&r[1], &r[2]);
            }
        }
        for r in self.query(
            "reading intermediate values",
            &format!("SELECT x.trial_id, x.step, x.intermediate_value, CAST(x.intermediate_value_type AS TEXT) FROM trial_intermediate_values x {join}"),
            &p,
        )? {
            if let (Some(i), Some(step), Some(v)) = (
                r[0].int().and_then(|id| index.get(&id)),
                r[1].int(),
                read_value(&r[2], &r[3]),
            ) {
                trials[*i].intermediate.insert(step as u64, v);
            }
        }
        for kind in [AttrKind::User, AttrKind::System] {
            let table = attr_table(kind, false);
            for r in self.query(
                &format!("reading {table}"),
                &format!("SELECT x.trial_id, x.\"key\", x.value_json FROM {table} x {join}"),
                &p,
            )? {
                let (Some(i), Some(k), Some(json)) = (
                    r[0].int().and_then(|id| index.get(&id)),
                    r[1].text(),
                    r[2].text(),
                ) else {
                    continue;
                };
                let v: Value = serde_json::from_str(json).map_err(|source| {
                    self.err(
                        &format!("reading {table}"),
                        StorageFailure::NotJson {
                            key: k.to_owned(),
                            source,
                        },
                    )
                })?;
                let t = &mut trials[*i];
                match kind {
                    AttrKind::User => t.user_attrs.insert(k.to_owned(), v),
                    AttrKind::System => t.system_attrs.insert(k.to_owned(), v),
                };
            }
        }
        Ok(trials)
    }

    fn study_by(&mut self, filter: &str, p: V) -> Result<Vec<StudyRecord>> {
        let rows = self.query(
            "reading studies",
            &format!(
                "SELECT s.study_id, s.study_name, CAST(d.direction AS TEXT) FROM studies s \
                 LEFT JOIN study_directions d ON d.study_id = s.study_id AND d.objective = 0 \
                 {filter} ORDER BY s.study_id"
            ),
            &[p],
        )?;
        let mut out = Vec::new();
        for r in rows {
            let (Some(study_id), Some(name)) = (r[0].int(), r[1].text()) else {
                continue;
            };
            let direction = match r[2].text() {
                Some(d) => Direction::parse(d).ok_or_else(|| {
                    self.err(
                        &format!("reading study `{name}`"),
                        StorageFailure::Direction {
                            found: d.to_owned(),
                        },
                    )
                })?,
                None => {
                    return Err(self.err(
                        &format!("reading study `{name}`"),
                        StorageFailure::NoDirection,
                    ));
                }
            };
            out.push(StudyRecord {
                study_id,
                name: name.to_owned(),
                direction,
            });
        }
        Ok(out)
    }
}

impl SqlStorage {
    /// Runs `f` in one transaction (`write`: SQLite `BEGIN IMMEDIATE`, which takes the write
    /// lock up front so two processes never both read-then-write; PostgreSQL READ COMMITTED;
    /// reads: a consistent snapshot in both).
    fn tx<T>(&self, write: bool, f: impl FnOnce(&mut Tx<'_>) -> Result<T>) -> Result<T> {
        let mut guard = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let conn: &mut Conn = &mut guard;
        let begin = match (conn.dialect(), write) {
            (Dialect::Sqlite, true) => "BEGIN IMMEDIATE",
            (Dialect::Sqlite, false) | (Dialect::Postgres, true) => "BEGIN",
            (Dialect::Postgres, false) => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        };
        conn.batch(begin)
            .map_err(|e| storage_error(&self.url, "starting a transaction", e))?;
        let mut tx = Tx {
            conn,
            url: &self.url,
        };
        match f(&mut tx) {
            Ok(v) => {
                tx.conn
                    .batch("COMMIT")
                    .map_err(|e| storage_error(&self.url, "commit", e))?;
                Ok(v)
            }
            Err(e) => {
                // The transaction failed already; a failing ROLLBACK adds nothing to report.
                let _ = tx.conn.batch("ROLLBACK");
                Err(e)
            }
        }
    }

    fn init_schema(&self) -> Result<()> {
        self.tx(true, |tx| {
            let has = |tx: &mut Tx<'_>, table: &str| -> Result<bool> {
                let sql = match tx.dialect() {
                    Dialect::Sqlite => "SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?",
                    Dialect::Postgres => "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = ?",
                };
                Ok(!tx.query("reading the schema", sql, &[V::Text(table.to_owned())])?.is_empty())
            };
            if tx.dialect() == Dialect::Postgres {
                tx.exec(
                    "locking the schema",
                    "SELECT pg_advisory_xact_lock(?)",
                    &[V::Int(PG_SCHEMA_LOCK)],
                )?;
            }
            if has(tx, "alembic_version")? {
                let rows = tx.query("reading alembic_version", "SELECT version_num FROM alembic_version", &[])?;
                let found: Vec<&str> = rows.iter().filter_map(|r| r.first().and_then(V::text)).collect();
                if found != [ALEMBIC_REVISION] {
                    return Err(TuneError::SchemaRevision {
                        url: tx.url.to_owned(),
                        found: found.iter().map(|s| (*s).to_owned()).collect(),
                        expected: ALEMBIC_REVISION,
                    });
                }
                return Ok(());
            }
            if has(tx, "studies")? || has(tx, "trials")? {
                return Err(TuneError::NotOptuna {
                    url: tx.url.to_owned(),
                });
            }
            let ddl = match tx.dialect() {
                Dialect::Sqlite => SCHEMA_SQLITE,
                Dialect::Postgres => SCHEMA_POSTGRES,
            };
            tx.conn
                .batch(ddl)
                .map_err(|e| tx.err("creating Optuna's tables", e))?;
            tx.exec(
                "writing version_info",
                "INSERT INTO version_info (version_info_id, schema_version, library_version) VALUES (1, ?, ?)",
                &[V::Int(SCHEMA_VERSION), V::Text(OPTUNA_LIBRARY_VERSION.to_owned())],
            )?;
            tx.exec(
                "writing alembic_version",
                "INSERT INTO alembic_version (version_num) VALUES (?)",
                &[V::Text(ALEMBIC_REVISION.to_owned())],
            )?;
            Ok(())
        })
    }
}

impl Storage for SqlStorage {
    fn url(&self) -> &str {
        &self.url
    }

    fn create_study(&self, name: &str, direction: Direction) -> Result<StudyRecord> {
        if name.is_empty() || name.len() > 512 {
            return Err(TuneError::StudyName {
                name: name.to_owned(),
                length: name.len(),
            });
        }
        self.tx(true, |tx| {
            if !tx
                .study_by("WHERE s.study_name = ?", V::Text(name.to_owned()))?
                .is_empty()
            {
                return Err(TuneError::StudyExists {
                    study: name.to_owned(),
                    url: tx.url.to_owned(),
                });
            }
            let rows = tx.query(
                "creating the study",
                "INSERT INTO studies (study_name) VALUES (?) RETURNING study_id",
                &[V::Text(name.to_owned())],
            )?;
            let study_id = rows
                .first()
                .and_then(|r| r.first())
                .and_then(V::int)
                .ok_or_else(|| {
                    tx.err(
                        "creating the study",
                        StorageFailure::NoRow { what: "study_id" },
                    )
                })?;
            tx.exec(
                "writing the direction",
                "INSERT INTO study_directions (direction, study_id, objective) VALUES (?, ?, 0)",
                &[
                    V::Enum("studydirection", direction.as_optuna()),
                    V::Int(study_id),
                ],
            )?;
            Ok(StudyRecord {
                study_id,
                name: name.to_owned(),
                direction,
            })
        })
    }

    fn find_study(&self, name: &str) -> Result<Option<StudyRecord>> {
        self.tx(false, |tx| {
            Ok(tx
                .study_by("WHERE s.study_name = ?", V::Text(name.to_owned()))?
                .pop())
        })
    }

    fn studies(&self) -> Result<Vec<StudyRecord>> {
        self.tx(false, |tx| tx.study_by("WHERE s.study_id >= ?", V::Int(0)))
    }

    fn set_study_attr(
        &self,
        study_id: i64,
        kind: AttrKind,
        key: &str,
        value: &Value,
    ) -> Result<()> {
        self.tx(true, |tx| tx.set_attr(kind, true, study_id, key, value))
    }

    fn study_attrs(&self, study_id: i64, kind: AttrKind) -> Result<BTreeMap<String, Value>> {
        let table = attr_table(kind, true);
        self.tx(false, |tx| {
            let rows = tx.query(
                &format!("reading {table}"),
                &format!("SELECT \"key\", value_json FROM {table} WHERE study_id = ?"),
                &[V::Int(study_id)],
            )?;
            let mut out = BTreeMap::new();
            for r in rows {
                if let (Some(k), Some(json)) = (r[0].text(), r[1].text()) {
                    let v = serde_json::from_str(json).map_err(|source| {
                        tx.err(
                            &format!("reading {table}"),
                            StorageFailure::NotJson {
                                key: k.to_owned(),
                                source,
                            },
                        )
                    })?;
                    out.insert(k.to_owned(), v);
                }
            }
            Ok(out)
        })
    }

    fn create_trial(
        &self,
        study_id: i64,
        template: &NewTrial,
        budget: Option<u64>,
    ) -> Result<Option<FrozenTrial>> {
        self.tx(true, |tx| tx.create_trial(study_id, template, budget))
    }

    fn claim_waiting_trial(&self, study_id: i64) -> Result<Option<FrozenTrial>> {
        self.tx(true, |tx| {
            let lock = match tx.dialect() {
                Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
                Dialect::Sqlite => "",
            };
            let rows = tx.query(
                "looking for waiting trials",
                &format!(
                    "SELECT trial_id FROM trials WHERE study_id = ? AND state = 'WAITING' \
                     ORDER BY trial_id LIMIT 1{lock}"
                ),
                &[V::Int(study_id)],
            )?;
            let Some(trial_id) = rows.first().and_then(|r| r.first()).and_then(V::int) else {
                return Ok(None);
            };
            let changed = tx.exec(
                "claiming a waiting trial",
                "UPDATE trials SET state = ?, datetime_start = ? WHERE trial_id = ? AND state = 'WAITING'",
                &[
                    state_v(TrialState::Running),
                    V::Ts(Some(format_us(now_us()))),
                    V::Int(trial_id),
                ],
            )?;
            if changed == 0 {
                return Ok(None);
            }
            Ok(tx.load_trials("t.trial_id = ?", trial_id)?.pop())
        })
    }

    fn set_trial_param(
        &self,
        trial_id: i64,
        name: &str,
        distribution: &Distribution,
        internal: f64,
    ) -> Result<()> {
        self.tx(true, |tx| {
            tx.insert_param(trial_id, name, distribution, internal)
        })
    }

    fn set_trial_params(
        &self,
        trial_id: i64,
        params: &[(String, Distribution, f64)],
    ) -> Result<()> {
        self.tx(true, |tx| {
            for (name, d, x) in params {
                tx.insert_param(trial_id, name, d, *x)?;
            }
            Ok(())
        })
    }

    fn set_intermediate(&self, trial_id: i64, step: u64, value: f64) -> Result<()> {
        self.tx(true, |tx| tx.set_intermediate(trial_id, step, value))
    }

    fn set_trial_attr(
        &self,
        trial_id: i64,
        kind: AttrKind,
        key: &str,
        value: &Value,
    ) -> Result<()> {
        self.tx(true, |tx| tx.set_attr(kind, false, trial_id, key, value))
    }

    fn finish_trial(&self, trial_id: i64, state: TrialState, value: Option<f64>) -> Result<bool> {
        if !state.is_finished() {
            return Err(TuneError::UnfinishedState { trial_id, state });
        }
        if value.is_some_and(f64::is_nan) {
            return Err(TuneError::NanValue { trial_id });
        }
        self.tx(true, |tx| {
            let changed = tx.exec(
                "ending the trial",
                "UPDATE trials SET state = ?, datetime_complete = ? WHERE trial_id = ? AND state = 'RUNNING'",
                &[state_v(state), V::Ts(Some(format_us(now_us()))), V::Int(trial_id)],
            )?;
            if changed == 0 {
                return Ok(false);
            }
            if let Some(v) = value {
                let (v, ty) = value_v(v, false);
                tx.exec(
                    "writing the trial value",
                    "INSERT INTO trial_values (trial_id, objective, value, value_type) VALUES (?, 0, ?, ?)",
                    &[V::Int(trial_id), v, ty],
                )?;
            }
            Ok(true)
        })
    }

    fn heartbeat(&self, trial_id: i64) -> Result<()> {
        self.tx(true, |tx| {
            let now = tx.db_now()?;
            tx.exec(
                "recording a heartbeat",
                "INSERT INTO trial_heartbeats (trial_id, heartbeat) VALUES (?, ?) \
                 ON CONFLICT (trial_id) DO UPDATE SET heartbeat = excluded.heartbeat",
                &[V::Int(trial_id), V::Ts(Some(now))],
            )?;
            Ok(())
        })
    }

    fn fail_stale_trials(
        &self,
        study_id: i64,
        grace: Duration,
        max_retry: Option<u32>,
    ) -> Result<Vec<u64>> {
        self.tx(true, |tx| {
            tx.lock_study(study_id)?;
            let now = tx.db_now()?;
            let now_us = parse_us(&now).ok_or_else(|| {
                tx.err(
                    "reading the clock",
                    StorageFailure::Timestamp { text: now.clone() },
                )
            })?;
            let rows = tx.query(
                "reading heartbeats",
                "SELECT t.trial_id, CAST(h.heartbeat AS TEXT) FROM trials t \
                 JOIN trial_heartbeats h ON h.trial_id = t.trial_id \
                 WHERE t.study_id = ? AND t.state = 'RUNNING'",
                &[V::Int(study_id)],
            )?;
            let grace_us = i64::try_from(grace.as_micros()).unwrap_or(i64::MAX);
            let mut failed = Vec::new();
            for r in rows {
                let (Some(trial_id), Some(beat)) = (r[0].int(), r[1].text().and_then(parse_us))
                else {
                    continue;
                };
                if now_us - beat <= grace_us {
                    continue;
                }
                let changed = tx.exec(
                    "failing a stale trial",
                    "UPDATE trials SET state = ?, datetime_complete = ? WHERE trial_id = ? AND state = 'RUNNING'",
                    &[state_v(TrialState::Fail), V::Ts(Some(format_us(super::time::now_us()))), V::Int(trial_id)],
                )?;
                if changed == 0 {
                    continue;
                }
                let reason = format!(
                    "no heartbeat for {:.1} s (grace period {:.1} s): its worker died or hung",
                    (now_us - beat) as f64 / 1e6,
                    grace.as_secs_f64()
                );
                tx.set_attr(AttrKind::System, false, trial_id, "fail_reason", &Value::String(reason))?;
                let Some(t) = tx.load_trials("t.trial_id = ?", trial_id)?.pop() else {
                    continue;
                };
                failed.push(t.number);
                // Optuna's RetryFailedTrialCallback: the first failed number, the history of
                // every failed attempt, the same params and user attributes.
                let mut system = t.system_attrs.clone();
                system.remove("fail_reason");
                let first = system
                    .get("failed_trial")
                    .cloned()
                    .unwrap_or_else(|| Value::from(t.number));
                let mut history = system
                    .get("retry_history")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                history.push(Value::from(t.number));
                if max_retry.is_some_and(|m| history.len() > m as usize) {
                    continue;
                }
                system.insert("failed_trial".into(), first);
                system.insert("retry_history".into(), Value::Array(history));
                let mut params = BTreeMap::new();
                for (name, v) in &t.params {
                    let d = &t.distributions[name];
                    let x = d.to_internal(v).map_err(|e| tx.stored(&format!("retrying trial {}", t.number), e))?;
                    params.insert(name.clone(), (d.clone(), x));
                }
                let retry = NewTrial {
                    waiting: true,
                    params,
                    intermediate: BTreeMap::new(),
                    user_attrs: t.user_attrs.clone(),
                    system_attrs: system,
                };
                tx.create_trial(study_id, &retry, None)?;
            }
            Ok(failed)
        })
    }

    fn trials(&self, study_id: i64) -> Result<Vec<FrozenTrial>> {
        self.tx(false, |tx| tx.load_trials("t.study_id = ?", study_id))
    }

    fn trial(&self, trial_id: i64) -> Result<FrozenTrial> {
        self.tx(false, |tx| {
            tx.load_trials("t.trial_id = ?", trial_id)?
                .pop()
                .ok_or_else(|| tx.err("reading a trial", StorageFailure::NoTrial { trial_id }))
        })
    }

    fn count_states(&self, study_id: i64) -> Result<BTreeMap<&'static str, u64>> {
        self.tx(false, |tx| {
            let rows = tx.query(
                "counting trials",
                "SELECT CAST(state AS TEXT), COUNT(*) FROM trials WHERE study_id = ? GROUP BY state",
                &[V::Int(study_id)],
            )?;
            let mut out = BTreeMap::new();
            for r in rows {
                if let (Some(s), Some(n)) = (r[0].text(), r[1].int()) {
                    let s = TrialState::parse(s).map_err(|e| tx.stored("counting trials", e))?;
                    out.insert(s.as_optuna(), n as u64);
                }
            }
            Ok(out)
        })
    }
}
