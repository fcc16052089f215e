//! Mapping SDK errors to the ports' `StoreError`: a lost condition is a typed `Conflict`,
//! throttling, timeouts and transport failures are `Unavailable` (the caller may retry), DynamoDB's
//! own item-size refusal is `TooLarge`, everything else is `Permanent`.

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use wf_core::StoreError;

/// Error codes that mean "try again later" across DynamoDB, SQS and EventBridge.
const RETRYABLE_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "LimitExceededException",
    "InternalServerError",
    "InternalServerErrorException",
    "InternalFailure",
    "InternalError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "TransactionConflictException",
    "TransactionInProgressException",
    "KMSThrottlingException",
    "AWS.SimpleQueueService.InternalError",
];

/// What kind of failure an SDK error is, before it becomes a `StoreError`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// `ConditionalCheckFailedException`.
    Condition,
    /// `TransactionCanceledException` (the reasons are read from the typed error).
    Cancelled,
    TooLarge,
    Retryable,
    Permanent,
}

/// Classify an SDK error by its code and transport.
pub(crate) fn classify<E>(err: &SdkError<E, HttpResponse>) -> Failure
where
    E: ProvideErrorMetadata,
{
    match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            Failure::Retryable
        }
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or_default();
            let message = service.err().message().unwrap_or_default();
            let status = service.raw().status().as_u16();
            if code == "ConditionalCheckFailedException" {
                Failure::Condition
            } else if code == "TransactionCanceledException" {
                Failure::Cancelled
            } else if code == "ValidationException" && message.contains("Item size") {
                Failure::TooLarge
            } else if RETRYABLE_CODES.contains(&code) || status >= 500 || status == 429 {
                Failure::Retryable
            } else {
                Failure::Permanent
            }
        }
        _ => Failure::Permanent,
    }
}

/// A readable one-line description: operation, code and message.
pub(crate) fn describe<E>(op: &str, err: &SdkError<E, HttpResponse>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match err {
        SdkError::ServiceError(service) => format!(
            "{op}: {} ({})",
            service.err().message().unwrap_or("no message"),
            service.err().code().unwrap_or("no code"),
        ),
        other => {
            // The Display of transport errors is terse; the source chain says what happened.
            let mut text = format!("{op}: {other}");
            let mut source = std::error::Error::source(other);
            while let Some(s) = source {
                text.push_str(": ");
                text.push_str(&s.to_string());
                source = s.source();
            }
            text
        }
    }
}

/// The `StoreError` of an SDK error of operation `op`.
pub(crate) fn store_error<E>(op: &str, err: SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let text = describe(op, &err);
    match classify(&err) {
        Failure::Condition => StoreError::Conflict(text),
        Failure::TooLarge => StoreError::TooLarge(text),
        Failure::Retryable => StoreError::Unavailable(text),
        Failure::Cancelled | Failure::Permanent => StoreError::Permanent(text),
    }
}

/// Shorthand for `.map_err(|e| store_error(op, e))`.
pub(crate) trait SdkResultExt<T> {
    fn store_err(self, op: &str) -> Result<T, StoreError>;
}

impl<T, E> SdkResultExt<T> for Result<T, SdkError<E, HttpResponse>>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    fn store_err(self, op: &str) -> Result<T, StoreError> {
        self.map_err(|e| store_error(op, e))
    }
}

/// A request the SDK could not even build (a missing required field): a bug, never retryable.
pub(crate) fn build_error(what: &str, err: impl std::fmt::Display) -> StoreError {
    StoreError::Permanent(format!("cannot build {what}: {err}"))
}
