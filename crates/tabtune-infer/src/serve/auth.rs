//! The optional bearer token of the monitoring and admin routes.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::state::AppState;

/// Compares in time that depends only on the lengths, never on where the bytes differ.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= x ^ y;
    }
    diff == 0
}

fn unauthorized(message: &str, invalid: bool) -> Response {
    let challenge = if invalid {
        "Bearer realm=\"tabtune\", error=\"invalid_token\""
    } else {
        "Bearer realm=\"tabtune\""
    };
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, message).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    response
}

/// Lets the request through when no token is configured or it carries
/// `Authorization: Bearer <token>`; 401 with `WWW-Authenticate: Bearer` otherwise.
pub(crate) async fn require_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(token) = state.token() else {
        return next.run(request).await;
    };
    let Some(value) = request.headers().get(header::AUTHORIZATION) else {
        return unauthorized(
            "this route needs `Authorization: Bearer <token>` (the server's TABTUNE_API_TOKEN)",
            false,
        );
    };
    let given = value
        .to_str()
        .ok()
        .and_then(|v| {
            v.split_once(' ')
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        })
        .map(|(_, t)| t.trim());
    match given {
        Some(t) if constant_time_eq(t.as_bytes(), token.as_bytes()) => next.run(request).await,
        _ => unauthorized("invalid bearer token", true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_only_when_every_byte_and_the_length_match() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(constant_time_eq(b"", b""));
    }
}
