//! The HTTP surface: webhooks, the local event bus endpoint and the management API, as one axum
//! Router over [`AppState`]. `wf dev` serves it; the Lambda functions serve the very same router.
//! Handlers read the raw body and parse JSON themselves, so every error has the one shape
//! `{"error": {"code", "message", "details"}}` ([`ApiError`]).

mod ai;
mod catalog;
pub mod console;
mod error;
mod events;
mod executions;
mod hooks;
pub mod openapi;
mod schemas;
mod stream;
#[cfg(test)]
mod tests;
mod workflows;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
pub use error::{
    ApiError, ApiPath, ApiQuery, is_blank, parse_body, parse_json, parse_optional_body,
    whole_number,
};

use crate::app::App;

/// Largest accepted request body (webhooks, events, API writes).
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// Largest workflow definition a write or validation takes (`POST /workflows`, `PUT
/// /workflows/{id}`, `POST /workflows/{id}/validate`): a draft is stored whole in one item,
/// and DynamoDB's item limit is 400 KB, so 384 KiB leaves room for the item's keys (a larger
/// compacted draft is still refused by the store, 413 `too_large`).
pub const MAX_DEFINITION_BYTES: usize = 384 * 1024;
/// Longest accepted request URI (path and query), in bytes: longer is a 414 in the error shape.
/// (Past 65,534 bytes hyper itself answers 414 with an empty body, before any router runs.)
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// Upper bound of `?wait=` in seconds.
pub const MAX_WAIT_SECS: u64 = 30;

/// Everything a handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub app: Arc<App>,
    /// Base URL printed in webhook URLs (`http://127.0.0.1:3000`).
    pub public_url: String,
}

impl AppState {
    pub fn new(app: Arc<App>, public_url: impl Into<String>) -> Self {
        Self {
            app,
            public_url: public_url.into(),
        }
    }
}

/// The whole HTTP surface (`wf dev`, and the api function).
pub fn router(state: AppState) -> Router {
    // The web console (`console/`, embedded): `/`, its files, and its page for unknown non-API paths.
    let console = Router::new().route("/", get(console::root));
    finish(hook_routes().merge(api_routes()).merge(console), state).fallback(console::fallback)
}

/// Only the webhook route (and `/health`): what the public webhook function serves, so that its
/// unauthenticated URL exposes nothing of the management API.
pub fn hooks_router(state: AppState) -> Router {
    finish(hook_routes(), state)
}

fn hook_routes() -> Router<AppState> {
    Router::new()
        .route("/hooks/{workflow_id}/{token}", post(hooks::receive))
        .route("/health", get(|| async { "ok" }))
}

fn api_routes() -> Router<AppState> {
    Router::new()
        .route("/events", post(events::publish))
        .route("/workflows", get(workflows::list).post(workflows::create))
        .route(
            "/workflows/{id}",
            get(workflows::get_one)
                .put(workflows::replace)
                .delete(workflows::delete)
                .post(ai::post_workflow), // POST /workflows/generate
        )
        .route(
            "/workflows/{id}/chat",
            post(ai::chat).get(ai::chat_history).delete(ai::forget_chat),
        )
        .route("/cron", post(ai::cron))
        .route("/workflows/{id}/validate", post(workflows::validate))
        .route("/workflows/{id}/publish", post(workflows::publish))
        .route("/workflows/{id}/activate", post(workflows::activate))
        .route("/workflows/{id}/deactivate", post(workflows::deactivate))
        .route(
            "/workflows/{id}/config",
            get(workflows::get_config).patch(workflows::patch_config),
        )
        .route("/workflows/{id}/versions", get(workflows::list_versions))
        .route("/workflows/{id}/rejected-events", get(events::rejected))
        .route(
            "/workflows/{id}/versions/{version}",
            get(workflows::get_version),
        )
        .route(
            "/workflows/{id}/webhook/rotate",
            post(workflows::rotate_token),
        )
        .route(
            "/workflows/{id}/webhook/secrets",
            axum::routing::put(workflows::set_secrets),
        )
        .route(
            "/workflows/{id}/executions",
            post(executions::run_manual).get(executions::list_for_workflow),
        )
        .route("/executions", get(executions::list))
        .route("/executions/{id}", get(executions::get_one))
        .route("/executions/{id}/steps", get(executions::steps))
        .route("/executions/{id}/cancel", post(executions::cancel))
        .route("/executions/{id}/rerun", post(executions::rerun))
        .route("/executions/{id}/events", get(stream::events))
        .route("/actions", get(catalog::list))
        .route("/openapi.json", get(openapi::document))
        .route("/metrics", get(metrics))
}

