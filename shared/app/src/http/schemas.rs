//! Schemas of the answers whose types live in wf-core or `ai/` (which do not depend on utoipa):
//! documentation only, each mirroring the serde shape of the type it names. They are checked
//! against real answers by the fuzz run (`scripts/api-fuzz`: schemathesis'
//! `response_schema_conformance`), not by the Rust tests.
#![allow(dead_code)] // documentation only: answers are serialized from the types named above

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// An execution's status.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Cancelled,
}

/// A step record's status.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Running,
    Retrying,
    Succeeded,
    Failed,
    TimedOut,
}

/// How an execution was started: `type`, and trigger-specific facts (event id and type,
/// scheduled time, idempotency key, rerun source) as further properties.
#[derive(Serialize, ToSchema)]
pub struct ExecutionTrigger {
    /// One of [`TriggerType`] (`unknown` for a record that was damaged in the store).
    #[serde(rename = "type")]
    #[schema(example = "manual")]
    kind: String,
}

/// How an execution was started.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TriggerType {
    Webhook,
    Schedule,
    Event,
    Manual,
    Test,
    Rerun,
}

/// Why a step or an execution failed (`wf_core::error::StepError`).
#[derive(Serialize, ToSchema)]
pub struct StepError {
    /// Stable machine-readable code, e.g. `template.undefined`, `http.status`, `timeout`.
    code: String,
    message: String,
    retryable: bool,
    /// Extra structured facts (HTTP status, raw LLM text, ...).
    details: Option<Value>,
}

/// One run of one pinned version of a workflow (`wf_core::execution::ExecutionRecord`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Execution {
    /// ULID: sortable by start time.
    id: String,
    workflow_id: String,
    /// The version it runs (a test run of a draft runs a snapshot version ≥ 2^31).
    version: u32,
    status: ExecutionStatus,
    trigger: ExecutionTrigger,
    input: Value,
    output: Value,
    error: Option<StepError>,
    #[schema(format = DateTime)]
    started_at: String,
    #[schema(format = DateTime)]
    finished_at: Option<String>,
    duration_ms: Option<i64>,
    /// `startedAt + timeoutMs`: past it the execution is `timed_out`.
    #[schema(format = DateTime)]
    deadline_at: String,
    /// The execution this one re-runs.
    rerun_of: Option<String>,
}

/// One step of one execution (one per iteration inside loops; `wf_core::execution::StepRecord`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepRecord {
    /// `notify`, or `each[2]/notify` inside a loop.
    path: String,
    #[serde(rename = "type")]
    step_type: String,
    status: StepStatus,
    attempts: u32,
    /// The rendered input, secrets redacted.
    input: Value,
    output: Value,
    error: Option<StepError>,
    #[schema(format = DateTime)]
    started_at: String,
    #[schema(format = DateTime)]
    finished_at: Option<String>,
    duration_ms: Option<i64>,
    #[schema(format = DateTime)]
    lease_until: Option<String>,
    /// Where the execution went next (a condition's edge; `onError` for a failure).
    next: Option<String>,
    /// Times a worker running the step was lost (absent when 0).
    lease_lost: Option<u32>,
}

/// An execution with its step records in the order they started: all of them, or the first
/// page (at most 200 records and 4 MiB) when `stepsCursor` is set.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionDetail {
    #[serde(flatten)]
    execution: Execution,
    steps: Vec<StepRecord>,
    /// `GET /executions/{id}/steps?cursor=` with it gives the next page; null when `steps` has
    /// them all.
    steps_cursor: Option<String>,
}

/// A page of an execution's step records, in the order they started
/// (`wf_core::execution::StepPage`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepPage {
    items: Vec<StepRecord>,
    /// The `cursor` of the next page; null on the last one.
    next_cursor: Option<String>,
}

/// One thing wrong with a workflow (`wf_core::validate::Problem`).
#[derive(Serialize, ToSchema)]
pub struct Problem {
    /// JSON pointer (RFC 6901) of the offending value; `""` is the whole document.
    pointer: String,
    message: String,
    /// How to fix it.
    hint: String,
    /// Stable machine-readable code, e.g. `schema.unknown_field`.
    code: String,
    /// 1-based line in the source text (files only).
    line: Option<u32>,
    column: Option<u32>,
}

/// A validation report of a draft as AI authoring shows it.
#[derive(Serialize, ToSchema)]
pub struct Validation {
    valid: bool,
    problems: Vec<Problem>,
}

/// A model answer sent back for repair, with its problems.
#[derive(Serialize, ToSchema)]
pub struct Rejected {
    /// 1 = the first answer.
    round: u32,
    problems: Vec<Problem>,
}

