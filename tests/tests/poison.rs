//! A task that can never be handled (here: its execution pins a version that does not exist)
//! ends the same way on SQLite and on SQS: it is delivered again until the queue's receive
//! limit, then `App::task_failed` fails its execution with the reason through the same finish
//! as any execution, so a waiter (`?wait`) is told at once.

use std::time::Duration;

use serde_json::{Value, json};
use wf_app::app::executions::new_execution_id;
use wf_core::execution::{ExecutionRecord, ExecutionStatus, StepTask, TriggerInfo};
use wf_core::ports::{Clock, SystemClock, TaskQueue};
use wf_tests::harness::{Backend, QueueMode, TestEngine};
use wiremock::MockServer;

async fn a_poisoned_task_fails_its_execution_after_the_last_delivery(backend: Backend) {
    let server = MockServer::start().await;
    let e = TestEngine::on(backend, QueueMode::Redeliver, &server.uri()).await;
    let mut finished = e.app.subscribe_finished();
    let now = SystemClock.now_ms();
    let id = new_execution_id(now);
    let record = ExecutionRecord {
        id: id.clone(),
        workflow_id: "gone".into(),
        version: 77,
        status: ExecutionStatus::Queued,
        trigger: TriggerInfo::new("manual"),
        input: json!({}),
        output: Value::Null,
        error: None,
        started_at: now,
        finished_at: None,
        duration_ms: None,
        deadline_at: now + 300_000,
        rerun_of: None,
        handoff: Vec::new(),
    };
    e.store.create_execution(&record, None).await.unwrap();
    let task = StepTask {
        execution_id: id.clone(),
        path: "start".into(),
        attempt: 1,
    };
    e.queue.send(&[(task, 0)]).await.unwrap();

    // The finish is broadcast: what `?wait` wakes on, long before its deadline of 5 minutes.
    let signalled = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            match finished.recv().await {
                Ok((done, status)) if done == id => return status,
                Ok(_) => continue,
                Err(e) => panic!("finished channel: {e}"),
            }
        }
    })
    .await
    .expect("the execution was never reported finished");
    assert_eq!(signalled, ExecutionStatus::Failed);

    let view = e
        .app
        .wait_finished(&id, Some(Duration::from_secs(5)))
        .await
        .unwrap()
        .expect("finished");
    assert_eq!(view.execution.status, ExecutionStatus::Failed);
    let error = view.execution.error.expect("an error");
    assert_eq!(error.code, "dead_letter");
    assert!(
        error.message.contains("5 deliveries") && error.message.contains("version 77"),
        "{}",
        error.message
    );
    assert!(view.execution.finished_at.is_some());

    // Given up means acknowledged: with the workers stopped, nothing comes back after the
    // visibility timeout.
    let mut e = e;
    e.stop_workers().await;
    tokio::time::sleep(e.settle_time()).await;
    let left = e
        .queue
        .receive(10, Duration::from_millis(500))
        .await
        .unwrap();
    assert!(
        left.is_empty(),
        "the poisoned task is still queued: {left:?}"
    );
}

mod local {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_poisoned_task_fails_its_execution_after_the_last_delivery() {
        super::a_poisoned_task_fails_its_execution_after_the_last_delivery(super::Backend::Local)
            .await
    }
}

mod aws {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_poisoned_task_fails_its_execution_after_the_last_delivery() {
        super::a_poisoned_task_fails_its_execution_after_the_last_delivery(super::Backend::Aws)
            .await
    }
}
