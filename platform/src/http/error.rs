//! API errors: a stable machine-readable `code`, a human `message`, a 4xx/5xx status, and
//! never internals (SQL, stack traces). Database constraint violations that a client can cause
//! are mapped to 409/422; anything else is logged and reported as `internal_error`.

use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// 401: no valid credentials.
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", message)
    }

    /// 403: authenticated, but not allowed to do this at all.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404: absent, or not the caller's (the two are indistinguishable on purpose).
    pub fn not_found(entity: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{entity} not found"),
        )
    }

    /// 422: the request is well-formed but its content is not acceptable.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            message,
        )
    }

    /// 409: conflicts with existing data (a duplicate name, a state that forbids the change).
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// 503: a dependency (broker, storage) failed; the same request may be sent again.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            message,
        )
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "internal error",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code, "message": self.message } });
        (self.status, Json(body)).into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::JsonDataError(e) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
                format!(
                    "the body does not match the expected fields: {}",
                    e.body_text()
                ),
            ),
            JsonRejection::JsonSyntaxError(_) => Self::new(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                "the body is not valid JSON",
            ),
            JsonRejection::MissingJsonContentType(_) => Self::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as Content-Type: application/json",
            ),
            other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                "the body is too large",
            ),
            other => Self::new(StatusCode::BAD_REQUEST, "bad_request", other.body_text()),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        if let Some(db) = e.as_database_error() {
            let constraint = db.constraint().unwrap_or("").to_owned();
            match db.code().as_deref() {
                // unique_violation
                Some("23505") => {
                    return Self::conflict(format!("already exists ({constraint})"));
                }
                // foreign_key_violation: a referenced code or id does not exist
                Some("23503") => {
                    return Self::invalid(format!(
                        "refers to something that does not exist ({constraint})"
                    ));
                }
                // check_violation, not_null_violation, invalid_text_representation, numeric out of range
                Some("23514") | Some("23502") | Some("22P02") | Some("22003") => {
                    return Self::invalid(format!("value out of range ({constraint})"));
                }
                _ => {}
            }
        }
        tracing::error!(error = %e, "database error");
        Self::internal()
    }
}

impl From<jivapay_schemas::CodecError> for ApiError {
    fn from(e: jivapay_schemas::CodecError) -> Self {
        tracing::error!(error = %e, "encoding an outbox record failed");
        Self::internal()
    }
}

/// A field that breaks a shared rule: 422 `validation_failed`, naming the field and the rule.
impl From<jivapay_core::validate::FieldError> for ApiError {
    fn from(e: jivapay_core::validate::FieldError) -> Self {
        Self::invalid(e.0)
    }
}

/// A callback URL the policy refuses: 422 with the refusal's own code
/// (`callback_url_forbidden`, …), naming the field.
impl From<jivapay_core::callback_url::FieldRefused> for ApiError {
    fn from(e: jivapay_core::callback_url::FieldRefused) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            e.refusal.code(),
            e.to_string(),
        )
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
