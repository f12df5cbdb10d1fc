//! The API's one error response: a status, a message and, for 422, the bad fields.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use serde_json::json;

use super::request::{FieldError, FieldErrors};
use crate::error::InferError;

/// An error response: `{"error": message, "details": [{path, message}], "errors_total": N}`
/// (`errors_total` when more problems were found than listed).
#[derive(Debug)]
pub struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
    pub(crate) details: Vec<FieldError>,
    /// Problems found in all (more than `details` lists when the list was cut).
    pub(crate) total: usize,
    /// Whether the connection must close after the answer (the body was not read).
    pub(crate) close: bool,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.message });
        if !self.details.is_empty() {
            body["details"] = json!(self.details);
        }
        if self.total > self.details.len() {
            body["errors_total"] = json!(self.total);
        }
        let mut response = (self.status, Json(body)).into_response();
        if self.close {
            response.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
        }
        response
    }
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            details: Vec::new(),
            total: 0,
            close: false,
        }
    }

    /// The same answer, closing the connection after it.
    #[must_use]
    pub(crate) fn closing(mut self) -> Self {
        self.close = true;
        self
    }

    pub(crate) fn invalid(details: Vec<FieldError>) -> Self {
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            message: format!("{} invalid field(s)", details.len()),
            total: details.len(),
            details,
            close: false,
        }
    }

    /// 422 listing the first problems and counting all.
    pub(crate) fn invalid_fields(errors: FieldErrors) -> Self {
        let message = if errors.total > errors.listed.len() {
            format!(
                "{} invalid field(s); the first {} are listed",
                errors.total,
                errors.listed.len()
            )
        } else {
            format!("{} invalid field(s)", errors.total)
        };
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            message,
            details: errors.listed,
            total: errors.total,
            close: false,
        }
    }

    /// 413: more records in one request than the server takes.
    pub(crate) fn too_many_records(records: usize, max: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "{records} records in one request; at most {max} (the server's --max-records): \
                 send them in smaller batches"
            ),
        )
    }

    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

/// Domain errors: the caller's data (not enough rows, wrong schema) is a 409 (the server's
/// state does not allow the report yet), anything else a 500.
impl From<InferError> for ApiError {
    fn from(e: InferError) -> Self {
        let status = if e.is_bad_input() {
            StatusCode::CONFLICT
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        };
        Self::new(status, e.to_string())
    }
}
