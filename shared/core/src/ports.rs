//! Ports: the small traits the engine's adapters implement.
//!
//! SQLite + in-process (wf-local) and DynamoDB + SQS + EventBridge (wf-aws) implement the same
//! traits and pass the same conformance tests. All writes are idempotent or conditional: delivery
//! is at-least-once everywhere.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{StepError, StoreResult};
use crate::execution::*;
use crate::model::Workflow;
use crate::rejection::{EventRejection, RejectionPage};

/// Milliseconds since the Unix epoch.
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> i64;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }
}

/// The `META` item of a workflow: activation, the webhook token, the latest version.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowMeta {
    pub id: String,
    /// Whether triggers start the workflow.
    #[serde(default)]
    pub active: bool,
    /// The version triggers start (set by activate; may be older than `latestVersion`).
    #[serde(default)]
    pub active_version: Option<u32>,
    /// The newest published version (0 = never published).
    #[serde(default)]
    pub latest_version: u32,
    /// Secret part of the webhook URL (made at first publish).
    #[serde(default)]
    pub webhook_token: Option<String>,
    /// Signing secrets set through the API (checked besides the trigger's `secretEnv`); several
    /// at once during a rotation. Never shown by the API.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub webhook_secrets: Vec<String>,
    /// Where the definition came from (`file:workflows/x.json`) when not from the API.
    #[serde(default)]
    pub source: Option<String>,
    /// Content hash of the latest published definition (to skip unchanged files).
    #[serde(default)]
    pub content_hash: Option<String>,
    /// Why the workflow's triggers (schedule, event rule) are not in place, when the last sync
    /// failed; cleared when a sync (activation, or the sweep's reconcile) succeeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger_error: Option<String>,
    #[serde(default)]
    pub updated_at: i64,
}

/// The `workflows` table: drafts (may be invalid), immutable versions, META.
#[async_trait]
pub trait DefinitionStore: Send + Sync {
    /// Store the draft (raw JSON: drafts may be invalid). Overwrites.
    async fn put_draft(&self, workflow_id: &str, draft: &Value, now: i64) -> StoreResult<()>;
    async fn get_draft(&self, workflow_id: &str) -> StoreResult<Option<Value>>;
    /// Put version `version` if it does not exist yet (`Conflict` if it does).
    async fn put_version(&self, workflow: &Workflow, version: u32) -> StoreResult<()>;
    async fn get_version(&self, workflow_id: &str, version: u32) -> StoreResult<Option<Workflow>>;
    async fn get_meta(&self, workflow_id: &str) -> StoreResult<Option<WorkflowMeta>>;
    /// Write META. With `expected_updated_at`, only if the stored one has that `updatedAt`
    /// (optimistic concurrency; `Conflict` otherwise); `None` means "must not exist yet".
    async fn put_meta(
        &self, meta: &WorkflowMeta, expected_updated_at: Option<i64>,
    ) -> StoreResult<()>;
    async fn list_metas(&self) -> StoreResult<Vec<WorkflowMeta>>;
    /// Delete the draft, every version and META.
    async fn delete_workflow(&self, workflow_id: &str) -> StoreResult<()>;
}

/// The `executions` table: EXEC, STEP#, LOOP#, ITER# items and dedupe keys.
#[async_trait]
pub trait ExecutionStore: Send + Sync {
    /// Create the execution and, with a dedupe key, the `DEDUPE#` item in one transaction.
    /// A live key answers `Duplicate(first id)` and writes nothing. Creating an id that exists is
    /// `Created` when the stored record is the same execution (a redelivered create) .
    async fn create_execution(
        &self, execution: &ExecutionRecord, dedupe: Option<&DedupeKey>,
    ) -> StoreResult<CreateOutcome>;
    /// Create the execution as `execution` stands (terminal already when its run was pure
    /// from start to end) with the step records that run stored (`steps`, each as
    /// [`Self::claim_step`] would store a pure step's record), in one transaction where the store
    /// has one. `Duplicate` as [`Self::create_execution`]. Where the execution exists already (a
    /// redelivered create), a step stored already is kept, and a terminal status is written only
    /// when every step was written with it (else the stored status stands). The default writes
    /// in the order a worker would: the execution as `queued`, each step, then the terminal
    /// status; a crash between them leaves a queued execution whose start task the caller's retry
    /// or the sweeper's requeue sends again, and whose stored steps replay.
    async fn create_execution_with_steps(
        &self, execution: &ExecutionRecord, dedupe: Option<&DedupeKey>, steps: &[StepRecord],
    ) -> StoreResult<CreateOutcome> {
        create_in_worker_order(self, execution, dedupe, steps).await
    }
    async fn get_execution(&self, id: &str) -> StoreResult<Option<ExecutionRecord>>;
    /// The status of an execution, without reading the rest of its record (its input may be
    /// large; a worker that has the record already asks only whether it moved on).
    async fn get_execution_status(&self, id: &str) -> StoreResult<Option<ExecutionStatus>> {
        Ok(self.get_execution(id).await?.map(|r| r.status))
    }
    /// Apply `update` unless the execution is terminal already. Returns whether it applied.
    async fn update_execution(&self, id: &str, update: &ExecutionUpdate) -> StoreResult<bool>;
    /// Newest first. `started_after` is inclusive, `started_before` exclusive; `limit` 0 means
    /// 50, at most 1000. A cursor that does not decode is `Invalid`.
    async fn list_executions(&self, query: &ExecutionQuery) -> StoreResult<ExecutionPage>;
    /// Delete an execution with all its items (retention).
    async fn delete_execution(&self, id: &str) -> StoreResult<()>;

