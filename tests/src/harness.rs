//! An engine on a real backend with wiremock peers, and queue wrappers that misbehave the way
//! SQS may: deliver twice, lose an acknowledgement, fail a send. The backend is a SQLite file
//! (`Backend::Local`) or DynamoDB + SQS + EventBridge on a moto_server of the engine's own
//! (`Backend::Aws`), driven by the same worker loops: receive, handle, acknowledge (SQS
//! DeleteMessage) only on success.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use wf_app::App;
use wf_app::actions::{BuiltinActions, OutboundPolicy};
use wf_app::app::executions::StartRequest;
use wf_app::app::workflows::PublishMode;
use wf_app::llm::{LlmConfig, OpenAiCompatible};
use wf_app::runner::{PoolSettings, WorkerPool};
use wf_app::services::{EnvSecrets, Services};
use wf_app::settings::EngineSettings;
use wf_aws::{DynamoStore, EventBridgeBus, SqsQueue};
use wf_core::execution::StepKey;
use wf_core::execution::*;
use wf_core::model::Workflow;
use wf_core::ports::*;
use wf_core::rejection::{EventRejection, RejectionPage};
use wf_core::{StoreError, StoreResult};
use wf_local::{QueueConfig, SqliteStore};

use crate::moto::{Moto, unique_prefix};

/// Where the engine keeps its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite file + SQLite queue + local bus.
    Local,
    /// DynamoDB + SQS + EventBridge on moto_server.
    Aws,
}

/// What a backend provides: the stores, the queue, the bus, and what must outlive the engine.
type BackendParts = (
    Arc<dyn EngineStore>,
    Arc<dyn TaskQueue>,
    Arc<dyn EventBus>,
    Option<tempfile::TempDir>,
    Option<Moto>,
);

/// Every store port at once (both backends implement all three on one value).
pub trait EngineStore: ExecutionStore + DefinitionStore + RecordStore {}
impl<T: ExecutionStore + DefinitionStore + RecordStore + ?Sized> EngineStore for T {}

/// How the queue misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueMode {
    Clean,
    /// Clean, with a short visibility timeout: an unacknowledged task comes back within a
    /// second (tests of redelivery itself).
    Redeliver,
    /// Every task is sent twice.
    DeliverTwice,
    /// The first acknowledgement of every message is lost (the step ran; the task comes back).
    DropFirstAck,
    /// Every third send fails once (the worker dies between its writes and its sends).
    FailSomeSends,
}

/// A queue wrapper implementing the misbehaviour.
pub struct FaultyQueue {
    inner: Arc<dyn TaskQueue>,
    mode: QueueMode,
    acked: Mutex<HashMap<String, u32>>,
    sends: AtomicUsize,
}

#[async_trait]
impl TaskQueue for FaultyQueue {
    async fn send(&self, tasks: &[(StepTask, u64)]) -> StoreResult<()> {
        match self.mode {
            QueueMode::DeliverTwice => {
                let doubled: Vec<_> = tasks.iter().flat_map(|t| [t.clone(), t.clone()]).collect();
                self.inner.send(&doubled).await
            }
            QueueMode::FailSomeSends => {
                let n = self.sends.fetch_add(1, Ordering::SeqCst);
                if n % 3 == 2 {
                    return Err(StoreError::Unavailable("injected send failure".into()));
                }
                self.inner.send(tasks).await
            }
            _ => self.inner.send(tasks).await,
        }
    }

    async fn receive(&self, max: usize, wait: Duration) -> StoreResult<Vec<Delivery>> {
        self.inner.receive(max, wait).await
    }

    async fn ack(&self, receipt: &str) -> StoreResult<()> {
        if self.mode == QueueMode::DropFirstAck {
            let id = receipt.split(':').next().unwrap_or(receipt).to_string();
            let mut acked = self.acked.lock().unwrap();
            let n = acked.entry(id).or_insert(0);
            *n += 1;
            if *n == 1 {
                return Ok(()); // lost: the message reappears after the visibility timeout
            }
        }
        self.inner.ack(receipt).await
    }
}

