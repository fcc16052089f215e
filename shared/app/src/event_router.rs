//! Routes platform events to the workflows that subscribe to them: every active workflow with
//! an `event` trigger of the event's type whose `filter` is true starts once per event id (the
//! dedupe key `event:<id>` makes a replayed or redelivered event start nothing new).

use serde_json::{Map, Value, json};
use tracing::{debug, info, warn};
use wf_core::execution::TriggerInfo;
use wf_core::expr::ExprContext;
use wf_core::model::Trigger;
use wf_core::ports::PlatformEvent;
use wf_core::time_fmt::format_ms;

use crate::start::{StartError, StartRequest, start_execution};
use crate::worker::Worker;

/// One execution started (or found) for an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    pub workflow_id: String,
    pub execution_id: String,
    pub duplicate: bool,
}

/// The `event` object templates see in filters.
pub fn event_context(event: &PlatformEvent) -> Value {
    json!({
        "id": event.id, "type": event.event_type, "source": event.source,
        "detail": event.detail, "time": format_ms(event.time),
    })
}

/// Start every subscribed workflow whose filter is true. Errors of one workflow (a filter that
/// fails, an input that fails its schema) are logged and skip that workflow only; store errors
/// are returned so the caller retries the event.
pub async fn route_event(
    worker: &Worker,
    event: &PlatformEvent,
) -> Result<Vec<Routed>, wf_core::StoreError> {
    let svc = worker.services();
    let mut routed = Vec::new();
    for meta in svc.definitions.list_metas().await? {
        let Some(version) = meta.active_version.filter(|_| meta.active) else {
            continue;
        };
        let compiled = match worker.definition(&meta.id, version).await {
            Ok(c) => c,
            Err(e) => {
                warn!(workflow_id = %meta.id, error = %e, "cannot load the active version");
                continue;
            }
        };
        for trigger in compiled.workflow.triggers() {
            let Trigger::Event(t) = trigger else { continue };
            if t.event != event.event_type {
                continue;
            }
            if let Some(filter) = &t.filter {
                let mut ctx = Map::new();
                ctx.insert("event".into(), event_context(event));
                ctx.insert(
                    "vars".into(),
                    Value::Object(compiled.workflow.config.variables.clone()),
                );
                match ExprContext::new(ctx).eval_bool(filter) {
                    Ok(true) => {}
                    Ok(false) => {
                        debug!(workflow_id = %meta.id, event_id = %event.id, "filter is false");
                        continue;
                    }
                    Err(e) => {
                        warn!(workflow_id = %meta.id, event_id = %event.id, error = %e, "event filter failed; not started");
                        continue;
                    }
                }
            }
            let mut req = StartRequest::new(
                event.detail.clone(),
                TriggerInfo::new("event")
                    .with("eventId", event.id.clone())
                    .with("eventType", event.event_type.clone()),
            );
            req.dedupe_key = Some(format!("event:{}", event.id));
            match start_execution(svc, &compiled, req).await {
                Ok(started) => {
                    info!(workflow_id = %meta.id, event_id = %event.id, execution_id = %started.execution_id, "event started a workflow");
                    routed.push(Routed {
                        workflow_id: meta.id.clone(),
                        execution_id: started.execution_id,
                        duplicate: started.duplicate,
                    });
                }
                Err(StartError::Store(e)) => return Err(e),
                Err(e) => {
                    warn!(workflow_id = %meta.id, event_id = %event.id, error = %e, "event not started")
                }
            }
            break; // one execution per workflow and event, however many triggers match
        }
    }
    Ok(routed)
}
