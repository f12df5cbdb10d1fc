//! The OpenAPI 3.0 document of the API, generated from the bundle's schema (the request type is
//! the schema's feature columns, so the document always matches the validation).

use serde_json::{Value, json};
use tabtune_features::{ColumnKind, Schema};

/// The document for a model named `model` with `schema` and `classes`, and a window of
/// `window` recent rows.
pub fn document(model: &str, schema: &Schema, classes: &[String], window: usize) -> Value {
    let mut properties = serde_json::Map::new();
    let mut required = Vec::new();
    for c in schema.feature_columns() {
        let mut p = match &c.kind {
            ColumnKind::Numeric { range, unit } => {
                let mut p = json!({ "type": "number" });
                if let Some((lo, hi)) = range {
                    p["minimum"] = json!(lo);
                    p["maximum"] = json!(hi);
                }
                if let Some(u) = unit {
                    p["description"] = json!(format!("unit: {u}"));
                }
                p
            }
            ColumnKind::Categorical { levels } => json!({ "type": "string", "enum": levels }),
        };
        if let Some(d) = &c.description {
            p["description"] = json!(d);
        }
        properties.insert(c.name.clone(), p);
        required.push(c.name.clone());
    }
    if let Some(id) = &schema.id {
        properties.insert(id.clone(), json!({ "oneOf": [{ "type": "string" }, { "type": "number" }], "description": "row id, echoed in the prediction" }));
    }
    properties.insert(schema.target.clone(), json!({ "type": "string", "enum": classes, "description": "optional true class: kept with the prediction for /monitor/model-performance" }));
    let probabilities = json!({ "type": "object", "properties": classes.iter().map(|c| (c.clone(), json!({ "type": "number" }))).collect::<serde_json::Map<_, _>>() });
    let error = json!({ "$ref": "#/components/schemas/Error" });
    let err = |d: &str| json!({ "description": d, "content": { "application/json": { "schema": error } } });
    let secured = json!([{ "bearer": [] }]);
    let window_params = json!([
        { "name": "window", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 1, "maximum": window.max(1), "default": window },
          "description": "the newest N predicted rows of the window" },
        { "name": "format", "in": "query", "required": false, "schema": { "type": "string", "enum": ["json", "html"], "default": "json" } }
    ]);
    let report = |summary: &str| {
        json!({ "get": {
        "summary": summary,
        "security": secured,
        "parameters": window_params,
        "responses": {
            "200": { "description": "the report (JSON, or a self-contained HTML page with format=html)",
                     "content": { "application/json": { "schema": { "type": "object" } }, "text/html": { "schema": { "type": "string" } } } },
            "401": err("missing or wrong bearer token"),
            "409": err("not enough data in the window (or no reference data, or no window)"),
            "422": err("bad query parameter, with its name as path"),
            "429": err("reports are being computed; retry")
        }
    } })
    };
    json!({
        "openapi": "3.0.3",
        "info": { "title": format!("tabtune: {model}"), "version": env!("CARGO_PKG_VERSION") },
        "paths": {
            "/predict": { "post": {
                "summary": "Class and per-class probabilities for one record or a list of records",
                "requestBody": { "required": true, "content": { "application/json": { "schema": {
                    "oneOf": [
                        { "$ref": "#/components/schemas/Record" },
                        { "type": "array", "minItems": 1, "items": { "$ref": "#/components/schemas/Record" } }
                    ]
                } } } },
                "responses": {
                    "200": { "description": "predictions", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Prediction" } } } },
                    "400": { "description": "the body is not JSON", "content": { "application/json": { "schema": error } } },
                    "413": { "description": "the body is over the size limit" },
                    "415": err("Content-Type is not application/json"),
                    "422": { "description": "invalid fields, each with its path", "content": { "application/json": { "schema": error } } },
                    "429": { "description": "the prediction queue is full", "content": { "application/json": { "schema": error } } }
                }
            } },
            "/feedback": { "post": {
                "summary": "True classes of earlier predictions (all or nothing), for /monitor/model-performance",
                "security": secured,
                "requestBody": { "required": true, "content": { "application/json": { "schema": {
                    "oneOf": [
                        { "$ref": "#/components/schemas/Feedback" },
                        { "type": "array", "minItems": 1, "items": { "$ref": "#/components/schemas/Feedback" } }
                    ]
                } } } },
                "responses": {
                    "200": { "description": "labelled", "content": { "application/json": { "schema": { "type": "object", "properties": {
                        "labelled": { "type": "integer" }, "window_rows": { "type": "integer" }, "window_labelled": { "type": "integer" } } } } } },
                    "400": err("the body is not JSON"),
                    "401": err("missing or wrong bearer token"),
                    "404": err("a prediction is no longer in the window (nothing was labelled)"),
                    "409": err("the server keeps no window"),
                    "415": err("Content-Type is not application/json"),
                    "422": err("invalid fields, each with its path")
                }
            } },
            "/monitor/data-drift": report("Data drift per column (Evidently's default tests) and dataset drift, window vs reference"),
            "/monitor/target-drift": report("Target drift (labelled window rows) and prediction drift, window vs reference"),
            "/monitor/data-quality": report("Data quality: duplicates, out-of-range values, new levels, constant columns, per-column statistics"),
            "/monitor/model-performance": report("Accuracy, log loss, per-class precision/recall/F1, confusion matrix on the labelled window rows"),
            "/admin/reload": { "post": {
                "summary": "Loads the model source again (bundle path or models:/name@alias) and swaps the model in",
                "security": secured,
                "responses": {
                    "200": { "description": "the previous and the current model", "content": { "application/json": { "schema": { "type": "object" } } } },
                    "401": err("missing or wrong bearer token"),
                    "409": err("the source cannot be loaded, or its model has another schema; the old model keeps serving"),
                    "500": err("the reload failed on the server's side; the old model keeps serving")
                }
            } },
            "/health": { "get": { "summary": "liveness", "responses": { "200": { "description": "ok" } } } },
            "/version": { "get": { "summary": "tabtune and model versions", "responses": { "200": { "description": "versions" } } } },
            "/metrics": { "get": { "summary": "Prometheus metrics", "responses": { "200": { "description": "text exposition" } } } },
            "/openapi.json": { "get": { "summary": "this document", "responses": { "200": { "description": "OpenAPI 3.0" } } } }
        },
        "components": { "schemas": {
            "Record": { "type": "object", "additionalProperties": false, "required": required, "properties": properties },
            "Feedback": { "type": "object", "additionalProperties": false, "required": ["label"], "properties": {
                "prediction_id": { "type": "integer", "minimum": 1, "description": "from /predict" },
                "id": { "oneOf": [{ "type": "string" }, { "type": "number" }], "description": "the record's id (its newest prediction)" },
                "label": { "type": "string", "enum": classes }
            } },
            "Prediction": { "type": "object", "properties": {
                "model": { "type": "string" },
                "prediction_id": { "type": "integer", "description": "for POST /feedback" },
                "class": { "type": "string", "enum": classes },
                "probabilities": probabilities,
                "predictions": { "type": "array", "items": { "type": "object" } }
            } },
            "Error": { "type": "object", "required": ["error"], "properties": {
                "error": { "type": "string" },
                "details": { "type": "array", "items": { "type": "object", "properties": {
                    "path": { "type": "string" }, "message": { "type": "string" }
                } } }
            } }
        },
        "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer", "description": "TABTUNE_API_TOKEN, when the server has one" } } }
    })
}