/// A step-level diff of two drafts.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DraftDiff {
    added_steps: Vec<String>,
    removed_steps: Vec<String>,
    changed_steps: Vec<ChangedStep>,
    changed_config: Vec<String>,
    changed_fields: Vec<String>,
}

/// A step whose fields changed, with their names.
#[derive(Serialize, ToSchema)]
pub struct ChangedStep {
    id: String,
    keys: Vec<String>,
}

/// `POST /workflows/generate`: the saved draft and how it was made.
#[derive(Serialize, ToSchema)]
pub struct Generated {
    id: String,
    /// The draft (a workflow definition; see `workflows/schema.json`).
    draft: Value,
    validation: Validation,
    /// The model's short explanation (none without a description).
    explanation: Option<String>,
    /// Model answers it took (0 without a description).
    rounds: u32,
    rejected: Vec<Rejected>,
    /// Always false: a generated workflow is a draft; publish and activate it after review.
    published: bool,
    active: bool,
}

/// `POST /workflows/{id}/chat`: what the model changed.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChatReply {
    workflow_id: String,
    /// Whether the draft changed (and was stored).
    changed: bool,
    /// The draft now.
    draft: Value,
    diff: DraftDiff,
    validation: Validation,
    explanation: String,
    rounds: u32,
    rejected: Vec<Rejected>,
}

/// One exchange of a conversation about a draft.
#[derive(Serialize, ToSchema)]
pub struct ChatTurn {
    #[schema(format = DateTime)]
    at: String,
    message: String,
    explanation: String,
    /// Whether a new draft was stored.
    applied: bool,
    diff: Option<DraftDiff>,
    /// How many problems the last answer had (absent when 0).
    problems: Option<u32>,
}

/// `GET /workflows/{id}/chat`: the conversation, oldest first (the last 20 turns).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChatHistory {
    workflow_id: String,
    turns: Vec<ChatTurn>,
}

/// Who read a schedule.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CronSource {
    Parser,
    Ai,
}

/// `POST /cron`: the schedule read, its EventBridge form and the next runs.
#[derive(Serialize, ToSchema)]
pub struct CronReading {
    /// The expression as sent.
    input: String,
    /// 5- or 6-field cron.
    cron: String,
    /// `cron(...)` as EventBridge takes it.
    eventbridge: String,
    /// The next runs (UTC).
    next: Vec<String>,
    source: CronSource,
    /// The model's description of the schedule (AI only).
    explanation: Option<String>,
    rounds: u32,
}

/// An action of the catalog.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Action {
    /// The `action` of an action step, e.g. `http.request`.
    name: String,
    description: String,
    /// JSON Schema of the step's `params`.
    params_schema: Value,
}

/// A workflow definition. Stands in for the workflow JSON Schema (`wf schema`,
/// `workflows/schema.json`), which [`super::openapi`] puts here in the served document.
#[derive(Serialize, ToSchema)]
pub struct Workflow {}

/// A workflow's config. Stands in for `WorkflowConfig` of the workflow JSON Schema, which
/// [`super::openapi`] puts here in the served document.
#[derive(Serialize, ToSchema)]
pub struct WorkflowConfig {}

/// Slack's `url_verification` challenge, answered.
#[derive(Serialize, ToSchema)]
pub struct SlackChallenge {
    challenge: String,
}

/// A webhook's `200`: the finished execution (with `?wait`), or Slack's challenge answered.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum WebhookFinished {
    Execution(Box<ExecutionDetail>),
    Challenge(SlackChallenge),
}

/// A webhook's body: the execution's input, any JSON object (checked against the start step's
/// `inputSchema`); Slack form bodies are accepted for the slack scheme.
#[derive(Serialize, ToSchema)]
#[schema(value_type = Object)]
pub struct WebhookInput(serde_json::Map<String, Value>);

/// The name of a Server-Sent Event of `GET /executions/{id}/events`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProgressEventName {
    /// The execution record without its steps: first, then whenever its status changes.
    Execution,
    /// A step record, each time it changes.
    Step,
    /// The whole execution with its steps, once terminal; the stream then ends.
    End,
    /// The execution could not be read: `{ code, message }`; the stream then ends.
    Error,
}

/// One Server-Sent Event of `GET /executions/{id}/events`: its name, and its data (JSON text).
#[derive(Serialize, ToSchema)]
pub struct ProgressEvent {
    event: ProgressEventName,
    /// JSON: an `Execution`, a `StepRecord`, an `ExecutionDetail` or `{ code, message }`.
    data: String,
}
