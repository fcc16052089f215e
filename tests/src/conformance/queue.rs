//! Conformance of `TaskQueue` (and of durability across a restart, store + queue together).

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use wf_core::execution::{ClaimOutcome, StepStatus, StepTask};
use wf_core::ports::{Delivery, ExecutionStore, RecordCreate, RecordStore, TaskQueue};

use super::{T0, execution, execution_id, step, task, unique};

/// Receive until `want` deliveries arrived or `within` passed.
async fn receive_n<Q: TaskQueue + ?Sized>(
    queue: &Q, want: usize, within: Duration,
) -> Vec<Delivery> {
    let deadline = Instant::now() + within;
    let mut out = Vec::new();
    while out.len() < want {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let batch = queue
            .receive(want - out.len(), left.min(Duration::from_secs(1)))
            .await
            .expect("receive");
        out.extend(batch);
    }
    out
}

async fn expect_empty<Q: TaskQueue + ?Sized>(queue: &Q, wait: Duration, why: &str) {
    let got = queue.receive(10, wait).await.expect("receive");
    assert!(got.is_empty(), "{why}: got {got:?}");
}

/// A delayed task is not visible before its delay; an immediate one is.
pub async fn delay_is_honoured<Q: TaskQueue + ?Sized>(queue: &Q, delay: Duration) {
    let id = execution_id(T0);
    let sent = Instant::now();
    queue
        .send(&[
            (task(&id, "later", 1), delay.as_millis() as u64),
            (task(&id, "now", 1), 0),
        ])
        .await
        .expect("send");
    let first = receive_n(queue, 1, Duration::from_secs(5)).await;
    assert_eq!(first.len(), 1);
    assert_eq!(
        first[0].task,
        task(&id, "now", 1),
        "the undelayed task comes first"
    );
    assert_eq!(first[0].receive_count, 1);
    queue.ack(&first[0].receipt).await.expect("ack");

    let early = queue.receive(10, Duration::ZERO).await.expect("receive");
    if sent.elapsed() < delay {
        assert!(early.is_empty(), "not visible before its delay: {early:?}");
    }
    let later = receive_n(queue, 1, delay + Duration::from_secs(10)).await;
    assert_eq!(later.len(), 1, "the delayed task arrives");
    // A few ms of slack: clocks are read in whole milliseconds.
    assert!(
        sent.elapsed() + Duration::from_millis(10) >= delay,
        "delivered after {:?}, before the delay of {delay:?}",
        sent.elapsed()
    );
    assert_eq!(later[0].task, task(&id, "later", 1));
    queue.ack(&later[0].receipt).await.expect("ack");
}

/// An unacknowledged message comes back after the visibility timeout with a higher receive
/// count; an ack with a stale receipt does nothing; the current receipt deletes it.
pub async fn redelivery_and_stale_receipts<Q: TaskQueue + ?Sized>(queue: &Q, visibility: Duration) {
    let id = execution_id(T0);
    let t = task(&id, "a", 1);
    queue.send(&[(t.clone(), 0)]).await.expect("send");

    let first = receive_n(queue, 1, Duration::from_secs(5)).await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].task, t);
    assert_eq!(first[0].receive_count, 1);
    expect_empty(queue, Duration::ZERO, "invisible while in flight").await;

    // Not acknowledged: it comes back after the visibility timeout.
    let started = Instant::now();
    let second = receive_n(queue, 1, visibility * 10 + Duration::from_secs(5)).await;
    assert_eq!(second.len(), 1, "redelivered after the visibility timeout");
    assert!(
        started.elapsed() + Duration::from_millis(50) >= visibility / 2,
        "not redelivered long before the visibility timeout"
    );
    assert_eq!(second[0].task, t);
    assert_eq!(second[0].receive_count, 2);
    assert_ne!(second[0].receipt, first[0].receipt);

    // The first receipt is stale: acknowledging with it must not delete the message.
    queue
        .ack(&first[0].receipt)
        .await
        .expect("stale ack is not an error");
    let third = receive_n(queue, 1, visibility * 10 + Duration::from_secs(5)).await;
    assert_eq!(third.len(), 1, "a stale ack did not delete the message");
    assert_eq!(third[0].receive_count, 3);

    queue.ack(&third[0].receipt).await.expect("ack");
    expect_empty(queue, visibility * 2, "acknowledged messages are gone").await;
    // Acknowledging twice is harmless.
    queue.ack(&third[0].receipt).await.expect("second ack");
}

