//! Event loops are bounded (issue 10, item 3): a workflow that re-emits the event it is
//! triggered by stops at the causation chain's bounds, the emitting step says why, and the
//! refusals and rejections are counted at `/metrics`. Runs the local engine with an event pump
//! like `wf dev`'s (the bus outbox routed through `App::route_event`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;
use wf_app::App;
use wf_app::http::{AppState, router};
use wf_app::local::{LocalApp, LocalOptions};
use wf_app::settings::EngineSettings;
use wf_core::execution::{ExecutionQuery, ExecutionRecord, ExecutionStatus};
use wf_core::model::Workflow;
use wf_core::ports::{EventBus, PlatformEvent};
use wf_local::LocalEventBus;

struct Engine {
    local: LocalApp,
    api: axum::Router,
    _workers: wf_app::runner::WorkerPool,
    pump: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.pump.abort();
    }
}

/// Routes every event of the outbox, in order, as `wf dev` does.
async fn pump(app: Arc<App>, bus: LocalEventBus) {
    let mut cursor = 0;
    loop {
        let batch = bus.list_events(cursor, 100).await.expect("read the outbox");
        if batch.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        for (seq, event) in batch {
            app.route_event(&event, None).await.expect("route");
            cursor = seq;
        }
    }
}

async fn engine(settings: EngineSettings, workflows: &[Value]) -> Engine {
    let dir = tempfile::tempdir().unwrap();
    let options = LocalOptions {
        settings,
        ..LocalOptions::default()
    };
    let local = LocalApp::open(&dir.path().join("wf.db"), options).unwrap();
    for w in workflows {
        let wf: Workflow = serde_json::from_value(w.clone()).expect("workflow JSON");
        let report = wf_core::validate::validate_workflow(&wf);
        assert!(report.is_empty(), "invalid test workflow: {report:#?}");
        local.publish(wf.clone()).await.unwrap();
        local.app.activate(&wf.id, None).await.unwrap();
    }
    let workers = local.start_workers();
    let pump = tokio::spawn(pump(local.app.clone(), local.store.event_bus()));
    let api = router(AppState::new(local.app.clone(), "http://127.0.0.1:0"));
    Engine {
        local,
        api,
        _workers: workers,
        pump,
        _dir: dir,
    }
}

impl Engine {
    async fn call(&self, request: Request<Body>) -> (StatusCode, String) {
        let response = self.api.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = to_bytes(response.into_body(), 1 << 22).await.unwrap();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    async fn post_event(&self, body: Value) {
        let request = Request::post("/events")
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        let (status, text) = self.call(request).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{text}");
    }

    async fn metrics(&self) -> String {
        let (status, text) = self
            .call(Request::get("/metrics").body(Body::empty()).unwrap())
            .await;
        assert_eq!(status, StatusCode::OK);
        text
    }

    async fn executions(&self, workflow_id: &str) -> Vec<ExecutionRecord> {
        let query = ExecutionQuery {
            workflow_id: Some(workflow_id.into()),
            limit: 100,
            ..ExecutionQuery::default()
        };
        self.local.app.list_executions(&query).await.unwrap().items
    }

    /// The workflow's executions once `want` of them are finished and nothing new arrived
    /// for a while (a loop that did not stop keeps adding).
    async fn settled(&self, workflow_id: &str, want: usize) -> Vec<ExecutionRecord> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let all = self.executions(workflow_id).await;
            let done = all
                .iter()
                .filter(|e| !matches!(e.status, ExecutionStatus::Queued | ExecutionStatus::Running))
                .count();
            if (done >= want && done == all.len()) || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Time for a loop that did not stop to show it.
        tokio::time::sleep(Duration::from_millis(700)).await;
        let mut all = self.executions(workflow_id).await;
        all.sort_by_key(|e| e.started_at);
        all
    }
}

fn looper() -> Value {
    json!({
        "id": "looper",
        "steps": [
            { "id": "start", "type": "start", "triggers": [ { "type": "event", "event": "loop.tick" } ], "next": "tick" },
            { "id": "tick", "type": "action", "action": "event.emit", "params": { "type": "loop.tick" } }
        ]
    })
}

