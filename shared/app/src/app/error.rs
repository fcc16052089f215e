//! The one error type of the use cases. It knows what kind of failure it is (and so whether a
//! retry may help); the HTTP answer, the trigger function's answer and SQS batch-item failures
//! are each mapped from it in one place (`http::error`, `lambda::trigger`, `lambda::sqs`).

use serde_json::Value;
use wf_core::StoreError;

/// What kind of failure a use case met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request cannot work as sent (bad input, invalid definition): fix it and send again.
    Invalid,
    /// What the request names does not exist.
    NotFound,
    /// The state does not allow it now (already finished, edited in a file, lost a race).
    Conflict,
    /// A dependency is unavailable or slow: the same request may succeed later.
    Retryable,
    /// It cannot succeed without a change outside the request (configuration, damaged data).
    Permanent,
}

/// A use case's failure: a stable `code`, a message that says what is wrong and how to fix it,
/// and structured `details` (problems, violations, a reason) when there are any.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AppError {
    #[error("{message}")]
    Invalid {
        code: &'static str,
        message: String,
        details: Value,
    },
    #[error("{0}")]
    NotFound(String),
    #[error("{message}")]
    Conflict {
        code: &'static str,
        message: String,
        details: Value,
    },
    #[error("{message}")]
    Retryable {
        code: &'static str,
        message: String,
        details: Value,
    },
    #[error("{message}")]
    Permanent {
        code: &'static str,
        message: String,
        details: Value,
    },
}

impl AppError {
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        AppError::Invalid {
            code,
            message: message.into(),
            details: Value::Null,
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        AppError::NotFound(message.into())
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        AppError::Conflict {
            code,
            message: message.into(),
            details: Value::Null,
        }
    }

    pub fn retryable(code: &'static str, message: impl Into<String>) -> Self {
        AppError::Retryable {
            code,
            message: message.into(),
            details: Value::Null,
        }
    }

    pub fn permanent(code: &'static str, message: impl Into<String>) -> Self {
        AppError::Permanent {
            code,
            message: message.into(),
            details: Value::Null,
        }
    }

    /// The same error with structured details (NotFound has none).
    pub fn with_details(mut self, value: Value) -> Self {
        match &mut self {
            AppError::Invalid { details, .. }
            | AppError::Conflict { details, .. }
            | AppError::Retryable { details, .. }
            | AppError::Permanent { details, .. } => *details = value,
            AppError::NotFound(_) => {}
        }
        self
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            AppError::Invalid { .. } => ErrorKind::Invalid,
            AppError::NotFound(_) => ErrorKind::NotFound,
            AppError::Conflict { .. } => ErrorKind::Conflict,
            AppError::Retryable { .. } => ErrorKind::Retryable,
            AppError::Permanent { .. } => ErrorKind::Permanent,
        }
    }

    pub fn is_retryable(&self) -> bool {
        self.kind() == ErrorKind::Retryable
    }

    pub fn code(&self) -> &'static str {
        self.parts().0
    }

    pub fn message(&self) -> &str {
        self.parts().1
    }

    pub fn details(&self) -> &Value {
        self.parts().2
    }

    /// Code, message and details, whatever the variant (NotFound's code is `not_found`, and it
    /// has no details).
    fn parts(&self) -> (&'static str, &str, &Value) {
        match self {
            AppError::NotFound(message) => ("not_found", message, &Value::Null),
            AppError::Invalid {
                code,
                message,
                details,
            }
            | AppError::Conflict {
                code,
                message,
                details,
            }
            | AppError::Retryable {
                code,
                message,
                details,
            }
            | AppError::Permanent {
                code,
                message,
                details,
            } => (code, message, details),
        }
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(m) => AppError::NotFound(m),
            StoreError::Conflict(m) => AppError::conflict("conflict", format!("{m}; try again")),
            StoreError::TooLarge(m) => AppError::invalid("too_large", m),
            StoreError::Invalid(m) => AppError::invalid("invalid", m),
            StoreError::Unavailable(m) => {
                AppError::retryable("unavailable", format!("the store is busy; try again ({m})"))
            }
            StoreError::Permanent(m) => AppError::permanent("internal", m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_keep_whether_a_retry_helps() {
        let cases = [
            (StoreError::Unavailable("x".into()), ErrorKind::Retryable),
            (StoreError::Conflict("x".into()), ErrorKind::Conflict),
            (StoreError::NotFound("x".into()), ErrorKind::NotFound),
            (StoreError::TooLarge("x".into()), ErrorKind::Invalid),
            (StoreError::Invalid("x".into()), ErrorKind::Invalid),
            (StoreError::Permanent("x".into()), ErrorKind::Permanent),
        ];
        for (store, kind) in cases {
            let retryable = store.is_retryable();
            let e = AppError::from(store);
            assert_eq!(e.kind(), kind);
            assert_eq!(e.is_retryable(), retryable);
        }
    }

    #[test]
    fn details_attach_to_every_kind_that_has_them() {
        let e = AppError::invalid("invalid_input", "bad").with_details(serde_json::json!([1]));
        assert_eq!(e.details(), &serde_json::json!([1]));
        assert_eq!(e.code(), "invalid_input");
        assert_eq!(e.message(), "bad");
        let nf = AppError::not_found("gone").with_details(serde_json::json!(1));
        assert_eq!(nf.details(), &Value::Null);
        assert_eq!(nf.code(), "not_found");
    }
}