/// Counts applied terminal step writes per path (a step output must be written once), step
/// record reads per path, loop counter reads per loop (what a run costs in reads) and calls
/// that count iterations per loop (batches, whatever their size).
pub struct CountingStore {
    inner: Arc<dyn ExecutionStore>,
    pub terminal_writes: Mutex<HashMap<String, u32>>,
    pub step_reads: Mutex<HashMap<String, u32>>,
    pub loop_reads: Mutex<HashMap<String, u32>>,
    pub count_calls: Mutex<HashMap<String, u32>>,
}

fn count(map: &Mutex<HashMap<String, u32>>, key: &str) {
    *map.lock().unwrap().entry(key.to_string()).or_insert(0) += 1;
}

#[async_trait]
impl ExecutionStore for CountingStore {
    async fn create_execution(
        &self, e: &ExecutionRecord, d: Option<&DedupeKey>,
    ) -> StoreResult<CreateOutcome> {
        self.inner.create_execution(e, d).await
    }
    async fn get_execution(&self, id: &str) -> StoreResult<Option<ExecutionRecord>> {
        self.inner.get_execution(id).await
    }
    async fn update_execution(&self, id: &str, u: &ExecutionUpdate) -> StoreResult<bool> {
        self.inner.update_execution(id, u).await
    }
    async fn list_executions(&self, q: &ExecutionQuery) -> StoreResult<ExecutionPage> {
        self.inner.list_executions(q).await
    }
    async fn delete_execution(&self, id: &str) -> StoreResult<()> {
        self.inner.delete_execution(id).await
    }
    async fn get_step(&self, e: &str, p: &str) -> StoreResult<Option<StepRecord>> {
        count(&self.step_reads, p);
        self.inner.get_step(e, p).await
    }
    async fn list_steps(&self, e: &str) -> StoreResult<Vec<StepRecord>> {
        self.inner.list_steps(e).await
    }
    async fn list_step_keys(&self, e: &str) -> StoreResult<Vec<StepKey>> {
        self.inner.list_step_keys(e).await
    }
    async fn get_steps(&self, e: &str, paths: &[String]) -> StoreResult<Vec<StepRecord>> {
        self.inner.get_steps(e, paths).await
    }
    async fn claim_step(&self, e: &str, r: &StepRecord, now: i64) -> StoreResult<ClaimOutcome> {
        self.inner.claim_step(e, r, now).await
    }
    async fn finish_step(&self, e: &str, r: &StepRecord) -> StoreResult<bool> {
        let applied = self.inner.finish_step(e, r).await?;
        if applied && r.status.is_terminal() {
            *self
                .terminal_writes
                .lock()
                .unwrap()
                .entry(r.path.clone())
                .or_insert(0) += 1;
        }
        Ok(applied)
    }
    async fn renew_lease(&self, e: &str, r: &StepRecord, until: i64) -> StoreResult<bool> {
        self.inner.renew_lease(e, r, until).await
    }
    async fn init_loop(
        &self, e: &str, p: &str, s: &LoopState, items: &[Value],
    ) -> StoreResult<LoopState> {
        self.inner.init_loop(e, p, s, items).await
    }
    async fn loop_item(&self, e: &str, p: &str, i: u32) -> StoreResult<Option<Value>> {
        self.inner.loop_item(e, p, i).await
    }
    async fn get_loop(&self, e: &str, p: &str) -> StoreResult<Option<LoopState>> {
        count(&self.loop_reads, p);
        self.inner.get_loop(e, p).await
    }
    async fn fail_loop(&self, e: &str, p: &str) -> StoreResult<()> {
        self.inner.fail_loop(e, p).await
    }
    async fn count_iterations(
        &self, e: &str, p: &str, batch: &[(u32, Value)],
    ) -> StoreResult<IterationCount> {
        count(&self.count_calls, p);
        self.inner.count_iterations(e, p, batch).await
    }
    async fn list_iterations(&self, e: &str, p: &str) -> StoreResult<Vec<(u32, Value)>> {
        self.inner.list_iterations(e, p).await
    }
    async fn get_mark(&self, name: &str) -> StoreResult<Value> {
        self.inner.get_mark(name).await
    }
    async fn put_mark(&self, name: &str, value: &Value) -> StoreResult<()> {
        self.inner.put_mark(name, value).await
    }
    async fn record_rejection(&self, r: &EventRejection) -> StoreResult<()> {
        self.inner.record_rejection(r).await
    }
    async fn list_rejections(
        &self, w: &str, limit: usize, cursor: Option<&str>,
    ) -> StoreResult<RejectionPage> {
        self.inner.list_rejections(w, limit, cursor).await
    }
}

