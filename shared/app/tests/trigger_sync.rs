//! Activation records whether its trigger sync worked: a failed sync leaves the workflow active
//! with `triggerError` set (and answers a retryable error saying so) instead of silently
//! "active with no rule"; the next reconcile (the sweep on AWS) repairs it and clears the error.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use serde_json::json;
use wf_app::app::workflows::PublishMode;
use wf_app::app::{ErrorKind, TriggerSync};
use wf_app::local::{LocalApp, LocalOptions};
use wf_core::engine::CompiledWorkflow;
use wf_core::model::Workflow;
use wf_core::{StoreError, StoreResult};

/// A trigger infrastructure that is down for its first `failures` calls.
struct Flaky {
    failures: usize,
    calls: AtomicUsize,
    synced: AtomicUsize,
}

#[async_trait]
impl TriggerSync for Flaky {
    async fn sync(&self, _: &str, _: Option<Arc<CompiledWorkflow>>) -> StoreResult<()> {
        if self.calls.fetch_add(1, Ordering::SeqCst) < self.failures {
            return Err(StoreError::Unavailable("EventBridge throttled".into()));
        }
        self.synced.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

#[tokio::test]
async fn a_failed_trigger_sync_is_recorded_and_repaired_by_the_reconcile() {
    let dir = tempfile::tempdir().unwrap();
    let flaky = Arc::new(Flaky {
        failures: 1,
        calls: AtomicUsize::new(0),
        synced: AtomicUsize::new(0),
    });
    let sync = flaky.clone();
    let local = LocalApp::open_with(
        &dir.path().join("wf.db"),
        LocalOptions::default(),
        move |_| sync as Arc<dyn TriggerSync>,
    )
    .unwrap();
    let app = &local.app;
    let wf: Workflow = serde_json::from_value(json!({
        "id": "nightly", "steps": [
            { "id": "start", "type": "start", "triggers": [{ "type": "schedule", "cron": "0 9 * * *" }] }
        ]
    }))
    .unwrap();
    app.publish(&wf, PublishMode::IfChanged).await.unwrap();

    let err = app.activate("nightly", None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Retryable);
    assert_eq!(err.code(), "trigger_sync");
    assert!(err.message().contains("EventBridge throttled"), "{err}");
    let meta = app.workflow("nightly").await.unwrap().meta;
    assert!(meta.active, "the activation itself is kept");
    assert_eq!(
        meta.trigger_error.as_deref(),
        Some("unavailable (retryable): EventBridge throttled")
    );

    // The sweep's reconcile puts the trigger in place and clears the error.
    app.reconcile_triggers().await.unwrap();
    assert_eq!(flaky.synced.load(Ordering::SeqCst), 1);
    let meta = app.workflow("nightly").await.unwrap().meta;
    assert_eq!(meta.trigger_error, None);
    assert!(meta.active);
}
