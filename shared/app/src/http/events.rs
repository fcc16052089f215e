//! `POST /events`: the local stand-in for the platform's EventBridge bus.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use wf_core::ports::PlatformEvent;

use super::{AppState, RawBody, parse_body};
use crate::http::ApiError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventBody {
    #[serde(rename = "type")]
    event_type: String,
    #[serde(default)]
    detail: Value,
    /// Your id for this event: a repeat with the same id starts nothing new.
    id: Option<String>,
    #[serde(default)]
    source: Option<String>,
}

fn valid_type(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 128
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

#[utoipa::path(post, path = "/events", tag = "events",
    request_body(content = Object, description = "`{ \"type\": \"order.created\", \"detail\": {...}, \"id\": \"optional\" }`"),
    responses((status = 202, description = "`{ id, type }`: every active workflow subscribed to the type whose filter is true starts once per id"),
              (status = 400, description = "Not JSON, or no valid type"), (status = 413, description = "Over 256 KiB")))]
pub async fn publish(
    State(state): State<AppState>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let req: EventBody = parse_body(&body)?;
    if !valid_type(&req.event_type) {
        return Err(ApiError::bad_request(
            "invalid_event",
            format!(
                "type {:?} must be 1-128 characters of letters, digits, '.', '_' or '-' (e.g. order.created)",
                req.event_type
            ),
        ));
    }
    let svc = state.worker.services();
    let id = req.id.unwrap_or_else(|| ulid::Ulid::new().to_string());
    let event = PlatformEvent {
        id: id.clone(),
        event_type: req.event_type.clone(),
        source: req.source.unwrap_or_else(|| "api".to_string()),
        detail: if req.detail.is_null() {
            json!({})
        } else {
            req.detail
        },
        time: svc.clock.now_ms(),
    };
    svc.bus.publish(&[event]).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "id": id, "type": req.event_type })),
    )
        .into_response())
}
