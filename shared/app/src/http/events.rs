//! `POST /events`: the local stand-in for the platform's EventBridge bus.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{AppState, JsonBody, parse_body};
use crate::http::ApiError;

/// An event: its type, detail and your id for it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventBody {
    #[serde(rename = "type")]
    #[schema(pattern = "^[A-Za-z0-9._-]{1,128}$", example = "order.created")]
    event_type: String,
    /// A JSON object (EventBridge takes nothing else; `{}` when left out or null): what filters
    /// and the started workflows see as `event.detail`.
    #[serde(default)]
    detail: Option<Map<String, Value>>,
    /// Your id for this event: a repeat with the same id starts nothing new.
    id: Option<String>,
    #[serde(default)]
    source: Option<String>,
}

/// An event taken: its id (yours, or one made for it) and type.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct EventAccepted {
    id: String,
    #[serde(rename = "type")]
    event_type: String,
}

#[utoipa::path(post, path = "/events", tag = "events",
    request_body(content = EventBody, description = "`{ \"type\": \"order.created\", \"detail\": {...}, \"id\": \"optional\" }`"),
    responses((status = 202, description = "`{ id, type }`: every active workflow subscribed to the type whose filter is true starts once per id", body = EventAccepted),
              (status = 400, description = "Not JSON, or no valid type"), (status = 413, description = "Over 256 KiB")))]
pub async fn publish(
    State(state): State<AppState>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let req: EventBody = parse_body(&body)?;
    let id = state
        .app
        .publish_event(
            &req.event_type,
            Value::Object(req.detail.unwrap_or_default()),
            req.id,
            req.source,
        )
        .await?;
    let body = EventAccepted {
        id,
        event_type: req.event_type,
    };
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}
