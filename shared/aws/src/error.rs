//! Mapping SDK errors to the ports' `StoreError`: a lost condition is a typed `Conflict`,
//! throttling, timeouts and transport failures are `Unavailable` (the caller may retry), DynamoDB's
//! own item-size refusal is `TooLarge`, everything else is `Permanent`.

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use wf_core::{StoreError, StoreResult};

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
            format!("{op}: {}", wf_core::error::error_chain(other))
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

/// Mapping an SDK call's result to the ports' errors.
pub(crate) trait SdkResultExt<T, E> {
    /// Shorthand for `.map_err(|e| store_error(op, e))`.
    fn store_err(self, op: &str) -> StoreResult<T>;

    /// The output, or `None` for the one service error that `expected` recognises as an answer
    /// rather than a failure ("already exists" on a create that may run twice, "not found" on a
    /// read or a delete); any other error mapped.
    fn store_err_unless(
        self, op: &str, expected: impl FnOnce(&E) -> bool,
    ) -> StoreResult<Option<T>>;
}

impl<T, E> SdkResultExt<T, E> for Result<T, SdkError<E, HttpResponse>>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    fn store_err(self, op: &str) -> StoreResult<T> {
        self.map_err(|e| store_error(op, e))
    }

    fn store_err_unless(
        self, op: &str, expected: impl FnOnce(&E) -> bool,
    ) -> StoreResult<Option<T>> {
        match self {
            Ok(out) => Ok(Some(out)),
            Err(e) if e.as_service_error().is_some_and(expected) => Ok(None),
            Err(e) => Err(store_error(op, e)),
        }
    }
}

/// A request the SDK could not even build (a missing required field): a bug, never retryable.
pub(crate) fn build_error(what: &str, err: impl std::fmt::Display) -> StoreError {
    StoreError::Permanent(format!("cannot build {what}: {err}"))
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::error::ErrorMetadata;
    use aws_sdk_dynamodb::operation::put_item::PutItemError;
    use aws_sdk_dynamodb::types::error::ConditionalCheckFailedException;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;

    use super::*;

    fn service(err: PutItemError, status: u16) -> SdkError<PutItemError, HttpResponse> {
        let raw = HttpResponse::new(
            StatusCode::try_from(status).expect("status"),
            SdkBody::empty(),
        );
        SdkError::service_error(err, raw)
    }

    fn generic(code: &str, message: &str, status: u16) -> SdkError<PutItemError, HttpResponse> {
        service(
            PutItemError::generic(ErrorMetadata::builder().code(code).message(message).build()),
            status,
        )
    }

    #[test]
    fn conditions_conflict_throttles_retry_sizes_are_too_large() {
        let lost = service(
            PutItemError::ConditionalCheckFailedException(
                // As the SDK deserializes it: the code travels in the error's metadata.
                ConditionalCheckFailedException::builder()
                    .message("The conditional request failed")
                    .meta(
                        ErrorMetadata::builder()
                            .code("ConditionalCheckFailedException")
                            .message("The conditional request failed")
                            .build(),
                    )
                    .build(),
            ),
            400,
        );
        assert!(
            matches!(store_error("claim_step", lost), StoreError::Conflict(m) if m.contains("claim_step"))
        );
        for code in [
            "ThrottlingException",
            "ProvisionedThroughputExceededException",
            "RequestLimitExceeded",
        ] {
            let e = store_error("put", generic(code, "slow down", 400));
            assert!(e.is_retryable(), "{code}: {e:?}");
        }
        assert!(store_error("put", generic("Whatever", "boom", 503)).is_retryable());
        assert!(matches!(
            store_error(
                "put",
                generic(
                    "ValidationException",
                    "Item size has exceeded the maximum allowed size",
                    400
                )
            ),
            StoreError::TooLarge(_)
        ));
        assert!(matches!(
            store_error("put", generic("ValidationException", "bad expression", 400)),
            StoreError::Permanent(_)
        ));
        assert!(matches!(
            store_error("put", generic("ResourceNotFoundException", "no table", 400)),
            StoreError::Permanent(_)
        ));
        let timeout: SdkError<PutItemError, HttpResponse> =
            SdkError::timeout_error("took too long");
        assert!(store_error("put", timeout).is_retryable());
        assert_eq!(
            classify(&generic("TransactionCanceledException", "cancelled", 400)),
            Failure::Cancelled
        );
    }
}
