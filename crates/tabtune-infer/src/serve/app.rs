//! The router and the prediction, status and admin handlers.

use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::auth::require_token;
use super::error::ApiError;
use super::feedback::feedback;
use super::monitoring::{data_drift, data_quality, model_performance, target_drift};
use super::request::parse_records;
use super::state::{AppState, Model};

/// The router. Open: `POST /predict`, `GET /health`, `/version`, `/metrics`, `/openapi.json`.
/// Behind the bearer token when one is set: `POST /feedback`, `GET /monitor/data-drift`,
/// `/monitor/target-drift`, `/monitor/data-quality`, `/monitor/model-performance`,
/// `POST /admin/reload`.
pub fn app(state: AppState) -> Router {
    let limit = state.options.max_body_bytes;
    let protected = Router::new()
        .route("/feedback", post(feedback))
        .route("/monitor/data-drift", get(data_drift))
        .route("/monitor/target-drift", get(target_drift))
        .route("/monitor/data-quality", get(data_quality))
        .route("/monitor/model-performance", get(model_performance))
        .route("/admin/reload", post(reload))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/predict", post(predict))
        .route("/health", get(health))
        .route("/version", get(version))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .merge(protected)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(state.clone(), read_body))
        .layer(middleware::from_fn_with_state(state.clone(), record))
        .with_state(state)
}

/// Reads the whole body before any handler runs, within the server's limits: a declared
/// `Content-Length` over `max_body_bytes` is refused before a byte of the body is read (413),
/// a body that grows past it is cut off (413), and a body that does not arrive within
/// `body_timeout` gets 408. Every answer is JSON; the connection closes after a refusal (its
/// body was not read).
async fn read_body(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let limit = state.options.max_body_bytes;
    let too_large = |size: String| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the request body is {size}; at most {limit} bytes (the server's --max-body-bytes)"
            ),
        )
        .closing()
        .into_response()
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(length) = declared
        && length > limit as u64
    {
        return too_large(format!("{length} bytes (Content-Length)"));
    }
    let (parts, body) = request.into_parts();
    let limited = http_body_util::Limited::new(body, limit);
    let collected = tokio::time::timeout(
        state.options.body_timeout,
        http_body_util::BodyExt::collect(limited),
    )
    .await;
    let bytes = match collected {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return too_large("larger".into());
        }
        Ok(Err(e)) => {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("cannot read the request body: {e}"),
            )
            .closing()
            .into_response();
        }
        Err(_) => {
            return ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body did not arrive within {:?} (the server's --body-timeout)",
                    state.options.body_timeout
                ),
            )
            .closing()
            .into_response();
        }
    };
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await
}

async fn record(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let start = Instant::now();
    let response = next.run(request).await;
    state.shared.metrics.request(
        &route,
        response.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    response
}

const ROUTES: &str = "POST /predict, GET /health, /version, /metrics, /openapi.json, POST /feedback, GET /monitor/{data-drift,target-drift,data-quality,model-performance}, POST /admin/reload";

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no such route; the routes are {ROUTES}"),
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("method not allowed on this route; the routes are {ROUTES}"),
    )
}

/// 415 unless the body is declared as JSON (a missing Content-Type is taken as JSON).
pub(crate) fn check_json_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let essence = value
        .to_str()
        .ok()
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    match essence {
        Some(e)
            if e == "application/json"
                || (e.starts_with("application/") && e.ends_with("+json")) =>
        {
            Ok(())
        }
        _ => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "Content-Type {:?}: expected application/json",
                String::from_utf8_lossy(value.as_bytes())
            ),
        )),
    }
}

/// 413 when the body is a JSON list of more than `max` items, found by a scan that builds no
/// value (340,000 empty records in 1 MB are refused in about a millisecond instead of being
/// parsed into 340,000 maps first). Anything else (not a list, malformed) is left to
/// [`parse_json`].
pub(crate) fn check_record_count(body: &[u8], max: usize) -> Result<(), ApiError> {
    struct Count;
    impl<'de> serde::de::Visitor<'de> for Count {
        type Value = usize;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a list")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
            let mut n = 0usize;
            while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
                n += 1;
            }
            Ok(n)
        }
    }
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'[') {
        return Ok(());
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    match serde::Deserializer::deserialize_seq(&mut de, Count) {
        Ok(n) if n > max => Err(ApiError::too_many_records(n, max)),
        _ => Ok(()),
    }
}

/// 400 unless the body is JSON.
pub(crate) fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("the body is not valid JSON: {e}"),
        )
    })
}

async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

fn model_info(model: &Model) -> Value {
    let meta = &model.predictor.bundle().meta;
    json!({
        "model": meta.name,
        "family": meta.family,
        "model_git_commit": meta.git_commit,
        "model_created_unix": meta.created_unix,
        "loaded_unix": model.loaded_unix,
    })
}

