//! What a webhook delivery knows of its workflow's META (activation, the URL's token, signing
//! secrets), which the webhook path remembers for `META_FRESH_FOR`: a change made through the
//! same application is seen by the very next delivery; one made by another process on the same
//! store (here: a second application on the same SQLite file) within `META_FRESH_FOR`.

mod lambda_support;

use http::HeaderMap;
use serde_json::json;
use wf_app::app::triggers::{WebhookDelivery, WebhookOutcome};
use wf_app::app::{App, AppError, ErrorKind, META_FRESH_FOR};
use wf_app::local::{LocalApp, LocalOptions};

use lambda_support::Engine;

const ID: &str = "hooked";

async fn deliver(app: &App, token: &str, order: &str) -> Result<WebhookOutcome, AppError> {
    let body = json!({ "orderId": order }).to_string();
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        "application/json".parse().unwrap(),
    );
    app.receive_webhook(WebhookDelivery {
        workflow_id: ID,
        token,
        headers: &headers,
        body: body.as_bytes(),
    })
    .await
}

fn assert_started(outcome: Result<WebhookOutcome, AppError>, what: &str) {
    match outcome {
        Ok(WebhookOutcome::Started(s)) => assert!(!s.duplicate, "{what}: {s:?}"),
        other => panic!("{what}: expected a started execution, got {other:?}"),
    }
}

fn assert_refused(outcome: Result<WebhookOutcome, AppError>, what: &str) {
    match outcome {
        Err(e) => assert_eq!(e.kind(), ErrorKind::NotFound, "{what}: {e}"),
        Ok(o) => panic!("{what}: expected no webhook (404), got {o:?}"),
    }
}

async fn engine() -> (Engine, String) {
    let engine = Engine::new();
    engine
        .publish_active(json!({
            "id": ID, "config": { "active": true },
            "steps": [
                { "id": "start", "type": "start",
                  "triggers": [{ "type": "webhook", "scheme": "none" }], "next": "done" },
                { "id": "done", "type": "output", "output": { "order": "{{ input.orderId }}" } }
            ]
        }))
        .await;
    let meta = engine.app.app.versions(ID).await.unwrap();
    let token = meta.webhook_token.expect("a token at first publish");
    (engine, token)
}

#[tokio::test]
async fn a_change_through_the_same_application_is_seen_by_the_next_delivery() {
    let (engine, token) = engine().await;
    let app = &engine.app.app;
    assert_started(deliver(app, &token, "o-1").await, "active");

    app.deactivate(ID).await.unwrap();
    assert_refused(deliver(app, &token, "o-2").await, "just deactivated");

    app.activate(ID, None).await.unwrap();
    assert_started(deliver(app, &token, "o-3").await, "activated again");

    let rotated = app.rotate_webhook_token(ID).await.unwrap();
    let new_token = rotated.webhook_token.unwrap();
    assert_ne!(new_token, token);
    assert_refused(
        deliver(app, &token, "o-4").await,
        "the token just rotated away",
    );
    assert_started(deliver(app, &new_token, "o-5").await, "the new token");

    app.delete_workflow(ID).await.unwrap();
    assert_refused(deliver(app, &new_token, "o-6").await, "just deleted");
}

#[tokio::test]
async fn a_change_by_another_process_is_seen_within_the_freshness_bound() {
    let (engine, token) = engine().await;
    let app = &engine.app.app;
    assert_started(deliver(app, &token, "o-1").await, "active");

    // Another application on the same SQLite file (another `wf` process, or the api function
    // next to the webhook function on AWS) deactivates the workflow.
    let path = engine.app.store.path().to_path_buf();
    let other = LocalApp::open(&path, LocalOptions::default()).unwrap();
    other.app.deactivate(ID).await.unwrap();

    tokio::time::sleep(META_FRESH_FOR + std::time::Duration::from_millis(100)).await;
    assert_refused(deliver(app, &token, "o-2").await, "deactivated elsewhere");
}
