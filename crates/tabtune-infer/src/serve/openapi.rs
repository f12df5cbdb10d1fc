//! The OpenAPI 3.0 document of the API, generated from the bundle's schema (the request type is
//! the schema's feature columns, so the document always matches the validation).

use serde_json::{Value, json};
use tabtune_features::{ColumnKind, Schema};

/// The document for a model named `model` with `schema` and `classes`.
pub fn document(model: &str, schema: &Schema, classes: &[String]) -> Value {
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
    properties.insert(schema.target.clone(), json!({ "type": "string", "enum": classes, "description": "optional label (ignored by /predict)" }));
    let probabilities = json!({ "type": "object", "properties": classes.iter().map(|c| (c.clone(), json!({ "type": "number" }))).collect::<serde_json::Map<_, _>>() });
    let error = json!({ "$ref": "#/components/schemas/Error" });
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
                    "422": { "description": "invalid fields, each with its path", "content": { "application/json": { "schema": error } } },
                    "429": { "description": "the prediction queue is full", "content": { "application/json": { "schema": error } } }
                }
            } },
            "/health": { "get": { "summary": "liveness", "responses": { "200": { "description": "ok" } } } },
            "/version": { "get": { "summary": "tabtune and model versions", "responses": { "200": { "description": "versions" } } } },
            "/metrics": { "get": { "summary": "Prometheus metrics", "responses": { "200": { "description": "text exposition" } } } },
            "/openapi.json": { "get": { "summary": "this document", "responses": { "200": { "description": "OpenAPI 3.0" } } } }
        },
        "components": { "schemas": {
            "Record": { "type": "object", "additionalProperties": false, "required": required, "properties": properties },
            "Prediction": { "type": "object", "properties": {
                "model": { "type": "string" },
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
        } }
    })
}
