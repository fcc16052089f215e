//! `POST /events`: the local stand-in for the platform's EventBridge bus.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AppState, JsonBody, parse_body};
use crate::http::ApiError;

/// An event: its type, detail and your id for it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventBody {
    #[serde(rename = "type")]
    #[schema(pattern = "^[A-Za-z0-9._-]{1,128}$", example = "order.created")]
    event_type: String,
    /// Any JSON: what filters and the started workflows see as `event.detail`.
    #[serde(default)]
    #[schema(value_type = Object)]
    detail: Value,
    /// Your id for this event: a repeat with the same id starts nothing new.
    id: Option<String>,
    #[serde(default)]
    source: Option<String>,
}

#[utoipa::path(post, path = "/events", tag = "events",
    request_body(content = EventBody, description = "`{ \"type\": \"order.created\", \"detail\": {...}, \"id\": \"optional\" }`"),
    responses((status = 202, description = "`{ id, type }`: every active workflow subscribed to the type whose filter is true starts once per id"),
              (status = 400, description = "Not JSON, or no valid type"), (status = 413, description = "Over 256 KiB")))]
pub async fn publish(
    State(state): State<AppState>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let req: EventBody = parse_body(&body)?;
    let id = state
        .app
        .publish_event(&req.event_type, req.detail, req.id, req.source)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "id": id, "type": req.event_type })),
    )
        .into_response())
}
