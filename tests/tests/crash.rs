//! Leases that follow the work: a worker that dies mid-step (its in-flight future dropped, its
//! task not acknowledged, its lease no longer renewed) is taken over within lease + visibility,
//! whatever the workflow's deadline; a step longer than the lease keeps it by the heartbeat; a
//! step whose worker is lost again and again fails with `step.lost` after the bound. On each
//! backend (SQLite; DynamoDB + SQS on moto_server).

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wf_app::app::executions::StartRequest;
use wf_app::app::workflows::PublishMode;
use wf_app::settings::EngineSettings;
use wf_core::engine::{LOST_ERROR_CODE, MAX_LEASE_LOSSES};
use wf_core::execution::{ExecutionStatus, StepStatus, TriggerInfo};
use wf_core::model::Workflow;
use wf_tests::harness::{Backend, QueueMode, TestEngine, step};
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod local {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::Local).await
                }
            )*
        }
        mod aws {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::Aws).await
                }
            )*
        }
    };
}

/// A workflow whose one step calls `url` with no `timeoutMs`, under a 10-minute deadline: only
/// the lease can bring a lost step back in time.
fn slow_call(url: &str) -> Value {
    json!({
        "id": "slow", "name": "slow",
        "config": { "timeoutMs": 600000, "maxRetries": 2, "backoffMs": 10 },
        "steps": [
            { "id": "start", "type": "start", "triggers": [{ "type": "manual" }], "next": "call" },
            { "id": "call", "type": "action", "action": "http.request", "params": { "url": url } }
        ]
    })
}

async fn engine(server: &MockServer, backend: Backend, lease: Duration) -> TestEngine {
    let settings = EngineSettings {
        lease,
        ..EngineSettings::default()
    };
    TestEngine::with_settings(backend, QueueMode::Redeliver, &server.uri(), settings).await
}

async fn start(e: &TestEngine, workflow: Value) -> String {
    let wf: Workflow = serde_json::from_value(workflow).unwrap();
    let published = e.app.publish(&wf, PublishMode::Always).await.unwrap();
    let compiled = e.app.definition(&wf.id, published.version).await.unwrap();
    e.app
        .start(
            &compiled,
            StartRequest::new(json!({}), TriggerInfo::new("manual")),
        )
        .await
        .unwrap()
        .execution_id
}

/// Wait until the peer has received `n` requests.
async fn requests_reach(server: &MockServer, n: usize) {
    let until = Instant::now() + Duration::from_secs(60);
    while server.received_requests().await.unwrap().len() < n {
        assert!(Instant::now() < until, "the peer never got request {n}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn a_worker_that_dies_mid_step_is_taken_over_within_the_lease(backend: Backend) {
    let server = MockServer::start().await;
    // The first call hangs (the worker dies while it waits); the next answers at once.
    Mock::given(path("/slow"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(120)))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(path("/slow"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "ok": true })))
        .mount(&server)
        .await;
    let lease = Duration::from_secs(2);
    let mut e = engine(&server, backend, lease).await;
    let id = start(&e, slow_call(&format!("{}/slow", server.uri()))).await;
    requests_reach(&server, 1).await;
    let crashed = Instant::now();
    e.crash_and_restart_workers();
    let v = e.wait(&id).await;
    let resumed = crashed.elapsed();
    assert_eq!(v.execution.status, ExecutionStatus::Succeeded, "{v:#?}");
    let call = step(&v, "call");
    assert_eq!(call.status, StepStatus::Succeeded);
    assert_eq!(call.attempts, 1, "a lost lease is not an attempt");
    assert_eq!(call.lease_lost, 1, "the crash is recorded on the step");
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
    // Lease + visibility (+ the moto emulator's slowness), far from the 10-minute deadline.
    let bound = match backend {
        Backend::Local => Duration::from_secs(6),
        Backend::Aws => Duration::from_secs(20),
    };
    assert!(resumed < bound, "resumed after {resumed:?}");
    eprintln!("{backend:?}: crash -> finished in {resumed:?} (lease {lease:?})");
    e.shutdown().await;
}

async fn a_step_longer_than_its_lease_keeps_it_by_the_heartbeat(backend: Backend) {
    let server = MockServer::start().await;
    Mock::given(path("/slow"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!(1))
                .set_delay(Duration::from_secs(4)),
        )
        .mount(&server)
        .await;
    let e = engine(&server, backend, Duration::from_secs(1)).await;
    let id = start(&e, slow_call(&format!("{}/slow", server.uri()))).await;
    let v = e.wait(&id).await;
    assert_eq!(v.execution.status, ExecutionStatus::Succeeded, "{v:#?}");
    let call = step(&v, "call");
    assert_eq!((call.attempts, call.lease_lost), (1, 0), "{call:#?}");
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        1,
        "nobody took over a step whose worker was alive"
    );
    e.shutdown().await;
}

async fn a_step_that_keeps_losing_its_worker_fails_with_step_lost(backend: Backend) {
    let server = MockServer::start().await;
    Mock::given(path("/slow"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(120)))
        .mount(&server)
        .await;
    let mut e = engine(&server, backend, Duration::from_secs(1)).await;
    let id = start(&e, slow_call(&format!("{}/slow", server.uri()))).await;
    for n in 1..=MAX_LEASE_LOSSES as usize {
        requests_reach(&server, n).await;
        e.crash_and_restart_workers();
    }
    let v = e.wait(&id).await;
    assert_eq!(v.execution.status, ExecutionStatus::Failed, "{v:#?}");
    let call = step(&v, "call");
    let error = call.error.clone().unwrap();
    assert_eq!(error.code, LOST_ERROR_CODE);
    assert_eq!((call.attempts, call.lease_lost), (1, MAX_LEASE_LOSSES));
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        MAX_LEASE_LOSSES as usize,
        "not run again after the bound"
    );
    assert!(v.execution.error.unwrap().message.contains("lost 3 times"));
    e.shutdown().await;
}

on_both_backends!(
    a_worker_that_dies_mid_step_is_taken_over_within_the_lease,
    a_step_longer_than_its_lease_keeps_it_by_the_heartbeat,
    a_step_that_keeps_losing_its_worker_fails_with_step_lost,
);

/// With a worker function timeout configured (AWS), a step whose `timeoutMs` the function could
/// never run to the end is refused at publish, naming the step and both numbers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_a_step_longer_than_the_worker_function_is_refused() {
    let server = MockServer::start().await;
    let settings = EngineSettings {
        worker_timeout: Some(Duration::from_secs(60)),
        ..EngineSettings::default()
    };
    let e =
        TestEngine::with_settings(Backend::Local, QueueMode::Clean, &server.uri(), settings).await;
    let mut w = slow_call("https://example.com/");
    w["steps"][1]["timeoutMs"] = json!(90000);
    let wf: Workflow = serde_json::from_value(w).unwrap();
    let err = e.app.publish(&wf, PublishMode::Always).await.unwrap_err();
    let text = format!("{err} {}", err.details());
    for needle in ["call", "90000", "60000", "/steps/1/timeoutMs"] {
        assert!(text.contains(needle), "{needle} missing from {text}");
    }
    let mut ok = slow_call("https://example.com/");
    ok["steps"][1]["timeoutMs"] = json!(50000);
    let wf: Workflow = serde_json::from_value(ok).unwrap();
    e.app.publish(&wf, PublishMode::Always).await.unwrap();
    e.shutdown().await;
}