/// The answers every router shares: unknown routes and methods in the API's error shape, tracing.
fn finish(routes: Router<AppState>, state: AppState) -> Router {
    routes
        .fallback(|| async { ApiError::not_found("no such route; see /openapi.json") })
        .method_not_allowed_fallback(|uri: axum::http::Uri| async move {
            ApiError::method_not_allowed(uri.path())
        })
        .layer(axum::middleware::from_fn(uri_bound))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// 414 in the API's error shape for a URI over [`MAX_URI_BYTES`].
async fn uri_bound(
    req: axum::extract::Request, next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let len = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if len > MAX_URI_BYTES {
        return ApiError::new(
            axum::http::StatusCode::URI_TOO_LONG,
            "uri_too_long",
            format!(
                "the request URI is {len} bytes, over the limit of {MAX_URI_BYTES} bytes \
                 (MAX_URI_BYTES); send long values in a JSON body"
            ),
        )
        .with_details(serde_json::json!({ "limitBytes": MAX_URI_BYTES, "length": len }))
        .into_response();
    }
    next.run(req).await
}

async fn metrics(axum::extract::State(state): axum::extract::State<AppState>) -> String {
    state.app.metrics().render()
}

/// The raw request body, read up to `LIMIT` bytes ([`MAX_BODY_BYTES`] unless a route says
/// otherwise); larger is a 413 in the API's error shape.
pub struct RawBody<const LIMIT: usize = MAX_BODY_BYTES>(pub axum::body::Bytes);

/// The body of a management API write: [`RawBody`], and when it is not blank its
/// `Content-Type` must be JSON (`application/json` or `*+json`), else 415 as webhooks answer.
/// A blank body (an optional body left out) needs no content type.
pub struct JsonBody<const LIMIT: usize = MAX_BODY_BYTES>(pub axum::body::Bytes);

/// The body of a workflow definition write: a [`JsonBody`] of up to [`MAX_DEFINITION_BYTES`].
pub type DefinitionBody = JsonBody<MAX_DEFINITION_BYTES>;

/// Whether a `Content-Type` header is JSON (the one rule: [`crate::app::json::is_json_content_type`]).
pub fn is_json_content_type(value: Option<&axum::http::HeaderValue>) -> bool {
    crate::app::json::is_json_content_type(value.and_then(|v| v.to_str().ok()))
}

impl<S: Send + Sync, const LIMIT: usize> axum::extract::FromRequest<S> for JsonBody<LIMIT> {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let content_type = req.headers().get(axum::http::header::CONTENT_TYPE).cloned();
        let RawBody::<LIMIT>(body) = RawBody::<LIMIT>::from_request(req, state).await?;
        if !is_blank(&body) && !is_json_content_type(content_type.as_ref()) {
            let sent = content_type
                .as_ref()
                .and_then(|v| v.to_str().ok())
                .unwrap_or("(none)")
                .to_string();
            return Err(ApiError::new(
                axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!(
                    "Content-Type {sent:?} is not accepted: send the body as JSON with \
                     Content-Type: application/json"
                ),
            )
            .with_details(serde_json::json!({ "contentType": sent })));
        }
        Ok(JsonBody(body))
    }
}

impl<S: Send + Sync, const LIMIT: usize> axum::extract::FromRequest<S> for RawBody<LIMIT> {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, _: &S) -> Result<Self, ApiError> {
        let too_large = || {
            ApiError::new(
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!(
                    "the request body is over the limit of {LIMIT} bytes ({} KiB)",
                    LIMIT / 1024
                ),
            )
        };
        let declared = req
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        // Past the limit the answer is 413, but a client still sending its body would see the
        // connection reset instead of the answer: a body up to twice the limit is read to its
        // end and dropped first; a larger one is refused at once (declared) or once that much
        // was read (chunked), so memory stays bounded either way.
        let drain_to = LIMIT.saturating_mul(2);
        if declared.is_some_and(|n| n > drain_to) {
            return Err(too_large());
        }
        let mut stream = req.into_body().into_data_stream();
        let mut body = Vec::new();
        let mut read = 0usize;
        while let Some(chunk) = futures::StreamExt::next(&mut stream).await {
            let chunk = chunk.map_err(|_| too_large())?;
            read = read.saturating_add(chunk.len());
            if read > drain_to {
                return Err(too_large());
            }
            if read <= LIMIT {
                body.extend_from_slice(&chunk);
            }
        }
        if read > LIMIT {
            return Err(too_large());
        }
        Ok(RawBody(body.into()))
    }
}
