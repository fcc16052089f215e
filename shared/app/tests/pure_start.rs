//! The pure start of an execution runs in the start use case (`app/staged.rs`): its records are
//! the ones a worker would store, the execution is created with them in one store call, and only
//! what is not pure goes to the queue. Each test compares with the same run made by the worker
//! (a start with a deterministic id is always the worker's).

use std::time::Duration;

use serde_json::{Value, json};
use wf_app::app::executions::{StartRequest, new_execution_id};
use wf_app::local::{LocalApp, LocalOptions};
use wf_core::execution::{ExecutionStatus, ExecutionView, StepRecord, TriggerInfo};
use wf_core::model::Workflow;
use wf_core::ports::{Clock, ExecutionStore, RecordStore, SystemClock};

fn workflow(value: Value) -> Workflow {
    serde_json::from_value(value).expect("workflow JSON")
}

/// webhook-shaped order alert: start (with an input schema) → condition → one of two outputs;
/// `middle` goes between the condition's `big` branch and its output.
fn order_alert(id: &str, middle: Option<Value>) -> Workflow {
    let big_next = if middle.is_some() { "save" } else { "big" };
    let mut steps = vec![
        json!({ "id": "start", "type": "start", "triggers": [{ "type": "manual" }], "next": "check",
                "inputSchema": { "type": "object", "required": ["orderId", "amount"] } }),
        json!({ "id": "check", "type": "condition",
                "branches": [{ "if": "{{ input.amount > vars.threshold }}", "next": big_next }],
                "else": "small" }),
        json!({ "id": "big", "type": "output",
                "output": { "alerted": true, "orderId": "{{ input.orderId }}" } }),
        json!({ "id": "small", "type": "output", "output": { "alerted": false } }),
    ];
    if let Some(m) = middle {
        steps.push(m);
    }
    workflow(json!({ "id": id, "config": { "variables": { "threshold": 100 } }, "steps": steps }))
}

fn open() -> (tempfile::TempDir, LocalApp) {
    let dir = tempfile::tempdir().expect("tempdir");
    let local = LocalApp::open(&dir.path().join("wf.db"), LocalOptions::default()).expect("open");
    (dir, local)
}

/// What must not differ between a staged run and the worker's run of the same input.
fn essence(view: &ExecutionView) -> Value {
    let steps: Vec<Value> = view
        .steps
        .iter()
        .map(|s: &StepRecord| {
            json!([
                s.path,
                s.step_type,
                s.status,
                s.attempts,
                s.input,
                s.output,
                s.error,
                s.next
            ])
        })
        .collect();
    json!({
        "status": view.execution.status,
        "output": view.execution.output,
        "error": view.execution.error,
        "steps": steps,
    })
}

async fn queued_paths(local: &LocalApp) -> Vec<String> {
    let got = local
        .services()
        .queue
        .receive(10, Duration::ZERO)
        .await
        .expect("receive");
    got.into_iter().map(|d| d.task.path).collect()
}

