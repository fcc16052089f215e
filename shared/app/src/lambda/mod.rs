//! The Lambda functions' handlers, as plain async functions over the same use cases as `wf dev`
//! (functions/* only wire them to the runtime):
//!
//! * [`handle_sqs_batch`]: the worker function (SQS batches, `ReportBatchItemFailures`).
//! * [`handle_trigger`]: the trigger function (schedules, platform events, the sweep).
//! * [`webhook_router`] / [`api_router`]: the HTTP functions (`lambda_http` over function URLs).

pub mod bridge;
pub mod http;
pub mod sqs;
pub mod trigger;

pub use http::{ApiAuth, RequestInfo, api_router, webhook_router};
pub use sqs::{BatchSettings, handle_sqs_batch, handle_sqs_batch_until};
pub use trigger::{TriggerError, handle_trigger};

/// JSON logs on standard output (CloudWatch), filtered by `RUST_LOG` (default `info`); Lambda
/// adds the time. Call once, first thing in `main`.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_target(false)
        .with_current_span(true)
        .without_time()
        .with_ansi(false)
        .try_init();
}

/// What init built, or, when it failed, the reason logged as one JSON line (its Display, which
/// names the setting and how to fix it) and exit code 1: Lambda reports a failed init and shows
/// that line. For the functions' `main`s, so a misconfiguration reads as a sentence.
pub fn exit_on_init_error<T, E: std::fmt::Display>(result: Result<T, E>) -> T {
    match result {
        Ok(value) => value,
        Err(e) => {
            tracing::error!(error = %e, "init failed");
            std::process::exit(1)
        }
    }
}
