//! HTTP handlers of AI-assisted authoring (the use cases are in [`crate::ai`]): generate a
//! workflow, refine a draft by chat (and its history), plain English to cron.
//!
//! The provider is the worker's configured `Services.llm`. The model and per-call timeout come
//! from an [`AiSettings`] request extension when a host adds one (`.layer(Extension(..))`),
//! else from the environment (`WF_AI_MODEL`, `WF_AI_TIMEOUT_SECS`).

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use wf_core::time_fmt::{format_ms, parse_ms};

use super::{AppState, RawBody, parse_body};
use crate::ai::chat::{self, ChatRequest};
use crate::ai::cron::{CronSource, resolve};
use crate::ai::generate::{GenerateRequest, generate as generate_draft};
use crate::ai::{AiError, AiSettings};
use crate::http::ApiError;

fn settings(ext: Option<Extension<AiSettings>>) -> AiSettings {
    ext.map(|e| e.0).unwrap_or_else(AiSettings::from_env)
}

fn is_blank(body: &[u8]) -> bool {
    body.iter().all(u8::is_ascii_whitespace)
}

impl From<AiError> for ApiError {
    fn from(e: AiError) -> Self {
        match e {
            AiError::Provider(err) => {
                let mut details = json!({ "providerCode": err.code, "retryable": err.retryable });
                if let Some(d) = &err.details {
                    details["provider"] = (**d).clone();
                }
                if err.code == "timeout" {
                    ApiError::new(
                        StatusCode::GATEWAY_TIMEOUT,
                        "llm_timeout",
                        format!("the LLM did not answer in time: {}", err.message),
                    )
                } else if err.retryable {
                    ApiError::new(
                        StatusCode::BAD_GATEWAY,
                        "llm_unavailable",
                        format!("the LLM provider is unavailable: {}", err.message),
                    )
                } else {
                    ApiError::new(
                        StatusCode::BAD_GATEWAY,
                        "llm_error",
                        format!("the LLM provider refused the request: {}", err.message),
                    )
                }
                .with_details(details)
            }
            AiError::Invalid(inv) => ApiError::unprocessable(
                "ai_invalid_workflow",
                format!(
                    "the model's workflow still has {} problem(s) after {} answer(s); nothing was saved",
                    inv.problems.len(),
                    inv.rounds
                ),
            )
            .with_details(serde_json::to_value(&*inv).unwrap_or(Value::Null)),
            AiError::Cron(f) => ApiError::unprocessable("invalid_cron", f.message.clone())
                .with_details(json!({ "explanation": f.explanation, "rounds": f.rounds })),
            AiError::NotFound(m) => ApiError::not_found(m),
            AiError::Exists(m) => ApiError::conflict("exists", m),
            e @ AiError::FileBacked { .. } => ApiError::conflict("file_backed", e.to_string()),
            AiError::DraftChanged(m) => ApiError::conflict("draft_changed", m),
            AiError::BadRequest(code, m) => ApiError::unprocessable(code, m),
            AiError::Store(s) => s.into(),
        }
    }
}

#[utoipa::path(post, path = "/workflows/generate", tag = "ai",
    request_body(content = Object, description = "`{ \"name\", \"description\", \"id\"? }`. The configured LLM writes a \
        workflow from the description; it is validated and sent back for repair (at most 3 rounds). Saved only as a \
        draft: never published or activated. Without `id` the id derives from the name (first free of `x`, `x-2`, ...); \
        a given `id` that exists is a 409. Without `description`: an empty draft with a start step (no LLM)."),
    responses((status = 201, description = "The draft, its validation, the model's explanation, rounds and rejected answers"),
              (status = 409, description = "The given id exists"),
              (status = 422, description = "Still invalid after the repair rounds (nothing saved): every remaining problem"),
              (status = 502, description = "The LLM provider failed (`llm_unavailable`, `llm_error`)"),
              (status = 504, description = "The LLM did not answer in time (`llm_timeout`)")))]
pub async fn generate(
    State(state): State<AppState>,
    ext: Option<Extension<AiSettings>>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let req: GenerateRequest = if is_blank(&body) {
        GenerateRequest::default()
    } else {
        parse_body(&body)?
    };
    let out = generate_draft(state.worker.services(), &settings(ext), req).await?;
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

/// `POST /workflows/{id}`: only `/workflows/generate` takes POST. Routed here (not as a static
/// route) so that a workflow whose id is `generate` stays readable at `GET /workflows/generate`.
pub async fn post_workflow(
    state: State<AppState>,
    Path(id): Path<String>,
    ext: Option<Extension<AiSettings>>,
    body: RawBody,
) -> Result<Response, ApiError> {
    if id != "generate" {
        return Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this route does not take that method; see /openapi.json",
        ));
    }
    generate(state, ext, body).await
}

