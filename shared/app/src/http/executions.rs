//! Executions: manual and test runs, history (filters + cursor pages), detail, cancel, rerun.

use std::collections::HashSet;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use wf_core::StoreError;
use wf_core::engine::CompiledWorkflow;
use wf_core::execution::{
    ExecutionQuery, ExecutionStatus, ExecutionUpdate, ExecutionView, StepStatus, StepTask,
    TriggerInfo,
};
use wf_core::model::Workflow;
use wf_core::path::StepPath;
use wf_core::time_fmt::parse_ms;
use wf_core::validate::validate_value;

use super::{AppState, MAX_WAIT_SECS, RawBody, wait_for_execution};
use crate::http::{ApiError, ApiPath, ApiQuery};
use crate::start::{StartRequest, start_execution};

/// Versions at or above this are snapshots of drafts made for test runs (`?draft=true`); they
/// never appear as published versions.
pub const DRAFT_VERSION_BASE: u32 = 1 << 31;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunParams {
    /// Run the draft instead of the active (or latest) published version.
    #[serde(default)]
    pub draft: bool,
    /// Seconds to wait for the execution to finish (capped at 30).
    pub wait: Option<u64>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RunBody {
    #[serde(default)]
    input: Value,
}

/// Store the draft as an immutable snapshot version keyed by its content, so a test run pins
/// exactly what was run (and repeated runs of the same draft share it).
async fn draft_snapshot(state: &AppState, workflow: &Workflow) -> Result<u32, ApiError> {
    let defs = &state.worker.services().definitions;
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
    Err(ApiError::conflict(
        "busy",
        "could not store the draft snapshot; try again",
    ))
}

/// Answer a started execution: 202 with its id, or with `?wait=N` 200 and the finished record
/// (202 if it is still running when the wait ends).
pub async fn started_response(
    state: &AppState,
    id: &str,
    duplicate: bool,
    wait: Option<u64>,
) -> Result<Response, ApiError> {
    if let Some(secs) = wait {
        let secs = secs.min(MAX_WAIT_SECS);
        if let Some(view) = wait_for_execution(&state.worker, id, secs).await? {
            return Ok((StatusCode::OK, Json(view)).into_response());
        }
    }
    let mut body = json!({ "executionId": id });
    if duplicate {
        body["duplicate"] = Value::Bool(true);
    }
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

#[utoipa::path(post, path = "/workflows/{id}/executions", tag = "executions",
    params(("id" = String, Path, description = "Workflow id"),
           ("draft" = Option<bool>, Query, description = "Run the draft (a test run) instead of the active or latest published version"),
           ("wait" = Option<u64>, Query, description = "Seconds (max 30) to wait for the result")),
    request_body(content = Object, description = "`{ \"input\": ... }`"),
    responses((status = 202, description = "`{ executionId }`"), (status = 200, description = "The finished execution (with ?wait)"),
              (status = 404, description = "Unknown workflow"), (status = 409, description = "Never published (use ?draft=true)"),
              (status = 422, description = "Invalid input (every violation) or invalid draft (every problem)")))]
