//! HTTP handlers of AI-assisted authoring (the use cases are in [`crate::ai`]): generate a
//! workflow, refine a draft by chat (and its history), plain English to cron.
//!
//! The provider is the worker's configured `Services.llm`. The model and per-call timeout come
//! from an [`AiSettings`] request extension when a host adds one (`.layer(Extension(..))`),
//! else from the environment (`WF_AI_MODEL`, `WF_AI_TIMEOUT_SECS`).

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use wf_core::time_fmt::format_ms;

use super::{AppState, JsonBody, parse_body, parse_optional_body};
use crate::ai::AiSettings;
use crate::ai::chat::{self, ChatRequest};
use crate::ai::cron::CronSource;
use crate::ai::generate::GenerateRequest;
use crate::http::{ApiError, ApiPath};

fn settings(ext: Option<Extension<AiSettings>>) -> AiSettings {
    ext.map(|e| e.0).unwrap_or_else(AiSettings::from_env)
}

#[utoipa::path(post, path = "/workflows/generate", tag = "ai",
    request_body(content = Option<crate::ai::generate::GenerateRequest>, description = "`{ \"name\", \"description\", \"id\"? }`. The configured LLM writes a \
        workflow from the description; it is validated and sent back for repair (at most 3 rounds). Saved only as a \
        draft: never published or activated. Without `id` the id derives from the name (first free of `x`, `x-2`, ...); \
        a given `id` that exists is a 409. Without `description`: an empty draft with a start step (no LLM)."),
    responses((status = 201, description = "The draft, its validation, the model's explanation, rounds and rejected answers", body = super::schemas::Generated),
              (status = 400, description = "The description is over 8,000 characters (`invalid_description`)"),
              (status = 409, description = "The given id exists"),
              (status = 422, description = "Still invalid after the repair rounds (nothing saved): every remaining problem")))]
pub async fn generate(
    State(state): State<AppState>, ext: Option<Extension<AiSettings>>, JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let req: GenerateRequest = parse_optional_body(&body)?;
    let out = state
        .app
        .generate_workflow(&settings(ext), req, &|_| false)
        .await?;
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

/// `POST /workflows/{id}`: only `/workflows/generate` takes POST. Routed here (not as a static
/// route) so that a workflow whose id is `generate` stays readable at `GET /workflows/generate`.
pub async fn post_workflow(
    state: State<AppState>, ApiPath(id): ApiPath<String>, ext: Option<Extension<AiSettings>>,
    body: JsonBody,
) -> Result<Response, ApiError> {
    if id != "generate" {
        return Err(ApiError::method_not_allowed(&format!("/workflows/{id}")));
    }
    generate(state, ext, body).await
}

#[utoipa::path(post, path = "/workflows/{id}/chat", tag = "ai",
    params(("id" = String, Path, description = "Workflow id")),
    request_body(content = crate::ai::chat::ChatRequest, description = "`{ \"message\": \"make it run on weekdays only\" }`. The model gets the \
        current draft, its problems and the conversation so far, and returns the changed workflow."),
    responses((status = 200, description = "`{ changed, draft, diff: { addedSteps, removedSteps, changedSteps: [{id, keys}], \
        changedConfig, changedFields }, validation, explanation, rounds, rejected }`. The draft is stored only when valid \
        and changed; published versions are never touched", body = super::schemas::ChatReply),
              (status = 404, description = "Unknown workflow"),
              (status = 409, description = "Edited in a file (`file_backed`), or the draft changed meanwhile (`draft_changed`)"),
              (status = 422, description = "Still invalid after the repair rounds: the draft is unchanged")))]
pub async fn chat(
    State(state): State<AppState>, ApiPath(id): ApiPath<String>,
    ext: Option<Extension<AiSettings>>, JsonBody(body): JsonBody,
) -> Result<Json<chat::ChatReply>, ApiError> {
    let req: ChatRequest = parse_body(&body)?;
    let reply = state.app.chat(&settings(ext), &id, &req.message).await?;
    Ok(Json(reply))
}

#[utoipa::path(get, path = "/workflows/{id}/chat", tag = "ai",
    params(("id" = String, Path, description = "Workflow id")),
    responses((status = 200, description = "`{ workflowId, turns: [{ at, message, explanation, applied, diff?, problems? }] }`, \
        oldest first, the last 20", body = super::schemas::ChatHistory),
              (status = 404, description = "Unknown workflow")))]
pub async fn chat_history(
    State(state): State<AppState>, ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let turns = state.app.chat_history(&id).await?;
    Ok(Json(json!({ "workflowId": id, "turns": turns })))
}

#[utoipa::path(delete, path = "/workflows/{id}/chat", tag = "ai",
    params(("id" = String, Path, description = "Workflow id")),
    responses((status = 204, description = "The conversation is forgotten (the draft is unchanged)"),
              (status = 404, description = "Unknown workflow")))]
pub async fn forget_chat(
    State(state): State<AppState>, ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state.app.forget_chat(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A schedule to read: cron, a preset or plain English.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CronBody {
    /// Cron (5 or 6 fields), a preset (`@daily`) or plain English.
    #[schema(min_length = 1, example = "every weekday at 9am")]
    expression: String,
    /// Let the LLM read what the parser cannot.
    #[serde(default)]
    ai: bool,
    /// The next runs are counted from this time (RFC 3339; default: now).
    #[serde(default)]
    #[schema(format = DateTime)]
    from: Option<String>,
    /// How many next runs to list (1..=100, default 5).
    #[serde(default, deserialize_with = "super::whole_number")]
    #[schema(minimum = 1, maximum = 100)]
    count: Option<usize>,
}

#[utoipa::path(post, path = "/cron", tag = "ai",
    request_body(content = CronBody, description = "`{ \"expression\": \"every weekday at 9am\", \"ai\"?: false, \"from\"?: RFC 3339, \
        \"count\"?: 5 }`: cron, preset or plain English. The parser goes first; with `ai: true` what it cannot read goes \
        to the LLM, whose answer is validated as cron."),
    responses((status = 200, description = "`{ input, cron, eventbridge, next, source: parser|ai, explanation, rounds }`: \
        check the next runs before using it", body = super::schemas::CronReading),
              (status = 422, description = "Not readable as a schedule, or EventBridge cannot run it (the fix is in the message)")))]
pub async fn cron(
    State(state): State<AppState>, ext: Option<Extension<AiSettings>>, JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    let req: CronBody = parse_body(&body)?;
    let (resolved, next) = state
        .app
        .resolve_cron(
            &settings(ext),
            &req.expression,
            req.ai,
            req.from.as_deref(),
            req.count.unwrap_or(5),
        )
        .await?;
    let next: Vec<String> = next.into_iter().map(format_ms).collect();
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
            ApiError::unprocessable("invalid_cron", e.message).with_details(json!({
                "cron": cron, "next": next, "source": CronSource::Parser,
            })),
        ),
    }
}
