//! `record.*` over the [`RecordStore`] and `event.emit`, publishing through the [`EventBus`].
//!
//! Delivery is at-least-once, so every action here may run twice for the same step. Writes are
//! idempotent (create stores the step's idempotency key; update is a merge of the same patch;
//! delete of a deleted id is a no-op) and event ids derive from the idempotency key, so a
//! redelivery republishes the same event instead of a second distinct one.

use serde::Deserialize;
use serde_json::{Value, json};
use ulid::Ulid;
use wf_core::error::{StepError, StoreError};
use wf_core::event_chain;
use wf_core::ports::{ActionContext, Clock, EventBus, PlatformEvent, RecordCreate, RecordStore};

/// Source of the events record actions publish.
pub const RECORDS_SOURCE: &str = "wf.records";
/// Source of `event.emit` events.
pub const WORKFLOW_SOURCE: &str = "wf.workflow";

#[derive(Debug, Deserialize)]
pub(crate) struct CreateParams {
    collection: String,
    id: Option<String>,
    data: Value,
}

#[derive(Debug, Deserialize)]
pub(crate) struct KeyParams {
    collection: String,
    id: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct UpdateParams {
    collection: String,
    id: String,
    data: Value,
}

#[derive(Debug, Deserialize)]
pub(crate) struct QueryParams {
    collection: String,
    after: Option<String>,
    #[serde(default = "default_limit")]
    limit: usize,
}

fn default_limit() -> usize {
    100
}

#[derive(Debug, Deserialize)]
pub(crate) struct EmitParams {
    #[serde(rename = "type")]
    event_type: String,
    detail: Option<Value>,
}

pub(crate) struct Records<'a> {
    pub store: &'a dyn RecordStore,
    pub bus: &'a dyn EventBus,
    pub clock: &'a dyn Clock,
}

impl Records<'_> {
    pub async fn create(&self, p: CreateParams, ctx: &ActionContext) -> Result<Value, StepError> {
        let id = p.id.unwrap_or_else(|| derived_ulid(ctx).to_string());
        let data = match self
            .store
            .create(&p.collection, &id, &p.data, &ctx.idempotency_key)
            .await?
        {
            RecordCreate::Created(data) => data,
            // A redelivered create: same output, and the event again (the first attempt may
            // have died between the write and the publish).
            RecordCreate::Replayed(data) => {
                tracing::debug!(collection = %p.collection, id = %id, "record.create replayed");
                data
            }
            RecordCreate::Exists => {
                return Err(StepError::new(
                    "record.exists",
                    format!(
                        "a record with id {id:?} already exists in collection {:?}",
                        p.collection
                    ),
                )
                .with_details(json!({ "collection": p.collection, "id": id })));
            }
        };
        let mut out = json!({ "collection": p.collection, "id": id, "data": data });
        self.publish(&p.collection, "created", &id, &data, ctx, &mut out)
            .await?;
        Ok(out)
    }

    pub async fn get(&self, p: KeyParams) -> Result<Value, StepError> {
        let data = self.store.get(&p.collection, &p.id).await?;
        let found = data.is_some();
        Ok(json!({ "collection": p.collection, "id": p.id, "data": data, "found": found }))
    }

    pub async fn update(&self, p: UpdateParams, ctx: &ActionContext) -> Result<Value, StepError> {
        let data = match self.store.update(&p.collection, &p.id, &p.data).await {
            Ok(data) => data,
            Err(StoreError::NotFound(_)) => return Err(not_found(&p.collection, &p.id)),
            Err(e) => return Err(e.into()),
        };
        let mut out = json!({ "collection": p.collection, "id": p.id, "data": data });
        self.publish(&p.collection, "updated", &p.id, &data, ctx, &mut out)
            .await?;
        Ok(out)
    }

    pub async fn delete(&self, p: KeyParams, ctx: &ActionContext) -> Result<Value, StepError> {
        // Read first so the event can carry what was deleted; a concurrent writer may change it
        // in between, which only makes the event's data slightly stale.
        let previous = self.store.get(&p.collection, &p.id).await?;
        let deleted = self.store.delete(&p.collection, &p.id).await?;
        let mut out = json!({ "collection": p.collection, "id": p.id, "deleted": deleted });
        if deleted {
            let data = previous.unwrap_or(Value::Null);
            self.publish(&p.collection, "deleted", &p.id, &data, ctx, &mut out)
                .await?;
        }
        Ok(out)
    }

    pub async fn query(&self, p: QueryParams) -> Result<Value, StepError> {
        // One extra row tells whether another page exists without an empty last page.
        let mut rows = self
            .store
            .query(&p.collection, p.after.as_deref(), p.limit.saturating_add(1))
            .await?;
        let more = rows.len() > p.limit;
        rows.truncate(p.limit);
        let next = if more {
            rows.last().map(|(id, _)| id.clone())
        } else {
            None
        };
        let items: Vec<Value> = rows
            .into_iter()
            .map(|(id, data)| json!({ "id": id, "data": data }))
            .collect();
        Ok(json!({ "items": items, "next": next }))
    }

    /// Fails with `event.loop` (not retryable) when the execution's causation chain is at a
    /// bound ([`event_chain::check_emit`]): nothing is published.
    pub async fn emit(&self, p: EmitParams, ctx: &ActionContext) -> Result<Value, StepError> {
        if let Err(refusal) = event_chain::check_emit(&ctx.event_chain, ctx.event_limits) {
            tracing::warn!(path = %ctx.path, chain = ?ctx.event_chain, reason = refusal.reason(), "event.emit refused: event loop bound");
            return Err(refusal.step_error(&ctx.event_chain));
        }
        let id = event_id(ctx, "event");
        let event = PlatformEvent {
            id: id.clone(),
            event_type: p.event_type.clone(),
            source: WORKFLOW_SOURCE.to_owned(),
            detail: p.detail.unwrap_or_else(|| json!({})),
            time: self.clock.now_ms(),
            chain: ctx.event_chain.clone(),
        };
        self.bus.publish(&[event]).await?;
        Ok(json!({ "id": id, "type": p.event_type }))
    }

    /// Publishes the record's change, unless the execution's causation chain is at a bound: the
    /// write stands, and `out` gets `eventSuppressed` (why) instead.
    async fn publish(
        &self, collection: &str, verb: &str, id: &str, data: &Value, ctx: &ActionContext,
        out: &mut Value,
    ) -> Result<(), StepError> {
        if let Err(refusal) = event_chain::check_emit(&ctx.event_chain, ctx.event_limits) {
            tracing::warn!(path = %ctx.path, chain = ?ctx.event_chain, reason = refusal.reason(), "record event suppressed: event loop bound");
            out["eventSuppressed"] = json!(refusal.describe(&ctx.event_chain));
            return Ok(());
        }
        let event = PlatformEvent {
            id: event_id(ctx, verb),
            event_type: format!("{collection}.{verb}"),
            source: RECORDS_SOURCE.to_owned(),
            detail: json!({ "collection": collection, "id": id, "data": data }),
            time: self.clock.now_ms(),
            chain: ctx.event_chain.clone(),
        };
        self.bus.publish(&[event]).await.map_err(StepError::from)
    }
}

