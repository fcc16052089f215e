//! `POST /events`: the local stand-in for the platform's EventBridge bus; and
//! `GET /workflows/{id}/rejected-events`: the events a workflow did not start on, and why.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::IntoParams;
use wf_core::rejection::{EventRejection, RejectionPage};

use super::executions::page_limit;
use super::{AppState, JsonBody, parse_body};
use crate::http::{ApiError, ApiPath, ApiQuery};

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
    State(state): State<AppState>, JsonBody(body): JsonBody,
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

/// A page of a rejections list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RejectionParams {
    /// 1..=1000, default 50.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// `nextCursor` of the previous page (opaque: another string is 400 `invalid_cursor`).
    pub cursor: Option<String>,
}

/// The events a workflow subscribes to that started nothing, newest first: the filter could
/// not be evaluated (`filter`), the detail is not a valid input (`input`), the start was
/// refused (`start`), or the causation chain was at its bound (`depth`, `revisit`). A false
/// filter is not a rejection. Kept as long as executions on AWS; the newest 1,000 per
/// workflow locally.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RejectionList {
    items: Vec<EventRejection>,
    /// The `cursor` of the next page; null on the last page.
    next_cursor: Option<String>,
}

impl From<RejectionPage> for RejectionList {
    fn from(page: RejectionPage) -> Self {
        Self {
            items: page.items,
            next_cursor: page.next_cursor,
        }
    }
}

#[utoipa::path(get, path = "/workflows/{id}/rejected-events", tag = "events",
    params(("id" = String, Path, description = "Workflow id"), RejectionParams),
    responses((status = 200, description = "`{ items, nextCursor }`: events this workflow did not start on, newest first", body = RejectionList),
              (status = 400, description = "Bad limit or cursor"), (status = 404, description = "Unknown workflow")))]
pub async fn rejected(
    State(state): State<AppState>, ApiPath(id): ApiPath<String>,
    ApiQuery(p): ApiQuery<RejectionParams>,
) -> Result<Json<RejectionList>, ApiError> {
    let limit = page_limit(p.limit)?;
    let page = state
        .app
        .rejections(&id, limit, p.cursor.as_deref())
        .await?;
    Ok(Json(page.into()))
}
