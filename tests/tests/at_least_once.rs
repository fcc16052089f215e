//! At-least-once proof: the same workflow under a queue that delivers every task twice, one
//! that loses the first acknowledgement of every message (the step ran, the task comes back),
//! and one that fails some sends (the worker dies between its writes and its sends). The final
//! record must equal a clean run's, no step result may be written twice, and no side effect
//! (HTTP call) may happen twice. On both backends: SQLite, and DynamoDB + SQS on moto_server.

use serde_json::{Value, json};
use wf_core::execution::ExecutionStatus;
use wf_tests::harness::{Backend, QueueMode, TestEngine, essence};
use wiremock::matchers::path_regex;
use wiremock::{Mock, MockServer, ResponseTemplate};

fn workflow(base: &str) -> Value {
    json!({
        "id": "alo", "config": { "backoffMs": 10 },
        "steps": [
            { "id": "start", "type": "start", "triggers": [{ "type": "manual" }], "next": "fetch" },
            { "id": "fetch", "type": "action", "action": "http.request", "params": { "url": format!("{base}/order") }, "next": "check" },
            { "id": "check", "type": "condition",
              "branches": [ { "if": "{{ steps.fetch.output.body.total > 10 }}", "next": "lines" } ], "else": "small" },
            { "id": "lines", "type": "loop", "items": "{{ input.lines }}", "concurrency": 3,
              "steps": [
                { "id": "price", "type": "action", "action": "http.request", "params": { "url": format!("{base}/price/{{{{ item }}}}") }, "next": "keep" },
                { "id": "keep", "type": "output", "output": { "sku": "{{ item }}", "price": "{{ steps.price.output.body.price }}" } }
              ], "next": "save" },
            { "id": "save", "type": "action", "action": "record.create",
              "params": { "collection": "orders", "id": "{{ input.orderId }}", "data": { "lines": "{{ steps.lines.output }}" } }, "next": "done" },
            { "id": "done", "type": "output", "output": { "lines": "{{ steps.lines.output | length }}", "saved": "{{ steps.save.output.id }}" } },
            { "id": "small", "type": "output", "output": "small" }
        ]
    })
}

async fn run(backend: Backend, mode: QueueMode, order_id: &str) -> (Value, usize, Vec<u32>) {
    let server = MockServer::start().await;
    Mock::given(path_regex("^/order$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "total": 42 })))
        .mount(&server)
        .await;
    Mock::given(path_regex("^/price/.*$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "price": 3 })))
        .mount(&server)
        .await;
    let e = TestEngine::on(backend, mode, &server.uri()).await;
    let lines: Vec<String> = (0..8).map(|i| format!("sku{i}")).collect();
    let v = e
        .run(
            workflow(&server.uri()),
            json!({ "orderId": order_id, "lines": lines }),
        )
        .await;
    assert_eq!(
        v.execution.status,
        ExecutionStatus::Succeeded,
        "{mode:?}: {v:#?}"
    );
    // give redelivered duplicates time to arrive and be handled, then count
    tokio::time::sleep(e.settle_time()).await;
    let requests = server.received_requests().await.unwrap().len();
    let writes: Vec<u32> = e
        .counting
        .terminal_writes
        .lock()
        .unwrap()
        .values()
        .copied()
        .collect();
    let after = e
        .store
        .get_execution(&v.execution.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        after.status,
        ExecutionStatus::Succeeded,
        "a late duplicate changed the execution"
    );
    e.shutdown().await;
    (
        without_server_address(essence(&v), &server.uri()),
        requests,
        writes,
    )
}

async fn duplicate_delivery_lost_acks_and_failed_sends_change_nothing(backend: Backend) {
    let (clean, clean_requests, clean_writes) = run(backend, QueueMode::Clean, "o-1").await;
    assert_eq!(clean_requests, 9, "1 order fetch + 8 prices");
    assert!(clean_writes.iter().all(|&n| n == 1));
    for mode in [
        QueueMode::DeliverTwice,
        QueueMode::DropFirstAck,
        QueueMode::FailSomeSends,
    ] {
        let (got, requests, writes) = run(backend, mode, "o-1").await;
        assert_eq!(
            got, clean,
            "{backend:?} {mode:?} produced a different execution record"
        );
        assert_eq!(
            requests, clean_requests,
            "{mode:?}: a side effect ran twice"
        );
        assert_eq!(writes.len(), clean_writes.len(), "{mode:?}");
        assert!(
            writes.iter().all(|&n| n == 1),
            "{mode:?}: a step result was written twice: {writes:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_duplicate_delivery_lost_acks_and_failed_sends_change_nothing() {
    duplicate_delivery_lost_acks_and_failed_sends_change_nothing(Backend::Local).await;
}

/// The same proof on SQS + DynamoDB (moto_server): SQS redelivers after its visibility timeout,
/// the store's conditions keep every write single.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_duplicate_delivery_lost_acks_and_failed_sends_change_nothing() {
    duplicate_delivery_lost_acks_and_failed_sends_change_nothing(Backend::Aws).await;
}

/// The mock server's address differs between runs (wiremock hands out pooled servers): compare
/// records with it replaced by a placeholder.
fn without_server_address(v: Value, uri: &str) -> Value {
    let text = serde_json::to_string(&v)
        .unwrap_or_default()
        .replace(uri, "http://mock");
    serde_json::from_str(&text).unwrap_or(v)
}
