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

/// The execution id of `workflow_id`'s run for event `event_id`: a ULID whose time part is the
/// event's time (now when it has none) and whose random part is a stable hash (FNV-1a, 128 bits)
/// of the workflow and the event id. A redelivered event, even after its dedupe key expired,
/// names the execution it started already.
pub fn event_execution_id(workflow_id: &str, event_id: &str, time_ms: i64) -> String {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    let mut h = OFFSET;
    let bytes = b"event\0"
        .iter()
        .chain(workflow_id.as_bytes())
        .chain(b"\0")
        .chain(event_id.as_bytes());
    for b in bytes {
        h ^= u128::from(*b);
        h = h.wrapping_mul(PRIME);
    }
    ulid::Ulid::from_parts(time_ms.max(0) as u64, h >> 48).to_string()
}

/// Start every subscribed workflow whose filter is true. Errors of one workflow (a filter that
/// fails, an input that fails its schema) are logged and skip that workflow only; store errors
/// are returned so the caller retries the event.
pub async fn route_event(
    worker: &Worker,
    event: &PlatformEvent,
) -> Result<Vec<Routed>, wf_core::StoreError> {
    route_event_to(worker, event, None).await
}

/// [`route_event`], limited to workflow `only` when given (an EventBridge rule per workflow
/// delivers `{"workflowId", "event"}`: that delivery is for that workflow alone, and reading one
/// META is cheaper than listing them all).
pub async fn route_event_to(
    worker: &Worker,
    event: &PlatformEvent,
    only: Option<&str>,
) -> Result<Vec<Routed>, wf_core::StoreError> {
    let svc = worker.services();
    let mut routed = Vec::new();
    let metas = match only {
        Some(id) => svc.definitions.get_meta(id).await?.into_iter().collect(),
        None => svc.definitions.list_metas().await?,
    };
    for meta in metas {
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
            let time = if event.time > 0 {
                event.time
            } else {
                svc.clock.now_ms()
            };
            let execution_id = event_execution_id(&meta.id, &event.id, time);
            req.execution_id = Some(execution_id.clone());
            // A redelivered event (EventBridge retries, a replayed outbox): its execution exists.
            if svc.executions.get_execution(&execution_id).await?.is_some() {
                debug!(workflow_id = %meta.id, event_id = %event.id, "event seen before");
                routed.push(Routed {
                    workflow_id: meta.id.clone(),
                    execution_id,
                    duplicate: true,
                });
                break;
            }
            let result = match start_execution(svc, &compiled, req).await {
                // The execution exists although the dedupe key is gone (expired): a replay.
                Err(StartError::Store(wf_core::StoreError::Conflict(reason))) => {
                    match svc.executions.get_execution(&execution_id).await? {
                        Some(_) => Ok(crate::start::Started {
                            execution_id,
                            duplicate: true,
                        }),
                        None => Err(StartError::Store(wf_core::StoreError::Conflict(reason))),
                    }
                }
                other => other,
            };
            match result {
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