async fn version(State(state): State<AppState>) -> Json<Value> {
    let model = state.model();
    let meta = &model.predictor.bundle().meta;
    let mut out = model_info(&model);
    out["tabtune_version"] = json!(env!("CARGO_PKG_VERSION"));
    out["classes"] = json!(meta.classes);
    out["metrics"] = json!(meta.metrics);
    out["training_data"] = json!(meta.training_data);
    out["source"] = json!(state.source.as_ref().map(|s| s.description.clone()));
    out["reloads"] = json!(state.shared.reloads.load(Ordering::Relaxed));
    Json(out)
}

async fn openapi(State(state): State<AppState>) -> Json<Value> {
    let model = state.model();
    let meta = &model.predictor.bundle().meta;
    Json(super::openapi::document(
        &meta.name,
        &meta.schema,
        &meta.classes,
        state.options.window,
    ))
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.shared.metrics.render(),
    )
        .into_response()
}

async fn predict(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    check_json_content_type(&headers)?;
    let permit = state
        .shared
        .permits
        .clone()
        .try_acquire_owned()
        .map_err(|_| {
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "the prediction queue is full; retry shortly",
            )
        })?;
    // One model for the whole request, even if a reload swaps it meanwhile.
    let model = state.model();
    let worker = model.clone();
    let options = state.options;
    // Parsing, validation and prediction all run on the blocking pool behind the permit: a
    // 1 MB body must not hold one of the few runtime threads that every connection shares.
    let outcome = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        check_record_count(&body, options.max_records)?;
        let value = parse_json(&body)?;
        let schema = &worker.predictor.bundle().meta.schema;
        let records = parse_records(schema, &value, options.max_errors_listed)
            .map_err(ApiError::invalid_fields)?;
        let prediction = worker.predictor.predict(&records.table);
        Ok::<_, ApiError>((records, prediction))
    })
    .await
    .map_err(|e| {
        // A panic here is a bug: the model was checked at load. Say so without its text.
        tracing::error!("prediction task failed: {e}");
        ApiError::internal("the prediction failed inside the server (see its log)")
    })?;
    let (records, prediction) = outcome?;
    let prediction = prediction.map_err(ApiError::from)?;
    let classes = model.predictor.classes();
    state.shared.metrics.predictions(
        prediction
            .labels
            .iter()
            .map(|&l| classes[l as usize].as_str()),
    );
    let prediction_ids = state
        .window()
        .push(&records.table, &prediction, &records.truths);
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
            let mut item = json!({
                "class": classes[label as usize],
                "probabilities": probabilities,
                "prediction_id": prediction_ids[i],
            });
            if let Some(ids) = &prediction.ids {
                item["id"] = json!(ids[i]);
            }
            item
        })
        .collect();
    let meta = &model.predictor.bundle().meta;
    let mut out = json!({ "model": meta.name, "family": meta.family, "model_created_unix": meta.created_unix });
    if records.single {
        if let Some(Value::Object(item)) = items.into_iter().next() {
            for (k, v) in item {
                out[k] = v;
            }
        }
    } else {
        out["predictions"] = Value::Array(items);
    }
    Ok(Json(out))
}

/// `POST /admin/reload`: loads the model source again and swaps the model in; requests already
/// running finish on the old one. A failed reload keeps the old model.
async fn reload(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let Some(source) = state.source.clone() else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "this server was started without a reloadable model source",
        ));
    };
    // One reload at a time.
    let _guard = state.shared.reload_lock.lock().await;
    let old = state.model();
    let loaded = tokio::task::spawn_blocking(move || (source.reload)())
        .await
        .map_err(|e| {
            tracing::error!("reload task failed: {e}");
            ApiError::internal(
                "the reload failed inside the server (see its log); still serving the old model",
            )
        })?;
    let keep = |status: StatusCode, reason: String| {
        ApiError::new(
            status,
            format!(
                "reload failed; still serving {}: {reason}",
                old.predictor.bundle().meta.name
            ),
        )
    };
    let new = match loaded {
        Ok(p) => p,
        Err(e) => {
            let status = if e.bad_input {
                StatusCode::CONFLICT
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            };
            return Err(keep(status, e.message));
        }
    };
    let (old_meta, new_meta) = (&old.predictor.bundle().meta, &new.bundle().meta);
    if old_meta.schema != new_meta.schema || old_meta.classes != new_meta.classes {
        return Err(keep(
            StatusCode::CONFLICT,
            format!(
                "the new model {} has another input schema or other classes; restart the server to serve it",
                new_meta.name
            ),
        ));
    }
    let model = Model::new(new);
    let current = model_info(&model);
    let previous = state.swap_model(model);
    Ok(Json(json!({
        "reloaded": true,
        "previous": model_info(&previous),
        "current": current,
        "source": state.source.as_ref().map(|s| s.description.clone()),
    })))
}
