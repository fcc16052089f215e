//! The one API error type: an HTTP status and `{"error": {"code", "message", "details"}}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use wf_core::StoreError;

use crate::start::StartError;

/// An error answered to an HTTP caller. Messages say what is wrong and how to fix it.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Value,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: Value::Null,
        }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", what)
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // `details` is always present (null when there are none): the documented shape.
        let error = json!({ "code": self.code, "message": self.message, "details": self.details });
        (self.status, Json(json!({ "error": error }))).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(m) => ApiError::not_found(m),
            StoreError::Conflict(m) => ApiError::conflict("conflict", format!("{m}; try again")),
            StoreError::TooLarge(m) => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", m),
            StoreError::Invalid(m) => ApiError::bad_request("invalid", m),
            StoreError::Unavailable(m) => {
                tracing::warn!(error = %m, "store unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the store is busy; try again",
                )
            }
            StoreError::Permanent(m) => {
                tracing::error!(error = %m, "store error");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error",
                )
            }
        }
    }
}

impl From<StartError> for ApiError {
    fn from(e: StartError) -> Self {
        match e {
            StartError::InvalidInput(v) => ApiError::unprocessable(
                "invalid_input",
                format!(
                    "the input does not match the workflow's inputSchema ({} problem(s))",
                    v.len()
                ),
            )
            .with_details(json!({ "violations": v })),
            StartError::NoStartStep => ApiError::unprocessable("no_start_step", e.to_string()),
            StartError::Store(s) => s.into(),
        }
    }
}

impl From<crate::worker::WorkerError> for ApiError {
    fn from(e: crate::worker::WorkerError) -> Self {
        match e {
            crate::worker::WorkerError::Store(s) => s.into(),
            other => ApiError::not_found(other.to_string()),
        }
    }
}

/// Parse a JSON request body, answering 400 with the line and column of a syntax error.
pub fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_json",
            "the request body is empty; send a JSON document",
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(
            "invalid_json",
            format!("the request body is not valid JSON: {e}"),
        )
        .with_details(json!({ "line": e.line(), "column": e.column() }))
    })
}

/// Parse a JSON body into a type, naming the field that is wrong.
pub fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let v = parse_json(body)?;
    serde_json::from_value(v)
        .map_err(|e| ApiError::bad_request("invalid_request", format!("invalid request body: {e}")))
}

/// `axum::extract::Query` whose rejection (an unknown parameter, a value of the wrong type) is
/// an [`ApiError`] (400 `invalid_query`) instead of axum's plain-text answer.
pub struct ApiQuery<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))
    }
}

/// `axum::extract::Path` whose rejection (e.g. a version that is not a number) is an
/// [`ApiError`] (400 `invalid_path`) instead of axum's plain-text answer.
pub struct ApiPath<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for ApiPath<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|e| ApiError::bad_request("invalid_path", e.body_text()))
    }
}
