//! The one API error type: an HTTP status and `{"error": {"code", "message", "details"}}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use wf_core::StoreError;

use crate::app::{AppError, ErrorKind};

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

/// The HTTP answer of a use case's error: the one place where kinds (and the few codes that
/// have a status of their own) become statuses.
impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        let status = match (e.kind(), e.code()) {
            (ErrorKind::Invalid, "too_large") => StatusCode::PAYLOAD_TOO_LARGE,
            (ErrorKind::Invalid, "unsupported_media_type") => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            (ErrorKind::Invalid, "signature") => StatusCode::UNAUTHORIZED,
            (
                ErrorKind::Invalid,
                "invalid_json" | "too_deep" | "invalid_request" | "invalid" | "invalid_event",
            ) => StatusCode::BAD_REQUEST,
            (ErrorKind::Invalid, _) => StatusCode::UNPROCESSABLE_ENTITY,
            (ErrorKind::NotFound, _) => StatusCode::NOT_FOUND,
            (ErrorKind::Conflict, _) => StatusCode::CONFLICT,
            (ErrorKind::Retryable, "llm_timeout") => StatusCode::GATEWAY_TIMEOUT,
            (ErrorKind::Retryable, "llm_unavailable") => StatusCode::BAD_GATEWAY,
            (ErrorKind::Retryable, _) => StatusCode::SERVICE_UNAVAILABLE,
            (ErrorKind::Permanent, "llm_error") => StatusCode::BAD_GATEWAY,
            (ErrorKind::Permanent, "not_configured") => StatusCode::SERVICE_UNAVAILABLE,
            (ErrorKind::Permanent, _) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        match e.kind() {
            ErrorKind::Retryable if e.code() == "unavailable" => {
                tracing::warn!(error = %e, "store unavailable");
                ApiError::new(status, "unavailable", "the store is busy; try again")
            }
            ErrorKind::Permanent if status == StatusCode::INTERNAL_SERVER_ERROR => {
                // The message may name internals: it goes to the log, not to the caller.
                tracing::error!(code = e.code(), error = %e, "internal error");
                ApiError::new(status, "internal", "internal error")
            }
            _ => ApiError::new(status, e.code(), e.message()).with_details(e.details().clone()),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        AppError::from(e).into()
    }
}

/// Parse a JSON request body, answering 400 with the line and column of a syntax error.
pub fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    crate::app::json::parse_json(body).map_err(ApiError::from)
}

/// Parse a JSON body into a type, naming the field that is wrong.
pub fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    crate::app::json::parse_body(body).map_err(ApiError::from)
}

/// Whether a request body is empty (or only whitespace): an optional body that was left out.
pub fn is_blank(body: &[u8]) -> bool {
    body.iter().all(u8::is_ascii_whitespace)
}

/// Parse an optional JSON body: its default when left out.
pub fn parse_optional_body<T: serde::de::DeserializeOwned + Default>(
    body: &[u8],
) -> Result<T, ApiError> {
    // Left out, or an explicit JSON `null`: the default.
    if is_blank(body) || body.trim_ascii() == b"null" {
        Ok(T::default())
    } else {
        parse_body(body)
    }
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