/// 25 tasks in one send, each received once, with `max` respected.
pub async fn batch_send<Q: TaskQueue + ?Sized>(queue: &Q) {
    let id = execution_id(T0);
    let tasks: Vec<(StepTask, u64)> = (0..25)
        .map(|i| (task(&id, &format!("each[{i}]/price"), 1), 0))
        .collect();
    queue.send(&tasks).await.expect("send 25");
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while got.len() < 25 && Instant::now() < deadline {
        let batch = queue
            .receive(10, Duration::from_secs(1))
            .await
            .expect("receive");
        assert!(batch.len() <= 10, "at most max per receive");
        for d in &batch {
            queue.ack(&d.receipt).await.expect("ack");
        }
        got.extend(batch);
    }
    let distinct: HashSet<StepTask> = got.iter().map(|d| d.task.clone()).collect();
    assert_eq!(got.len(), 25, "every task received once");
    assert_eq!(distinct.len(), 25);
    let sent: HashSet<StepTask> = tasks.into_iter().map(|(t, _)| t).collect();
    assert_eq!(distinct, sent);
    expect_empty(queue, Duration::from_millis(200), "all acknowledged").await;
}

/// A waiting receive returns soon after a send (no full wait).
pub async fn receive_wakes_on_send<Q: TaskQueue + ?Sized + 'static>(queue: Arc<Q>) {
    let id = execution_id(T0);
    let receiver = {
        let queue = queue.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let got = queue
                .receive(1, Duration::from_secs(20))
                .await
                .expect("receive");
            (got, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    queue
        .send(&[(task(&id, "wake", 1), 0)])
        .await
        .expect("send");
    let (got, waited) = receiver.await.expect("task");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].task, task(&id, "wake", 1));
    assert!(
        waited < Duration::from_secs(10),
        "a long poll returns when a task arrives (waited {waited:?})"
    );
    queue.ack(&got[0].receipt).await.expect("ack");
}

/// Write records and tasks, drop everything, open again: the data and the unacknowledged tasks
/// are still there (a received but unacknowledged one comes back after the visibility timeout).
pub async fn durable_across_reopen<S, Q, F, Fut>(mut open: F, visibility: Duration)
where
    S: ExecutionStore + RecordStore + ?Sized,
    Q: TaskQueue,
    F: FnMut() -> Fut,
    Fut: Future<Output = (Arc<S>, Q)>,
{
    let id = execution_id(T0);
    let workflow = unique("wf");
    let collection = unique("col");
    let claim = step("a", StepStatus::Running, 1, Some(T0 + 30_000));
    {
        let (store, queue) = open().await;
        store
            .create_execution(&execution(&id, &workflow, T0), None)
            .await
            .expect("create");
        assert_eq!(
            store.claim_step(&id, &claim, T0).await.expect("claim"),
            ClaimOutcome::Claimed
        );
        store
            .create(&collection, "r1", &json!({ "v": 1 }), "k1")
            .await
            .expect("record");
        queue
            .send(&[(task(&id, "in-flight", 1), 0), (task(&id, "waiting", 1), 0)])
            .await
            .expect("send");
        let received = receive_n(&queue, 1, Duration::from_secs(5)).await;
        assert_eq!(received.len(), 1);
        // Dropped without an ack: a crash mid-step.
    }
    let (store, queue) = open().await;
    assert_eq!(
        store
            .get_execution(&id)
            .await
            .expect("get")
            .map(|e| e.workflow_id),
        Some(workflow)
    );
    assert_eq!(store.get_step(&id, "a").await.expect("get"), Some(claim));
    assert_eq!(
        store
            .create(&collection, "r1", &json!({ "v": 2 }), "k1")
            .await
            .expect("record"),
        RecordCreate::Replayed(json!({ "v": 1 }))
    );
    let both = receive_n(&queue, 2, visibility * 10 + Duration::from_secs(10)).await;
    let paths: HashSet<String> = both.iter().map(|d| d.task.path.clone()).collect();
    assert_eq!(
        paths,
        HashSet::from(["in-flight".to_string(), "waiting".to_string()]),
        "both tasks survive the restart"
    );
    let redelivered = both
        .iter()
        .find(|d| d.task.path == "in-flight")
        .expect("in-flight");
    assert_eq!(
        redelivered.receive_count, 2,
        "the unacknowledged one is a redelivery"
    );
    for d in &both {
        queue.ack(&d.receipt).await.expect("ack");
    }
}
