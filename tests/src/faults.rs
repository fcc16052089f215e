//! Fault injection at the checkpoints of the step protocol (ARCHITECTURE.md, "How a step
//! runs"): a [`FaultStore`] around an `ExecutionStore` and a [`FaultQueue`] around a
//! `TaskQueue`, sharing one [`Faults`] table that arms at most one fault per execution:
//! (checkpoint, kind, nth occurrence of that checkpoint in that execution). The fault fires
//! once, at the nth call, then the store and queue behave normally again.
//!
//! Kinds:
//! - [`FaultKind::Crash`]: the write is applied, then the call returns an error. `run_task`
//!   returns `Err`, so the task is not acknowledged and everything the worker held in memory
//!   for it is dropped; the queue delivers it again after the visibility timeout. (A real crash
//!   would also drop the process's other tasks; here only the faulted task dies, the other
//!   tasks of the worker pool go on, which is what another worker process would do.)
//! - [`FaultKind::Transient`]: the call returns `StoreError::Unavailable` without applying.
//!
//! Checkpoints (each is the wrapper around one port call):
//! - [`Checkpoint::AfterClaim`]: `ExecutionStore::claim_step` (for a pure step that call is the
//!   put-if-absent of its final record).
//! - [`Checkpoint::BeforeFinish`]: `ExecutionStore::finish_step`, i.e. after the side effect
//!   ran (also the loop step's "waiting" write and the loop's final write).
//! - [`Checkpoint::AfterFinishBeforeEnqueue`]: `TaskQueue::send` of the follow-up tasks, after
//!   the finished record was stored.
//! - [`Checkpoint::IterationMarker`]: `ExecutionStore::count_iterations` (a worker writes the
//!   counts of a slot's inline iterations together; a batch is traced by its lowest index).
//!   What "between the iteration marker and its decrement" can mean at this wrapper, per store:
//!   - SQLite: the `ITER#` markers and the decrement are one transaction, so there is no state
//!     between them to crash in; `Crash` is "the transaction committed, the worker died before
//!     doing anything with the count", `Transient` is "the transaction did not happen".
//!   - DynamoDB: the adapter writes the results to `ITER#` pages, then does one conditional
//!     UpdateItem on the loop counter holding both the `counted` marker set and `remaining`
//!     (so "marker" and "decrement" are themselves one atomic single-item write; the only
//!     in-between state is "results stored, counter not updated"). The store wrapper cannot
//!     reach between the adapter's writes, so on DynamoDB `Crash` goes through an SDK
//!     interceptor ([`CounterUpdateFault`], installed by [`FaultEngine`] on the AWS clients):
//!     the pages are written, the counter's UpdateItem for that (execution, loop, lowest
//!     index) fails before it is sent, and `count_iterations` returns the error: the worker
//!     died between the writes. [`Faults::split_iteration`] tells whether that happened (if
//!     the SDK ever answered without the update failing, the cell must fail, not pass as a
//!     crash after both writes). `Transient` is "neither applied" (the wrapper).
//! - [`Checkpoint::BeforeAck`]: `TaskQueue::ack`, after `run_task` returned `Ok`.
//!
//! Every call at a checkpoint of a watched execution is recorded in its trace (checkpoint and
//! step path), so a clean run tells how many occurrences of each checkpoint an execution has.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::config::{Intercept, SharedInterceptor};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
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

use crate::harness::{Backend, EngineStore};
use crate::moto::{Moto, unique_prefix};

/// Where in the protocol a fault is injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Checkpoint {
    AfterClaim,
    BeforeFinish,
    AfterFinishBeforeEnqueue,
    IterationMarker,
    BeforeAck,
}

impl Checkpoint {
    pub const ALL: [Checkpoint; 5] = [
        Checkpoint::AfterClaim,
        Checkpoint::BeforeFinish,
        Checkpoint::AfterFinishBeforeEnqueue,
        Checkpoint::IterationMarker,
        Checkpoint::BeforeAck,
    ];

