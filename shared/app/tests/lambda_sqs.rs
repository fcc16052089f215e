//! The worker function's handler on a fixture SQS batch: good, failing, malformed and poison
//! bodies, each answered exactly (`batchItemFailures`), with the poison task's execution failed
//! with the reason on its last delivery.

mod lambda_support;

use aws_lambda_events::event::sqs::SqsEvent;
use serde_json::{Value, json};
use wf_app::app::executions::StartRequest;
use wf_app::lambda::{BatchSettings, handle_sqs_batch};
use wf_core::execution::{ExecutionRecord, ExecutionStatus, StepStatus, TriggerInfo};
use wf_core::ports::ExecutionStore;

use lambda_support::{Engine, fixture};

fn workflow() -> Value {
    json!({
        "id": "greet", "name": "Greet", "config": { "active": true },
        "steps": [
            { "id": "start", "type": "start", "triggers": [{ "type": "manual" }], "next": "done" },
            { "id": "done", "type": "output", "output": { "hello": "{{ input.name }}" } }
        ]
    })
}

/// A queued execution pinned to a version that does not exist: every task of it fails.
async fn broken_execution(engine: &Engine, id: &str) {
    let now = wf_core::ports::SystemClock.now_ms();
    let record = ExecutionRecord {
        id: id.to_string(),
        workflow_id: "greet".into(),
        version: 77,
        status: ExecutionStatus::Queued,
        trigger: TriggerInfo::new("manual"),
        input: json!({}),
        output: Value::Null,
        error: None,
        started_at: now,
        finished_at: None,
        duration_ms: None,
        deadline_at: now + 60_000,
        rerun_of: None,
        handoff: Vec::new(),
    };
    engine
        .app
        .store
        .create_execution(&record, None)
        .await
        .unwrap();
}

use wf_core::ports::Clock;

#[tokio::test]
async fn a_mixed_batch_reports_exactly_the_failed_messages() {
    let engine = Engine::new();
    engine.publish_active(workflow()).await;
    let compiled = engine.app.app.definition("greet", 1).await.unwrap();
    let good = engine
        .app
        .app
        .start(
            &compiled,
            StartRequest::new(json!({ "name": "Ada" }), TriggerInfo::new("manual")),
        )
        .await
        .unwrap()
        .execution_id;
    let broken = "01JD0000000000000000000001";
    let poison = "01JD0000000000000000000002";
    broken_execution(&engine, broken).await;
    broken_execution(&engine, poison).await;

    let text = fixture(
        "sqs_batch_mixed.json",
        &[("GOOD", &good), ("BROKEN", broken), ("POISON", poison)],
    );
    // The fixture is what the SQS event source sends: it must parse as aws_lambda_events' type.
    let event: SqsEvent = serde_json::from_str(&text).unwrap();
    assert_eq!(event.records.len(), 7);

    let settings = BatchSettings {
        max_receive_count: 5,
    };
    let answer = handle_sqs_batch(&engine.app.app, event, &settings).await;
    let failed: Vec<&str> = answer
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    // Good, unknown-execution and already-finished tasks are acknowledged; each failure alone.
    assert_eq!(
        failed,
        ["m-failing", "m-malformed", "m-not-json", "m-poison"]
    );
    // The answer is what Lambda reads back with ReportBatchItemFailures.
    assert_eq!(
        serde_json::to_value(&answer).unwrap(),
        json!({ "batchItemFailures": [
            { "itemIdentifier": "m-failing" }, { "itemIdentifier": "m-malformed" },
            { "itemIdentifier": "m-not-json" }, { "itemIdentifier": "m-poison" }
        ]})
    );

    // Its metrics were counted and handed to the log as EMF when the invocation ended.
    let metrics = engine.app.app.metrics();
    assert_eq!(metrics.get("wf_executions_finished_total", "succeeded"), 1);
    assert!(metrics.get("wf_executions_finished_total", "failed") >= 1);
    assert!(
        metrics.drain_emf("worker", 0).is_empty(),
        "the handler drains this invocation's metrics into EMF"
    );

    // The good task ran the whole (pure) workflow inline.
    let store = &engine.app.store;
    let exec = store.get_execution(&good).await.unwrap().unwrap();
    assert_eq!(exec.status, ExecutionStatus::Succeeded);
    assert_eq!(exec.output, json!({ "hello": "Ada" }));
    let steps = store.list_steps(&good).await.unwrap();
    assert!(steps.iter().all(|s| s.status == StepStatus::Succeeded));
    assert_eq!(steps.len(), 2);

    // A failure before the last delivery leaves the execution alone (SQS delivers it again).
    let exec = store.get_execution(broken).await.unwrap().unwrap();
    assert_eq!(exec.status, ExecutionStatus::Queued);

    // On the last delivery (ApproximateReceiveCount 5 = maxReceiveCount) the execution is
    // failed with the reason before the message goes to the dead-letter queue.
    let exec = store.get_execution(poison).await.unwrap().unwrap();
    assert_eq!(exec.status, ExecutionStatus::Failed);
    let error = exec.error.unwrap();
    assert_eq!(error.code, "dead_letter");
    assert!(
        error.message.contains("5 deliveries") && error.message.contains("version 77"),
        "{}",
        error.message
    );
}

#[tokio::test]
async fn an_empty_batch_and_a_clean_batch_report_nothing() {
    let engine = Engine::new();
    let answer = handle_sqs_batch(
        &engine.app.app,
        SqsEvent::default(),
        &BatchSettings::default(),
    )
    .await;
    assert!(answer.batch_item_failures.is_empty());
    assert_eq!(
        serde_json::to_value(&answer).unwrap(),
        json!({ "batchItemFailures": [] })
    );
}

#[test]
fn settings_read_max_receive_count() {
    assert_eq!(BatchSettings::default().max_receive_count, 5);
}

#[tokio::test]
async fn a_deadline_that_leaves_no_time_is_ignored() {
    // `cargo lambda watch` hands the function a deadline of "now": tasks must still run.
    let engine = Engine::new();
    engine.publish_active(workflow()).await;
    let compiled = engine.app.app.definition("greet", 1).await.unwrap();
    let id = engine
        .app
        .app
        .start(
            &compiled,
            StartRequest::new(json!({ "name": "Bo" }), TriggerInfo::new("manual")),
        )
        .await
        .unwrap()
        .execution_id;
    let mut message = aws_lambda_events::event::sqs::SqsMessage::default();
    message.message_id = Some("m-1".into());
    message.body = Some(json!({ "executionId": id, "path": "start", "attempt": 1 }).to_string());
    let mut event = SqsEvent::default();
    event.records.push(message);
    let answer = wf_app::lambda::handle_sqs_batch_until(
        &engine.app.app,
        event,
        &BatchSettings::default(),
        Some(std::time::SystemTime::now()),
    )
    .await;
    assert!(answer.batch_item_failures.is_empty(), "{answer:?}");
    let exec = engine.app.store.get_execution(&id).await.unwrap().unwrap();
    assert_eq!(exec.status, ExecutionStatus::Succeeded);
}
