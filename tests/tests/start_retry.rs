//! A start whose task send failed after its execution was created (the process died between
//! the two writes, or the send failed; the send is of the first step that is not pure, as the
//! pure start runs in the start use case, which creates the execution `running` with the task
//! it hands on): the client's retry with the same idempotency key is answered with the first
//! execution (`duplicate`) and sends that task again, so the execution runs at once instead of
//! at the sweep a minute later (found by `scripts/kill-under-load`, SIGKILL of `wf dev` under
//! webhook load); without a retry, the sweep sends it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use wf_app::App;
use wf_app::actions::{BuiltinActions, OutboundPolicy};
use wf_app::app::executions::StartRequest;
use wf_app::app::maintenance::SweepSettings;
use wf_app::app::workflows::PublishMode;
use wf_app::llm::{LlmConfig, OpenAiCompatible};
use wf_app::runner::{PoolSettings, WorkerPool};
use wf_app::services::{EnvSecrets, Services};
use wf_core::execution::{ExecutionRecord, ExecutionStatus, HandedOff, StepTask, TriggerInfo};
use wf_core::model::Workflow;
use wf_core::ports::{Clock, Delivery, ExecutionStore, RecordStore, SystemClock, TaskQueue};
use wf_core::{StoreError, StoreResult};
use wf_local::{QueueConfig, SqliteStore};

/// Fails the next send while `fail_next` is set (the send never reaches the queue).
struct FailOnce {
    inner: Arc<dyn TaskQueue>,
    fail_next: AtomicBool,
}

#[async_trait]
impl TaskQueue for FailOnce {
    async fn send(&self, tasks: &[(StepTask, u64)]) -> StoreResult<()> {
        if self.fail_next.swap(false, Ordering::SeqCst) {
            return Err(StoreError::Unavailable("injected send failure".into()));
        }
        self.inner.send(tasks).await
    }
    async fn receive(&self, max: usize, wait: Duration) -> StoreResult<Vec<Delivery>> {
        self.inner.receive(max, wait).await
    }
    async fn ack(&self, receipt: &str) -> StoreResult<()> {
        self.inner.ack(receipt).await
    }
}

/// An engine as `wf dev` has it (the pure start runs in the start use case) whose next send
/// fails, with workers running, and the workflow `retried` (start -> save -> out).
struct Engine {
    _dir: tempfile::TempDir,
    store: Arc<SqliteStore>,
    app: Arc<App>,
    pool: WorkerPool,
    compiled: Arc<wf_core::engine::CompiledWorkflow>,
}

async fn engine() -> Engine {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path().join("t.db")).unwrap());
    let queue = Arc::new(FailOnce {
        inner: Arc::new(store.queue(QueueConfig {
            visibility_timeout: Duration::from_secs(30),
        })),
        fail_next: AtomicBool::new(true),
    });
    let bus = Arc::new(store.event_bus());
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let records: Arc<dyn RecordStore> = store.clone();
    let actions = BuiltinActions::with_policy(
        records.clone(),
        bus.clone(),
        clock.clone(),
        OutboundPolicy::local(),
    )
    .unwrap();
    let executions: Arc<dyn ExecutionStore> = store.clone();
    let app = Arc::new(App::new(Services {
        executions,
        definitions: store.clone(),
        records,
        queue: queue.clone(),
        bus,
        actions: Arc::new(actions),
        llm: Arc::new(
            OpenAiCompatible::new(LlmConfig::new("http://127.0.0.1:9/v1", None)).unwrap(),
        ),
        clock,
        secrets: Arc::new(EnvSecrets),
    }));
    // As `wf dev`: the pure start runs in the start, so the send that fails is of `save`.
    app.enable_pure_start();
    let wf: Workflow = serde_json::from_value(json!({
        "id": "retried",
        "steps": [
            { "id": "start", "type": "start", "triggers": [ { "type": "manual" } ], "next": "save" },
            { "id": "save", "type": "action", "action": "record.create",
              "params": { "collection": "retried", "id": "n-{{ input.n }}", "data": { "n": "{{ input.n }}" } },
              "next": "out" },
            { "id": "out", "type": "output", "output": { "n": "{{ input.n }}" } }
        ]
    }))
    .unwrap();
    let version = app.publish(&wf, PublishMode::Always).await.unwrap().version;
    let compiled = app.definition("retried", version).await.unwrap();
    let pool = WorkerPool::start(app.clone(), queue.clone(), PoolSettings::default());
    Engine {
        _dir: dir,
        store,
        app,
        pool,
        compiled,
    }
}

fn request() -> StartRequest {
    StartRequest {
        dedupe_key: Some("key-1".into()),
        ..StartRequest::new(json!({ "n": 1 }), TriggerInfo::new("webhook"))
    }
}

/// The first delivery: the execution is created (running, with its start step's record and
/// the task it hands on), the task of its first step that is not pure is not sent.
async fn start_whose_send_fails(e: &Engine) -> ExecutionRecord {
    let first = e.app.start(&e.compiled, request()).await;
    assert!(first.is_err(), "the injected send failure is reported");
    let ids = e
        .store
        .list_executions(&Default::default())
        .await
        .unwrap()
        .items;
    assert_eq!(ids.len(), 1, "the execution was created before the send");
    let created = ids[0].clone();
    assert_eq!(
        created.status,
        ExecutionStatus::Running,
        "its start step ran"
    );
    assert_eq!(
        created.handoff,
        vec![HandedOff {
            path: "save".into(),
            attempt: 1,
            delay_ms: 0
        }]
    );
    let steps = e.store.list_steps(&created.id).await.unwrap();
    assert_eq!(steps.len(), 1, "{steps:?}");
    created
}

async fn finishes_at_once(e: &Engine, id: &str) {
    let done = e
        .app
        .wait_finished(id, Some(Duration::from_secs(10)))
        .await
        .unwrap()
        .expect("finished within 10 s");
    assert_eq!(
        done.execution.status,
        ExecutionStatus::Succeeded,
        "{done:?}"
    );
    assert_eq!(done.execution.output, json!({ "n": 1 }));
    let saved = RecordStore::get(&*e.store, "retried", "n-1").await.unwrap();
    assert!(saved.is_some(), "the step that was handed on ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_start_whose_first_send_failed_runs_at_once() {
    let e = engine().await;
    let created = start_whose_send_fails(&e).await;
    // The client's retry: the same execution, and it runs now (no sweeper in this test).
    let again = e.app.start(&e.compiled, request()).await.unwrap();
    assert!(again.duplicate);
    assert_eq!(again.execution_id, created.id);
    finishes_at_once(&e, &again.execution_id).await;
    e.pool.shutdown().await;
}

/// Without a retry of the client, the sweep sends the task the start handed on again once it
/// is overdue, and only then; a sweep after the step ran sends nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_sends_a_handed_on_task_that_never_reached_a_worker() {
    let e = engine().await;
    let created = start_whose_send_fails(&e).await;
    let patient = SweepSettings {
        requeue_after: Duration::from_secs(600),
        ..SweepSettings::default()
    };
    let report = e.app.sweep(&patient).await.unwrap();
    assert_eq!(report.requeued, 0, "not overdue yet: {report:?}");
    let eager = SweepSettings {
        requeue_after: Duration::ZERO,
        ..SweepSettings::default()
    };
    let report = e.app.sweep(&eager).await.unwrap();
    assert_eq!(report.requeued, 1, "{report:?}");
    finishes_at_once(&e, &created.id).await;
    let report = e.app.sweep(&eager).await.unwrap();
    assert_eq!(report.requeued, 0, "finished: nothing to send: {report:?}");
    e.pool.shutdown().await;
}