    /// A short column label.
    pub fn label(self) -> &'static str {
        match self {
            Checkpoint::AfterClaim => "claim",
            Checkpoint::BeforeFinish => "finish",
            Checkpoint::AfterFinishBeforeEnqueue => "enqueue",
            Checkpoint::IterationMarker => "iter",
            Checkpoint::BeforeAck => "ack",
        }
    }
}

/// What the fault does at its checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaultKind {
    /// The write is applied, then the call fails (the worker dies before going on).
    Crash,
    /// The call fails with a retryable error, nothing applied.
    Transient,
}

impl FaultKind {
    pub const ALL: [FaultKind; 2] = [FaultKind::Crash, FaultKind::Transient];

    pub fn label(self) -> &'static str {
        match self {
            FaultKind::Crash => "crash",
            FaultKind::Transient => "trans",
        }
    }
}

/// One fault: at the `nth` (1-based) call of `checkpoint` in an execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    pub checkpoint: Checkpoint,
    pub kind: FaultKind,
    pub nth: usize,
}

#[derive(Debug, Default)]
struct Watched {
    fault: Option<Fault>,
    fired: bool,
    trace: Vec<(Checkpoint, String)>,
}

/// The armed faults and the traces of the watched executions.
#[derive(Debug, Default)]
pub struct Faults {
    watched: Mutex<HashMap<String, Watched>>,
    /// Receipt → (execution id, path) of received deliveries (an ack only carries a receipt).
    receipts: Mutex<HashMap<String, (String, String)>>,
    /// DynamoDB: an iteration-count crash fails the counter's UpdateItem (after the `ITER#`
    /// put) instead of crashing after the whole call.
    split_iteration_writes: AtomicBool,
    /// `<executionId>|<counter sk>|<index>` whose next counter UpdateItem must fail.
    pending_counter_failures: Mutex<HashSet<String>>,
    /// Executions whose counter update did fail so.
    split: Mutex<HashSet<String>>,
}

impl Faults {
    /// Trace `execution_id`'s checkpoint calls from now on and arm `fault` (None: only trace).
    pub fn watch(&self, execution_id: &str, fault: Option<Fault>) {
        self.watched.lock().unwrap().insert(
            execution_id.to_string(),
            Watched {
                fault,
                ..Watched::default()
            },
        );
    }

    /// Whether the fault armed for `execution_id` fired.
    pub fn fired(&self, execution_id: &str) -> bool {
        self.watched
            .lock()
            .unwrap()
            .get(execution_id)
            .is_some_and(|w| w.fired)
    }

    /// Whether `execution_id`'s iteration-count crash happened between the DynamoDB adapter's
    /// `ITER#` put and its counter update (see the module doc).
    pub fn split_iteration(&self, execution_id: &str) -> bool {
        self.split.lock().unwrap().contains(execution_id)
    }

    /// The checkpoint calls of `execution_id` so far, in order.
    pub fn trace(&self, execution_id: &str) -> Vec<(Checkpoint, String)> {
        self.watched
            .lock()
            .unwrap()
            .get(execution_id)
            .map(|w| w.trace.clone())
            .unwrap_or_default()
    }

    /// Record a call at `checkpoint`; the fault's kind when this call is the one to fail.
    fn hit(&self, execution_id: &str, checkpoint: Checkpoint, path: &str) -> Option<FaultKind> {
        let mut watched = self.watched.lock().unwrap();
        let w = watched.get_mut(execution_id)?;
        w.trace.push((checkpoint, path.to_string()));
        let fault = w.fault?;
        if w.fired || fault.checkpoint != checkpoint {
            return None;
        }
        let seen = w.trace.iter().filter(|(c, _)| *c == checkpoint).count();
        if seen == fault.nth {
            w.fired = true;
            Some(fault.kind)
        } else {
            None
        }
    }
}

