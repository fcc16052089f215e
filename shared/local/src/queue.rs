//! `SqliteQueue`: the durable local step queue, a table in the store's file.
//!
//! Semantics follow SQS: at-least-once; a received message is invisible for the visibility
//! timeout and comes back if it is not acknowledged in time; per-message delays; a receipt from a
//! receive that has since been superseded (the message was redelivered) acknowledges nothing.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::params;
use wf_core::execution::StepTask;
use wf_core::ports::{Clock, Delivery, SystemClock, TaskQueue};
use wf_core::{StoreError, StoreResult};

use crate::db::{Db, map_err};
use crate::items::check_size;

/// SQS's message size limit, applied locally too.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// Settings of the local queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueConfig {
    /// How long a received message stays invisible before it is delivered again.
    pub visibility_timeout: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            visibility_timeout: Duration::from_secs(30),
        }
    }
}

/// The step queue on the store's SQLite file (`queue` table), sharing the store's writer.
/// Cheap to clone. Build it with [`crate::SqliteStore::queue`].
#[derive(Clone)]
pub struct SqliteQueue {
    db: Db,
    visibility_ms: i64,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for SqliteQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteQueue")
            .field("visibility_ms", &self.visibility_ms)
            .finish_non_exhaustive()
    }
}

struct Received {
    deliveries: Vec<Delivery>,
    /// When nothing was visible: the earliest time a message becomes visible.
    next_visible_at: Option<i64>,
}

impl SqliteQueue {
    pub(crate) fn new(db: Db, config: QueueConfig) -> Self {
        Self {
            db,
            visibility_ms: i64::try_from(config.visibility_timeout.as_millis()).unwrap_or(i64::MAX),
            clock: Arc::new(SystemClock),
        }
    }

    /// Use `clock` for delays and visibility (tests inject time). Waiting still uses tokio time.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Messages in the queue: visible, delayed and in flight (received, not acknowledged).
    pub async fn approximate_len(&self) -> StoreResult<usize> {
        self.db
            .read(|conn| {
                conn.query_row("SELECT COUNT(*) FROM queue", [], |r| r.get::<_, i64>(0))
                    .map(|n| usize::try_from(n).unwrap_or(0))
                    .map_err(map_err)
            })
            .await
    }

    /// Make up to `max` visible messages invisible and hand them out.
    async fn receive_now(&self, max: usize) -> StoreResult<Received> {
        let now = self.clock.now_ms();
        let invisible_until = now.saturating_add(self.visibility_ms);
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        self.db
            .write(move |txn| {
                let mut select = txn
                    .prepare_cached(
                        "SELECT id, body, receive_count FROM queue WHERE visible_at <= ?1
                         ORDER BY visible_at, id LIMIT ?2",
                    )
                    .map_err(map_err)?;
                let rows = select
                    .query_map(params![now, max], |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, i64>(2)?,
                        ))
                    })
                    .map_err(map_err)?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(map_err)?;
                let mut deliveries = Vec::with_capacity(rows.len());
                for (id, body, count) in rows {
                    let task: StepTask = match serde_json::from_str(&body) {
                        Ok(task) => task,
                        Err(e) => {
                            // Nothing can ever process it: drop it rather than loop on it.
                            tracing::error!(id, error = %e, body, "dropping undecodable queue message");
                            txn.execute("DELETE FROM queue WHERE id = ?1", params![id])
                                .map_err(map_err)?;
                            continue;
                        }
                    };
                    let receive_count = count.saturating_add(1);
                    txn.prepare_cached(
                        "UPDATE queue SET visible_at = ?2, receive_count = ?3 WHERE id = ?1",
                    )
                    .and_then(|mut st| st.execute(params![id, invisible_until, receive_count]))
                    .map_err(map_err)?;
                    deliveries.push(Delivery {
                        task,
                        receipt: format!("{id}:{receive_count}"),
                        receive_count: u32::try_from(receive_count).unwrap_or(u32::MAX),
                    });
                }
                let next_visible_at = if deliveries.is_empty() {
                    txn.query_row("SELECT MIN(visible_at) FROM queue", [], |r| {
                        r.get::<_, Option<i64>>(0)
                    })
                    .map_err(map_err)?
                } else {
                    None
                };
                Ok(Received {
                    deliveries,
                    next_visible_at,
                })
            })
            .await
    }
}

fn parse_receipt(receipt: &str) -> Option<(i64, i64)> {
    let (id, count) = receipt.split_once(':')?;
    Some((id.parse().ok()?, count.parse().ok()?))
}

#[async_trait]
impl TaskQueue for SqliteQueue {
    async fn send(&self, tasks: &[(StepTask, u64)]) -> StoreResult<()> {
        if tasks.is_empty() {
            return Ok(());
        }
        let now = self.clock.now_ms();
        let mut rows = Vec::with_capacity(tasks.len());
        for (task, delay_ms) in tasks {
            let body = serde_json::to_string(task)
                .map_err(|e| StoreError::Permanent(format!("cannot encode a task: {e}")))?;
            check_size(
                &format!("queue message {}", task.execution_id),
                &task.path,
                body.len(),
                MAX_MESSAGE_BYTES,
            )?;
            let delay = i64::try_from(*delay_ms).unwrap_or(i64::MAX);
            rows.push((body, now.saturating_add(delay)));
        }
        self.db
            .write(move |txn| {
                let mut st = txn
                    .prepare_cached(
                        "INSERT INTO queue (body, visible_at, receive_count) VALUES (?1, ?2, 0)",
                    )
                    .map_err(map_err)?;
                for (body, visible_at) in &rows {
                    st.execute(params![body, visible_at]).map_err(map_err)?;
                }
                Ok(())
            })
            .await?;
        self.db.queue_notify().notify_waiters();
        Ok(())
    }