/// A test engine: a backend (SQLite file in a temp dir, or tables and a queue on a moto_server
/// of its own), real built-in actions (local outbound policy, so wiremock on loopback is
/// reachable), the LLM provider pointed at `llm_base_url`.
pub struct TestEngine {
    pub backend: Backend,
    pub store: Arc<dyn EngineStore>,
    pub counting: Arc<CountingStore>,
    pub app: Arc<App>,
    pub queue: Arc<FaultyQueue>,
    pool: Option<WorkerPool>,
    /// Kept alive for the engine's life (the SQLite file's directory, the moto_server).
    _dir: Option<tempfile::TempDir>,
    _moto: Option<Moto>,
}

impl TestEngine {
    /// A local engine.
    pub async fn new(mode: QueueMode, llm_base_url: &str) -> Self {
        Self::on(Backend::Local, mode, llm_base_url).await
    }

    /// An engine on `backend`.
    pub async fn on(backend: Backend, mode: QueueMode, llm_base_url: &str) -> Self {
        Self::with_settings(backend, mode, llm_base_url, EngineSettings::default()).await
    }

    /// An engine on `backend` with the deployment settings `settings` (a short lease, ...).
    pub async fn with_settings(
        backend: Backend, mode: QueueMode, llm_base_url: &str, settings: EngineSettings,
    ) -> Self {
        // Redelivery modes need a short visibility timeout (SQS counts it in whole seconds).
        let short = !matches!(mode, QueueMode::Clean | QueueMode::DeliverTwice);
        let (store, inner, bus, dir, moto): BackendParts = match backend {
            Backend::Local => {
                let dir = tempfile::tempdir().unwrap();
                let db: PathBuf = dir.path().join("test.db");
                let store = Arc::new(SqliteStore::open(&db).unwrap());
                let visibility = if short {
                    Duration::from_millis(300)
                } else {
                    Duration::from_secs(30)
                };
                let queue = Arc::new(store.queue(QueueConfig {
                    visibility_timeout: visibility,
                }));
                let bus = Arc::new(store.event_bus());
                (store, queue, bus, Some(dir), None)
            }
            Backend::Aws => {
                let moto = Moto::start();
                let visibility = if short {
                    Duration::from_secs(1)
                } else {
                    Duration::from_secs(30)
                };
                let config = moto.provision(&unique_prefix("engine"), visibility).await;
                let clients = moto.clients(None).await;
                let store = Arc::new(DynamoStore::new(clients.dynamodb.clone(), &config));
                let queue = Arc::new(SqsQueue::new(clients.sqs.clone(), &config.queue_url));
                let bus = Arc::new(EventBridgeBus::new(
                    clients.eventbridge.clone(),
                    &config.event_bus,
                ));
                (store, queue, bus, None, Some(moto))
            }
        };
        let queue = Arc::new(FaultyQueue {
            inner,
            mode,
            acked: Mutex::new(HashMap::new()),
            sends: AtomicUsize::new(0),
        });
        let executions: Arc<dyn ExecutionStore> = store.clone();
        let counting = Arc::new(CountingStore {
            inner: executions,
            terminal_writes: Mutex::new(HashMap::new()),
            step_reads: Mutex::new(HashMap::new()),
            loop_reads: Mutex::new(HashMap::new()),
            count_calls: Mutex::new(HashMap::new()),
        });
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let records: Arc<dyn RecordStore> = store.clone();
        let actions = BuiltinActions::with_policy(
            records.clone(),
            bus.clone(),
            clock.clone(),
            OutboundPolicy::local(),
        )
        .unwrap();
        let llm = OpenAiCompatible::new(LlmConfig::new(llm_base_url, None)).unwrap();
        let svc = Services {
            executions: counting.clone(),
            definitions: store.clone(),
            records,
            queue: queue.clone(),
            bus,
            actions: Arc::new(actions),
            llm: Arc::new(llm),
            clock,
            secrets: Arc::new(EnvSecrets),
        };
        let app = Arc::new(App::new(svc).with_settings(settings));
        // As `wf dev` and the webhook function: pure starts run in the start (app/staged.rs).
        app.enable_pure_start();
        let pool = WorkerPool::start(app.clone(), queue.clone(), PoolSettings::default());
        Self {
            backend,
            store,
            counting,
            app,
            queue,
            pool: Some(pool),
            _dir: dir,
            _moto: moto,
        }
    }