fn injected(kind: FaultKind, checkpoint: Checkpoint) -> StoreError {
    StoreError::Unavailable(format!(
        "injected {} at {checkpoint:?}",
        match kind {
            FaultKind::Crash => "crash",
            FaultKind::Transient => "transient error",
        }
    ))
}

/// An `ExecutionStore` that fails as armed in its [`Faults`] at claim, finish and count.
pub struct FaultStore {
    inner: Arc<dyn ExecutionStore>,
    faults: Arc<Faults>,
}

impl FaultStore {
    pub fn new(inner: Arc<dyn ExecutionStore>, faults: Arc<Faults>) -> Self {
        Self { inner, faults }
    }
}

#[async_trait]
impl ExecutionStore for FaultStore {
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
        let cp = Checkpoint::AfterClaim;
        match self.faults.hit(e, cp, &r.path) {
            None => self.inner.claim_step(e, r, now).await,
            Some(FaultKind::Transient) => Err(injected(FaultKind::Transient, cp)),
            Some(FaultKind::Crash) => {
                self.inner.claim_step(e, r, now).await?;
                Err(injected(FaultKind::Crash, cp))
            }
        }
    }
    async fn finish_step(&self, e: &str, r: &StepRecord) -> StoreResult<bool> {
        let cp = Checkpoint::BeforeFinish;
        match self.faults.hit(e, cp, &r.path) {
            None => self.inner.finish_step(e, r).await,
            Some(FaultKind::Transient) => Err(injected(FaultKind::Transient, cp)),
            Some(FaultKind::Crash) => {
                self.inner.finish_step(e, r).await?;
                Err(injected(FaultKind::Crash, cp))
            }
        }
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
        self.inner.get_loop(e, p).await
    }
    async fn fail_loop(&self, e: &str, p: &str) -> StoreResult<()> {
        self.inner.fail_loop(e, p).await
    }
    async fn count_iterations(
        &self, e: &str, p: &str, batch: &[(u32, Value)],
    ) -> StoreResult<IterationCount> {
        let cp = Checkpoint::IterationMarker;
        // A batch is known by its lowest index (the one DynamoDB's counter update names
        // `:index`, see `CounterUpdateFault`).
        let first = batch.iter().map(|(i, _)| *i).min().unwrap_or_default();
        match self.faults.hit(e, cp, &format!("{p}[{first}]")) {
            None => self.inner.count_iterations(e, p, batch).await,
            Some(FaultKind::Transient) => Err(injected(FaultKind::Transient, cp)),
            Some(FaultKind::Crash) if self.faults.split_iteration_writes.load(Ordering::SeqCst) => {
                let key = counter_key(e, &wf_core::keys::loop_sk(p), &first.to_string());
                self.faults
                    .pending_counter_failures
                    .lock()
                    .unwrap()
                    .insert(key.clone());
                let result = self.inner.count_iterations(e, p, batch).await;
                // Not consumed: the update was never attempted (it stays unmarked as split).
                self.faults
                    .pending_counter_failures
                    .lock()
                    .unwrap()
                    .remove(&key);
                result?;
                Err(injected(FaultKind::Crash, cp))
            }
            Some(FaultKind::Crash) => {
                self.inner.count_iterations(e, p, batch).await?;
                Err(injected(FaultKind::Crash, cp))
            }
        }
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

fn counter_key(execution_id: &str, sk: &str, index: &str) -> String {
    format!("{execution_id}|{sk}|{index}")
}

/// The DynamoDB half of the iteration-count crash: fails the loop counter's UpdateItem (the
/// `ADD remaining -k, counted {i...}` of `count_iterations`, recognised by its key and
/// `:index`, the batch's lowest index)
/// before it is sent, for the (execution, loop, index) the [`FaultStore`] marked.
#[derive(Debug)]
pub struct CounterUpdateFault(pub Arc<Faults>);

impl Intercept for CounterUpdateFault {
    fn name(&self) -> &'static str {
        "fault-counter-update"
    }

    fn read_before_transmit(
        &self, context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents, _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request();
        if request.headers().get("x-amz-target") != Some("DynamoDB_20120810.UpdateItem") {
            return Ok(());
        }
        let Some(body) = request
            .body()
            .bytes()
            .and_then(|b| serde_json::from_slice::<Value>(b).ok())
        else {
            return Ok(());
        };
        let field = |v: &Value| v.as_str().map(str::to_string);
        let (Some(e), Some(sk), Some(index)) = (
            field(&body["Key"]["executionId"]["S"]),
            field(&body["Key"]["sk"]["S"]),
            field(&body["ExpressionAttributeValues"][":index"]["N"]),
        ) else {
            return Ok(());
        };
        let key = counter_key(&e, &sk, &index);
        if self.0.pending_counter_failures.lock().unwrap().remove(&key) {
            self.0.split.lock().unwrap().insert(e);
            return Err(
                "injected crash between the ITER# pages and the loop counter update".into(),
            );
        }
        Ok(())
    }
}

