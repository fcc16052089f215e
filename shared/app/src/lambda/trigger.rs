//! The trigger function: every input EventBridge hands it.
//!
//! * `{"workflowId", "scheduledTime"}`: a schedule rule fired (InputTransformer on the default
//!   bus). The execution id derives from (workflow, scheduled time), so a retried delivery starts
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

use std::time::Duration;

use serde_json::{Value, json};
use tracing::{info, warn};
use wf_aws::TriggerInput;
use wf_aws::eventbridge::platform_event_from_envelope;
use wf_core::model::Trigger;

use crate::event_router::route_event_to;
use crate::sweeper::{SweepSettings, sweep_once};
use crate::triggers::schedule::start_scheduled;
use crate::worker::Worker;

/// A failure the invocation should report (Lambda retries the event).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TriggerError(pub String);

/// The sweep on AWS: retention is left to DynamoDB's TTL.
pub fn aws_sweep_settings() -> SweepSettings {
    SweepSettings {
        requeue_after: Duration::from_secs(60),
        retention: None,
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
pub fn classify(input: &Value) -> Result<TriggerKind, String> {
    if input.get("sweep").and_then(Value::as_bool) == Some(true) {
        return Ok(TriggerKind::Sweep);
    }
    if input.get("workflowId").is_some() {
        return TriggerInput::parse(input)
            .map(TriggerKind::Rule)
            .ok_or_else(|| {
                "an input with workflowId needs scheduledTime (an RFC 3339 time) or event (an \
             EventBridge envelope)"
                    .to_string()
            });
    }
    if input.get("detail-type").is_some() {
        return platform_event_from_envelope(input)
            .map(TriggerKind::Envelope)
            .ok_or_else(|| "an EventBridge envelope needs an id and a detail-type".to_string());
    }
    Err(
        "unknown input: expected {\"sweep\": true}, {\"workflowId\", \"scheduledTime\"}, \
         {\"workflowId\", \"event\"} or an EventBridge event"
            .to_string(),
    )
}

fn ignored(reason: String) -> Result<Value, TriggerError> {
    warn!(%reason, "trigger input ignored");
    Ok(json!({ "ignored": reason }))
}

fn retry_or_ignore(retryable: bool, message: String) -> Result<Value, TriggerError> {
    if retryable {
        Err(TriggerError(message))
    } else {
        ignored(message)
    }
}

/// Handle one trigger invocation; the answer says what was started (for logs and tests).
pub async fn handle_trigger(worker: &Worker, input: Value) -> Result<Value, TriggerError> {
    let kind = match classify(&input) {
        Ok(k) => k,
        Err(reason) => return ignored(reason),
    };
    match kind {
        TriggerKind::Sweep => {
            let report = sweep_once(worker, &aws_sweep_settings())
                .await
                .map_err(|e| TriggerError(format!("sweep failed: {e}")))?;
            Ok(json!({
                "sweep": { "timedOut": report.timed_out, "requeued": report.requeued }
            }))
        }
        TriggerKind::Rule(TriggerInput::Schedule {
            workflow_id,
            scheduled_time,
        }) => schedule(worker, &workflow_id, scheduled_time).await,
        TriggerKind::Rule(TriggerInput::Event { workflow_id, event }) => {
            route(worker, &event, Some(&workflow_id)).await
        }
        TriggerKind::Envelope(event) => route(worker, &event, None).await,
    }
}

async fn schedule(
    worker: &Worker,
    workflow_id: &str,
    scheduled_ms: i64,
) -> Result<Value, TriggerError> {
    let meta = match worker.services().definitions.get_meta(workflow_id).await {
        Ok(Some(m)) => m,
        Ok(None) => return ignored(format!("workflow {workflow_id} does not exist")),
        Err(e) => return retry_or_ignore(e.is_retryable(), e.to_string()),
    };
    let Some(version) = meta.active_version.filter(|_| meta.active) else {
        return ignored(format!(
            "workflow {workflow_id} is not active (its rule is removed by the next sync)"
        ));
    };
    let compiled = match worker.definition(workflow_id, version).await {
        Ok(c) => c,
        Err(e) => return retry_or_ignore(e.is_retryable(), e.to_string()),
    };
    if !compiled
        .workflow
        .triggers()
        .iter()
        .any(|t| matches!(t, Trigger::Schedule(_)))
    {
        return ignored(format!(
            "version {version} of workflow {workflow_id} has no schedule trigger"
        ));
    }
    match start_scheduled(worker, workflow_id, version, scheduled_ms).await {
        Ok(fired) => {
            info!(workflow_id, execution_id = %fired.execution_id, duplicate = fired.duplicate, "schedule fired");
            Ok(json!({ "started": [{
                "workflowId": workflow_id, "executionId": fired.execution_id,
                "duplicate": fired.duplicate,
            }] }))
        }
        Err(e) => retry_or_ignore(e.retryable, e.message),
    }
}

async fn route(
    worker: &Worker,
    event: &wf_core::ports::PlatformEvent,
    only: Option<&str>,
) -> Result<Value, TriggerError> {
    match route_event_to(worker, event, only).await {
        Ok(routed) => Ok(json!({
            "eventId": event.id,
            "started": routed.iter().map(|r| json!({
                "workflowId": r.workflow_id, "executionId": r.execution_id,
                "duplicate": r.duplicate,
            })).collect::<Vec<_>>(),
        })),
        Err(e) => retry_or_ignore(e.is_retryable(), e.to_string()),
    }
}
