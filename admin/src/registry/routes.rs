use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use jivapay_schemas::{RegisteredSchema, SchemaRegistry};
use serde_json::{json, Value};
use std::sync::Arc;

/// The media type Schema Registry clients ask for and accept.
const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

pub fn router(schemas: SchemaRegistry) -> Router {
    Router::new()
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/subjects", get(subjects))
        .route("/subjects/{subject}/versions", get(versions))
        .route("/subjects/{subject}/versions/{version}", get(version))
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(version_schema),
        )
        .route("/config", get(config))
        .with_state(schemas)
}

/// Errors in the registry's own format: an `error_code` and a `message`.
struct RegistryError {
    status: StatusCode,
    code: u32,
    message: &'static str,
}

const SUBJECT_NOT_FOUND: RegistryError = RegistryError {
    status: StatusCode::NOT_FOUND,
    code: 40401,
    message: "Subject not found.",
};
const VERSION_NOT_FOUND: RegistryError = RegistryError {
    status: StatusCode::NOT_FOUND,
    code: 40402,
    message: "Version not found.",
};
const SCHEMA_NOT_FOUND: RegistryError = RegistryError {
    status: StatusCode::NOT_FOUND,
    code: 40403,
    message: "Schema not found.",
};
const INVALID_VERSION: RegistryError = RegistryError {
    status: StatusCode::UNPROCESSABLE_ENTITY,
    code: 42202,
    message: "The specified version is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\"",
};

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        registry_json(
            self.status,
            json!({"error_code": self.code, "message": self.message}),
        )
    }
}

fn registry_json(status: StatusCode, body: Value) -> Response {
    (status, [(header::CONTENT_TYPE, CONTENT_TYPE)], Json(body)).into_response()
}

/// The schema as one line of JSON, as registries return it.
fn schema_text(schema: &RegisteredSchema) -> String {
    serde_json::from_str::<Value>(schema.text())
        .map(|v| v.to_string())
        .unwrap_or_else(|_| schema.text().to_owned())
}

async fn schema_by_id(
    State(schemas): State<SchemaRegistry>,
    Path(id): Path<String>,
) -> Result<Response, RegistryError> {
    let id: u32 = id.parse().map_err(|_| SCHEMA_NOT_FOUND)?;
    let schema = schemas.by_id(id).ok_or(SCHEMA_NOT_FOUND)?;
    Ok(registry_json(
        StatusCode::OK,
        json!({"schema": schema_text(schema)}),
    ))
}

async fn subjects(State(schemas): State<SchemaRegistry>) -> Response {
    registry_json(StatusCode::OK, json!(schemas.subjects()))
}

async fn versions(
    State(schemas): State<SchemaRegistry>,
    Path(subject): Path<String>,
) -> Result<Response, RegistryError> {
    let versions = schemas
        .subject_versions(&subject)
        .ok_or(SUBJECT_NOT_FOUND)?;
    let numbers: Vec<u32> = versions.iter().map(|s| s.version()).collect();
    Ok(registry_json(StatusCode::OK, json!(numbers)))
}

fn find_version(
    schemas: &SchemaRegistry,
    subject: &str,
    version: &str,
) -> Result<Arc<RegisteredSchema>, RegistryError> {
    let versions = schemas.subject_versions(subject).ok_or(SUBJECT_NOT_FOUND)?;
    let found = match version {
        // -1 is the registry's alias for the latest version.
        "latest" | "-1" => versions.last(),
        number => {
            let number: u32 = number
                .parse()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or(INVALID_VERSION)?;
            versions.iter().find(|s| s.version() == number)
        }
    };
    found.cloned().ok_or(VERSION_NOT_FOUND)
}

async fn version(
    State(schemas): State<SchemaRegistry>,
    Path((subject, version)): Path<(String, String)>,
) -> Result<Response, RegistryError> {
    let schema = find_version(&schemas, &subject, &version)?;
    Ok(registry_json(
        StatusCode::OK,
        json!({
            "subject": subject,
            "id": schema.id,
            "version": schema.version(),
            "schema": schema_text(&schema),
        }),
    ))
}

async fn version_schema(
    State(schemas): State<SchemaRegistry>,
    Path((subject, version)): Path<(String, String)>,
) -> Result<Response, RegistryError> {
    let schema = find_version(&schemas, &subject, &version)?;
    let body: Value = serde_json::from_str(schema.text()).unwrap_or(Value::Null);
    Ok(registry_json(StatusCode::OK, body))
}

/// Our schemas evolve under backward compatibility (see `schemas/src/lib.rs`).
async fn config() -> Response {
    registry_json(StatusCode::OK, json!({"compatibilityLevel": "BACKWARD"}))
}
