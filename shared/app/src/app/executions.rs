//! Use cases of executions: start one (every trigger ends here: validate the input, create the
//! record with its dedupe key in the same transaction, then queue the start step; if the
//! process dies between the two writes the sweeper re-queues executions left `queued`), manual
//! and test runs, history, cancel and rerun.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde::Serialize;
use serde_json::{Value, json};
use tracing::info;
use wf_core::StoreError;
use wf_core::engine::CompiledWorkflow;
use wf_core::execution::{
    ClaimOutcome, CreateOutcome, DedupeKey, ExecutionPage, ExecutionQuery, ExecutionRecord,
    ExecutionStatus, ExecutionView, STEP_PAGE_BYTES, STEP_PAGE_SIZE, StepKey, StepPage, StepRecord,
    StepStatus, StepTask, TriggerInfo, sort_steps, step_page_keys,
};
use wf_core::model::Workflow;
use wf_core::path::StepPath;
use wf_core::validate::validate_value;

use super::staged::StagedStart;
use super::workflows::DRAFT_VERSION_BASE;
use super::{App, AppError};

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

/// The started (or, for a repeated dedupe key, the first) execution.
#[derive(Debug, Clone, PartialEq)]
pub struct Started {
    pub execution_id: String,
    /// True when a dedupe key matched: nothing new was started.
    pub duplicate: bool,
    /// The execution as stored, when it finished in its start (pure from start to end): a
    /// waiting caller answers with it instead of reading it back.
    pub finished: Option<Arc<ExecutionView>>,
}