pub async fn run_manual(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(params): ApiQuery<RunParams>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let req: RunBody = if body.iter().all(u8::is_ascii_whitespace) {
        RunBody::default()
    } else {
        super::parse_body(&body)?
    };
    let input = if req.input.is_null() {
        json!({})
    } else {
        req.input
    };
    let svc = state.worker.services();
    let meta = svc
        .definitions
        .get_meta(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("workflow {id} does not exist")))?;
    let (compiled, trigger) = if params.draft {
        let draft = svc
            .definitions
            .get_draft(&id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("workflow {id} has no draft")))?;
        let report = validate_value(&draft);
        let Some(workflow) = report.workflow else {
            return Err(ApiError::unprocessable(
                "invalid_workflow",
                format!(
                    "the draft has {} problem(s); fix them to test it",
                    report.problems.len()
                ),
            )
            .with_details(json!({ "problems": report.problems })));
        };
        let version = draft_snapshot(&state, &workflow).await?;
        (
            state.worker.definition(&id, version).await?,
            TriggerInfo::new("test").with("draft", true),
        )
    } else {
        let version = meta
            .active_version
            .filter(|_| meta.active)
            .unwrap_or(meta.latest_version);
        if version == 0 {
            return Err(ApiError::conflict(
                "not_published",
                format!(
                    "workflow {id} has never been published: publish it, or test the draft with ?draft=true"
                ),
            ));
        }
        (
            state.worker.definition(&id, version).await?,
            TriggerInfo::new("manual"),
        )
    };
    let started = start_execution(svc, &compiled, StartRequest::new(input, trigger)).await?;
    started_response(
        &state,
        &started.execution_id,
        started.duplicate,
        params.wait,
    )
    .await
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListParams {
    pub workflow_id: Option<String>,
    pub status: Option<String>,
    pub trigger: Option<String>,
    pub version: Option<u32>,
    pub started_after: Option<String>,
    pub started_before: Option<String>,
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

fn query_of(p: ListParams) -> Result<ExecutionQuery, ApiError> {
    let status = match p.status.as_deref() {
        None => None,
        Some(s) => Some(ExecutionStatus::parse(s).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_query",
                format!("status {s:?} is not one of queued, running, succeeded, failed, timed_out, cancelled"),
            )
        })?),
    };
    let time = |name: &str, v: Option<String>| -> Result<Option<i64>, ApiError> {
        v.map(|s| {
            parse_ms(&s).ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_query",
                    format!("{name} {s:?} is not an RFC 3339 time like 2026-11-24T09:00:00Z"),
                )
            })
        })
        .transpose()
    };
    let limit = p.limit.unwrap_or(50);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::bad_request(
            "invalid_query",
            "limit must be between 1 and 1000",
        ));
    }
    Ok(ExecutionQuery {
        workflow_id: p.workflow_id,
        status,
        trigger: p.trigger,
        version: p.version,
        started_after: time("startedAfter", p.started_after)?,
        started_before: time("startedBefore", p.started_before)?,
        limit,
        cursor: p.cursor,
    })
}

async fn list_page(state: &AppState, q: ExecutionQuery) -> Result<Json<Value>, ApiError> {
    let page = state
        .worker
        .services()
        .executions
        .list_executions(&q)
        .await?;
    Ok(Json(
        json!({ "items": page.items, "nextCursor": page.next_cursor }),
    ))
}

#[utoipa::path(get, path = "/executions", tag = "executions",
    params(("workflowId" = Option<String>, Query, description = "Only this workflow"),
           ("status" = Option<String>, Query, description = "queued | running | succeeded | failed | timed_out | cancelled"),
           ("trigger" = Option<String>, Query, description = "webhook | schedule | event | manual | test | rerun"),
           ("version" = Option<u32>, Query, description = "Only this version"),
           ("startedAfter" = Option<String>, Query, description = "RFC 3339, inclusive"),
           ("startedBefore" = Option<String>, Query, description = "RFC 3339, exclusive"),
           ("limit" = Option<usize>, Query, description = "1..=1000, default 50"),
           ("cursor" = Option<String>, Query, description = "nextCursor of the previous page")),
    responses((status = 200, description = "`{ items, nextCursor }`, newest first"), (status = 400, description = "Bad filter or cursor")))]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<ListParams>,
) -> Result<Json<Value>, ApiError> {
    list_page(&state, query_of(p)?).await
}

#[utoipa::path(get, path = "/workflows/{id}/executions", tag = "executions",
    params(("id" = String, Path, description = "Workflow id")),
    responses((status = 200, description = "Like GET /executions?workflowId={id}"), (status = 404, description = "Unknown workflow")))]
pub async fn list_for_workflow(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(mut p): ApiQuery<ListParams>,
) -> Result<Json<Value>, ApiError> {
    if state
        .worker
        .services()
        .definitions
        .get_meta(&id)
        .await?
        .is_none()
    {
        return Err(ApiError::not_found(format!("workflow {id} does not exist")));
    }
    p.workflow_id = Some(id);
    list_page(&state, query_of(p)?).await
}

async fn view(state: &AppState, id: &str) -> Result<ExecutionView, ApiError> {
    let store = &state.worker.services().executions;
    let execution = store
        .get_execution(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("execution {id} does not exist")))?;
    let steps = store.list_steps(id).await?;
    Ok(ExecutionView { execution, steps })
}

#[utoipa::path(get, path = "/executions/{id}", tag = "executions",
    params(("id" = String, Path, description = "Execution id")),
    responses((status = 200, description = "The execution with every step record"), (status = 404, description = "Unknown execution")))]
