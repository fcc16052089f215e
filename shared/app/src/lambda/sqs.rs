//! The worker function: a batch of step tasks from the SQS event source mapping, answered with
//! `ReportBatchItemFailures`.
//!
//! * A task that finished (or needed nothing) is acknowledged: it is left out of the answer and
//!   the event source deletes it.
//! * A task that failed is reported alone (`batchItemFailures`), so SQS delivers only it again
//!   after the visibility timeout. The engine's own retries never come this way (they are new
//!   tasks with a delay); this catches store outages, crashes and time running out.
//! * A body that is not a task is logged and reported, so SQS's redrive moves it to the
//!   dead-letter queue after `maxReceiveCount` deliveries.
//! * A task that fails on its last delivery (`ApproximateReceiveCount` ≥ `WF_MAX_RECEIVE_COUNT`)
//!   first marks its execution failed with the reason, then is reported: it goes to the
//!   dead-letter queue for inspection and the execution does not wait for the sweeper.
//!
//! Tasks of one batch run concurrently; a panic fails only its own task, and a task still
//! running when the invocation is about to time out is reported (its claim's lease lets a later
//! delivery take it over).

use std::panic::AssertUnwindSafe;
use std::time::{Duration, SystemTime};

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures::FutureExt;
use tracing::{debug, error, info, warn};
use wf_core::execution::StepTask;

use crate::app::maintenance::DEFAULT_MAX_RECEIVE_COUNT;
use crate::app::{App, AppError};

/// The environment variable holding the queue's `maxReceiveCount` (the template's
/// `MaxReceiveCount`).
pub const MAX_RECEIVE_COUNT_ENV: &str = "WF_MAX_RECEIVE_COUNT";
/// Time kept back from the invocation's deadline to answer with the batch item failures.
pub const DEADLINE_MARGIN: Duration = Duration::from_millis(1_500);

/// Settings of the batch handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchSettings {
    pub max_receive_count: u32,
}

impl Default for BatchSettings {
    fn default() -> Self {
        Self {
            max_receive_count: DEFAULT_MAX_RECEIVE_COUNT,
        }
    }
}

impl BatchSettings {
    pub fn from_env() -> Result<Self, AppError> {
        match std::env::var(MAX_RECEIVE_COUNT_ENV) {
            Err(_) => Ok(Self::default()),
            Ok(v) => v
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| *n > 0)
                .map(|max_receive_count| Self { max_receive_count })
                .ok_or_else(|| {
                    AppError::invalid(
                        "invalid_setting",
                        format!("{MAX_RECEIVE_COUNT_ENV}={v:?} is not a positive number"),
                    )
                }),
        }
    }
}

/// What became of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Acked,
    /// Reported as a batch item failure, with the reason.
    Failed(String),
}

/// Handle a batch with no deadline of its own (tests, the local bridge).
pub async fn handle_sqs_batch(
    app: &App, event: SqsEvent, settings: &BatchSettings,
) -> SqsBatchResponse {
    handle_sqs_batch_until(app, event, settings, None).await
}

/// Handle a batch; tasks still running `DEADLINE_MARGIN` before `deadline` are reported.
pub async fn handle_sqs_batch_until(
    app: &App, event: SqsEvent, settings: &BatchSettings, deadline: Option<SystemTime>,
) -> SqsBatchResponse {
    let left = deadline.map(|d| d.duration_since(SystemTime::now()).unwrap_or_default());
    debug!(
        messages = event.records.len(),
        time_left_ms = left.map(|l| l.as_millis() as u64),
        "batch received"
    );
    // A deadline that leaves no time at all at the start is not a real one (Lambda's shortest
    // timeout is 1 s past the margin; `cargo lambda watch` sends a deadline of "now"): without
    // it the tasks run unbounded, and Lambda's own timeout still ends a stuck invocation.
    let budget = left.and_then(|l| {
        let budget = l.saturating_sub(DEADLINE_MARGIN);
        if budget.is_zero() {
            warn!(
                time_left_ms = l.as_millis() as u64,
                "the invocation's deadline leaves no time: ignored"
            );
            None
        } else {
            Some(budget)
        }
    });
    let outcomes = futures::future::join_all(
        event
            .records
            .iter()
            .map(|m| handle_message(app, m, settings, budget)),
    )
    .await;
    let mut response = SqsBatchResponse::default();
    for (message, outcome) in event.records.iter().zip(outcomes) {
        if let Outcome::Failed(_) = outcome {
            match message.message_id.as_deref() {
                Some(id) if !id.is_empty() => {
                    let mut failure = BatchItemFailure::default();
                    failure.item_identifier = id.to_string();
                    response.batch_item_failures.push(failure);
                }
                // Lambda cannot name it; an answer without it would acknowledge it silently,
                // so the whole batch is retried only when such a message fails (never in SQS).
                _ => error!("a failed message has no messageId"),
            }
        }
    }
    if !response.batch_item_failures.is_empty() {
        info!(
            received = event.records.len(),
            failed = response.batch_item_failures.len(),
            "batch done with failures"
        );
    }
    super::emit_metrics(app, super::Function::Worker);
    response
}

/// The receive count SQS reports (1 on the first delivery).
pub fn receive_count(message: &SqsMessage) -> u32 {
    message
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|c| c.parse().ok())
        .unwrap_or(1)
}

/// Handle one message of a batch.
pub async fn handle_message(
    app: &App, message: &SqsMessage, settings: &BatchSettings, budget: Option<Duration>,
) -> Outcome {
    let message_id = message.message_id.as_deref().unwrap_or("");
    let count = receive_count(message);
    let task: StepTask = match message.body.as_deref().map(serde_json::from_str) {
        Some(Ok(task)) => task,
        other => {
            let reason = match other {
                Some(Err(e)) => format!("the body is not a step task: {e}"),
                _ => "the message has no body".to_string(),
            };
            error!(message_id, receive_count = count, max_receive_count = settings.max_receive_count, body = ?message.body, %reason, "malformed step task: reported for the dead-letter queue");
            return Outcome::Failed(reason);
        }
    };
    let run = AssertUnwindSafe(app.run_task(&task)).catch_unwind();
    let result = match budget {
        Some(b) => match tokio::time::timeout(b, run).await {
            Ok(r) => r,
            Err(_) => {
                let reason = "the invocation ran out of time before the task finished".to_string();
                return failed(app, &task, message_id, count, settings, reason).await;
            }
        },
        None => run.await,
    };
    let reason = match result {
        Ok(Ok(())) => return Outcome::Acked,
        Ok(Err(e)) => {
            let kind = if e.is_retryable() {
                "retryable"
            } else {
                "permanent"
            };
            format!("{kind} error: {e}")
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(no message)".into());
            format!("the worker panicked: {what}")
        }
    };
    failed(app, &task, message_id, count, settings, reason).await
}

/// Report a failed task (SQS delivers it again, or on its last delivery moves it to the
/// dead-letter queue); on its last delivery [`App::task_failed`] first fails its execution
/// with the reason, as the local worker loop does.
async fn failed(
    app: &App, task: &StepTask, message_id: &str, count: u32, settings: &BatchSettings,
    reason: String,
) -> Outcome {
    debug!(message_id, "task failed");
    app.task_failed(task, count, settings.max_receive_count, &reason)
        .await;
    Outcome::Failed(reason)
}