    async fn get_step(&self, execution_id: &str, path: &str) -> StoreResult<Option<StepRecord>>;
    /// Every step record of an execution, in the order the steps started: by `startedAt`; in the
    /// same millisecond a step after the one whose `next` led to it, then by path with loop
    /// indexes compared as numbers (`each[2]/x` before `each[10]/x`). That is
    /// [`crate::execution::sort_steps`], which implementations apply (not the sort-key order).
    async fn list_steps(&self, execution_id: &str) -> StoreResult<Vec<StepRecord>>;
    /// What the start order of every step record of an execution depends on ([`StepKey`]:
    /// path, `startedAt`, `next`), in any order, without the records' input and output: pages
    /// of step records are cut from these ([`crate::execution::step_page_keys`]). A record that
    /// cannot be decoded has a key all the same (its `startedAt` as [`Self::list_steps`] shows
    /// it).
    async fn list_step_keys(&self, execution_id: &str) -> StoreResult<Vec<StepKey>>;
    /// The step records at `paths`, in any order; a path with no record is left out, one that
    /// cannot be decoded is its `damaged` stand-in.
    async fn get_steps(&self, execution_id: &str, paths: &[String])
    -> StoreResult<Vec<StepRecord>>;
    /// Put `record` (status `running`) only if there is no record, or the stored one is
    /// `running` with `leaseUntil <= now` (a missing `leaseUntil` counts as expired) and
    /// `attempts <= record.attempts`, or `retrying` with `attempts < record.attempts`.
    /// Otherwise `Held(stored)`. The record is stored as given: pure steps pass their final
    /// (terminal) record here, which makes this a put-if-absent of the result.
    async fn claim_step(
        &self, execution_id: &str, record: &StepRecord, now: i64,
    ) -> StoreResult<ClaimOutcome>;
    /// Put `record` only if the step has no record at all; otherwise `Held(stored)`, whatever
    /// [`Self::claim_step`] would allow (an expired lease is taken over by planning from the
    /// stored record, which counts the takeover). A worker's first delivery of a first attempt
    /// claims this way without reading the record first: usually there is none. The default
    /// reads, then claims.
    async fn claim_new_step(
        &self, execution_id: &str, record: &StepRecord, now: i64,
    ) -> StoreResult<ClaimOutcome> {
        match self.get_step(execution_id, &record.path).await? {
            Some(stored) => Ok(ClaimOutcome::Held(stored)),
            None => self.claim_step(execution_id, record, now).await,
        }
    }
    /// Replace the record only if the stored one is `running` with the same `attempts`
    /// (the writer still holds its claim). Returns whether it applied.
    async fn finish_step(&self, execution_id: &str, record: &StepRecord) -> StoreResult<bool>;
    /// Extend a claim's lease to `lease_until` (the running step's heartbeat) only if the
    /// stored record is still that claim: `running` with the same `attempts` and `leaseLost`
    /// (a takeover counts `leaseLost`, so a worker whose lease was taken over cannot renew).
    /// Returns whether it applied; `false` means the claim is lost.
    async fn renew_lease(
        &self, execution_id: &str, claim: &StepRecord, lease_until: i64,
    ) -> StoreResult<bool>;

