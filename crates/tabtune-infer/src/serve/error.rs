//! The API's one error response: a status, a message and, for 422, the bad fields.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use serde_json::json;

use super::request::FieldError;
use crate::error::InferError;

/// An error response: `{"error": message, "details": [{path, message}]}`.
#[derive(Debug)]
pub struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
    pub(crate) details: Vec<FieldError>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.message });
        if !self.details.is_empty() {
            body["details"] = json!(self.details);
        }
        (self.status, Json(body)).into_response()
    }
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            details: Vec::new(),
        }
    }

    pub(crate) fn invalid(details: Vec<FieldError>) -> Self {
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            message: format!("{} invalid field(s)", details.len()),
            details,
        }
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
