//! Error types of the core layer.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Why a step (or a whole execution) failed. Stored in step records and execution records,
/// so it is plain data: a stable `code`, a human `message`, whether a retry may help.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
#[error("{code}: {message}")]
pub struct StepError {
    /// Stable machine-readable code, e.g. `template.undefined`, `http.status`, `timeout`.
    pub code: String,
    pub message: String,
    /// Whether another attempt may succeed (network errors, 5xx, 429, timeouts).
    #[serde(default)]
    pub retryable: bool,
    /// Extra structured facts (HTTP status, raw LLM text, ...). Boxed: errors travel in
    /// `Result`s on every hot path, and a JSON value inline would make them large.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub details: Option<Box<Value>>,
}

impl StepError {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            retryable: false,
            details: None,
        }
    }

    pub fn retryable(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            retryable: true,
            ..Self::new(code, message)
        }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(Box::new(details));
        self
    }

    pub fn timeout(message: impl Into<String>) -> Self {
        Self::retryable("timeout", message)
    }
}

/// Text a user wrote that breaks the rule it must follow: a workflow id, a cron schedule, a
/// template or an expression, an input schema. `message` says what is wrong and how to fix it (it is what a
/// validation problem, an API error or the CLI shows); `rule` says which rule, for callers that
/// answer differently per rule. Never retryable: the same text fails the same way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InvalidText {
    pub rule: TextRule,
    pub message: String,
}

/// The rules of [`InvalidText`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextRule {
    /// `model::check_workflow_id`.
    WorkflowId,
    /// `cron`: 5-field expressions, presets and English.
    Schedule,
    /// `expr::check_template` / `expr::check_expression`.
    Template,
    /// A start step's `inputSchema` that does not compile as JSON Schema.
    InputSchema,
}

impl InvalidText {
    pub fn new(rule: TextRule, message: impl Into<String>) -> Self {
        Self {
            rule,
            message: message.into(),
        }
    }
}

/// Errors of storage and queue adapters. `Conflict` is the typed outcome of a failed condition.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StoreError {
    /// A conditional write lost (another writer got there first).
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("not found: {0}")]
    NotFound(String),
    /// An item or message over the backend's size limit; never retryable.
    #[error("too large: {0}")]
    TooLarge(String),
    /// Throttling, timeouts, connection errors: the caller may retry.
    #[error("unavailable (retryable): {0}")]
    Unavailable(String),
    /// The caller asked for something malformed (a cursor that does not decode, a bad filter):
    /// an API answers 400 with it.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// Data that cannot be decoded, or any other permanent failure.
    #[error("store error: {0}")]
    Permanent(String),
}

/// What a port or an adapter answers (as `std::io::Result` is to `io::Error`).
pub type StoreResult<T> = Result<T, StoreError>;

impl StoreError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

impl From<StoreError> for StepError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::TooLarge(m) => StepError::new("payload.too_large", m),
            StoreError::Unavailable(m) => StepError::retryable("store.unavailable", m),
            other => StepError::new("store", other.to_string()),
        }
    }
}

/// An error and its sources, `outer: inner: innermost` (a source whose text the outer message
/// already holds is not repeated). Transport errors' own Display is terse; the chain says what
/// happened.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod chain_tests {
    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Inner);
    #[derive(Debug, thiserror::Error)]
    #[error("inner")]
    struct Inner(#[source] std::io::Error);

    #[test]
    fn the_chain_names_every_source_once() {
        let e = Outer(Inner(std::io::Error::other("reset by peer")));
        assert_eq!(super::error_chain(&e), "outer: inner: reset by peer");
        let repeated = Inner(std::io::Error::other("inner"));
        assert_eq!(super::error_chain(&repeated), "inner");
    }
}
