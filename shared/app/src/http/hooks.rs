//! `POST /hooks/{workflowId}/{token}`: a signed JSON body starts the workflow's active version.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use subtle::ConstantTimeEq;
use tracing::{info, warn};
use wf_core::execution::TriggerInfo;
use wf_core::model::{Trigger, WebhookScheme, WebhookTrigger};

use super::executions::started_response;
use super::{AppState, RawBody, parse_json};
use crate::http::{ApiError, ApiPath, ApiQuery};
use crate::start::{StartRequest, start_execution};
use crate::webhooks::signature::{
    Secrets, idempotency_key, secrets_from_source, slack_url_verification, verify,
};

#[derive(Debug, Deserialize)]
pub struct HookParams {
    /// Seconds (max 30) to wait for the execution to finish.
    pub wait: Option<u64>,
}

fn unknown() -> ApiError {
    // The same answer for an unknown workflow, an inactive one and a wrong token.
    ApiError::not_found("no active webhook at this URL")
}

/// JSON (`application/json`, `*+json`), or for Slack form-encoded bodies (slash commands,
/// interactivity), which become a JSON object (a `payload` field holding JSON is decoded).
fn body_as_json(
    headers: &HeaderMap,
    body: &[u8],
    scheme: WebhookScheme,
) -> Result<Value, ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if ct == "application/json" || ct.ends_with("+json") {
        return parse_json(body);
    }
    if ct == "application/x-www-form-urlencoded" && scheme == WebhookScheme::Slack {
        let mut out = Map::new();
        for (k, v) in url::form_urlencoded::parse(body) {
            let value = if k == "payload" {
                serde_json::from_str(&v).unwrap_or(Value::String(v.into_owned()))
            } else {
                Value::String(v.into_owned())
            };
            out.insert(k.into_owned(), value);
        }
        return Ok(Value::Object(out));
    }
    Err(ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        format!(
            "Content-Type {:?} is not accepted: send the body as JSON with Content-Type: application/json",
            if ct.is_empty() { "(none)" } else { ct.as_str() }
        ),
    ))
}

#[utoipa::path(post, path = "/hooks/{workflowId}/{token}", tag = "webhooks",
    params(("workflowId" = String, Path, description = "Workflow id"),
           ("token" = String, Path, description = "The workflow's webhook token (see GET /workflows/{id})"),
           ("wait" = Option<u64>, Query, description = "Seconds (max 30) to wait for the finished execution"),
           ("Idempotency-Key" = Option<String>, Header, description = "At most one execution per key for 24 h")),
    request_body(content = Object, description = "The input (JSON; Slack form bodies are accepted for the slack scheme)"),
    responses((status = 202, description = "`{ executionId }` (`duplicate: true` for a repeated key)"),
              (status = 200, description = "The finished execution (with ?wait), or Slack's url_verification challenge"),
              (status = 400, description = "Not JSON (with line and column)"), (status = 401, description = "Signature refused (reason given)"),
              (status = 404, description = "Unknown or inactive workflow, or wrong token"), (status = 413, description = "Body over 256 KiB"),
              (status = 415, description = "Not JSON"), (status = 422, description = "Input fails inputSchema (every violation)")))]
pub async fn receive(
    State(state): State<AppState>,
    ApiPath((workflow_id, token)): ApiPath<(String, String)>,
    ApiQuery(params): ApiQuery<HookParams>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let svc = state.worker.services();
    let meta = svc
        .definitions
        .get_meta(&workflow_id)
        .await?
        .ok_or_else(unknown)?;
    let expected = meta.webhook_token.as_deref().unwrap_or_default();
    let token_ok: bool = expected.as_bytes().ct_eq(token.as_bytes()).into();
    let version = meta.active_version.filter(|_| meta.active);
    let (Some(version), true) = (version, token_ok && !expected.is_empty()) else {
        return Err(unknown());
    };
    let compiled = state.worker.definition(&workflow_id, version).await?;
    let trigger: WebhookTrigger = compiled
        .workflow
        .triggers()
        .iter()
        .find_map(|t| match t {
            Trigger::Webhook(w) => Some(w.clone()),
            _ => None,
        })
        .ok_or_else(unknown)?;
    let secrets = if !meta.webhook_secrets.is_empty() {
        Secrets::new(meta.webhook_secrets.clone())
            .with_source("the API (PUT /workflows/{id}/webhook/secrets)")
    } else {
        match &trigger.secret_env {
            Some(var) => secrets_from_source(&*svc.secrets, var),
            None => Secrets::default().with_source("no secretEnv on the webhook trigger"),
        }
    };
    let now_secs = svc.clock.now_ms() / 1000;
    let verified = match verify(trigger.scheme, &secrets, &headers, &body, now_secs) {
        Ok(v) => v,
        Err(e) => {
            state
                .metrics
                .incr("wf_webhook_signature_failures_total", e.reason());
            warn!(workflow_id = %workflow_id, reason = e.reason(), error = %e, "webhook refused");
            let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::UNAUTHORIZED);
            return Err(ApiError::new(status, "signature", e.to_string())
                .with_details(json!({ "reason": e.reason() })));
        }
    };
    if trigger.scheme == WebhookScheme::Slack
        && let Some(challenge) = slack_url_verification(&body)
    {
        return Ok((StatusCode::OK, Json(json!({ "challenge": challenge }))).into_response());
    }
    let input = body_as_json(&headers, &body, trigger.scheme)?;
    let key = idempotency_key(&headers, &verified);
    let mut request = StartRequest::new(input, TriggerInfo::new("webhook"));
    if let Some(k) = &key {
        request.trigger = request.trigger.with("idempotencyKey", k.clone());
    }
    request.dedupe_key = key.map(|k| format!("webhook:{k}"));
    let started = start_execution(svc, &compiled, request).await?;
    info!(workflow_id = %workflow_id, execution_id = %started.execution_id, duplicate = started.duplicate, "webhook accepted");
    started_response(
        &state,
        &started.execution_id,
        started.duplicate,
        params.wait,
    )
    .await
}
