//! Starting an execution: validate the input, create the record (with its dedupe key in the
//! same transaction), then queue the start step. If the process dies between the two writes,
//! the sweeper re-queues executions left `queued` with no task.

use serde::Serialize;
use serde_json::Value;
use tracing::info;
use wf_core::StoreError;
use wf_core::engine::CompiledWorkflow;
use wf_core::execution::{
    CreateOutcome, DedupeKey, ExecutionRecord, ExecutionStatus, StepTask, TriggerInfo,
};

use crate::services::Services;

/// How long a dedupe key (idempotency key, message id, event id) is remembered.
pub const DEDUPE_TTL_MS: i64 = 24 * 60 * 60 * 1000;

/// A request to start one execution of a compiled (published) version.
#[derive(Debug, Clone)]
pub struct StartRequest {
    pub input: Value,
    pub trigger: TriggerInfo,
    /// A deterministic id (e.g. derived from a schedule's fire time); a new ULID otherwise.
    pub execution_id: Option<String>,
    /// Starts at most one execution per key for 24 h.
    pub dedupe_key: Option<String>,
    pub rerun_of: Option<String>,
}

impl StartRequest {
    pub fn new(input: Value, trigger: TriggerInfo) -> Self {
        Self {
            input,
            trigger,
            execution_id: None,
            dedupe_key: None,
            rerun_of: None,
        }
    }
}

/// One way an input fails the start step's `inputSchema`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InputViolation {
    /// JSON pointer into the input.
    pub pointer: String,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("the input does not match the workflow's inputSchema: {}", summary(.0))]
    InvalidInput(Vec<InputViolation>),
    #[error("the workflow has no start step")]
    NoStartStep,
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn summary(v: &[InputViolation]) -> String {
    v.iter()
        .map(|x| {
            format!(
                "{}: {}",
                if x.pointer.is_empty() {
                    "/"
                } else {
                    &x.pointer
                },
                x.message
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

impl StartError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, StartError::Store(e) if e.is_retryable())
    }
}

/// The started (or, for a repeated dedupe key, the first) execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    pub execution_id: String,
    /// True when a dedupe key matched: nothing new was started.
    pub duplicate: bool,
}

/// Check an input against the start step's `inputSchema`; every violation is listed.
pub fn check_input(compiled: &CompiledWorkflow, input: &Value) -> Result<(), Vec<InputViolation>> {
    compiled.check_input(input).map_err(|v| {
        v.into_iter()
            .map(|(pointer, message)| InputViolation { pointer, message })
            .collect()
    })
}

/// A new execution id: a ULID whose time part is `now` (ids sort by start time).
pub fn new_execution_id(now: i64) -> String {
    ulid::Ulid::from_datetime(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(now.max(0) as u64),
    )
    .to_string()
}

/// The `queued` record of a new execution.
pub fn new_record(
    compiled: &CompiledWorkflow,
    id: &str,
    req: StartRequest,
    now: i64,
) -> ExecutionRecord {
    ExecutionRecord {
        id: id.to_string(),
        workflow_id: compiled.workflow.id.clone(),
        version: compiled.version,
        status: ExecutionStatus::Queued,
        trigger: req.trigger,
        input: req.input,
        output: Value::Null,
        error: None,
        started_at: now,
        finished_at: None,
        duration_ms: None,
        deadline_at: now + compiled.workflow.config.timeout_ms as i64,
        rerun_of: req.rerun_of,
    }
}

/// Start an execution of `compiled`. Nothing is written when the input is invalid.
pub async fn start_execution(
    svc: &Services,
    compiled: &CompiledWorkflow,
    req: StartRequest,
) -> Result<Started, StartError> {
    check_input(compiled, &req.input).map_err(StartError::InvalidInput)?;
    let start = compiled.start_path().ok_or(StartError::NoStartStep)?;
    let now = svc.clock.now_ms();
    let id = req
        .execution_id
        .clone()
        .unwrap_or_else(|| new_execution_id(now));
    let dedupe = req.dedupe_key.clone().map(|k| DedupeKey {
        key: format!("{}#{}", compiled.workflow.id, k),
        expires_at: now + DEDUPE_TTL_MS,
    });
    let record = new_record(compiled, &id, req, now);
    match svc
        .executions
        .create_execution(&record, dedupe.as_ref())
        .await?
    {
        CreateOutcome::Duplicate(first) => {
            return Ok(Started {
                execution_id: first,
                duplicate: true,
            });
        }
        CreateOutcome::Created => {}
    }
    let task = StepTask {
        execution_id: id.clone(),
        path: start.to_string(),
        attempt: 1,
    };
    svc.queue.send(&[(task, 0)]).await?;
    info!(execution_id = %id, workflow_id = %compiled.workflow.id, version = compiled.version, "execution queued");
    Ok(Started {
        execution_id: id,
        duplicate: false,
    })
}
