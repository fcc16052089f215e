//! A record that cannot be decoded (here: written straight into the SQLite file, the way a
//! value nested past serde_json's read limit once was) never breaks listing, the execution's
//! page or the sweeper: it is shown as a failed stand-in with error code `damaged`, and
//! everything else goes on (`wf_core::damaged`, ARCHITECTURE.md "Errors").

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;
use wf_app::app::executions::new_execution_id;
use wf_app::app::maintenance::SweepSettings;
use wf_app::http::{AppState, router};
use wf_app::local::{LocalApp, LocalOptions};
use wf_core::execution::{ExecutionRecord, ExecutionStatus, TriggerInfo};
use wf_core::model::Workflow;
use wf_core::ports::{Clock, ExecutionStore, SystemClock};

fn record(id: &str, started_at: i64) -> ExecutionRecord {
    ExecutionRecord {
        id: id.into(),
        workflow_id: "w".into(),
        version: 1,
        status: ExecutionStatus::Queued,
        trigger: TriggerInfo::new("webhook"),
        input: json!({ "n": 1 }),
        output: Value::Null,
        error: None,
        started_at,
        finished_at: None,
        duration_ms: None,
        deadline_at: started_at + 3_600_000,
        rerun_of: None,
        handoff: Vec::new(),
    }
}

async fn get(app: &axum::Router, uri: &str) -> (StatusCode, Value) {
    let response = app
        .clone()
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = to_bytes(response.into_body(), 1 << 22).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_record_breaks_neither_listing_nor_the_sweeper() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wf.db");
    let local = LocalApp::open(&db, LocalOptions::default()).unwrap();
    let workflow: Workflow = serde_json::from_value(json!({
        "id": "w",
        "steps": [
            { "id": "start", "type": "start", "triggers": [{ "type": "manual" }], "next": "done" },
            { "id": "done", "type": "output", "output": { "ok": true } }
        ]
    }))
    .unwrap();
    local.publish(workflow).await.unwrap();

    // Two executions left queued a minute ago: one will be damaged, one is fine.
    let started = SystemClock.now_ms() - 120_000;
    let (bad, good) = (new_execution_id(started), new_execution_id(started + 1));
    for id in [&bad, &good] {
        local
            .store
            .create_execution(&record(id, started), None)
            .await
            .unwrap();
    }
    let deep = format!(
        r#"{{"id":"{bad}","input":{}{}}}"#,
        "[".repeat(200),
        "]".repeat(200)
    );
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute(
        "UPDATE executions SET body = ?2 WHERE pk = ?1 AND sk = 'EXEC'",
        rusqlite::params![bad, deep],
    )
    .unwrap();

    // The sweep goes on: the damaged execution is passed over (and counted), the good one is
    // re-queued, and the next sweep does the same again.
    let settings = SweepSettings {
        requeue_after: std::time::Duration::from_secs(30),
        retention: None,
        ..SweepSettings::default()
    };
    for _ in 0..2 {
        let report = local.app.sweep(&settings).await.expect("the sweep goes on");
        assert_eq!(
            (report.damaged, report.requeued, report.failed),
            (1, 1, 0),
            "{report:?}"
        );
    }

    // Listing, the filtered list, the per-workflow list and the execution itself all answer.
    let api = router(AppState::new(local.app.clone(), "http://127.0.0.1:0"));
    for uri in [
        "/executions".to_string(),
        "/executions?status=queued".to_string(),
        "/workflows/w/executions".to_string(),
    ] {
        let (status, body) = get(&api, &uri).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {body}");
        let items = body["items"].as_array().unwrap();
        assert_eq!(items.len(), 2, "{uri}: {body}");
        let damaged = items.iter().find(|i| i["id"] == bad.as_str()).unwrap();
        assert_eq!(damaged["status"], "failed");
        assert_eq!(damaged["error"]["code"], "damaged");
    }
    let (status, body) = get(&api, &format!("/executions/{bad}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["error"]["code"], "damaged");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("recursion limit"),
        "{body}"
    );
    let (status, body) = get(&api, &format!("/executions/{good}")).await;
    assert_eq!(
        (status, &body["status"]),
        (StatusCode::OK, &json!("queued"))
    );
}