    /// Put the loop's counter and its items (in pages of `keys::LOOP_ITEMS_PER_PAGE`) if the
    /// counter is absent; returns the stored counter (the existing one on a repeat, whose
    /// items are kept). The counter is written last, so a counter always has all its pages.
    async fn init_loop(
        &self, execution_id: &str, loop_path: &str, state: &LoopState, items: &[Value],
    ) -> StoreResult<LoopState>;
    /// Item `index` of the loop, read from its page; None when there is no such item.
    async fn loop_item(
        &self, execution_id: &str, loop_path: &str, index: u32,
    ) -> StoreResult<Option<Value>>;
    async fn get_loop(&self, execution_id: &str, loop_path: &str)
    -> StoreResult<Option<LoopState>>;
    /// Mark the loop failed so the remaining iterations stop.
    async fn fail_loop(&self, execution_id: &str, loop_path: &str) -> StoreResult<()>;
    /// Count iterations of one loop with their results: for each `(index, result)`, keep
    /// `result` as the iteration's result if it has none yet and decrement `remaining`,
    /// exactly once per (loop, index) whatever was counted before. A stored result is not
    /// replaced by a repeat of the batch; an index stored again in a batch cut differently
    /// may list either result (DynamoDB keeps results in pages keyed by a batch's first
    /// index). The engine passes the same result for an index every time: the output of the
    /// stored record that ended the iteration.
    /// `Counted` (the loop's state as the batch left it) when at least one of them was counted
    /// now, `AlreadyCounted` when every one had been. After an error some of them may be
    /// stored or counted and others not (a store may need more than one request for a batch):
    /// repeating the call completes it, counting each one still once.
    async fn count_iterations(
        &self, execution_id: &str, loop_path: &str, results: &[(u32, Value)],
    ) -> StoreResult<IterationCount>;
    /// [`Self::count_iterations`] of one iteration.
    async fn count_iteration(
        &self, execution_id: &str, loop_path: &str, index: u32, result: &Value,
    ) -> StoreResult<IterationCount> {
        self.count_iterations(execution_id, loop_path, &[(index, result.clone())])
            .await
    }
    /// The counted iterations' results, ordered by index.
    async fn list_iterations(
        &self, execution_id: &str, loop_path: &str,
    ) -> StoreResult<Vec<(u32, Value)>>;

    /// A small piece of the engine's own state kept between runs (the sweep's place when it
    /// ran out of time), by name: `MARK#<name>` items. Null when none.
    async fn get_mark(&self, name: &str) -> StoreResult<Value>;
    /// Set (or, with null, clear) a mark; the last write wins.
    async fn put_mark(&self, name: &str, value: &Value) -> StoreResult<()>;

    /// Keep an event rejection in its workflow's list (`REJECT#<workflow>` items, keyed by the
    /// event's time and id: the same event again overwrites its item). The store bounds how
    /// long they are kept (DynamoDB: the executions' TTL; SQLite: the newest
    /// [`REJECTIONS_KEPT_LOCALLY`] per workflow).
    async fn record_rejection(&self, rejection: &EventRejection) -> StoreResult<()>;
    /// A workflow's rejections, newest first. `limit` 0 means 50, at most 1000. A cursor that
    /// does not decode is `Invalid`.
    async fn list_rejections(
        &self, workflow_id: &str, limit: usize, cursor: Option<&str>,
    ) -> StoreResult<RejectionPage>;
}

/// [`ExecutionStore::create_execution_with_steps`] as its default does it, one write after the
/// other in the order a worker would write them (for a store that keeps the records in one
/// transaction only when they fit, and writes them this way otherwise).
pub async fn create_in_worker_order<S: ExecutionStore + ?Sized>(
    store: &S, execution: &ExecutionRecord, dedupe: Option<&DedupeKey>, steps: &[StepRecord],
) -> StoreResult<CreateOutcome> {
    let mut queued = execution.clone();
    queued.status = ExecutionStatus::Queued;
    queued.output = Value::Null;
    queued.error = None;
    queued.finished_at = None;
    queued.duration_ms = None;
    if let CreateOutcome::Duplicate(first) = store.create_execution(&queued, dedupe).await? {
        return Ok(CreateOutcome::Duplicate(first));
    }
    let mut all_written = true;
    for step in steps {
        let claimed = store
            .claim_step(&execution.id, step, execution.started_at)
            .await?;
        all_written &= claimed == ClaimOutcome::Claimed;
    }
    if all_written && execution.status != ExecutionStatus::Queued {
        store
            .update_execution(&execution.id, &execution.as_update())
            .await?;
    }
    Ok(CreateOutcome::Created)
}

/// How many rejections per workflow the SQLite store keeps (the oldest go first).
pub const REJECTIONS_KEPT_LOCALLY: usize = 1_000;

/// Outcome of `RecordStore::create`.
#[derive(Debug, Clone, PartialEq)]
pub enum RecordCreate {
    Created(Value),
    /// The same idempotency key created this record before: a redelivered create.
    Replayed(Value),
    /// Another create made this id.
    Exists,
}

