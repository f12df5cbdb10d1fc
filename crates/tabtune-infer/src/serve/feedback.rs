//! `POST /feedback`: true classes for earlier predictions, for the model-performance report.
//!
//! Body: one object or a list, each `{"prediction_id": 17, "label": "Normal_Weight"}` (the id
//! `/predict` returned) or `{"id": "20758", "label": ...}` (the record's own id field; its
//! newest prediction). All or nothing: when one prediction is no longer in the window, nothing
//! is labelled and the answer (404) lists which.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Json;
use serde_json::{Value, json};

use super::app::{check_json_content_type, check_record_count, parse_json};
use super::error::ApiError;
use super::request::{FieldError, FieldErrors, quote};
use super::state::AppState;

enum Key {
    Prediction(u64),
    Record(String),
}

pub(crate) async fn feedback(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    check_json_content_type(&headers)?;
    check_record_count(&body, state.options.max_records)?;
    let value = parse_json(&body)?;
    let model = state.model();
    let classes = model.predictor.classes();
    let id_field = model.predictor.bundle().meta.schema.id.clone();
    let (items, single): (Vec<&Value>, bool) = match &value {
        Value::Object(_) => (vec![&value], true),
        Value::Array(a) if !a.is_empty() => (a.iter().collect(), false),
        _ => {
            return Err(ApiError::invalid(vec![FieldError {
                path: String::new(),
                message: "expected {\"prediction_id\": N, \"label\": CLASS} (or \"id\" instead of \"prediction_id\"), or a non-empty list of them".into(),
            }]));
        }
    };
    let mut errors = FieldErrors::new(state.options.max_errors_listed);
    let mut wanted: Vec<(String, Key, u32)> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = |f: &str| {
            if single {
                f.to_owned()
            } else if f.is_empty() {
                format!("[{i}]")
            } else {
                format!("[{i}].{f}")
            }
        };
        let Value::Object(map) = item else {
            errors.push(
                || path(""),
                || "expected an object with prediction_id (or id) and label".into(),
            );
            continue;
        };
        for k in map.keys() {
            if !matches!(k.as_str(), "prediction_id" | "id" | "label") {
                errors.push(
                    || path(&tabtune_features::text::clip(k)),
                    || "unknown field; expected prediction_id or id, and label".into(),
                );
            }
        }
        let label = match map.get("label") {
            None => {
                errors.push(
                    || path("label"),
                    || format!("missing field; expected one of {}", classes.join(", ")),
                );
                None
            }
            Some(v) => match v.as_str().and_then(|s| classes.iter().position(|c| c == s)) {
                Some(c) => Some(c as u32),
                None => {
                    errors.push(
                        || path("label"),
                        || format!("{}: expected one of {}", quote(v), classes.join(", ")),
                    );
                    None
                }
            },
        };
        let key = match (map.get("prediction_id"), map.get("id")) {
            (Some(v), None) => match v.as_u64() {
                Some(n) => Some(Key::Prediction(n)),
                None => {
                    errors.push(
                        || path("prediction_id"),
                        || {
                            format!(
                                "{}: expected a prediction id (a positive integer)",
                                quote(v)
                            )
                        },
                    );
                    None
                }
            },
            (None, Some(v)) => match v {
                Value::String(s) => Some(Key::Record(s.clone())),
                Value::Number(n) => Some(Key::Record(n.to_string())),
                _ => {
                    errors.push(
                        || path("id"),
                        || {
                            format!(
                                "{}: expected the record's id (a string or number)",
                                quote(v)
                            )
                        },
                    );
                    None
                }
            },
            (Some(_), Some(_)) => {
                errors.push(|| path(""), || "give prediction_id or id, not both".into());
                None
            }
            (None, None) => {
                errors.push(
                    || path("prediction_id"),
                    || match &id_field {
                        Some(f) => format!("missing field; expected prediction_id (from /predict) or id (the record's {f})"),
                        None => "missing field; expected prediction_id (from /predict)".into(),
                    },
                );
                None
            }
        };
        if let (Some(label), Some(key)) = (label, key) {
            wanted.push((path(""), key, label));
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid_fields(errors));
    }
    let mut window = state.window();
    if window.capacity() == 0 {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "the server keeps no window of predictions (started with --window 0); feedback has nothing to label",
        ));
    }
    let mut resolved = Vec::with_capacity(wanted.len());
    let mut missing = FieldErrors::new(state.options.max_errors_listed);
    for (path, key, label) in &wanted {
        let id = match key {
            Key::Prediction(n) => window.has_prediction(*n).then_some(*n),
            Key::Record(r) => window.prediction_of_record(r),
        };
        match id {
            Some(id) => resolved.push((id, *label)),
            None => missing.push(
                || path.clone(),
                || match key {
                    Key::Prediction(n) => format!("prediction {n} is not in the window of the last {} predicted rows", window.capacity()),
                    Key::Record(r) => format!("no prediction for record id {:?} in the window of the last {} predicted rows", tabtune_features::text::clip(r), window.capacity()),
                },
            ),
        }
    }
    if !missing.is_empty() {
        return Err(ApiError {
            status: StatusCode::NOT_FOUND,
            message: format!(
                "{} of {} label(s) name predictions that are not in the window; nothing was labelled",
                missing.total,
                wanted.len()
            ),
            total: missing.total,
            details: missing.listed,
            close: false,
        });
    }
    for (id, label) in &resolved {
        window.set_truth(*id, *label);
    }
    Ok(Json(json!({
        "labelled": resolved.len(),
        "window_rows": window.len(),
        "window_labelled": window.labelled(),
    })))
}
