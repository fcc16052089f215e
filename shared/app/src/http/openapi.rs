//! The OpenAPI 3 document, generated from the handlers' annotations (utoipa) and served at
//! `GET /openapi.json`.

use axum::Json;
use utoipa::OpenApi;

use super::workflows::{ValidationResult, WorkflowSummary};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "wf",
        description = "Workflow automation: webhooks, platform events and the management API. \
            Errors are `{\"error\": {\"code\", \"message\", \"details\"}}`."
    ),
    paths(
        super::hooks::receive,
        super::events::publish,
        super::workflows::list,
        super::workflows::create,
        super::workflows::get_one,
        super::workflows::replace,
        super::workflows::delete,
        super::workflows::validate,
        super::workflows::publish,
        super::workflows::activate,
        super::workflows::deactivate,
        super::workflows::get_config,
        super::workflows::patch_config,
        super::workflows::list_versions,
        super::workflows::get_version,
        super::workflows::rotate_token,
        super::workflows::set_secrets,
        super::executions::run_manual,
        super::executions::list,
        super::executions::list_for_workflow,
        super::executions::get_one,
        super::executions::cancel,
        super::executions::rerun,
        super::ai::generate,
        super::ai::chat,
        super::ai::chat_history,
        super::ai::forget_chat,
        super::ai::cron,
    ),
    components(schemas(WorkflowSummary, ValidationResult)),
    tags(
        (name = "webhooks", description = "Start workflows from signed HTTP requests"),
        (name = "events", description = "Publish platform events"),
        (name = "workflows", description = "Drafts, versions, activation, config"),
        (name = "executions", description = "Runs and their step-by-step history"),
        (name = "ai", description = "AI-assisted authoring: generate, chat about a draft, plain English to cron"),
    )
)]
pub struct ApiDoc;

/// The document as JSON.
pub fn spec() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(spec())
}
