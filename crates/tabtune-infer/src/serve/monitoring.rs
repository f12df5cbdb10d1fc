//! `GET /monitor/...`: reports on the window of recent predictions against the reference data,
//! `?window=N` (the newest N rows; default: the whole window) and `?format=json|html`.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use serde_json::{Value, json};
use tabtune_features::Table;

use super::error::ApiError;
use super::request::FieldError;
use super::state::{AppState, Model};
use super::window::WindowData;
use crate::monitor;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Html,
}

struct Query {
    window: usize,
    format: Format,
}

fn parse_query(raw: Option<&str>, capacity: usize) -> Result<Query, ApiError> {
    let mut query = Query {
        window: capacity,
        format: Format::Json,
    };
    let mut errors = Vec::new();
    for pair in raw.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "window" => match value.parse::<usize>() {
                Ok(n) if (1..=capacity).contains(&n) => query.window = n,
                _ => errors.push(FieldError {
                    path: "window".into(),
                    message: format!(
                        "{value:?}: expected a whole number of rows in [1, {capacity}] (the window's capacity)"
                    ),
                }),
            },
            "format" => match value {
                "json" => query.format = Format::Json,
                "html" => query.format = Format::Html,
                _ => errors.push(FieldError {
                    path: "format".into(),
                    message: format!("{value:?}: expected json or html"),
                }),
            },
            _ => errors.push(FieldError {
                path: key.to_owned(),
                message: "unknown query parameter; expected window or format".into(),
            }),
        }
    }
    if errors.is_empty() {
        Ok(query)
    } else {
        Err(ApiError::invalid(errors))
    }
}

/// What a report gets: the model, the reference, the window's newest rows.
struct Inputs {
    model: Arc<Model>,
    reference: Arc<Table>,
    data: WindowData,
    format: Format,
}

impl Inputs {
    fn model_name(&self) -> &str {
        &self.model.predictor.bundle().meta.name
    }
}

fn conflict(message: String) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, message)
}

fn inputs(state: &AppState, raw: Option<&str>) -> Result<Inputs, ApiError> {
    let capacity = state.options.window;
    if capacity == 0 {
        return Err(conflict(
            "the server keeps no window of predictions (started with --window 0)".into(),
        ));
    }
    let query = parse_query(raw, capacity)?;
    let Some(reference) = state.reference.clone() else {
        return Err(conflict(
            "the server has no reference data; start it with --reference FILE".into(),
        ));
    };
    let model = state.model();
    let classes = model.predictor.classes().len();
    let data =
        state
            .window()
            .snapshot(query.window, &model.predictor.bundle().meta.schema, classes);
    let needed = state.options.min_window_rows.max(1);
    if data.labels.len() < needed {
        return Err(conflict(format!(
            "not enough data: the window holds {} predicted row(s); at least {needed} needed (POST /predict first)",
            data.labels.len()
        )));
    }
    Ok(Inputs {
        model,
        reference,
        data,
        format: query.format,
    })
}

/// Runs a report on the blocking pool behind the report permits (busy: 429).
async fn run<F>(state: &AppState, job: F) -> Result<Response, ApiError>
where
    F: FnOnce() -> Result<Response, ApiError> + Send + 'static,
{
    let permit = state
        .shared
        .report_permits
        .clone()
        .try_acquire_owned()
        .map_err(|_| {
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "monitoring reports are being computed; retry shortly",
            )
        })?;
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        job()
    })
    .await
    .map_err(|e| ApiError::internal(format!("report task failed: {e}")))?
}

fn reply(
    format: Format,
    json: Value,
    html: impl FnOnce() -> crate::Result<String>,
) -> Result<Response, ApiError> {
    match format {
        Format::Json => Ok(Json(json).into_response()),
        Format::Html => Ok((
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            html()?,
        )
            .into_response()),
    }
}