fn not_found(collection: &str, id: &str) -> StepError {
    StepError::new(
        "record.not_found",
        format!("no record with id {id:?} in collection {collection:?}"),
    )
    .with_details(json!({ "collection": collection, "id": id }))
}

/// `<idempotency_key>#<suffix>`: the same on every redelivery of the step.
pub fn event_id(ctx: &ActionContext, suffix: &str) -> String {
    format!("{}#{suffix}", ctx.idempotency_key)
}

/// The id of a record created without one. It must be the same on every redelivery (or a
/// retried create would make a second record), so instead of a random ULID it is one whose
/// time is the execution's start (execution ids are ULIDs; 0 otherwise) and whose 80 random
/// bits are a hash of the idempotency key: still a ULID, still sortable by execution start.
pub fn derived_ulid(ctx: &ActionContext) -> Ulid {
    let timestamp = Ulid::from_string(&ctx.execution_id).map_or(0, |u| u.timestamp_ms());
    let random = fnv1a_128(ctx.idempotency_key.as_bytes()) & ((1u128 << 80) - 1);
    Ulid::from_parts(timestamp, random)
}

/// FNV-1a, 128 bits: stable across Rust versions and processes (std's hasher is not).
fn fnv1a_128(bytes: &[u8]) -> u128 {
    const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
    const PRIME: u128 = 0x0000000001000000000000000000013B;
    bytes.iter().fold(OFFSET, |hash, b| {
        (hash ^ u128::from(*b)).wrapping_mul(PRIME)
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn ctx(execution_id: &str, path: &str) -> ActionContext {
        ActionContext {
            execution_id: execution_id.to_owned(),
            path: path.to_owned(),
            attempt: 1,
            idempotency_key: format!("{execution_id}/{path}"),
            timeout: Duration::from_secs(5),
            event_chain: Vec::new(),
            event_limits: Default::default(),
        }
    }

    #[test]
    fn derived_ids_are_stable_and_distinct() {
        let exec = Ulid::from_parts(1_700_000_000_000, 42).to_string();
        let a = derived_ulid(&ctx(&exec, "create"));
        assert_eq!(a, derived_ulid(&ctx(&exec, "create")));
        assert_ne!(a, derived_ulid(&ctx(&exec, "each[1]/create")));
        assert_eq!(a.timestamp_ms(), 1_700_000_000_000);
        assert_eq!(derived_ulid(&ctx("not-a-ulid", "x")).timestamp_ms(), 0);
    }
}
