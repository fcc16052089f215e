//! A sweep that runs out of its time budget keeps its place and says so (`incomplete`, the
//! `wf_sweep_incomplete_total` metric); the next sweep goes on from there, and once a sweep
//! completes the place is cleared. On SQLite here; the mark itself is checked on both stores
//! by the conformance suite (`marks_are_kept_overwritten_and_cleared`).

use std::time::Duration;

use serde_json::{Value, json};
use wf_app::app::executions::new_execution_id;
use wf_app::app::maintenance::{SWEEP_MARK, SweepSettings};
use wf_app::local::{LocalApp, LocalOptions};
use wf_core::execution::{ExecutionRecord, ExecutionStatus, TriggerInfo};
use wf_core::model::Workflow;
use wf_core::ports::{Clock, ExecutionStore, SystemClock};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incomplete_sweep_keeps_its_place_and_the_next_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let local = LocalApp::open(&dir.path().join("wf.db"), LocalOptions::default()).unwrap();
    let workflow: Workflow = serde_json::from_value(json!({
        "id": "w",
        "steps": [
            { "id": "start", "type": "start", "triggers": [{ "type": "manual" }], "next": "done" },
            { "id": "done", "type": "output", "output": { "ok": true } }
        ]
    }))
    .unwrap();
    local.publish(workflow).await.unwrap();
    // Seven executions running past their deadline (nothing is working on them).
    let now = SystemClock.now_ms();
    let mut ids = Vec::new();
    for i in 0..7 {
        let started = now - 600_000 + i;
        let id = new_execution_id(started);
        let record = ExecutionRecord {
            id: id.clone(),
            workflow_id: "w".into(),
            version: 1,
            status: ExecutionStatus::Running,
            trigger: TriggerInfo::new("manual"),
            input: json!({}),
            output: Value::Null,
            error: None,
            started_at: started,
            finished_at: None,
            duration_ms: None,
            deadline_at: started + 60_000,
            rerun_of: None,
            handoff: Vec::new(),
        };
        local.store.create_execution(&record, None).await.unwrap();
        ids.push(id);
    }
    // A budget already spent: the sweep stops after its first page of 3.
    let tight = SweepSettings {
        retention: None,
        budget: Some(Duration::ZERO),
        page: 3,
        ..SweepSettings::default()
    };
    let first = local.app.sweep(&tight).await.unwrap();
    assert!(first.incomplete, "{first:?}");
    assert_eq!(first.timed_out, 3, "one page handled: {first:?}");
    let mark = local.store.get_mark(SWEEP_MARK).await.unwrap();
    assert_eq!(mark["status"], json!("running"), "{mark}");
    assert!(mark["cursor"].is_string(), "the place is kept: {mark}");
    assert!(
        local
            .app
            .metrics()
            .render()
            .contains("wf_sweep_incomplete_total{reason=\"budget\"} 1"),
        "{}",
        local.app.metrics().render()
    );

    // The next sweep goes on from there (no budget): the other four, then the place is cleared.
    let open = SweepSettings {
        retention: None,
        page: 3,
        ..SweepSettings::default()
    };
    let second = local.app.sweep(&open).await.unwrap();
    assert!(!second.incomplete);
    assert_eq!(second.timed_out, 4, "{second:?}");
    assert_eq!(local.store.get_mark(SWEEP_MARK).await.unwrap(), Value::Null);
    for id in &ids {
        let e = local.store.get_execution(id).await.unwrap().unwrap();
        assert_eq!(e.status, ExecutionStatus::TimedOut, "{id}");
    }
    let third = local.app.sweep(&open).await.unwrap();
    assert_eq!((third.timed_out, third.incomplete), (0, false));
}
