//! `POST /hooks/{workflowId}/{token}`: a signed JSON body starts the workflow's active version.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::executions::started_response;
use super::{AppState, RawBody};
use crate::app::triggers::{WebhookDelivery, WebhookOutcome};
use crate::http::{ApiError, ApiPath, ApiQuery};

#[derive(Debug, Deserialize)]
pub struct HookParams {
    /// Seconds (max 30) to wait for the execution to finish.
    pub wait: Option<u64>,
}

#[utoipa::path(post, path = "/hooks/{workflowId}/{token}", tag = "webhooks",
    params(("workflowId" = String, Path, description = "Workflow id"),
           ("token" = String, Path, description = "The workflow's webhook token (see GET /workflows/{id})"),
           ("wait" = Option<u64>, Query, description = "Seconds (max 30) to wait for the finished execution"),
           ("Idempotency-Key" = Option<String>, Header, description = "At most one execution per key for 24 h")),
    request_body(content = super::schemas::WebhookInput, description = "The input (JSON; Slack form bodies are accepted for the slack scheme)"),
    responses((status = 202, description = "`{ executionId }` (`duplicate: true` for a repeated key)", body = super::executions::StartedAnswer),
              (status = 200, description = "The finished execution (with ?wait), or Slack's url_verification challenge", body = super::schemas::WebhookFinished),
              (status = 400, description = "Not JSON (with line and column)"), (status = 401, description = "Signature refused (reason given)"),
              (status = 404, description = "Unknown or inactive workflow, or wrong token"), (status = 413, description = "Body over 256 KiB"),
              (status = 503, description = "The webhook's signing secret is not configured (the message names where it is looked for)"),
              (status = 415, description = "Not JSON"), (status = 422, description = "Input fails inputSchema (every violation)")))]
pub async fn receive(
    State(state): State<AppState>, ApiPath((workflow_id, token)): ApiPath<(String, String)>,
    ApiQuery(params): ApiQuery<HookParams>, headers: HeaderMap, RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let delivery = WebhookDelivery {
        workflow_id: &workflow_id,
        token: &token,
        headers: &headers,
        body: &body,
    };
    match state.app.receive_webhook(delivery).await? {
        WebhookOutcome::Challenge(challenge) => {
            Ok((StatusCode::OK, Json(json!({ "challenge": challenge }))).into_response())
        }
        WebhookOutcome::Started(started) => started_response(&state, &started, params.wait).await,
    }
}