/// A `TaskQueue` that fails as armed in its [`Faults`] at send and ack.
pub struct FaultQueue {
    inner: Arc<dyn TaskQueue>,
    faults: Arc<Faults>,
}

impl FaultQueue {
    pub fn new(inner: Arc<dyn TaskQueue>, faults: Arc<Faults>) -> Self {
        Self { inner, faults }
    }
}

#[async_trait]
impl TaskQueue for FaultQueue {
    async fn send(&self, tasks: &[(StepTask, u64)]) -> StoreResult<()> {
        let cp = Checkpoint::AfterFinishBeforeEnqueue;
        // One `run_task` sends the tasks of one execution.
        let hit = tasks
            .first()
            .and_then(|(t, _)| self.faults.hit(&t.execution_id, cp, &t.path));
        match hit {
            None => self.inner.send(tasks).await,
            Some(FaultKind::Transient) => Err(injected(FaultKind::Transient, cp)),
            Some(FaultKind::Crash) => {
                self.inner.send(tasks).await?;
                Err(injected(FaultKind::Crash, cp))
            }
        }
    }

    async fn receive(&self, max: usize, wait: Duration) -> StoreResult<Vec<Delivery>> {
        let got = self.inner.receive(max, wait).await?;
        let mut receipts = self.faults.receipts.lock().unwrap();
        for d in &got {
            receipts.insert(
                d.receipt.clone(),
                (d.task.execution_id.clone(), d.task.path.clone()),
            );
        }
        Ok(got)
    }

    async fn ack(&self, receipt: &str) -> StoreResult<()> {
        let cp = Checkpoint::BeforeAck;
        let of = self.faults.receipts.lock().unwrap().get(receipt).cloned();
        let hit = of.and_then(|(e, p)| self.faults.hit(&e, cp, &p));
        match hit {
            None => self.inner.ack(receipt).await,
            Some(FaultKind::Transient) => Err(injected(FaultKind::Transient, cp)),
            Some(FaultKind::Crash) => {
                self.inner.ack(receipt).await?;
                Err(injected(FaultKind::Crash, cp))
            }
        }
    }
}

/// What a backend provides: the stores, the queue, the bus, and what must outlive the engine.
type Parts = (
    Arc<dyn EngineStore>,
    Arc<dyn TaskQueue>,
    Arc<dyn EventBus>,
    Option<tempfile::TempDir>,
    Option<Moto>,
);

/// An engine on a real backend whose execution store and queue are wrapped in
/// [`FaultStore`] / [`FaultQueue`]; its worker loops start and stop on demand, so executions
/// can be started and armed before any worker touches them.
pub struct FaultEngine {
    pub backend: Backend,
    /// The unwrapped store (to look at an execution that did not finish).
    pub store: Arc<dyn EngineStore>,
    pub app: Arc<App>,
    pub faults: Arc<Faults>,
    queue: Arc<FaultQueue>,
    pool: Option<WorkerPool>,
    _dir: Option<tempfile::TempDir>,
    _moto: Option<Moto>,
}

