//! Executions: manual and test runs, history (filters + cursor pages), detail, cancel, rerun.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use wf_core::execution::{
    ExecutionPage, ExecutionQuery, ExecutionRecord, ExecutionStatus, ExecutionView, StepPage,
};
use wf_core::time_fmt::parse_ms;

use super::{AppState, JsonBody, MAX_WAIT_SECS};
use crate::app::executions::Started;
use crate::http::{ApiError, ApiPath, ApiQuery};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunParams {
    /// Run the draft instead of the active (or latest) published version.
    #[serde(default)]
    pub draft: bool,
    /// Seconds to wait for the execution to finish (capped at 30).
    pub wait: Option<u64>,
}

#[derive(Debug, Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RunBody {
    /// The execution's input (any JSON; `{}` when left out).
    #[serde(default)]
    #[schema(value_type = Object)]
    input: Value,
}

/// `200` with a finished execution. Serialized into one buffer of about its size rather than by
/// `Json`, whose buffer starts at 128 bytes and doubles: each growth past 1 KiB was a
/// `realloc` that made glibc consolidate its free lists (2% of `wf dev`'s CPU at c=16).
fn view_answer(view: &ExecutionView) -> Response {
    let mut body = Vec::with_capacity(VIEW_ANSWER_BYTES);
    match serde_json::to_writer(&mut body, view) {
        Ok(()) => (
            StatusCode::OK,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response(),
        // Not reached (the view is plain JSON); answered as `Json` would.
        Err(e) => ApiError::from(crate::app::AppError::permanent("serialize", e.to_string()))
            .into_response(),
    }
}

/// What a small execution's answer takes (the order-alert shape's is about 1.5 KB).
const VIEW_ANSWER_BYTES: usize = 4096;

/// Store the draft as an immutable snapshot version keyed by its content, so a test run pins
/// exactly what was run (and repeated runs of the same draft share it).
/// `202 {executionId}` (`duplicate: true` for a repeated key), or with `?wait=N` the
/// finished execution when it finishes within N seconds (at most 30).
pub async fn started_response(
    state: &AppState, started: &Started, wait: Option<u64>,
) -> Result<Response, ApiError> {
    let (id, duplicate) = (started.execution_id.as_str(), started.duplicate);
    if let Some(secs) = wait {
        if let Some(view) = &started.finished {
            return Ok(view_answer(view));
        }
        let max = Duration::from_secs(secs.min(MAX_WAIT_SECS));
        if let Some(view) = state.app.wait_finished(id, Some(max)).await? {
            return Ok(view_answer(&view));
        }
    }
    let body = StartedAnswer {
        execution_id: id.to_string(),
        duplicate,
    };
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

#[utoipa::path(post, path = "/workflows/{id}/executions", tag = "executions",
    params(("id" = String, Path, description = "Workflow id"),
           ("draft" = Option<bool>, Query, description = "Run the draft (a test run) instead of the active or latest published version"),
           ("wait" = Option<u64>, Query, description = "Seconds (max 30) to wait for the result")),
    request_body(content = Option<RunBody>, description = "`{ \"input\": ... }` (optional)"),
    responses((status = 202, description = "`{ executionId }`", body = StartedAnswer), (status = 200, description = "The finished execution (with ?wait)", body = wf_core::execution::ExecutionView),
              (status = 404, description = "Unknown workflow"), (status = 409, description = "Never published (use ?draft=true)"),
              (status = 422, description = "Invalid input (every violation) or invalid draft (every problem)")))]
pub async fn run_manual(
    State(state): State<AppState>, ApiPath(id): ApiPath<String>,
    ApiQuery(params): ApiQuery<RunParams>, JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let req: RunBody = super::parse_optional_body(&body)?;
    let input = if req.input.is_null() {
        json!({})
    } else {
        req.input
    };
    let started = state.app.run_workflow(&id, input, params.draft).await?;
    started_response(&state, &started, params.wait).await
}

/// Filters and page of an executions list (`workflowId` is the path's on
/// `/workflows/{id}/executions`, so it is documented on `GET /executions` only).
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    #[param(ignore)]
    pub workflow_id: Option<String>,
    #[param(value_type = Option<wf_core::execution::ExecutionStatus>)]
    pub status: Option<String>,
    #[param(value_type = Option<super::schemas::TriggerType>)]
    pub trigger: Option<String>,
    /// Only this version.
    #[param(value_type = Option<u64>, maximum = 4294967295_u64)]
    pub version: Option<u32>,
    /// RFC 3339, inclusive.
    #[param(format = DateTime)]
    pub started_after: Option<String>,
    /// RFC 3339, exclusive.
    #[param(format = DateTime)]
    pub started_before: Option<String>,
    /// 1..=1000, default 50.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// `nextCursor` of the previous page (opaque: another string is 400 `invalid_cursor`).
    pub cursor: Option<String>,
}

/// A page of executions, newest first (without their steps).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionList {
    #[schema(value_type = Vec<wf_core::execution::ExecutionRecord>)]
    items: Vec<ExecutionRecord>,
    /// The `cursor` of the next page; null on the last page.
    next_cursor: Option<String>,
}

impl From<ExecutionPage> for ExecutionList {
    fn from(page: ExecutionPage) -> Self {
        Self {
            items: page.items,
            next_cursor: page.next_cursor,
        }
    }
}

/// `202`: the execution started (`duplicate: true` when an idempotency key was seen before:
/// the first execution's id).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StartedAnswer {
    execution_id: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    #[schema(value_type = Option<bool>)]
    duplicate: bool,
}

