//! The HTTP surface: webhooks, the local event bus endpoint and the management API, as one axum
//! Router over [`AppState`]. `wf dev` serves it; the Lambda functions serve the very same router.
//! Handlers read the raw body and parse JSON themselves, so every error has the one shape
//! `{"error": {"code", "message", "details"}}` ([`ApiError`]).

mod ai;
mod error;
mod events;
mod executions;
mod hooks;
pub mod openapi;
mod wait;
mod workflows;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::routing::{get, post};
pub use error::{ApiError, ApiPath, ApiQuery, parse_body, parse_json};
pub use wait::wait_for_execution;

use crate::activation::TriggerSync;
use crate::worker::Worker;

/// Largest accepted request body (webhooks, events, API writes).
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// Upper bound of `?wait=` in seconds.
pub const MAX_WAIT_SECS: u64 = 30;

/// Counters shown at `GET /metrics` (Prometheus text format).
#[derive(Debug, Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<String, u64>>,
}

impl Metrics {
    pub fn incr(&self, name: &str, label: &str) {
        let key = format!("{name}{{reason=\"{label}\"}}");
        let mut c = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        *c.entry(key).or_insert(0) += 1;
    }

    pub fn get(&self, name: &str, label: &str) -> u64 {
        let key = format!("{name}{{reason=\"{label}\"}}");
        let c = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        c.get(&key).copied().unwrap_or(0)
    }

    pub fn render(&self) -> String {
        let c = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        c.iter().map(|(k, v)| format!("{k} {v}\n")).collect()
    }
}

/// Everything a handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub worker: Arc<Worker>,
    pub triggers: Arc<dyn TriggerSync>,
    pub metrics: Arc<Metrics>,
    /// Base URL printed in webhook URLs (`http://127.0.0.1:3000`).
    pub public_url: String,
}

/// The whole HTTP surface (`wf dev`, and the api function).
pub fn router(state: AppState) -> Router {
    finish(hook_routes().merge(api_routes()), state)
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
        .route("/executions/{id}/cancel", post(executions::cancel))
        .route("/executions/{id}/rerun", post(executions::rerun))
        .route("/openapi.json", get(openapi::document))
        .route("/metrics", get(metrics))
}

/// The answers every router shares: unknown routes and methods in the API's error shape, tracing.
fn finish(routes: Router<AppState>, state: AppState) -> Router {
    routes
        .fallback(|| async { ApiError::not_found("no such route; see /openapi.json") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method; see /openapi.json",
            )
        })
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

async fn metrics(axum::extract::State(state): axum::extract::State<AppState>) -> String {
    state.metrics.render()
}

/// The raw request body, read up to [`MAX_BODY_BYTES`]; larger is a 413 in the API's error shape.
pub struct RawBody(pub axum::body::Bytes);

impl<S: Send + Sync> axum::extract::FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, _: &S) -> Result<Self, ApiError> {
        let too_large = || {
            ApiError::new(
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("the request body is over the limit of {MAX_BODY_BYTES} bytes (256 KiB)"),
            )
        };
        let declared = req
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
            return Err(too_large());
        }
        axum::body::to_bytes(req.into_body(), MAX_BODY_BYTES)
            .await
            .map(RawBody)
            .map_err(|_| too_large())
    }
}