impl FaultEngine {
    /// An engine on `backend` with the short visibility timeout of redelivery tests (300 ms on
    /// SQLite, 1 s on SQS), `settings` (a short lease), and the LLM provider at `llm_base_url`.
    /// The worker loops are not started.
    pub async fn new(backend: Backend, llm_base_url: &str, settings: EngineSettings) -> Self {
        let faults = Arc::new(Faults::default());
        let (store, inner, bus, dir, moto): Parts = match backend {
            Backend::Local => {
                let dir = tempfile::tempdir().unwrap();
                let db: PathBuf = dir.path().join("faults.db");
                let store = Arc::new(SqliteStore::open(&db).unwrap());
                let queue = Arc::new(store.queue(QueueConfig {
                    visibility_timeout: Duration::from_millis(300),
                }));
                let bus = Arc::new(store.event_bus());
                (store, queue, bus, Some(dir), None)
            }
            Backend::Aws => {
                let moto = Moto::start();
                let config = moto
                    .provision(&unique_prefix("faults"), Duration::from_secs(1))
                    .await;
                faults.split_iteration_writes.store(true, Ordering::SeqCst);
                let interceptor = SharedInterceptor::new(CounterUpdateFault(faults.clone()));
                let clients = moto.clients(Some(interceptor)).await;
                let store = Arc::new(DynamoStore::new(clients.dynamodb.clone(), &config));
                let queue = Arc::new(SqsQueue::new(clients.sqs.clone(), &config.queue_url));
                let bus = Arc::new(EventBridgeBus::new(
                    clients.eventbridge.clone(),
                    &config.event_bus,
                ));
                (store, queue, bus, None, Some(moto))
            }
        };
        let queue = Arc::new(FaultQueue::new(inner, faults.clone()));
        let executions: Arc<dyn ExecutionStore> = store.clone();
        let executions = Arc::new(FaultStore::new(executions, faults.clone()));
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
            executions,
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
        Self {
            backend,
            store,
            app,
            faults,
            queue,
            pool: None,
            _dir: dir,
            _moto: moto,
        }
    }

    /// Publish `workflow` (it must be valid).
    pub async fn publish(&self, workflow: Value) -> (String, u32) {
        let wf: Workflow = serde_json::from_value(workflow).expect("workflow JSON");
        let report = wf_core::validate::validate_workflow(&wf);
        assert!(report.is_empty(), "test workflow is invalid: {report:#?}");
        let published = self.app.publish(&wf, PublishMode::Always).await.unwrap();
        (wf.id, published.version)
    }

    /// Start an execution of a published version (its first task is queued) and watch it with
    /// `fault` armed; the fault counts calls from here on.
    pub async fn start(
        &self, workflow_id: &str, version: u32, input: Value, fault: Option<Fault>,
    ) -> String {
        let compiled = self.app.definition(workflow_id, version).await.unwrap();
        let id = self
            .app
            .start(
                &compiled,
                StartRequest::new(input, TriggerInfo::new("manual")),
            )
            .await
            .unwrap()
            .execution_id;
        self.faults.watch(&id, fault);
        id
    }

    /// Start the worker loops (no-op when running).
    pub fn start_workers(&mut self) {
        if self.pool.is_none() {
            self.pool = Some(WorkerPool::start(
                self.app.clone(),
                self.queue.clone(),
                PoolSettings::default(),
            ));
        }
    }

    /// Stop the worker loops after their current batch.
    pub async fn stop_workers(&mut self) {
        if let Some(p) = self.pool.take() {
            p.shutdown().await;
        }
    }

    /// The execution and its steps once terminal, or None if not terminal within `max`.
    pub async fn wait(&self, id: &str, max: Duration) -> Option<ExecutionView> {
        match self.app.wait_finished(id, Some(max)).await {
            Ok(Some(v)) => Some(self.app.with_all_steps(v).await.expect("every step")),
            Ok(None) => None,
            Err(e) => panic!("execution {id}: {e}"),
        }
    }
}