/// The trigger types an execution can have (`GET /executions?trigger=`).
const TRIGGERS: [&str; 6] = ["webhook", "schedule", "event", "manual", "test", "rerun"];

/// A list's `limit`: 1..=1000, 50 when left out.
pub(crate) fn page_limit(limit: Option<usize>) -> Result<usize, ApiError> {
    match limit.unwrap_or(50) {
        limit @ 1..=1000 => Ok(limit),
        _ => Err(ApiError::bad_request(
            "invalid_query",
            "limit must be between 1 and 1000",
        )),
    }
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
    if let Some(t) = p.trigger.as_deref()
        && !TRIGGERS.contains(&t)
    {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("trigger {t:?} is not one of {}", TRIGGERS.join(", ")),
        ));
    }
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
    let limit = page_limit(p.limit)?;
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

#[utoipa::path(get, path = "/executions", tag = "executions",
    params(("workflowId" = Option<String>, Query, description = "Only this workflow"), ListParams),
    responses((status = 200, description = "`{ items, nextCursor }`, newest first", body = ExecutionList), (status = 400, description = "Bad filter or cursor")))]
pub async fn list(
    State(state): State<AppState>, ApiQuery(p): ApiQuery<ListParams>,
) -> Result<Json<ExecutionList>, ApiError> {
    let page = state.app.list_executions(&query_of(p)?).await?;
    Ok(Json(page.into()))
}

#[utoipa::path(get, path = "/workflows/{id}/executions", tag = "executions",
    params(("id" = String, Path, description = "Workflow id"), ListParams),
    responses((status = 200, description = "Like GET /executions?workflowId={id}", body = ExecutionList), (status = 404, description = "Unknown workflow")))]
pub async fn list_for_workflow(
    State(state): State<AppState>, ApiPath(id): ApiPath<String>, ApiQuery(p): ApiQuery<ListParams>,
) -> Result<Json<ExecutionList>, ApiError> {
    let page = state.app.workflow_executions(&id, query_of(p)?).await?;
    Ok(Json(page.into()))
}

#[utoipa::path(get, path = "/executions/{id}", tag = "executions",
    params(("id" = String, Path, description = "Execution id")),
    responses((status = 200, description = "The execution with its step records in start order (the first page, with `stepsCursor`, when there are more than 200 or 4 MiB)", body = wf_core::execution::ExecutionView), (status = 404, description = "Unknown execution")))]
pub async fn get_one(
    State(state): State<AppState>, ApiPath(id): ApiPath<String>,
) -> Result<Json<ExecutionView>, ApiError> {
    Ok(Json(state.app.execution(&id).await?))
}

/// A page of step records.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StepsParams {
    /// 1..=1000, default 50 (a page also stops before 4 MiB of records).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// `stepsCursor` of the execution, or `nextCursor` of the previous page (opaque: another
    /// string is 400 `invalid_cursor`).
    pub cursor: Option<String>,
}

#[utoipa::path(get, path = "/executions/{id}/steps", tag = "executions",
    params(("id" = String, Path, description = "Execution id"), StepsParams),
    responses((status = 200, description = "`{ items, nextCursor }`: step records in the order they started", body = wf_core::execution::StepPage),
              (status = 400, description = "Bad limit or cursor"), (status = 404, description = "Unknown execution")))]
pub async fn steps(
    State(state): State<AppState>, ApiPath(id): ApiPath<String>, ApiQuery(p): ApiQuery<StepsParams>,
) -> Result<Json<StepPage>, ApiError> {
    let limit = page_limit(p.limit)?;
    Ok(Json(
        state
            .app
            .execution_steps(&id, p.cursor.as_deref(), limit)
            .await?,
    ))
}

#[utoipa::path(post, path = "/executions/{id}/cancel", tag = "executions",
    params(("id" = String, Path, description = "Execution id")),
    responses((status = 200, description = "Cancelled: queued tasks of it are dropped, a running step finishes but nothing follows", body = wf_core::execution::ExecutionView),
              (status = 404, description = "Unknown execution"), (status = 409, description = "Already finished")))]
pub async fn cancel(
    State(state): State<AppState>, ApiPath(id): ApiPath<String>,
) -> Result<Json<ExecutionView>, ApiError> {
    Ok(Json(state.app.cancel(&id).await?))
}

#[derive(Debug, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RerunBody {
    /// A top-level step id to start from (default: the start step).
    from_step: Option<String>,
    /// A new input (default: the original execution's input).
    #[schema(value_type = Option<Object>)]
    input: Option<Value>,
}

/// Step ids reachable from `from` at the top level (they re-run; the others are copied).

#[utoipa::path(post, path = "/executions/{id}/rerun", tag = "executions",
    params(("id" = String, Path, description = "Execution id"), ("wait" = Option<u64>, Query, description = "Seconds (max 30) to wait")),
    request_body(content = Option<RerunBody>, description = "`{ \"fromStep\": \"notify\", \"input\": {...} }` (both optional)"),
    responses((status = 202, description = "`{ executionId }` of the new execution (it links to the old one with rerunOf)", body = StartedAnswer),
              (status = 200, description = "The finished execution (with ?wait)", body = wf_core::execution::ExecutionView),
              (status = 404, description = "Unknown execution"), (status = 422, description = "Unknown step, or invalid input")))]
pub async fn rerun(
    State(state): State<AppState>, ApiPath(id): ApiPath<String>,
    ApiQuery(params): ApiQuery<RunParams>, JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let req: RerunBody = super::parse_optional_body(&body)?;
    let started = state.app.rerun(&id, req.from_step, req.input).await?;
    started_response(&state, &started, params.wait).await
}