    async fn receive(&self, max: usize, wait: Duration) -> StoreResult<Vec<Delivery>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Register for a wake-up before looking, so a send in between is not missed.
            let notified = self.db.queue_notify().notified();
            tokio::pin!(notified);
            notified.as_mut().enable();

            let received = self.receive_now(max).await?;
            if !received.deliveries.is_empty() {
                return Ok(received.deliveries);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            let mut until = deadline;
            if let Some(at) = received.next_visible_at {
                let ms = at.saturating_sub(self.clock.now_ms()).max(1);
                let visible = now + Duration::from_millis(u64::try_from(ms).unwrap_or(1));
                until = until.min(visible);
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep_until(until) => {}
            }
        }
    }

    async fn ack(&self, receipt: &str) -> StoreResult<()> {
        let (id, count) = parse_receipt(receipt)
            .ok_or_else(|| StoreError::Permanent(format!("invalid receipt {receipt:?}")))?;
        let deleted = self
            .db
            .write(move |txn| {
                txn.execute(
                    "DELETE FROM queue WHERE id = ?1 AND receive_count = ?2",
                    params![id, count],
                )
                .map_err(map_err)
            })
            .await?;
        if deleted == 0 {
            tracing::debug!(
                receipt,
                "ack of a stale receipt (redelivered or gone): ignored"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicI64, Ordering};

    use super::*;
    use crate::SqliteStore;

    struct ManualClock(AtomicI64);

    impl Clock for ManualClock {
        fn now_ms(&self) -> i64 {
            self.0.load(Ordering::SeqCst)
        }
    }

    fn task(path: &str) -> StepTask {
        StepTask {
            execution_id: "01JD0000000000000000000000".into(),
            path: path.into(),
            attempt: 1,
        }
    }

    #[tokio::test]
    async fn delays_and_visibility_follow_the_injected_clock() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path().join("q.db")).expect("open");
        let clock = Arc::new(ManualClock(AtomicI64::new(1_000_000)));
        let queue = store
            .queue(QueueConfig::default())
            .with_clock(clock.clone());

        queue.send(&[(task("a"), 60_000)]).await.expect("send");
        assert_eq!(queue.approximate_len().await.expect("len"), 1);
        assert!(
            queue
                .receive(1, Duration::ZERO)
                .await
                .expect("rx")
                .is_empty()
        );
        clock.0.fetch_add(59_999, Ordering::SeqCst);
        assert!(
            queue
                .receive(1, Duration::ZERO)
                .await
                .expect("rx")
                .is_empty()
        );
        clock.0.fetch_add(1, Ordering::SeqCst);
        let got = queue.receive(1, Duration::ZERO).await.expect("rx");
        assert_eq!(got.len(), 1);
        assert!(got[0].receipt.ends_with(":1"), "{}", got[0].receipt);

        // Invisible for the default 30 s, then delivered again.
        clock.0.fetch_add(29_999, Ordering::SeqCst);
        assert!(
            queue
                .receive(1, Duration::ZERO)
                .await
                .expect("rx")
                .is_empty()
        );
        clock.0.fetch_add(1, Ordering::SeqCst);
        let again = queue.receive(1, Duration::ZERO).await.expect("rx");
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].receive_count, 2);
        queue.ack(&again[0].receipt).await.expect("ack");
        assert_eq!(queue.approximate_len().await.expect("len"), 0);
    }

    #[tokio::test]
    async fn a_waiting_receive_wakes_when_a_delay_ends() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path().join("q.db")).expect("open");
        let queue = store.queue(QueueConfig::default());
        queue.send(&[(task("a"), 300)]).await.expect("send");
        let started = std::time::Instant::now();
        let got = queue.receive(5, Duration::from_secs(10)).await.expect("rx");
        assert_eq!(got.len(), 1);
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(250) && waited < Duration::from_secs(5),
            "slept until the message became visible, waited {waited:?}"
        );
    }

    #[tokio::test]
    async fn bad_receipts_and_poison_messages() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path().join("q.db")).expect("open");
        let queue = store.queue(QueueConfig::default());
        assert!(matches!(
            queue.ack("nonsense").await,
            Err(StoreError::Permanent(_))
        ));
        queue
            .ack("12345:1")
            .await
            .expect("unknown receipt is a no-op");
        // A message nobody can decode is dropped instead of blocking the queue forever.
        store
            .db
            .write(|txn| {
                txn.execute(
                    "INSERT INTO queue (body, visible_at) VALUES ('not json', 0)",
                    [],
                )
                .map_err(map_err)
            })
            .await
            .expect("insert");
        queue.send(&[(task("ok"), 0)]).await.expect("send");
        let got = queue.receive(10, Duration::ZERO).await.expect("rx");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].task.path, "ok");
        assert_eq!(queue.approximate_len().await.expect("len"), 1);
    }
}