    /// How long to let redelivered duplicates arrive and be handled before counting effects:
    /// past the queue's short visibility timeout (300 ms locally, 1 s on SQS).
    pub fn settle_time(&self) -> Duration {
        match self.backend {
            Backend::Local => Duration::from_millis(800),
            Backend::Aws => Duration::from_millis(2_500),
        }
    }

    /// Publish a workflow from JSON (it must be valid) and run it with `input` to the end.
    pub async fn run(&self, workflow: Value, input: Value) -> ExecutionView {
        let wf: Workflow = serde_json::from_value(workflow).expect("workflow JSON");
        let report = wf_core::validate::validate_workflow(&wf);
        assert!(report.is_empty(), "test workflow is invalid: {report:#?}");
        let published = self.app.publish(&wf, PublishMode::Always).await.unwrap();
        let compiled = self
            .app
            .definition(&wf.id, published.version)
            .await
            .unwrap();
        let started = self
            .app
            .start(
                &compiled,
                StartRequest::new(input, TriggerInfo::new("manual")),
            )
            .await
            .unwrap();
        self.wait(&started.execution_id).await
    }

    /// Wait until the execution is terminal: up to 30 s locally, 90 s on moto_server (an
    /// emulator in Python on a shared 2-core machine).
    pub async fn wait(&self, id: &str) -> ExecutionView {
        let secs = match self.backend {
            Backend::Local => 30,
            Backend::Aws => 90,
        };
        match self
            .app
            .wait_finished(id, Some(Duration::from_secs(secs)))
            .await
        {
            Ok(Some(view)) => self.app.with_all_steps(view).await.expect("every step"),
            Ok(None) => panic!("execution {id} did not finish within {secs} s"),
            Err(e) => panic!("execution {id}: {e}"),
        }
    }

    /// Kill the worker loops as a crash would (tasks in flight dropped mid-step, not
    /// acknowledged, their leases no longer renewed), then start fresh ones on the same
    /// backend: the "restarted process".
    pub fn crash_and_restart_workers(&mut self) {
        if let Some(p) = self.pool.take() {
            p.kill();
        }
        self.pool = Some(WorkerPool::start(
            self.app.clone(),
            self.queue.clone(),
            PoolSettings::default(),
        ));
    }

    /// Stop the worker loops (the backend stays up until the engine is dropped).
    pub async fn stop_workers(&mut self) {
        if let Some(p) = self.pool.take() {
            p.shutdown().await;
        }
    }

    pub async fn shutdown(mut self) {
        self.stop_workers().await;
    }
}

/// The parts of an execution that must not depend on timing or delivery: status, output,
/// error code, and per step path, status, attempts, input, output, error code.
/// Steps are compared by path: concurrent loop iterations start in any order.
pub fn essence(view: &ExecutionView) -> Value {
    let mut by_path: Vec<&StepRecord> = view.steps.iter().collect();
    by_path.sort_by(|a, b| wf_core::path::compare_paths(&a.path, &b.path));
    let steps: Vec<Value> = by_path
        .into_iter()
        .map(|s| {
            serde_json::json!({
                "path": s.path, "type": s.step_type, "status": s.status, "attempts": s.attempts,
                "input": s.input, "output": without_date_headers(&s.output), "error": s.error.as_ref().map(|e| e.code.clone()),
            })
        })
        .collect();
    serde_json::json!({
        "status": view.execution.status,
        "output": view.execution.output,
        "error": view.execution.error.as_ref().map(|e| e.code.clone()),
        "steps": steps,
    })
}

/// The status record of a step by path.
pub fn step<'a>(view: &'a ExecutionView, path: &str) -> &'a StepRecord {
    view.steps
        .iter()
        .find(|s| s.path == path)
        .unwrap_or_else(|| {
            panic!(
                "no step {path} in {:#?}",
                view.steps.iter().map(|s| &s.path).collect::<Vec<_>>()
            )
        })
}

/// HTTP outputs carry the server's `date` header, which differs between runs by wall clock.
fn without_date_headers(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(h) = v.get_mut("headers").and_then(Value::as_object_mut) {
        h.remove("date");
    }
    v
}
