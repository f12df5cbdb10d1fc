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

/// Records as a table of the schema's feature columns, or every problem found.
pub fn parse_records(schema: &Schema, body: &Value) -> Result<Records, Vec<FieldError>> {
    let (records, single): (Vec<&Value>, bool) = match body {
        Value::Object(_) => (vec![body], true),
        Value::Array(items) if !items.is_empty() => (items.iter().collect(), false),
        Value::Array(_) => {
            return Err(vec![FieldError {
                path: String::new(),
                message: "empty list; expected at least one record".into(),
            }]);
        }
        _ => {
            return Err(vec![FieldError {
                path: String::new(),
                message: "expected a JSON object with the feature fields, or a list of them".into(),
            }]);
        }
    };
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
    let mut errors = Vec::new();
    for (i, record) in records.iter().enumerate() {
        let path = |field: &str| {
            if single {
                field.to_owned()
            } else {
                format!("[{i}].{field}")
            }
        };
        let Value::Object(map) = record else {
            errors.push(FieldError {
                path: format!("[{i}]"),
                message: "expected an object with the feature fields".into(),
            });
            continue;
        };
        for key in map.keys() {
            let known = schema.column(key).is_some() || schema.id.as_deref() == Some(key.as_str());
            if !known {
                errors.push(FieldError {
                    path: path(key),
                    message: "unknown field".into(),
                });
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
            errors.push(FieldError {
                path: path(id),
                message: format!("{v}: expected a string or number id"),
            });
        }
        let classes = schema.classes();
        truths.push(match map.get(&schema.target) {
            None => None,
            Some(v) => match v.as_str().and_then(|s| classes.iter().position(|l| l == s)) {
                Some(i) => Some(i as u32),
                None => {
                    errors.push(FieldError {
                        path: path(&schema.target),
                        message: format!("{v}: expected one of {}", classes.join(", ")),
                    });
                    None
                }
            },
        });
        for (spec, column) in features.iter().zip(values.iter_mut()) {
            let Some(v) = map.get(&spec.name) else {
                errors.push(FieldError {
                    path: path(&spec.name),
                    message: format!("missing field; expected {}", spec.expectation()),
                });
                continue;
            };
            match (column, &spec.kind) {
                (ColumnValues::Numeric(out), ColumnKind::Numeric { range, .. }) => match v.as_f64()
                {
                    Some(x) if range.is_none_or(|(lo, hi)| x >= lo && x <= hi) => out.push(x),
                    _ => errors.push(FieldError {
                        path: path(&spec.name),
                        message: format!("{v}: expected {}", spec.expectation()),
                    }),
                },
                (ColumnValues::Categorical { levels, codes }, _) => {
                    match v.as_str().and_then(|s| levels.iter().position(|l| l == s)) {
                        Some(code) => codes.push(code as u32),
                        None => errors.push(FieldError {
                            path: path(&spec.name),
                            message: format!("{v}: expected {}", spec.expectation()),
                        }),
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
    };
    Ok(Records {
        table,
        single,
        truths,
    })
}
