//! The trigger function: every input EventBridge hands it.
//!
//! * `{"workflowId", "scheduledTime"}`: a schedule fired (EventBridge Scheduler substitutes
//!   `<aws.scheduler.scheduled-time>`; a schedule rule of the old design sent the same shape
//!   through an InputTransformer). The execution id derives from (workflow, scheduled time), so a retried delivery starts
//!   nothing new ([`start_scheduled`]).
//! * `{"workflowId", "event": <envelope>}`: an event rule of that workflow matched on the
//!   platform bus; the workflow's filter is evaluated and the execution id derives from the
//!   event id (the engine's, carried in `resources`, else EventBridge's `id`).
//! * An EventBridge envelope (`detail-type`, `id`, `source`, `time`, `detail`) delivered as is:
//!   routed to every subscribed workflow ([`route_event_to`]).
//! * `{"sweep": true}`: the every-minute sweep (deadlines, executions stuck in `queued`;
//!   retention is DynamoDB's TTL).
//!
//! A retryable failure (a store outage) is an error, so Lambda's asynchronous invocation retries
//! it; anything that can never succeed (unknown shape, inactive workflow) is logged and answered
//! with `{"ignored": reason}`.

use serde_json::{Value, json};
use tracing::warn;
use wf_aws::TriggerInput;
use wf_aws::eventbridge::platform_event_from_envelope;

use crate::app::maintenance::SweepSettings;
use crate::app::triggers::ScheduleFire;
use crate::app::{App, AppError};

/// A failure the invocation should report (Lambda retries the event).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TriggerError(pub String);

/// The trigger function's answer to a use case's failure, decided here once: a retryable one
/// fails the invocation (Lambda's asynchronous retries deliver it again); anything else can
/// never succeed, so it is logged and answered `{"ignored": reason}`.
fn answer_error(e: AppError) -> Result<Value, TriggerError> {
    if e.is_retryable() {
        Err(TriggerError(e.to_string()))
    } else {
        ignored(e.to_string())
    }
}

/// Which input this is.
#[derive(Debug, Clone, PartialEq)]
pub enum TriggerKind {
    Sweep,
    Rule(TriggerInput),
    Envelope(wf_core::ports::PlatformEvent),
}

/// Recognise an input; `Err` names what is wrong with it.
pub fn classify(input: &Value) -> Result<TriggerKind, AppError> {
    let unknown = |m: &str| AppError::invalid("unknown_input", m);
    if input.get("sweep").and_then(Value::as_bool) == Some(true) {
        return Ok(TriggerKind::Sweep);
    }
    if input.get("workflowId").is_some() {
        return TriggerInput::parse(input)
            .map(TriggerKind::Rule)
            .ok_or_else(|| {
                unknown(
                    "an input with workflowId needs scheduledTime (an RFC 3339 time) or event (an \
                     EventBridge envelope)",
                )
            });
    }
    if input.get("detail-type").is_some() {
        return platform_event_from_envelope(input)
            .map(TriggerKind::Envelope)
            .ok_or_else(|| unknown("an EventBridge envelope needs an id and a detail-type"));
    }
    Err(unknown(
        "unknown input: expected {\"sweep\": true}, {\"workflowId\", \"scheduledTime\"}, \
         {\"workflowId\", \"event\"} or an EventBridge event",
    ))
}

fn ignored(reason: String) -> Result<Value, TriggerError> {
    warn!(%reason, "trigger input ignored");
    Ok(json!({ "ignored": reason }))
}

/// Handle one trigger invocation; the answer says what was started (for logs and tests).
pub async fn handle_trigger(app: &App, input: Value) -> Result<Value, TriggerError> {
    let answer = trigger(app, input).await;
    super::emit_metrics(app, super::Function::Trigger);
    answer
}

async fn trigger(app: &App, input: Value) -> Result<Value, TriggerError> {
    let kind = match classify(&input) {
        Ok(k) => k,
        Err(e) => return answer_error(e),
    };
    match kind {
        TriggerKind::Sweep => {
            let report = app
                .sweep(&SweepSettings::aws())
                .await
                .map_err(|e| TriggerError(format!("sweep failed: {e}")))?;
            // Drift: rules deleted behind the product's back, or a failed sync, are repaired.
            let reconciled = app
                .reconcile_triggers()
                .await
                .map_err(|e| TriggerError(format!("trigger reconcile failed: {e}")))?;
            let mut answer = json!({
                "sweep": { "timedOut": report.timed_out, "requeued": report.requeued }
            });
            if reconciled > 0 {
                answer["reconciled"] = json!(reconciled);
            }
            Ok(answer)
        }
        TriggerKind::Rule(TriggerInput::Schedule {
            workflow_id,
            scheduled_time,
        }) => match app.fire_active_schedule(&workflow_id, scheduled_time).await {
            Ok(ScheduleFire::Started(started)) => Ok(json!({ "started": [{
                "workflowId": workflow_id, "executionId": started.execution_id,
                "duplicate": started.duplicate,
            }] })),
            Ok(ScheduleFire::Skipped(reason)) => ignored(reason),
            Err(e) => answer_error(e),
        },
        TriggerKind::Rule(TriggerInput::Event { workflow_id, event }) => {
            route(app, &event, Some(&workflow_id)).await
        }
        TriggerKind::Envelope(event) => route(app, &event, None).await,
    }
}

async fn route(
    app: &App, event: &wf_core::ports::PlatformEvent, only: Option<&str>,
) -> Result<Value, TriggerError> {
    match app.route_event(event, only).await {
        Ok(routed) => Ok(json!({
            "eventId": event.id,
            "started": routed.iter().map(|r| json!({
                "workflowId": r.workflow_id, "executionId": r.execution_id,
                "duplicate": r.duplicate,
            })).collect::<Vec<_>>(),
        })),
        Err(e) => answer_error(e),
    }
}