#[utoipa::path(post, path = "/workflows/{id}/chat", tag = "ai",
    params(("id" = String, Path, description = "Workflow id")),
    request_body(content = Object, description = "`{ \"message\": \"make it run on weekdays only\" }`. The model gets the \
        current draft, its problems and the conversation so far, and returns the changed workflow."),
    responses((status = 200, description = "`{ changed, draft, diff: { addedSteps, removedSteps, changedSteps: [{id, keys}], \
        changedConfig, changedFields }, validation, explanation, rounds, rejected }`. The draft is stored only when valid \
        and changed; published versions are never touched"),
              (status = 404, description = "Unknown workflow"),
              (status = 409, description = "Edited in a file (`file_backed`), or the draft changed meanwhile (`draft_changed`)"),
              (status = 422, description = "Still invalid after the repair rounds: the draft is unchanged"),
              (status = 502, description = "The LLM provider failed"), (status = 504, description = "The LLM timed out")))]
pub async fn chat(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ext: Option<Extension<AiSettings>>,
    RawBody(body): RawBody,
) -> Result<Json<chat::ChatReply>, ApiError> {
    let req: ChatRequest = parse_body(&body)?;
    let reply = chat::chat(state.worker.services(), &settings(ext), &id, &req.message).await?;
    Ok(Json(reply))
}

async fn require_workflow(state: &AppState, id: &str) -> Result<(), ApiError> {
    state
        .worker
        .services()
        .definitions
        .get_meta(id)
        .await?
        .map(|_| ())
        .ok_or_else(|| ApiError::not_found(format!("workflow {id} does not exist")))
}

#[utoipa::path(get, path = "/workflows/{id}/chat", tag = "ai",
    params(("id" = String, Path, description = "Workflow id")),
    responses((status = 200, description = "`{ workflowId, turns: [{ at, message, explanation, applied, diff?, problems? }] }`, \
        oldest first, the last 20"),
              (status = 404, description = "Unknown workflow")))]
pub async fn chat_history(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    require_workflow(&state, &id).await?;
    let turns = chat::history(&*state.worker.services().records, &id).await?;
    Ok(Json(json!({ "workflowId": id, "turns": turns })))
}

#[utoipa::path(delete, path = "/workflows/{id}/chat", tag = "ai",
    params(("id" = String, Path, description = "Workflow id")),
    responses((status = 204, description = "The conversation is forgotten (the draft is unchanged)"),
              (status = 404, description = "Unknown workflow")))]
pub async fn forget_chat(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    require_workflow(&state, &id).await?;
    chat::clear_history(&*state.worker.services().records, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CronBody {
    expression: String,
    #[serde(default)]
    ai: bool,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    count: Option<usize>,
}

#[utoipa::path(post, path = "/cron", tag = "ai",
    request_body(content = Object, description = "`{ \"expression\": \"every weekday at 9am\", \"ai\"?: false, \"from\"?: RFC 3339, \
        \"count\"?: 5 }`: cron, preset or plain English. The parser goes first; with `ai: true` what it cannot read goes \
        to the LLM, whose answer is validated as cron."),
    responses((status = 200, description = "`{ input, cron, eventbridge, next, source: parser|ai, explanation, rounds }`: \
        check the next runs before using it"),
              (status = 422, description = "Not readable as a schedule, or EventBridge cannot run it (the fix is in the message)"),
              (status = 502, description = "The LLM provider failed"), (status = 504, description = "The LLM timed out")))]
pub async fn cron(
    State(state): State<AppState>,
    ext: Option<Extension<AiSettings>>,
    RawBody(body): RawBody,
) -> Result<Json<Value>, ApiError> {
    let req: CronBody = parse_body(&body)?;
    let count = req.count.unwrap_or(5);
    if !(1..=100).contains(&count) {
        return Err(ApiError::unprocessable(
            "invalid_request",
            "\"count\" must be between 1 and 100",
        ));
    }
    let svc = state.worker.services();
    let from = match &req.from {
        Some(s) => parse_ms(s).ok_or_else(|| {
            ApiError::unprocessable(
                "invalid_request",
                format!("\"from\" {s:?} is not an RFC 3339 time (e.g. 2026-11-24T08:00:00Z)"),
            )
        })?,
        None => svc.clock.now_ms(),
    };
    let llm = req.ai.then(|| &*svc.llm);
    let resolved = resolve(&req.expression, llm, &settings(ext)).await?;
    let next: Vec<String> = resolved
        .spec
        .next_n(from, count)
        .into_iter()
        .map(format_ms)
        .collect();
    let cron = resolved.spec.expression().to_owned();
    match resolved.spec.to_eventbridge() {
        Ok(eventbridge) => Ok(Json(json!({
            "input": req.expression,
            "cron": cron,
            "eventbridge": eventbridge,
            "next": next,
            "source": resolved.source,
            "explanation": resolved.explanation,
            "rounds": resolved.rounds,
        }))),
        // Only the parser's reading can get here (the model's answers are checked for it).
        Err(e) => Err(
            ApiError::unprocessable("invalid_cron", e).with_details(json!({
                "cron": cron, "next": next, "source": CronSource::Parser,
            })),
        ),
    }
}