pub async fn get_one(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ExecutionView>, ApiError> {
    Ok(Json(view(&state, &id).await?))
}

#[utoipa::path(post, path = "/executions/{id}/cancel", tag = "executions",
    params(("id" = String, Path, description = "Execution id")),
    responses((status = 200, description = "Cancelled: queued tasks of it are dropped, a running step finishes but nothing follows"),
              (status = 404, description = "Unknown execution"), (status = 409, description = "Already finished")))]
pub async fn cancel(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ExecutionView>, ApiError> {
    let svc = state.worker.services();
    let update = ExecutionUpdate {
        status: ExecutionStatus::Cancelled,
        output: None,
        error: Some(wf_core::StepError::new(
            "cancelled",
            "cancelled through the API",
        )),
        finished_at: Some(svc.clock.now_ms()),
    };
    let current = view(&state, &id).await?;
    if !svc.executions.update_execution(&id, &update).await? {
        return Err(ApiError::conflict(
            "finished",
            format!(
                "execution {id} already finished as {}",
                current.execution.status.as_str()
            ),
        ));
    }
    Ok(Json(view(&state, &id).await?))
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RerunBody {
    /// A top-level step id to start from (default: the start step).
    from_step: Option<String>,
    /// A new input (default: the original execution's input).
    input: Option<Value>,
}

/// Step ids reachable from `from` at the top level (they re-run; the others are copied).
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

#[utoipa::path(post, path = "/executions/{id}/rerun", tag = "executions",
    params(("id" = String, Path, description = "Execution id"), ("wait" = Option<u64>, Query, description = "Seconds (max 30) to wait")),
    request_body(content = Object, description = "`{ \"fromStep\": \"notify\", \"input\": {...} }` (both optional)"),
    responses((status = 202, description = "`{ executionId }` of the new execution (it links to the old one with rerunOf)"),
              (status = 404, description = "Unknown execution"), (status = 422, description = "Unknown step, or invalid input")))]
pub async fn rerun(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(params): ApiQuery<RunParams>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let req: RerunBody = if body.iter().all(u8::is_ascii_whitespace) {
        RerunBody::default()
    } else {
        super::parse_body(&body)?
    };
    let old = view(&state, &id).await?;
    let compiled: std::sync::Arc<CompiledWorkflow> = state
        .worker
        .definition(&old.execution.workflow_id, old.execution.version)
        .await?;
    let start_id = compiled
        .workflow
        .start_step()
        .map(|s| s.id.clone())
        .ok_or_else(|| {
            ApiError::unprocessable("no_start_step", "the workflow has no start step")
        })?;
    let from = req.from_step.unwrap_or_else(|| start_id.clone());
    if StepPath::parse(&from).is_none_or(|p| p.depth() > 0)
        || compiled.step(&StepPath::top(&from)).is_none()
    {
        let ids: Vec<&str> = compiled.workflow.steps.iter().map(|s| s.id()).collect();
        return Err(ApiError::unprocessable(
            "unknown_step",
            format!(
                "fromStep {from:?} is not a top-level step of version {} (steps: {})",
                old.execution.version,
                ids.join(", ")
            ),
        ));
    }
    let input = req.input.unwrap_or_else(|| old.execution.input.clone());
    let mut request = StartRequest::new(
        input,
        TriggerInfo::new("rerun")
            .with("rerunOf", id.clone())
            .with("fromStep", from.clone()),
    );
    request.rerun_of = Some(id.clone());
    if from == start_id {
        let started = start_execution(state.worker.services(), &compiled, request).await?;
        return started_response(&state, &started.execution_id, false, params.wait).await;
    }
    // Copy the records of the steps before `from`, then start at `from`.
    crate::start::check_input(&compiled, &request.input)
        .map_err(crate::start::StartError::InvalidInput)?;
    let rerun_steps = downstream(&compiled.workflow, &from);
    let svc = state.worker.services();
    let new_id = crate::start::new_execution_id(svc.clock.now_ms());
    let record = crate::start::new_record(&compiled, &new_id, request, svc.clock.now_ms());
    svc.executions.create_execution(&record, None).await?;
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
        if let wf_core::execution::ClaimOutcome::Claimed =
            svc.executions.claim_step(&new_id, &copy, 0).await?
        {
            svc.executions.finish_step(&new_id, step).await?;
        }
    }
    let task = StepTask {
        execution_id: new_id.clone(),
        path: from,
        attempt: 1,
    };
    svc.queue.send(&[(task, 0)]).await?;
    started_response(&state, &new_id, false, params.wait).await
}