/// Check an input against the start step's `inputSchema`: every violation is listed, as an
/// `invalid_input` error whose details hold them.
pub fn check_input(compiled: &CompiledWorkflow, input: &Value) -> Result<(), AppError> {
    compiled.check_input(input).map_err(|v| {
        let violations: Vec<InputViolation> = v
            .into_iter()
            .map(|(pointer, message)| InputViolation { pointer, message })
            .collect();
        let summary = violations
            .iter()
            .map(|x| {
                let at = if x.pointer.is_empty() {
                    "/"
                } else {
                    &x.pointer
                };
                format!("{at}: {}", x.message)
            })
            .collect::<Vec<_>>()
            .join("; ");
        AppError::invalid(
            "invalid_input",
            format!(
                "the input does not match the workflow's inputSchema ({} problem(s)): {summary}",
                violations.len()
            ),
        )
        .with_details(json!({ "violations": violations }))
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
    compiled: &CompiledWorkflow, id: &str, req: StartRequest, now: i64,
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
        handoff: Vec::new(),
    }
}

/// A page of step records from `items` (in start order, at most a page's count): cut before
/// it passes its byte budget (it keeps at least one record), with a cursor when the page does
/// not end at `last` (the path of the execution's last step).
fn cut_step_page(mut items: Vec<StepRecord>, last: Option<&str>) -> StepPage {
    // Sizes are counted, not serialized, and the page is cut in place: nothing is allocated
    // (a view is cut for every `?wait` answer).
    let mut bytes = 0;
    let mut kept = 0;
    for record in &items {
        let room = if kept == 0 {
            usize::MAX
        } else {
            STEP_PAGE_BYTES.saturating_sub(bytes)
        };
        match wf_core::json_size::serialized_len(record, room) {
            Ok(Some(size)) => bytes += size,
            Ok(None) => break,
            // Counted as nothing, as it cannot be answered either way.
            Err(_) => {}
        }
        kept += 1;
    }
    items.truncate(kept);
    let end = items.last().map(|r: &StepRecord| r.path.clone());
    let more = match (&end, last) {
        (Some(end), Some(last)) => end != last,
        _ => false,
    };
    StepPage {
        items,
        next_cursor: end
            .filter(|_| more)
            .map(|p| wf_core::keys::encode_cursor(&p)),
    }
}

/// The view `GET /executions/{id}` answers for an execution and all its step records, built
/// from memory (a staged run that finished in its start: what was just stored).
fn view_of(execution: ExecutionRecord, mut steps: Vec<StepRecord>) -> ExecutionView {
    sort_steps(&mut steps);
    let last = steps.last().map(|s| s.path.clone());
    steps.truncate(STEP_PAGE_SIZE);
    let page = cut_step_page(steps, last.as_deref());
    ExecutionView {
        execution,
        steps: page.items,
        steps_cursor: page.next_cursor,
    }
}

/// The top-level steps at and after `from` (what a rerun from `from` runs again).
fn downstream(workflow: &Workflow, from: &str) -> HashSet<String> {
    let mut seen = HashSet::new();
    let mut todo = vec![from.to_string()];
    while let Some(id) = todo.pop() {
        if !seen.insert(id.clone()) {
            continue;
        }
        if let Some(step) = workflow.steps.iter().find(|s| s.id() == id) {
            todo.extend(step.edges().into_iter().map(|(_, n)| n.to_string()));
        }
    }
    seen
}

impl App {
    /// Create the execution: with its staged pure start in one store call when there is one,
    /// else as it is (its worker runs the start). Returns the stage that was stored.
    async fn create(
        &self, record: &ExecutionRecord, dedupe: Option<&DedupeKey>, staged: Option<StagedStart>,
    ) -> Result<(CreateOutcome, Option<StagedStart>), AppError> {
        if let Some(stage) = staged {
            let executions = &self.svc.executions;
            match executions
                .create_execution_with_steps(&stage.record, dedupe, &stage.steps)
                .await
            {
                // A staged record the store refuses for its size: the worker runs the start
                // and stores the engine's clean failure in its place.
                Err(StoreError::TooLarge(_)) => {}
                other => return Ok((other?, Some(stage))),
            }
        }
        Ok((
            self.svc.executions.create_execution(record, dedupe).await?,
            None,
        ))
    }

    /// Start an execution of `compiled`. Nothing is written when the input is invalid.
    pub async fn start(
        &self, compiled: &CompiledWorkflow, req: StartRequest,
    ) -> Result<Started, AppError> {
        check_input(compiled, &req.input)?;
        let start = compiled
            .start_path()
            .ok_or_else(|| AppError::invalid("no_start_step", "the workflow has no start step"))?;
        let now = self.svc.clock.now_ms();
        let id = req
            .execution_id
            .clone()
            .unwrap_or_else(|| new_execution_id(now));
        let dedupe = req.dedupe_key.clone().map(|k| DedupeKey {
            key: format!("{}#{}", compiled.workflow.id, k),
            expires_at: now + DEDUPE_TTL_MS,
        });
        // A new id cannot meet a stored execution, so what its pure start stages is all there
        // is (a deterministic id may be a redelivery: its worker runs the start, replaying).
        // Only where this process runs pure starts (`App::enable_pure_start`).
        let fresh = req.execution_id.is_none();
        let record = new_record(compiled, &id, req, now);
        let trigger = record.trigger.kind.clone();
        let staged = match (fresh, self.pure_start.get()) {
            (true, Some(pure_start)) => pure_start(self, compiled, &record, &start).await,
            _ => None,
        };
        let (created, staged) = self.create(&record, dedupe.as_ref(), staged).await?;
        if let CreateOutcome::Duplicate(first) = created {
            // The first delivery may have died between creating the execution and sending
            // its start task (a crash, a failed send); its client's retry lands here. While
            // the execution is still `queued`, send the start task again (idempotent, as the
            // sweeper's requeue) so it starts now rather than at the sweeper's requeue, a
            // minute later (found by scripts/kill-under-load).
            // Likewise the tasks a start that ran its pure steps handed on, once due.
            if let Some(exec) = self.svc.executions.get_execution(&first).await? {
                if exec.status == ExecutionStatus::Queued {
                    self.requeue(&exec).await?;
                } else if !exec.handoff.is_empty() && !exec.status.is_terminal() {
                    self.send_handoff_again(&exec, now, 0).await?;
                }
            }
            return Ok(Started {
                execution_id: first,
                duplicate: true,
                finished: None,
            });
        }
        self.metrics.incr("wf_executions_started_total", &trigger);
        let mut finished = None;
        match staged {
            Some(staged) => {
                if !staged.sends.is_empty() {
                    self.svc.queue.send(&staged.sends).await?;
                }
                info!(execution_id = %id, workflow_id = %compiled.workflow.id, version = compiled.version, steps = staged.steps.len(), "execution started (pure start run inline)");
                if staged.record.status.is_terminal() {
                    self.announce_finished(&id, staged.record.status);
                    finished = Some(Arc::new(view_of(staged.record, staged.steps)));
                }
            }
            None => {
                let task = StepTask {
                    execution_id: id.clone(),
                    path: start.to_string(),
                    attempt: 1,
                };
                self.svc.queue.send(&[(task, 0)]).await?;
                info!(execution_id = %id, workflow_id = %compiled.workflow.id, version = compiled.version, "execution queued");
            }
        }
        Ok(Started {
            execution_id: id,
            duplicate: false,
            finished,
        })
    }

    /// A manual run of the active (else the latest published) version, or with `draft` a test
    /// run of the draft (pinned to an immutable snapshot of it).
    pub async fn run_workflow(
        &self, id: &str, input: Value, draft: bool,
    ) -> Result<Started, AppError> {
        let meta = self.meta(id).await?;
        let (compiled, trigger) = if draft {
            let draft = self.stored_draft(id).await?;
            let report = validate_value(&draft);
            let Some(workflow) = report.workflow else {
                return Err(AppError::invalid(
                    "invalid_workflow",
                    format!(
                        "the draft has {} problem(s); fix them to test it",
                        report.problems.len()
                    ),
                )
                .with_details(json!({ "problems": report.problems })));
            };
            let version = self.draft_snapshot(&workflow).await?;
            (
                self.definition(id, version).await?,
                TriggerInfo::new("test").with("draft", true),
            )
        } else {
            let version = meta
                .active_version
                .filter(|_| meta.active)
                .unwrap_or(meta.latest_version);
            if version == 0 {
                return Err(AppError::conflict(
                    "not_published",
                    format!(
                        "workflow {id} has never been published: publish it, or test the draft with ?draft=true"
                    ),
                ));
            }
            (
                self.definition(id, version).await?,
                TriggerInfo::new("manual"),
            )
        };
        self.start(&compiled, StartRequest::new(input, trigger))
            .await
    }

    /// The immutable snapshot a test run of `workflow` pins: a version ≥ 2^31 keyed by the
    /// draft's content, so testing the same draft twice reuses it.
    async fn draft_snapshot(&self, workflow: &Workflow) -> Result<u32, AppError> {
        let defs = &self.svc.definitions;
        let text = serde_json::to_string(workflow).unwrap_or_default();
        let hash = text.bytes().fold(0x811c9dc5u32, |h, b| {
            (h ^ b as u32).wrapping_mul(0x0100_0193)
        });
        let mut version = DRAFT_VERSION_BASE | (hash & 0x7fff_ffff);
        for _ in 0..8 {
            match defs.get_version(&workflow.id, version).await? {
                Some(existing) if &existing == workflow => return Ok(version),
                Some(_) => version = version.wrapping_add(1) | DRAFT_VERSION_BASE,
                None => match defs.put_version(workflow, version).await {
                    Ok(()) => return Ok(version),
                    Err(StoreError::Conflict(_)) => continue,
                    Err(e) => return Err(e.into()),
                },
            }
        }
        Err(AppError::conflict(
            "busy",
            "could not store the draft snapshot; try again",
        ))
    }

    /// A page of the history, newest first.
    pub async fn list_executions(&self, query: &ExecutionQuery) -> Result<ExecutionPage, AppError> {
        self.svc
            .executions
            .list_executions(query)
            .await
            .map_err(listing_error)
    }

    /// A page of one workflow's history (the workflow must exist).
    pub async fn workflow_executions(
        &self, workflow_id: &str, mut query: ExecutionQuery,
    ) -> Result<ExecutionPage, AppError> {
        self.meta(workflow_id).await?;
        query.workflow_id = Some(workflow_id.to_string());
        self.list_executions(&query).await
    }

    /// One execution with the first page of its step records, in the order they started
    /// (`stepsCursor` says where the rest are: [`App::execution_steps`]).
    pub async fn execution(&self, id: &str) -> Result<ExecutionView, AppError> {
        let execution = self.stored_execution(id).await?;
        self.view(execution).await
    }

    async fn stored_execution(&self, id: &str) -> Result<ExecutionRecord, AppError> {
        self.svc
            .executions
            .get_execution(id)
            .await?
            .ok_or_else(|| AppError::not_found(format!("execution {id} does not exist")))
    }

    /// `execution` with the first page of its step records.
    pub(super) async fn view(&self, execution: ExecutionRecord) -> Result<ExecutionView, AppError> {
        let page = self.step_page(&execution.id, None, STEP_PAGE_SIZE).await?;
        Ok(ExecutionView {
            execution,
            steps: page.items,
            steps_cursor: page.next_cursor,
        })
    }

    /// `view` with every step record (for `wf run` and tests, which show them all).
    pub async fn with_all_steps(&self, mut view: ExecutionView) -> Result<ExecutionView, AppError> {
        view.steps = self.svc.executions.list_steps(&view.execution.id).await?;
        view.steps_cursor = None;
        Ok(view)
    }

    /// Every step record of an execution in start order, handed to `each` [`STEP_PAGE_SIZE`]
    /// at a time (`wf run` prints them so: the records of a 100,000-iteration loop are never
    /// all in memory at once). The keys are listed and ordered once.
    pub async fn for_each_step_page<E: From<AppError>>(
        &self, id: &str, mut each: impl FnMut(Vec<StepRecord>) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut keys = self
            .svc
            .executions
            .list_step_keys(id)
            .await
            .map_err(AppError::from)?;
        sort_steps(&mut keys);
        for chunk in keys.chunks(STEP_PAGE_SIZE) {
            each(self.steps_in_key_order(id, chunk).await?)?;
        }
        Ok(())
    }

    /// The step records of `keys`, in their order.
    async fn steps_in_key_order(
        &self, id: &str, keys: &[StepKey],
    ) -> Result<Vec<StepRecord>, AppError> {
        let paths: Vec<String> = keys.iter().map(|k| k.path.clone()).collect();
        let rank: HashMap<&str, usize> = paths
            .iter()
            .enumerate()
            .map(|(i, p)| (p.as_str(), i))
            .collect();
        let mut records = self.svc.executions.get_steps(id, &paths).await?;
        records.sort_by_key(|r| rank.get(r.path.as_str()).copied().unwrap_or(usize::MAX));
        Ok(records)
    }

    /// A page of an execution's step records in start order: after the step the cursor names,
    /// at most `limit` records (1..=1000) and at most [`STEP_PAGE_BYTES`] of them.
    pub async fn execution_steps(
        &self, id: &str, cursor: Option<&str>, limit: usize,
    ) -> Result<StepPage, AppError> {
        self.stored_execution(id).await?;
        self.step_page(id, cursor, limit).await
    }

    async fn step_page(
        &self, id: &str, cursor: Option<&str>, limit: usize,
    ) -> Result<StepPage, AppError> {
        let bad_cursor = || {
            listing_error(StoreError::Invalid(format!(
                "invalid cursor {:?} for the steps of execution {id}",
                cursor.unwrap_or_default()
            )))
        };
        let after = cursor
            .map(|c| wf_core::keys::decode_cursor(c).ok_or_else(bad_cursor))
            .transpose()?;
        let mut keys = self.svc.executions.list_step_keys(id).await?;
        sort_steps(&mut keys);
        let page_keys = step_page_keys(&keys, after.as_deref(), limit).ok_or_else(bad_cursor)?;
        let records = self.steps_in_key_order(id, page_keys).await?;
        Ok(cut_step_page(records, keys.last().map(|k| k.path.as_str())))
    }

    /// Cancel a queued or running execution: its queued tasks are dropped, a running step
    /// finishes but nothing follows.
    pub async fn cancel(&self, id: &str) -> Result<ExecutionView, AppError> {
        let mut current = self.execution(id).await?;
        if current.execution.status.is_terminal() {
            return Err(already_finished(id, current.execution.status));
        }
        let error = wf_core::StepError::new("cancelled", "cancelled through the API");
        self.finish_execution(
            &mut current.execution,
            ExecutionStatus::Cancelled,
            Value::Null,
            Some(error),
        )
        .await?;
        let view = self.execution(id).await?;
        if view.execution.status != ExecutionStatus::Cancelled {
            return Err(already_finished(id, view.execution.status));
        }
        Ok(view)
    }

    /// Run an execution again from a top-level step (default: the start) with its input (or
    /// `input`): the records of the steps before `from_step` are copied, the rest run anew.
    pub async fn rerun(
        &self, id: &str, from_step: Option<String>, input: Option<Value>,
    ) -> Result<Started, AppError> {
        let old = self.execution(id).await?;
        let compiled = self
            .definition(&old.execution.workflow_id, old.execution.version)
            .await?;
        let start_id = compiled
            .workflow
            .start_step()
            .map(|s| s.id.clone())
            .ok_or_else(|| AppError::invalid("no_start_step", "the workflow has no start step"))?;
        let from = from_step.unwrap_or_else(|| start_id.clone());
        if StepPath::parse(&from).is_none_or(|p| p.depth() > 0)
            || compiled.step(&StepPath::top(&from)).is_none()
        {
            let ids: Vec<&str> = compiled.workflow.steps.iter().map(|s| s.id()).collect();
            return Err(AppError::invalid(
                "unknown_step",
                format!(
                    "fromStep {from:?} is not a top-level step of version {} (steps: {})",
                    old.execution.version,
                    ids.join(", ")
                ),
            ));
        }
        let input = input.unwrap_or_else(|| old.execution.input.clone());
        let mut request = StartRequest::new(
            input,
            TriggerInfo::new("rerun")
                .with("rerunOf", id.to_string())
                .with("fromStep", from.clone()),
        );
        request.rerun_of = Some(id.to_string());
        if from == start_id {
            return self.start(&compiled, request).await;
        }
        // Copy the records of the steps before `from`, then start at `from`. The execution
        // stays `queued` until its first task runs, so a crash here is repaired by the sweeper
        // (which re-queues `fromStep`), and copies are idempotent.
        check_input(&compiled, &request.input)?;
        let rerun_steps = downstream(&compiled.workflow, &from);
        let now = self.svc.clock.now_ms();
        let new_id = new_execution_id(now);
        let record = new_record(&compiled, &new_id, request, now);
        self.svc.executions.create_execution(&record, None).await?;
        for step in old
            .steps
            .iter()
            .filter(|s| s.status == StepStatus::Succeeded || s.status == StepStatus::Failed)
        {
            let top = step.path.split(['/', '[']).next().unwrap_or_default();
            if rerun_steps.contains(top) {
                continue;
            }
            let mut copy = step.clone();
            copy.status = StepStatus::Running;
            copy.lease_until = Some(0);
            if let ClaimOutcome::Claimed = self.svc.executions.claim_step(&new_id, &copy, 0).await?
            {
                self.svc.executions.finish_step(&new_id, step).await?;
            }
        }
        let task = StepTask {
            execution_id: new_id.clone(),
            path: from,
            attempt: 1,
        };
        self.svc.queue.send(&[(task, 0)]).await?;
        Ok(Started {
            execution_id: new_id,
            duplicate: false,
            finished: None,
        })
    }
}

fn already_finished(id: &str, status: ExecutionStatus) -> AppError {
    AppError::conflict(
        "finished",
        format!("execution {id} already finished as {}", status.as_str()),
    )
}

/// A store's `Invalid` answer to a listing is about its cursor: `invalid_cursor`, saying what
/// to pass instead.
pub(super) fn listing_error(e: StoreError) -> AppError {
    match e {
        StoreError::Invalid(m) => AppError::invalid(
            "invalid_cursor",
            format!("{m}: pass the nextCursor of the previous page, or leave cursor out"),
        ),
        other => other.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(path: &str, input_bytes: usize) -> StepRecord {
        let mut r = wf_core::damaged::damaged_step("e1", path, 1, "test");
        r.input = Value::String("x".repeat(input_bytes));
        r
    }

    #[test]
    fn a_step_page_is_cut_before_its_byte_budget_and_keeps_at_least_one_record() {
        let third = STEP_PAGE_BYTES / 3;
        // Three records of a bit over a third: two fit, the third starts the next page.
        let page = cut_step_page(
            vec![record("a", third), record("b", third), record("c", third)],
            Some("c"),
        );
        let paths: Vec<&str> = page.items.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(paths, ["a", "b"]);
        assert_eq!(
            page.next_cursor,
            Some(wf_core::keys::encode_cursor("b")),
            "the page does not end at the last step: a cursor after b"
        );
        // One record over the whole budget is answered alone.
        let page = cut_step_page(
            vec![record("a", STEP_PAGE_BYTES + 1), record("b", 10)],
            Some("b"),
        );
        assert_eq!(page.items.len(), 1);
        assert!(page.next_cursor.is_some());
        // Small records: all of them, no cursor when the page ends at the last step.
        let page = cut_step_page(vec![record("a", 10), record("b", 10)], Some("b"));
        assert_eq!(page.items.len(), 2);
        assert_eq!(page.next_cursor, None);
    }
}
