//! The one API error type: an HTTP status and `{"error": {"code", "message", "details"}}`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
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

    /// 405 for a method `path` does not take, with the methods the OpenAPI document gives it in
    /// `details.allow` and the `Allow` header (when `path` is documented; else the router adds
    /// the methods it routes).
    pub fn method_not_allowed(path: &str) -> Self {
        let e = Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this route does not take that method; see /openapi.json",
        );
        match super::openapi::documented_methods(path) {
            Some(methods) => e.with_details(json!({ "allow": methods })),
            None => e,
        }
    }

    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // A 405's `Allow` header: the methods of `details.allow` (`method_not_allowed`).
        let allow = (self.status == StatusCode::METHOD_NOT_ALLOWED)
            .then(|| self.details["allow"].as_array())
            .flatten()
            .map(|methods| {
                let names: Vec<&str> = methods.iter().filter_map(Value::as_str).collect();
                names.join(", ")
            })
            .and_then(|a| HeaderValue::from_str(&a).ok());
        // `details` is always present (null when there are none): the documented shape.
        let error = json!({ "code": self.code, "message": self.message, "details": self.details });
        let mut response = (self.status, Json(json!({ "error": error }))).into_response();
        if let Some(allow) = allow {
            response.headers_mut().insert(header::ALLOW, allow);
        }
        response
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
                "invalid_json" | "too_deep" | "invalid_request" | "invalid" | "invalid_event"
                | "invalid_cursor",
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

/// `deserialize_with` for an optional whole number of a request body: JSON does not tell
/// `70` from `70.0` (JSON Schema's `integer` takes both), so neither does the API. A fraction,
/// a negative number or one out of range is refused, naming the field.
pub fn whole_number<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<u64>,
{
    use serde::Deserialize;
    use serde::de::Error;
    let Some(n) = Option::<serde_json::Number>::deserialize(deserializer)? else {
        return Ok(None);
    };
    let whole = n.as_u64().or_else(|| {
        n.as_f64()
            .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < u64::MAX as f64)
            .map(|f| f as u64)
    });
    whole
        .and_then(|v| T::try_from(v).ok())
        .map(Some)
        .ok_or_else(|| D::Error::custom(format!("{n} is not a whole number in range")))
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

/// Defines an extractor that wraps one of axum's and answers its rejection as an [`ApiError`]
/// (400 with the given code) instead of axum's plain-text answer: the one rule for both.
macro_rules! api_extractor {
    ($(#[$doc:meta])* $name:ident wraps $inner:ident, $code:literal, $($bound:tt)+) => {
        $(#[$doc])*
        pub struct $name<T>(pub T);

        impl<T, S> axum::extract::FromRequestParts<S> for $name<T>
        where
            T: $($bound)+,
            S: Send + Sync,
        {
            type Rejection = ApiError;

            async fn from_request_parts(
                parts: &mut axum::http::request::Parts,
                state: &S,
            ) -> Result<Self, ApiError> {
                axum::extract::$inner::<T>::from_request_parts(parts, state)
                    .await
                    .map(|extracted| $name(extracted.0))
                    .map_err(|e| ApiError::bad_request($code, e.body_text()))
            }
        }
    };
}

api_extractor!(
    /// `axum::extract::Query`, rejected (an unknown parameter, a value of the wrong type) as
    /// 400 `invalid_query`.
    ApiQuery wraps Query, "invalid_query", serde::de::DeserializeOwned
);
api_extractor!(
    /// `axum::extract::Path`, rejected (e.g. a version that is not a number) as 400
    /// `invalid_path`.
    ApiPath wraps Path, "invalid_path", serde::de::DeserializeOwned + Send
);
