//! `LocalEventBus`: platform events for `wf dev`. Each published event is appended to the
//! `events` table (a durable outbox, for replay and inspection) and then broadcast in-process to
//! every subscriber (the local server routes them to event triggers).

use async_trait::async_trait;
use rusqlite::params;
use tokio::sync::broadcast;
use wf_core::ports::{Clock, EventBus, PlatformEvent, SystemClock};
use wf_core::{StoreError, StoreResult};

use crate::db::{Db, map_err};
use crate::items::{check_size, from_body};

/// EventBridge's entry size limit, applied locally too.
pub const MAX_EVENT_BYTES: usize = 256 * 1024;

/// The local event bus on the store's file. Cheap to clone; every handle built from the same
/// store shares one broadcast channel. Build it with [`crate::SqliteStore::event_bus`].
#[derive(Clone)]
pub struct LocalEventBus {
    db: Db,
}

impl std::fmt::Debug for LocalEventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalEventBus").finish_non_exhaustive()
    }
}

impl LocalEventBus {
    pub(crate) fn new(db: Db) -> Self {
        Self { db }
    }

    /// Receive every event published from now on. A subscriber that falls more than 1024
    /// events behind gets `RecvError::Lagged` (the events stay in the outbox for replay).
    pub fn subscribe(&self) -> broadcast::Receiver<PlatformEvent> {
        self.db.events().subscribe()
    }

    /// Events in the outbox after sequence number `after_seq` (0 = from the start), oldest
    /// first, at most `limit`: `(seq, event)` pairs.
    pub async fn list_events(
        &self, after_seq: i64, limit: usize,
    ) -> StoreResult<Vec<(i64, PlatformEvent)>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.db
            .read(move |conn| {
                let mut st = conn
                    .prepare_cached(
                        "SELECT seq, body FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                    )
                    .map_err(map_err)?;
                let rows = st
                    .query_map(params![after_seq, limit], |r| {
                        Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
                    })
                    .map_err(map_err)?;
                let mut out = Vec::new();
                for row in rows {
                    let (seq, body) = row.map_err(map_err)?;
                    out.push((seq, from_body(&body, "event", &seq.to_string())?));
                }
                Ok(out)
            })
            .await
    }

    /// Delete outbox events published before `before` (ms). Returns how many were deleted.
    pub async fn purge_before(&self, before: i64) -> StoreResult<usize> {
        self.db
            .write(move |txn| {
                txn.execute(
                    "DELETE FROM events WHERE published_at < ?1",
                    params![before],
                )
                .map_err(map_err)
            })
            .await
    }
}

#[async_trait]
impl EventBus for LocalEventBus {
    async fn publish(&self, events: &[PlatformEvent]) -> StoreResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        let mut rows = Vec::with_capacity(events.len());
        for event in events {
            let body = serde_json::to_string(event).map_err(|e| {
                StoreError::Permanent(format!("cannot encode event {}: {e}", event.id))
            })?;
            check_size("event", &event.id, body.len(), MAX_EVENT_BYTES)?;
            rows.push((event.clone(), body));
        }
        let published_at = SystemClock.now_ms();
        let events = events.to_vec();
        let fresh = self
            .db
            .write(move |txn| {
                let mut st = txn
                    .prepare_cached(
                        "INSERT OR IGNORE INTO events (id, type, source, time, body, published_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    )
                    .map_err(map_err)?;
                let mut fresh = Vec::with_capacity(rows.len());
                for (event, body) in &rows {
                    let inserted = st
                        .execute(params![
                            event.id,
                            event.event_type,
                            event.source,
                            event.time,
                            body,
                            published_at
                        ])
                        .map_err(map_err)?;
                    fresh.push(inserted == 1);
                }
                Ok(fresh)
            })
            .await?;
        // Only events seen for the first time go to subscribers: a repeat is a redelivery.
        for (event, _) in events.into_iter().zip(fresh).filter(|(_, f)| *f) {
            // No subscriber is fine: the event is in the outbox.
            let _ = self.db.events().send(event);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::SqliteStore;

    fn event(id: &str, detail: serde_json::Value) -> PlatformEvent {
        PlatformEvent {
            id: id.into(),
            event_type: "order.created".into(),
            source: "test".into(),
            detail,
            time: 1_700_000_000_000,
            chain: Vec::new(),
        }
    }

    #[tokio::test]
    async fn publish_broadcasts_and_keeps_an_outbox() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bus.db");
        let chained = PlatformEvent {
            chain: vec!["origin".into(), "looper".into()],
            ..event("e2", json!({}))
        };
        let events = vec![event("e1", json!({ "amount": 5 })), chained];
        {
            let store = SqliteStore::open(&path).expect("open");
            let bus = store.event_bus();
            let mut rx = store.event_bus().subscribe();
            bus.publish(&events).await.expect("publish");
            assert_eq!(rx.recv().await.expect("e1"), events[0]);
            assert_eq!(rx.recv().await.expect("e2"), events[1]);
            // No subscriber: still fine.
            drop(rx);
            bus.publish(&[event("e3", json!(null))])
                .await
                .expect("publish");
        }
        let store = SqliteStore::open(&path).expect("reopen");
        let bus = store.event_bus();
        let stored = bus.list_events(0, 10).await.expect("list");
        let ids: Vec<&str> = stored.iter().map(|(_, e)| e.id.as_str()).collect();
        assert_eq!(ids, ["e1", "e2", "e3"]);
        assert_eq!(stored[0].1, events[0]);
        // The causation chain round-trips through the stored JSON.
        assert_eq!(stored[1].1, events[1]);
        assert_eq!(stored[1].1.chain, ["origin", "looper"]);
        let after = bus.list_events(stored[0].0, 10).await.expect("list");
        assert_eq!(after.len(), 2);
        assert_eq!(bus.purge_before(i64::MAX).await.expect("purge"), 3);
    }

    #[tokio::test]
    async fn oversized_events_are_refused_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path().join("bus.db")).expect("open");
        let bus = store.event_bus();
        let big = event("big", json!("x".repeat(MAX_EVENT_BYTES)));
        let err = bus
            .publish(&[event("ok", json!(1)), big])
            .await
            .expect_err("too large");
        assert!(matches!(err, StoreError::TooLarge(_)), "{err:?}");
        assert!(bus.list_events(0, 10).await.expect("list").is_empty());
    }
}
