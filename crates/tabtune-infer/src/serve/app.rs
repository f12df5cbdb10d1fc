//! Routes and state.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use super::metrics::Metrics;
use super::request::{FieldError, parse_records};
use crate::predictor::Predictor;

/// Limits of the server.
#[derive(Clone, Copy, Debug)]
pub struct ServeOptions {
    /// Largest accepted request body, in bytes (larger: 413).
    pub max_body_bytes: usize,
    /// Predictions that may run or wait at once (more: 429).
    pub max_in_flight: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            max_body_bytes: 1 << 20,
            max_in_flight: 64,
        }
    }
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    predictor: Arc<Predictor>,
    metrics: Arc<Metrics>,
    permits: Arc<Semaphore>,
    options: ServeOptions,
}

impl AppState {
    /// State serving `predictor` (loaded once, shared by every request).
    pub fn new(predictor: Predictor, options: ServeOptions) -> Self {
        Self {
            predictor: Arc::new(predictor),
            metrics: Arc::new(Metrics::default()),
            permits: Arc::new(Semaphore::new(options.max_in_flight)),
            options,
        }
    }
}

/// An error response: status, message, and field details for 422.
struct ApiError {
    status: StatusCode,
    message: String,
    details: Vec<FieldError>,
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
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            details: Vec::new(),
        }
    }
}

/// The router: `POST /predict`, `GET /health`, `GET /version`, `GET /metrics`,
/// `GET /openapi.json`.
pub fn app(state: AppState) -> Router {
    let limit = state.options.max_body_bytes;
    Router::new()
        .route("/predict", post(predict))
        .route("/health", get(health))
        .route("/version", get(version))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(state.clone(), record))
        .with_state(state)
}

async fn record(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let start = Instant::now();
    let response = next.run(request).await;
    state.metrics.request(
        &route,
        response.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    response
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no such route; see /health, /version, /metrics, POST /predict",
    )
}

async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn version(State(state): State<AppState>) -> Json<Value> {
    let meta = &state.predictor.bundle().meta;
    Json(json!({
        "tabtune_version": env!("CARGO_PKG_VERSION"),
        "model": meta.name,
        "family": meta.family,
        "model_git_commit": meta.git_commit,
        "model_created_unix": meta.created_unix,
        "classes": meta.classes,
        "metrics": meta.metrics,
    }))
}

async fn openapi(State(state): State<AppState>) -> Json<Value> {
    let meta = &state.predictor.bundle().meta;
    Json(super::openapi::document(
        &meta.name,
        &meta.schema,
        &meta.classes,
    ))
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

async fn predict(State(state): State<AppState>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let value: Value = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("the body is not valid JSON: {e}"),
        )
    })?;
    let schema = &state.predictor.bundle().meta.schema;
    let (table, single) = parse_records(schema, &value).map_err(|details| ApiError {
        status: StatusCode::UNPROCESSABLE_ENTITY,
        message: format!("{} invalid field(s)", details.len()),
        details,
    })?;
    let permit = state.permits.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "the prediction queue is full; retry shortly",
        )
    })?;
    let predictor = state.predictor.clone();
    let prediction = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        predictor.predict(&table)
    })
    .await
    .map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("prediction task failed: {e}"),
        )
    })?
    .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
    let classes = state.predictor.classes();
    state.metrics.predictions(
        prediction
            .labels
            .iter()
            .map(|&l| classes[l as usize].as_str()),
    );
    let items: Vec<Value> = prediction
        .labels
        .iter()
        .enumerate()
        .map(|(i, &label)| {
            let probabilities: serde_json::Map<String, Value> = classes
                .iter()
                .zip(prediction.proba.row(i))
                .map(|(c, p)| (c.clone(), json!(p)))
                .collect();
            let mut item =
                json!({ "class": classes[label as usize], "probabilities": probabilities });
            if let Some(ids) = &prediction.ids {
                item["id"] = json!(ids[i]);
            }
            item
        })
        .collect();
    let meta = &state.predictor.bundle().meta;
    let mut out = json!({ "model": meta.name, "family": meta.family, "model_created_unix": meta.created_unix });
    if single {
        let item = items
            .into_iter()
            .next()
            .expect("one record in, one prediction out");
        for (k, v) in item.as_object().expect("an object").clone() {
            out[k] = v;
        }
    } else {
        out["predictions"] = Value::Array(items);
    }
    Ok(Json(out))
}