fn chain_of(e: &ExecutionRecord) -> Vec<String> {
    wf_core::event_chain::from_trigger(&e.trigger.details)
}

async fn failed_step_error(engine: &Engine, execution_id: &str) -> wf_core::StepError {
    let view = engine.local.app.execution(execution_id).await.unwrap();
    view.steps
        .iter()
        .find(|s| s.path == "tick")
        .and_then(|s| s.error.clone())
        .expect("the emitting step failed")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_triggering_workflow_stops_at_the_depth_limit() {
    let settings = EngineSettings {
        event_max_depth: 4,
        event_max_revisits: 100,
        ..EngineSettings::default()
    };
    let engine = engine(settings, &[looper()]).await;
    // From outside: no chain.
    engine.post_event(json!({ "type": "loop.tick" })).await;

    let runs = engine.settled("looper", 4).await;
    assert_eq!(runs.len(), 4, "exactly the depth limit's worth: {runs:#?}");
    for (i, run) in runs.iter().enumerate() {
        assert_eq!(chain_of(run).len(), i + 1, "{run:?}");
        assert!(chain_of(run).iter().all(|w| w == "looper"));
    }
    for run in &runs[..3] {
        assert_eq!(run.status, ExecutionStatus::Succeeded, "{run:?}");
    }
    let last = &runs[3];
    assert_eq!(last.status, ExecutionStatus::Failed, "{last:?}");
    let err = failed_step_error(&engine, &last.id).await;
    assert_eq!(err.code, "event.loop");
    assert!(!err.retryable);
    assert!(
        err.message.contains("looper -> looper -> looper -> looper")
            && err.message.contains("4 deep")
            && err.message.contains("depth limit of 4"),
        "{}",
        err.message
    );
    let metrics = engine.metrics().await;
    assert!(
        metrics.contains("wf_events_refused_total{reason=\"depth\"} 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_triggering_workflow_stops_at_the_revisit_bound_by_default() {
    let engine = engine(EngineSettings::default(), &[looper()]).await;
    engine.post_event(json!({ "type": "loop.tick" })).await;
    let limit = EngineSettings::default().event_max_revisits as usize;
    let runs = engine.settled("looper", limit).await;
    assert_eq!(runs.len(), limit, "{runs:#?}");
    let err = failed_step_error(&engine, &runs[limit - 1].id).await;
    assert_eq!(err.code, "event.loop");
    assert!(
        err.message
            .contains(&format!("the revisit limit of {limit}")),
        "{}",
        err.message
    );
    let metrics = engine.metrics().await;
    assert!(
        metrics.contains("wf_events_refused_total{reason=\"revisit\"} 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_create_on_a_subscribed_collection_stops_the_same_way() {
    let settings = EngineSettings {
        event_max_depth: 3,
        event_max_revisits: 100,
        ..EngineSettings::default()
    };
    let recorder = json!({
        "id": "recorder",
        "steps": [
            { "id": "start", "type": "start", "triggers": [ { "type": "event", "event": "ticks.created" } ], "next": "save" },
            { "id": "save", "type": "action", "action": "record.create", "params": { "collection": "ticks", "data": { "n": 1 } } }
        ]
    });
    let engine = engine(settings, &[recorder]).await;
    engine
        .post_event(json!({ "type": "ticks.created", "detail": {} }))
        .await;
    let runs = engine.settled("recorder", 3).await;
    assert_eq!(runs.len(), 3, "{runs:#?}");
    for run in &runs {
        assert_eq!(run.status, ExecutionStatus::Succeeded, "{run:?}");
    }
    let last = engine.local.app.execution(&runs[2].id).await.unwrap();
    let save = last.steps.iter().find(|s| s.path == "save").unwrap();
    let why = save.output["eventSuppressed"]
        .as_str()
        .unwrap_or_else(|| panic!("suppressed: {:?}", save.output));
    assert!(why.contains("depth limit of 3"), "{why}");
    // Every write stands: one record per execution.
    let rows = engine
        .local
        .services()
        .records
        .query("ticks", None, 100)
        .await
        .unwrap();
    assert_eq!(rows.len(), 3, "{rows:?}");
    let metrics = engine.metrics().await;
    assert!(
        metrics.contains("wf_events_refused_total{reason=\"depth\"} 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_refuses_chains_past_the_bounds_and_counts_rejections() {
    let plain = json!({
        "id": "plain",
        "steps": [
            { "id": "start", "type": "start",
              "triggers": [ { "type": "event", "event": "order.created" } ],
              "inputSchema": { "type": "object", "required": ["amount"] },
              "next": "done" },
            { "id": "done", "type": "output", "output": { "ok": true } }
        ]
    });
    let filtered = json!({
        "id": "filtered",
        "steps": [
            { "id": "start", "type": "start",
              "triggers": [ { "type": "event", "event": "order.created", "filter": "{{ event.detail.customer.country == 'DE' }}" } ],
              "next": "done" },
            { "id": "done", "type": "output", "output": { "ok": true } }
        ]
    });
    let settings = EngineSettings {
        event_max_depth: 3,
        event_max_revisits: 2,
        ..EngineSettings::default()
    };
    let engine = engine(settings, &[plain, filtered]).await;
    let app = &engine.local.app;
    let event = |id: &str, chain: &[&str], detail: Value| PlatformEvent {
        id: id.into(),
        event_type: "order.created".into(),
        source: "test".into(),
        detail,
        time: 0,
        chain: chain.iter().map(|s| s.to_string()).collect(),
    };
    let ok = json!({ "amount": 5, "customer": { "country": "DE" } });

    // Too deep, and revisiting `plain` once too often: nothing starts (defense in depth).
    let deep = app
        .route_event(&event("deep", &["a", "b", "c"], ok.clone()), Some("plain"))
        .await
        .unwrap();
    assert!(deep.is_empty(), "{deep:?}");
    let revisit = app
        .route_event(
            &event("again", &["plain", "plain"], ok.clone()),
            Some("plain"),
        )
        .await
        .unwrap();
    assert!(revisit.is_empty(), "{revisit:?}");

    // Within the bounds: started, with the chain plus its own id in the trigger.
    let routed = app
        .route_event(&event("fine", &["other"], ok.clone()), Some("plain"))
        .await
        .unwrap();
    assert_eq!(routed.len(), 1);
    let started = app.execution(&routed[0].execution_id).await.unwrap();
    assert_eq!(chain_of(&started.execution), ["other", "plain"]);

    // An event from outside (POST /events, no chain) behaves as before: both start, and
    // their chain begins with them.
    engine
        .post_event(json!({ "type": "order.created", "detail": ok }))
        .await;
    let plain_runs = engine.settled("plain", 2).await;
    assert_eq!(plain_runs.len(), 2, "{plain_runs:#?}");
    let from_outside = plain_runs
        .iter()
        .find(|r| r.id != routed[0].execution_id)
        .unwrap();
    assert_eq!(chain_of(from_outside), ["plain"]);
    assert_eq!(from_outside.status, ExecutionStatus::Succeeded);
    assert_eq!(engine.settled("filtered", 1).await.len(), 1);

    // A filter that fails and an input that does not match: counted, not only logged.
    engine
        .local
        .store
        .event_bus()
        .publish(&[event(
            "bad",
            &[],
            json!({ "note": "no amount, no customer" }),
        )])
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let metrics = loop {
        let m = engine.metrics().await;
        if (m.contains("reason=\"filter\"") && m.contains("reason=\"input\""))
            || Instant::now() > deadline
        {
            break m;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for line in [
        "wf_events_refused_total{reason=\"depth\"} 1",
        "wf_events_refused_total{reason=\"revisit\"} 1",
        "wf_event_rejections_total{reason=\"filter\"} 1",
        "wf_event_rejections_total{reason=\"input\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
}
