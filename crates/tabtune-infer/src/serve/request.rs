//! Turning a JSON request body into a validated [`Table`], with a path for every bad field.

use serde::Serialize;
use serde_json::Value;
use tabtune_features::{Column, ColumnKind, ColumnValues, Schema, Table};

/// One problem in a request, located by a JSON path such as `[2].Age`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// Where: `Age` for a single object, `[i].Age` in a list, `[i]` for a record itself.
    pub path: String,
    /// What was wrong and what was expected.
    pub message: String,
}

/// The problems of one request: the first `cap` listed, all counted. A body of 340 000 empty
/// records once produced a 487 MB answer listing every missing field; now the answer lists the
/// first few and says how many there were (messages are only formatted for listed problems).
#[derive(Debug)]
pub struct FieldErrors {
    /// The listed problems.
    pub listed: Vec<FieldError>,
    /// All problems found.
    pub total: usize,
    cap: usize,
}

impl FieldErrors {
    /// Lists at most `cap` problems.
    pub fn new(cap: usize) -> Self {
        Self {
            listed: Vec::new(),
            total: 0,
            cap,
        }
    }

    /// One problem (formatted only when it will be listed).
    pub fn push(&mut self, path: impl FnOnce() -> String, message: impl FnOnce() -> String) {
        self.total += 1;
        if self.listed.len() < self.cap {
            self.listed.push(FieldError {
                path: path(),
                message: message(),
            });
        }
    }

    /// Whether there is no problem.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }
}

/// A JSON value quoted in a message: at most 200 bytes, then its length.
pub(crate) fn quote(v: &Value) -> String {
    tabtune_features::text::clip(&v.to_string()).into_owned()
}

/// Validated records.
#[derive(Debug)]
pub struct Records {
    /// The schema's feature columns (ids when every record has one).
    pub table: Table,
    /// Whether the body was one object rather than a list.
    pub single: bool,
    /// Per record, the true class when the record carried the target field.
    pub truths: Vec<Option<u32>>,
}

/// The records of a body: one object, or a non-empty list.
pub fn records_of(body: &Value) -> Result<(Vec<&Value>, bool), FieldError> {
    match body {
        Value::Object(_) => Ok((vec![body], true)),
        Value::Array(items) if !items.is_empty() => Ok((items.iter().collect(), false)),
        Value::Array(_) => Err(FieldError {
            path: String::new(),
            message: "empty list; expected at least one record".into(),
        }),
        _ => Err(FieldError {
            path: String::new(),
            message: "expected a JSON object with the feature fields, or a list of them".into(),
        }),
    }
}

/// Records as a table of the schema's feature columns, or the problems found (the first
/// `max_errors` listed, all counted).
pub fn parse_records(
    schema: &Schema,
    body: &Value,
    max_errors: usize,
) -> Result<Records, FieldErrors> {
    let (records, single) = records_of(body).map_err(|e| {
        let mut errors = FieldErrors::new(max_errors.max(1));
        errors.push(|| e.path, || e.message);
        errors
    })?;
    let features: Vec<_> = schema.feature_columns().collect();
    let mut values: Vec<ColumnValues> = features
        .iter()
        .map(|c| match &c.kind {
            ColumnKind::Numeric { .. } => ColumnValues::Numeric(Vec::with_capacity(records.len())),
            ColumnKind::Categorical { levels } => ColumnValues::Categorical {
                levels: levels.clone(),
                codes: Vec::with_capacity(records.len()),
            },
        })
        .collect();
    let mut ids: Vec<Option<String>> = Vec::with_capacity(records.len());
    let mut truths: Vec<Option<u32>> = Vec::with_capacity(records.len());
    let mut errors = FieldErrors::new(max_errors);
    for (i, record) in records.iter().enumerate() {
        let path = |field: &str| {
            if single {
                field.to_owned()
            } else {
                format!("[{i}].{field}")
            }
        };
        let Value::Object(map) = record else {
            errors.push(
                || format!("[{i}]"),
                || "expected an object with the feature fields".into(),
            );
            continue;
        };
        for key in map.keys() {
            let known = schema.column(key).is_some() || schema.id.as_deref() == Some(key.as_str());
            if !known {
                errors.push(
                    || path(&tabtune_features::text::clip(key)),
                    || "unknown field".into(),
                );
            }
        }
        ids.push(schema.id.as_ref().and_then(|id| match map.get(id) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        }));
        if let Some(id) = &schema.id
            && let Some(v) = map.get(id)
            && !(v.is_string() || v.is_number())
        {
            errors.push(
                || path(id),
                || format!("{}: expected a string or number id", quote(v)),
            );
        }
        let classes = schema.classes();
        truths.push(match map.get(&schema.target) {
            None => None,
            Some(v) => match v.as_str().and_then(|s| classes.iter().position(|l| l == s)) {
                Some(i) => Some(i as u32),
                None => {
                    errors.push(
                        || path(&schema.target),
                        || format!("{}: expected one of {}", quote(v), classes.join(", ")),
                    );
                    None
                }
            },
        });
        for (spec, column) in features.iter().zip(values.iter_mut()) {
            let Some(v) = map.get(&spec.name) else {
                errors.push(
                    || path(&spec.name),
                    || format!("missing field; expected {}", spec.expectation()),
                );
                continue;
            };
            match (column, &spec.kind) {
                (ColumnValues::Numeric(out), ColumnKind::Numeric { range, .. }) => match v.as_f64()
                {
                    Some(x) if range.is_none_or(|(lo, hi)| x >= lo && x <= hi) => out.push(x),
                    _ => errors.push(
                        || path(&spec.name),
                        || format!("{}: expected {}", quote(v), spec.expectation()),
                    ),
                },
                (ColumnValues::Categorical { levels, codes }, _) => {
                    match v.as_str().and_then(|s| levels.iter().position(|l| l == s)) {
                        Some(code) => codes.push(code as u32),
                        None => errors.push(
                            || path(&spec.name),
                            || format!("{}: expected {}", quote(v), spec.expectation()),
                        ),
                    }
                }
                _ => unreachable!("columns follow the schema's kinds"),
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let columns = features
        .iter()
        .zip(values)
        .map(|(spec, values)| Column {
            name: spec.name.clone(),
            values,
        })
        .collect();
    let ids = ids
        .iter()
        .all(Option::is_some)
        .then(|| ids.into_iter().flatten().collect());
    let table = Table {
        source: "request".into(),
        columns,
        ids,
        target: None,
        rows: (1..=records.len()).collect(),
        train_only: 0,
    };
    Ok(Records {
        table,
        single,
        truths,
    })
}