/// The `records` table (what record.* actions read and write).
#[async_trait]
pub trait RecordStore: Send + Sync {
    async fn create(
        &self, collection: &str, id: &str, data: &Value, idempotency_key: &str,
    ) -> StoreResult<RecordCreate>;
    async fn get(&self, collection: &str, id: &str) -> StoreResult<Option<Value>>;
    /// Shallow-merge `patch` into the stored object; `NotFound` if absent. Returns the result.
    async fn update(&self, collection: &str, id: &str, patch: &Value) -> StoreResult<Value>;
    /// Returns whether a record was deleted.
    async fn delete(&self, collection: &str, id: &str) -> StoreResult<bool>;
    /// Records of a collection ordered by id, after `after`: exactly `min(limit, remaining)`
    /// (never a short page while more remain, so a caller asking `limit + 1` detects the end).
    async fn query(
        &self, collection: &str, after: Option<&str>, limit: usize,
    ) -> StoreResult<Vec<(String, Value)>>;
}

/// One received task, with what acknowledges it.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub task: StepTask,
    /// Handle for `ack` (SQS receipt handle / local message id + receive count).
    pub receipt: String,
    /// How many times this message has been received (1 = first delivery).
    pub receive_count: u32,
}

/// The step queue (SQS on AWS, a SQLite table locally). At-least-once.
#[async_trait]
pub trait TaskQueue: Send + Sync {
    /// Send tasks, each with a delay in milliseconds (adapters chain delays past their limit).
    async fn send(&self, tasks: &[(StepTask, u64)]) -> StoreResult<()>;
    /// Receive up to `max` visible tasks, waiting up to `wait` for one. Received tasks are
    /// invisible until acknowledged or until the visibility timeout passes.
    async fn receive(&self, max: usize, wait: Duration) -> StoreResult<Vec<Delivery>>;
    async fn ack(&self, receipt: &str) -> StoreResult<()>;
}

/// A platform event (EventBridge on AWS, the local bus in `wf dev`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlatformEvent {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub source: String,
    pub detail: Value,
    #[serde(with = "crate::time_fmt::rfc3339")]
    pub time: i64,
    /// The causation chain: the workflow ids from the origin to the execution that emitted the
    /// event (empty for an event from outside, e.g. `POST /events`). See
    /// [`crate::event_chain`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chain: Vec<String>,
}

#[async_trait]
pub trait EventBus: Send + Sync {
    /// Publish events. Ids are deterministic (derived from the idempotency key of the step that
    /// emits them), so a redelivered publish repeats an id: adapters keep one event per id where
    /// they can, and triggers dedupe executions by event id in any case.
    async fn publish(&self, events: &[PlatformEvent]) -> StoreResult<()>;
}

/// Where `{{ secrets.NAME }}` values come from.
pub trait SecretSource: Send + Sync {
    fn get(&self, name: &str) -> Option<String>;

    /// Where secret `name` is looked up, for error messages ("environment variable `X`",
    /// "SSM parameter /wf/prod/X"). Never the value.
    fn describe(&self, name: &str) -> String {
        format!("secret `{name}`")
    }
}

/// What an action knows about the step it runs for.
#[derive(Debug, Clone)]
pub struct ActionContext {
    pub execution_id: String,
    pub path: String,
    pub attempt: u32,
    /// `<executionId>/<path>`: passed on (e.g. as an `Idempotency-Key` header) and honoured.
    pub idempotency_key: String,
    /// Time left for this attempt.
    pub timeout: Duration,
    /// The execution's causation chain (the event chain that started it plus its own workflow
    /// id; empty when no workflow's event started it): every event the action publishes
    /// carries it.
    pub event_chain: Vec<String>,
    /// The bounds past which the action refuses to publish.
    pub event_limits: crate::event_chain::EventLimits,
}

/// Runs actions by name (`http.request`, `record.create`, ...).
#[async_trait]
pub trait ActionRunner: Send + Sync {
    async fn run(
        &self, action: &str, params: Value, ctx: &ActionContext,
    ) -> Result<Value, StepError>;
}

/// A chat-completions request of the llm step.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LlmRequest {
    pub model: String,
    pub system: Option<String>,
    pub prompt: String,
    pub temperature: Option<f64>,
    pub max_tokens: Option<u32>,
    pub json: bool,
    pub json_schema: Option<Value>,
}

/// The provider's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LlmResponse {
    pub text: String,
    pub model: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
}

#[async_trait]
pub trait LlmProvider: Send + Sync {
    async fn complete(
        &self, request: &LlmRequest, timeout: Duration,
    ) -> Result<LlmResponse, StepError>;
}