/// The same start made by the worker: a deterministic id is never staged.
async fn worker_run(local: &LocalApp, workflow: &str, input: Value) -> ExecutionView {
    let compiled = local.app.definition(workflow, 1).await.expect("compiled");
    let id = new_execution_id(SystemClock.now_ms());
    let request = StartRequest {
        execution_id: Some(id.clone()),
        ..StartRequest::new(input, TriggerInfo::new("manual"))
    };
    local.app.start(&compiled, request).await.expect("start");
    let pool = local.start_workers();
    let view = tokio::time::timeout(Duration::from_secs(20), local.wait_finished(&id))
        .await
        .expect("finished in time")
        .expect("view");
    pool.shutdown().await;
    view
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pure_run_is_stored_finished_by_its_start_with_the_records_a_worker_stores() {
    let (_dir, local) = open();
    let compiled = local
        .publish(order_alert("pure", None))
        .await
        .expect("publish");
    for (input, alerted) in [
        (json!({ "orderId": "o-1", "amount": 250 }), true),
        (json!({ "orderId": "o-2", "amount": 5 }), false),
    ] {
        let started = local
            .app
            .start(
                &compiled,
                StartRequest::new(input.clone(), TriggerInfo::new("manual")),
            )
            .await
            .expect("start");
        // No worker runs: the start stored it finished, and queued nothing.
        let stored = local
            .store
            .get_execution(&started.execution_id)
            .await
            .expect("get")
            .expect("exists");
        assert_eq!(stored.status, ExecutionStatus::Succeeded, "{stored:?}");
        assert_eq!(stored.output["alerted"], json!(alerted));
        assert_eq!(
            stored.duration_ms,
            stored.finished_at.map(|f| f - stored.started_at)
        );
        assert!(queued_paths(&local).await.is_empty(), "nothing queued");
        // A waiting caller is handed the execution as stored, not a read back of it.
        let handed = started.finished.clone().expect("finished in its start");
        let read = local
            .app
            .wait_finished(&started.execution_id, Some(Duration::ZERO))
            .await
            .expect("wait")
            .expect("terminal");
        assert_eq!(
            serde_json::to_value(handed.as_ref()).unwrap(),
            serde_json::to_value(&read).unwrap()
        );
        let staged = local
            .wait_finished(&started.execution_id)
            .await
            .expect("view");
        assert_eq!(staged.steps.len(), 3);
        let worker = worker_run(&local, "pure", input).await;
        assert_eq!(essence(&staged), essence(&worker));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pure_prefix_is_stored_with_the_execution_running_and_the_first_step_that_is_not_pure_queued()
 {
    let (_dir, local) = open();
    let save = json!({ "id": "save", "type": "action", "action": "record.create",
        "params": { "collection": "orders", "id": "{{ input.orderId }}", "data": { "amount": "{{ input.amount }}" } },
        "next": "big" });
    let compiled = local
        .publish(order_alert("prefix", Some(save)))
        .await
        .expect("publish");
    let input = json!({ "orderId": "o-9", "amount": 500 });
    let started = local
        .app
        .start(
            &compiled,
            StartRequest::new(input.clone(), TriggerInfo::new("manual")),
        )
        .await
        .expect("start");
    assert_eq!(started.finished, None, "not finished in its start");
    let id = started.execution_id;
    let stored = local
        .store
        .get_execution(&id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(
        stored.status,
        ExecutionStatus::Running,
        "created running: its first steps ran"
    );
    assert_eq!(
        stored.handoff,
        vec![wf_core::execution::HandedOff {
            path: "save".into(),
            attempt: 1,
            delay_ms: 0
        }],
        "with the task it handed on"
    );
    let paths: Vec<String> = local
        .store
        .list_steps(&id)
        .await
        .expect("steps")
        .into_iter()
        .map(|s| s.path)
        .collect();
    assert_eq!(paths, ["start", "check"]);
    assert_eq!(queued_paths(&local).await, ["save"]);

    // The worker goes on from there (the delivery above is redelivered after its visibility
    // timeout; the sweep is not needed): here the test sends it again, as a redelivery would.
    let compiled_task = wf_core::execution::StepTask {
        execution_id: id.clone(),
        path: "save".into(),
        attempt: 1,
    };
    local
        .services()
        .queue
        .send(&[(compiled_task, 0)])
        .await
        .expect("send");
    let pool = local.start_workers();
    let staged = tokio::time::timeout(Duration::from_secs(20), local.wait_finished(&id))
        .await
        .expect("finished in time")
        .expect("view");
    pool.shutdown().await;
    assert_eq!(staged.execution.status, ExecutionStatus::Succeeded);
    let saved = RecordStore::get(&*local.store, "orders", "o-9")
        .await
        .expect("get record");
    assert!(saved.is_some(), "the action ran");
    // The worker's own run of another order has the same records.
    let worker = worker_run(
        &local,
        "prefix",
        json!({ "orderId": "o-10", "amount": 500 }),
    )
    .await;
    let same = |v: &ExecutionView| {
        serde_json::to_string(&essence(v))
            .unwrap()
            .replace("o-10", "o-9")
    };
    assert_eq!(same(&staged), same(&worker));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_pure_step_fails_the_execution_in_its_start_as_the_worker_would() {
    let (_dir, local) = open();
    let wf = workflow(json!({ "id": "broken", "steps": [
        { "id": "start", "type": "start", "triggers": [{ "type": "manual" }], "next": "out" },
        { "id": "out", "type": "output", "output": { "x": "{{ input.a.b.c }}" } }
    ]}));
    let compiled = local.publish(wf).await.expect("publish");
    let input = json!({ "a": 1 });
    let started = local
        .app
        .start(
            &compiled,
            StartRequest::new(input.clone(), TriggerInfo::new("manual")),
        )
        .await
        .expect("start");
    let staged = local
        .wait_finished(&started.execution_id)
        .await
        .expect("view");
    assert_eq!(
        staged.execution.status,
        ExecutionStatus::Failed,
        "{staged:?}"
    );
    assert!(queued_paths(&local).await.is_empty());
    let worker = worker_run(&local, "broken", input).await;
    assert_eq!(essence(&staged), essence(&worker));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_with_a_secret_unset_here_starts_in_the_worker() {
    let (_dir, local) = open();
    let wf = workflow(json!({ "id": "secretive", "steps": [
        { "id": "start", "type": "start", "triggers": [{ "type": "manual" }], "next": "out" },
        { "id": "out", "type": "output", "output": { "k": "{{ secrets.WF_PURE_START_TEST_UNSET }}" } }
    ]}));
    let compiled = local.publish(wf).await.expect("publish");
    let started = local
        .app
        .start(
            &compiled,
            StartRequest::new(json!({}), TriggerInfo::new("manual")),
        )
        .await
        .expect("start");
    let stored = local
        .store
        .get_execution(&started.execution_id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(stored.status, ExecutionStatus::Queued);
    assert!(
        local
            .store
            .list_steps(&started.execution_id)
            .await
            .expect("steps")
            .is_empty()
    );
    assert_eq!(queued_paths(&local).await, ["start"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_dedupe_key_answers_the_first_staged_execution() {
    let (_dir, local) = open();
    let compiled = local
        .publish(order_alert("keyed", None))
        .await
        .expect("publish");
    let request = || StartRequest {
        dedupe_key: Some("order-o-1".into()),
        ..StartRequest::new(
            json!({ "orderId": "o-1", "amount": 250 }),
            TriggerInfo::new("webhook"),
        )
    };
    let first = local.app.start(&compiled, request()).await.expect("first");
    let again = local.app.start(&compiled, request()).await.expect("again");
    assert!(!first.duplicate);
    assert!(again.duplicate);
    assert_eq!(again.execution_id, first.execution_id);
    let all = local
        .store
        .list_executions(&Default::default())
        .await
        .expect("list")
        .items;
    assert_eq!(all.len(), 1, "one execution for one key");
    assert_eq!(all[0].status, ExecutionStatus::Succeeded);
    assert!(queued_paths(&local).await.is_empty());
}
