//! Schemas of the answers whose types live in `ai/` or are only a shape (which do not depend on
//! utoipa): documentation only, each mirroring the serde shape of the type it names. The
//! execution records are wf-core's own types, which derive the schema (its `openapi` feature). They are checked
//! against real answers by the fuzz run (`scripts/api-fuzz`: schemathesis'
//! `response_schema_conformance`), not by the Rust tests.
#![allow(dead_code)] // documentation only: answers are serialized from the types named above

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// How an execution was started (`GET /executions?trigger=`; the `type` of `TriggerInfo`).
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
    Execution(Box<wf_core::execution::ExecutionView>),
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
    /// JSON: an `ExecutionRecord`, a `StepRecord`, an `ExecutionView` or `{ code, message }`.
    data: String,
}