pub(crate) async fn data_drift(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let inputs = inputs(&state, raw.as_deref())?;
    run(&state, move || {
        let (reference, current) = (&inputs.reference, &inputs.data.table);
        let drift = monitor::feature_drift(reference, current)?;
        let rows = (reference.n_rows(), current.n_rows());
        let json = json!({
            "window": rows.1,
            "reference": reference.source,
            "rows": rows,
            "dataset_drift": drift.dataset_drift,
            "drift_share": drift.drift_share,
            "drifted_columns": drift.drifted_columns(),
            "columns": drift.columns,
        });
        reply(inputs.format, json, || {
            monitor::feature_drift_html(
                &drift,
                rows,
                &reference.source,
                &current.source,
                inputs.model_name(),
            )
        })
    })
    .await
}

pub(crate) async fn target_drift(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let inputs = inputs(&state, raw.as_deref())?;
    run(&state, move || {
        let predictor = &inputs.model.predictor;
        let reference = &inputs.reference;
        let reference_labels = match inputs.model.reference_labels.get() {
            Some(l) => l,
            None => {
                let labels = predictor.predict(reference)?.labels;
                inputs.model.reference_labels.get_or_init(|| labels)
            }
        };
        let labelled: Vec<u32> = inputs.data.truths.iter().filter_map(|t| *t).collect();
        let drift = monitor::target_drift(
            &predictor.bundle().meta.schema.target,
            predictor.classes(),
            reference.target.as_deref(),
            Some(&labelled),
            reference_labels,
            &inputs.data.labels,
        )?;
        let json = json!({
            "window": inputs.data.labels.len(),
            "labelled_rows": labelled.len(),
            "reference": reference.source,
            "target": drift.target,
            "prediction": drift.prediction,
        });
        reply(inputs.format, json, || {
            monitor::target_drift_html(
                &drift,
                &reference.source,
                &inputs.data.table.source,
                inputs.model_name(),
            )
        })
    })
    .await
}

pub(crate) async fn data_quality(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let inputs = inputs(&state, raw.as_deref())?;
    run(&state, move || {
        let schema = &inputs.model.predictor.bundle().meta.schema;
        let quality = monitor::data_quality(schema, &inputs.reference, &inputs.data.table, None);
        let mut json = serde_json::to_value(&quality)
            .map_err(|e| ApiError::internal(format!("report serialisation: {e}")))?;
        json["window"] = json!(inputs.data.labels.len());
        reply(inputs.format, json, || {
            monitor::quality_html(&quality, inputs.model_name())
        })
    })
    .await
}

pub(crate) async fn model_performance(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let inputs = inputs(&state, raw.as_deref())?;
    let labelled: Vec<usize> = (0..inputs.data.truths.len())
        .filter(|&i| inputs.data.truths[i].is_some())
        .collect();
    let needed = state.options.min_window_rows.max(1);
    if labelled.len() < needed {
        return Err(conflict(format!(
            "not enough labelled data: {} of the window's {} row(s) have a true class; at least {needed} needed (POST /feedback with prediction ids and labels, or send the {} field with /predict)",
            labelled.len(),
            inputs.data.truths.len(),
            inputs.model.predictor.bundle().meta.schema.target,
        )));
    }
    run(&state, move || {
        let truth: Vec<u32> = labelled
            .iter()
            .filter_map(|&i| inputs.data.truths[i])
            .collect();
        let predicted: Vec<u32> = labelled.iter().map(|&i| inputs.data.labels[i]).collect();
        let proba = inputs.data.proba.select(ndarray::Axis(0), &labelled);
        let perf =
            monitor::performance(inputs.model.predictor.classes(), &truth, &predicted, &proba);
        let mut json = serde_json::to_value(&perf)
            .map_err(|e| ApiError::internal(format!("report serialisation: {e}")))?;
        json["window"] = json!(inputs.data.labels.len());
        reply(inputs.format, json, || {
            monitor::performance_html(&perf, &inputs.data.table.source, inputs.model_name())
        })
    })
    .await
}
