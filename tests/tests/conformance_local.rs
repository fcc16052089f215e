//! The port conformance suite against the local adapters (SQLite store + SQLite queue).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::broadcast;
use wf_core::ports::PlatformEvent;
use wf_local::{QueueConfig, SqliteQueue, SqliteStore};
use wf_tests::conformance::bus::BusProbe;
use wf_tests::conformance::{bus, queue, store};

/// A short visibility timeout so redelivery tests are quick.
const VISIBILITY: Duration = Duration::from_millis(200);

fn open(dir: &Path) -> SqliteStore {
    SqliteStore::open(dir.join("wf.db")).expect("open the sqlite store")
}

fn fresh() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    (dir, store)
}

fn fresh_queue() -> (tempfile::TempDir, SqliteStore, SqliteQueue) {
    let (dir, store) = fresh();
    let queue = store.queue(QueueConfig {
        visibility_timeout: VISIBILITY,
    });
    (dir, store, queue)
}

macro_rules! store_checks {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let (_dir, s) = fresh();
            store::$name(&s).await;
        }
    )*};
}

store_checks!(
    claim_semantics,
    finish_step_once,
    renew_lease_only_while_held,
    list_steps_and_delete,
    list_steps_in_start_order,
    update_execution_until_terminal,
    create_execution_with_steps,
    claim_new_step_only_where_nothing_is_stored,
    dedupe_keys,
    list_executions_pages,
    list_iterations_in_index_order,
    count_iterations_in_batches,
    loop_items_in_pages,
    rejections_newest_first_in_pages,
    marks_are_kept_overwritten_and_cleared,
    definitions,
    records,
    payload_limit,
    deep_values_round_trip,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loop_join_counts_each_iteration_once() {
    let (_dir, s) = fresh();
    store::loop_join_counts_each_iteration_once(Arc::new(s)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_delay_is_honoured() {
    let (_dir, _store, q) = fresh_queue();
    queue::delay_is_honoured(&q, Duration::from_millis(500)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_redelivery_and_stale_receipts() {
    let (_dir, _store, q) = fresh_queue();
    queue::redelivery_and_stale_receipts(&q, VISIBILITY).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_batch_send() {
    let (_dir, _store, q) = fresh_queue();
    queue::batch_send(&q).await;
    assert_eq!(q.approximate_len().await.expect("len"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_receive_wakes_on_send() {
    let (_dir, _store, q) = fresh_queue();
    queue::receive_wakes_on_send(Arc::new(q)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_across_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_path_buf();
    queue::durable_across_reopen(
        move || {
            let store = open(&path);
            let q = store.queue(QueueConfig {
                visibility_timeout: VISIBILITY,
            });
            async move { (Arc::new(store), q) }
        },
        VISIBILITY,
    )
    .await;
}

/// The local bus broadcasts every event; a subscriber keeps the type it routes (what the local
/// event router does).
struct LocalProbe {
    store: SqliteStore,
    subscription: Option<(String, broadcast::Receiver<PlatformEvent>)>,
}

#[async_trait]
impl BusProbe for LocalProbe {
    async fn subscribe(&mut self, event_type: &str) {
        self.subscription = Some((event_type.to_string(), self.store.event_bus().subscribe()));
    }

    async fn delivered(&mut self, wait: Duration) -> Vec<PlatformEvent> {
        let Some((event_type, rx)) = self.subscription.as_mut() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let next = if out.is_empty() {
                tokio::time::timeout_at(deadline, rx.recv()).await
            } else {
                // After the first, take what is already there.
                tokio::time::timeout(Duration::from_millis(50), rx.recv()).await
            };
            match next {
                Ok(Ok(e)) if &e.event_type == event_type => out.push(e),
                Ok(Ok(_)) => {}
                Ok(Err(_)) | Err(_) => return out,
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bus_routes_by_type() {
    let (_dir, s) = fresh();
    let bus = s.event_bus();
    let mut probe = LocalProbe {
        store: s.clone(),
        subscription: None,
    };
    bus::routes_by_type(&bus, &mut probe).await;
}
