//! Execution and step records: what the store keeps and the API shows.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::StepError;
use crate::time_fmt::{rfc3339, rfc3339_opt};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Cancelled,
}

impl ExecutionStatus {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Failed | Self::TimedOut | Self::Cancelled
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::TimedOut => "timed_out",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            "timed_out" => Self::TimedOut,
            "cancelled" => Self::Cancelled,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Claimed by a worker whose lease runs until `leaseUntil`.
    Running,
    /// The attempt failed; attempt `attempts + 1` is queued after the backoff.
    Retrying,
    Succeeded,
    Failed,
    TimedOut,
}

impl StepStatus {
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::TimedOut)
    }
}

/// How an execution was started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TriggerInfo {
    /// `webhook`, `schedule`, `event`, `manual`, `test`, `rerun`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Trigger-specific facts: event id and type, scheduled time, idempotency key, rerun source.
    #[serde(flatten, default)]
    pub details: serde_json::Map<String, Value>,
}

impl TriggerInfo {
    pub fn new(kind: &str) -> Self {
        Self {
            kind: kind.to_string(),
            details: serde_json::Map::new(),
        }
    }

    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_string(), value.into());
        self
    }
}

/// The `EXEC` item: one run of one pinned version of a workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionRecord {
    /// ULID: sortable by start time.
    pub id: String,
    pub workflow_id: String,
    /// The published version this execution runs (0 = a draft test run).
    pub version: u32,
    pub status: ExecutionStatus,
    pub trigger: TriggerInfo,
    pub input: Value,
    #[serde(default)]
    pub output: Value,
    #[serde(default)]
    pub error: Option<StepError>,
    #[serde(with = "rfc3339")]
    pub started_at: i64,
    #[serde(with = "rfc3339_opt", default)]
    pub finished_at: Option<i64>,
    #[serde(default)]
    pub duration_ms: Option<i64>,
    /// `startedAt + timeoutMs`: past it the execution is `timed_out`.
    #[serde(with = "rfc3339")]
    pub deadline_at: i64,
    /// The execution this one re-runs, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerun_of: Option<String>,
}

/// A change to an execution's status, applied only while the execution is not terminal.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionUpdate {
    pub status: ExecutionStatus,
    pub output: Option<Value>,
    pub error: Option<StepError>,
    pub finished_at: Option<i64>,
}

/// The `STEP#<path>` item: one step of one execution (one per loop iteration inside loops).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepRecord {
    pub path: String,
    #[serde(rename = "type")]
    pub step_type: String,
    pub status: StepStatus,
    /// Attempts made so far (the current one included).
    pub attempts: u32,
    /// The resolved (rendered) input of the step, secrets redacted.
    #[serde(default)]
    pub input: Value,
    #[serde(default)]
    pub output: Value,
    #[serde(default)]
    pub error: Option<StepError>,
    #[serde(with = "rfc3339")]
    pub started_at: i64,
    #[serde(with = "rfc3339_opt", default)]
    pub finished_at: Option<i64>,
    #[serde(default)]
    pub duration_ms: Option<i64>,
    /// While `running`: the claim is valid until then; after it another worker may claim.
    #[serde(with = "rfc3339_opt", default, skip_serializing_if = "Option::is_none")]
    pub lease_until: Option<i64>,
    /// Where the execution went next (for condition: the chosen edge; for failures: `onError`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// The `LOOP#<path>` item: the items of a loop and how many iterations are still to count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoopState {
    pub items: Vec<Value>,
    pub total: u32,
    pub remaining: u32,
    pub concurrency: u32,
    /// Set when an iteration failed: the other iterations stop.
    #[serde(default)]
    pub failed: bool,
}

/// Outcome of counting one iteration (the ITER marker put and the decrement are one transaction).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IterationCount {
    /// Counted now; `remaining` after the decrement.
    Counted { remaining: u32 },
    /// This iteration had been counted before (a redelivery).
    AlreadyCounted,
}

/// The unit of work carried by the queue.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepTask {
    pub execution_id: String,
    pub path: String,
    pub attempt: u32,
}

/// An execution with its step records, as the API and `wf run` show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionView {
    #[serde(flatten)]
    pub execution: ExecutionRecord,
    pub steps: Vec<StepRecord>,
}

/// A dedupe key kept with an execution for 24 h: a repeat answers with the first execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DedupeKey {
    /// `<workflowId>#<key>`.
    pub key: String,
    pub expires_at: i64,
}

/// Outcome of creating an execution with a dedupe key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateOutcome {
    Created,
    /// The key was seen before; this is the first execution's id.
    Duplicate(String),
}

/// Outcome of a conditional claim of a step.
// Returned once per claim and matched at once; boxing the record would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum ClaimOutcome {
    Claimed,
    /// The claim's condition failed; this is the record as it stands.
    Held(StepRecord),
}

/// Filters and cursor for listing executions (newest first).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExecutionQuery {
    pub workflow_id: Option<String>,
    pub status: Option<ExecutionStatus>,
    pub trigger: Option<String>,
    pub version: Option<u32>,
    pub started_after: Option<i64>,
    pub started_before: Option<i64>,
    pub limit: usize,
    /// Opaque cursor from the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExecutionPage {
    pub items: Vec<ExecutionRecord>,
    pub next_cursor: Option<String>,
}
