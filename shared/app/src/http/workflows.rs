//! Management API for workflows: drafts, validation, publishing, activation, config, tokens.
//! Each handler reads the request, calls one use case of [`crate::app::App`] and shapes its
//! answer.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use wf_core::model::Workflow;
use wf_core::ports::WorkflowMeta;
use wf_core::time_fmt::format_ms;
use wf_core::validate::Problem;

use super::{AppState, DefinitionBody, JsonBody, is_blank, parse_json};
use crate::app::workflows::{Published, WorkflowState, validation as validate_draft};
use crate::http::{ApiError, ApiPath};

/// A workflow as the API lists it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowSummary {
    pub id: String,
    pub name: String,
    pub active: bool,
    pub active_version: Option<u32>,
    pub latest_version: u32,
    /// `POST` here to start it (once published); the token is part of the URL.
    pub webhook_url: Option<String>,
    pub has_webhook_secret: bool,
    /// Where the definition comes from when not from this API (`file:workflows/x.json`).
    pub source: Option<String>,
    /// Set when the workflow's triggers (schedule, event rule) are not in place: why the last
    /// sync failed. The next sweep repairs them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger_error: Option<String>,
    pub updated_at: String,
}

/// Validation of a definition: every problem (an error: publishing is refused while any
/// remain) and every warning (publishable, but worth a look), each with a JSON pointer and a
/// hint.
#[derive(Debug, Serialize, ToSchema)]
pub struct ValidationResult {
    pub valid: bool,
    #[schema(value_type = Vec<super::schemas::Problem>)]
    pub problems: Vec<Problem>,
    #[schema(value_type = Vec<super::schemas::Problem>)]
    pub warnings: Vec<Problem>,
}

impl From<wf_core::validate::Report> for ValidationResult {
    fn from(report: wf_core::validate::Report) -> Self {
        Self {
            valid: report.problems.is_empty(),
            problems: report.problems,
            warnings: report.warnings,
        }
    }
}

fn validation(draft: &Value) -> ValidationResult {
    validate_draft(draft).into()
}

fn summary(state: &AppState, meta: &WorkflowMeta, draft: &Value) -> WorkflowSummary {
    let name = draft
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    WorkflowSummary {
        id: meta.id.clone(),
        name,
        active: meta.active,
        active_version: meta.active_version,
        latest_version: meta.latest_version,
        webhook_url: meta
            .webhook_token
            .as_ref()
            .map(|t| format!("{}/hooks/{}/{}", state.public_url, meta.id, t)),
        has_webhook_secret: !meta.webhook_secrets.is_empty(),
        source: meta.source.clone(),
        trigger_error: meta.trigger_error.clone(),
        updated_at: format_ms(meta.updated_at),
    }
}

/// The summary after a change of `meta` (its name is the draft's, read now).
async fn summary_now(state: &AppState, meta: &WorkflowMeta) -> Result<WorkflowSummary, ApiError> {
    let draft = state.app.workflow(&meta.id).await?.draft;
    Ok(summary(state, meta, &draft))
}

/// The answer of every call that returns a draft: summary, draft and its validation.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkflowWithDraft {
    pub workflow: WorkflowSummary,
    /// The draft as stored (it may be invalid: see `validation`); null when there is none.
    pub draft: Value,
    /// The draft's validation (null when there is no draft).
    pub validation: Option<ValidationResult>,
}

fn with_draft(state: &AppState, w: &WorkflowState) -> WorkflowWithDraft {
    WorkflowWithDraft {
        workflow: summary(state, &w.meta, &w.draft),
        draft: w.draft.clone(),
        validation: (!w.draft.is_null()).then(|| validation(&w.draft)),
    }
}

/// `POST /workflows/{id}/publish`: the version, and what changed since the previous one.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublishResult {
    pub version: u32,
    /// Only when the draft equals the latest version (nothing was written): true.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unchanged: Option<bool>,
    /// Only for a new version: steps and config keys changed since the previous one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<VersionDiff>)]
    pub diff: Option<Value>,
    pub workflow: WorkflowSummary,
}

/// Steps (by id, loops' inner steps included) and config keys changed between two versions.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // documentation of `app::workflows::version_diff`'s answer
pub struct VersionDiff {
    added_steps: Vec<String>,
    removed_steps: Vec<String>,
    changed_steps: Vec<String>,
    changed_config: Vec<String>,
}

/// A draft's config, `active` from activation; the other keys as the draft has them (see
/// `WorkflowConfig` for the valid ones: the draft's validation reports the others).
#[derive(Debug, Serialize, ToSchema)]
#[allow(dead_code)] // documentation of `App::config`'s answer
pub struct ConfigAnswer {
    active: bool,
}

/// Config keys to change: `active` (de)activates now; the other keys (see `WorkflowConfig`)
/// edit the draft and apply when published.
#[derive(Debug, Serialize, ToSchema)]
#[allow(dead_code)] // documentation: the handler takes any object of config keys
pub struct ConfigPatch {
    #[schema(nullable = false)]
    active: Option<bool>,
}

/// `PATCH /workflows/{id}/config`: the draft's config and the draft's validation.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConfigPatched {
    #[schema(value_type = ConfigAnswer)]
    config: Value,
    validation: ValidationResult,
}

/// A published version.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionEntry {
    version: u32,
    /// Whether this is the active version of an active workflow.
    active: bool,
}

/// `GET /workflows/{id}/versions`: every published version, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionList {
    versions: Vec<VersionEntry>,
}

#[utoipa::path(get, path = "/workflows", tag = "workflows",
    responses((status = 200, description = "Every workflow", body = Vec<WorkflowSummary>)))]
pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<WorkflowSummary>>, ApiError> {
    let all = state.app.list_workflows().await?;
    Ok(Json(
        all.iter()
            .map(|w| summary(&state, &w.meta, &w.draft))
            .collect(),
    ))
}

#[utoipa::path(post, path = "/workflows", tag = "workflows",
    request_body(content = super::openapi::WorkflowDraft, description = "A workflow definition (a draft may be invalid, but needs a valid `id`)"),
    responses((status = 201, description = "Draft created, with its validation", body = WorkflowWithDraft),
              (status = 400, description = "Not JSON"), (status = 409, description = "The id exists"),
              (status = 422, description = "No valid id")))]
pub async fn create(
    State(state): State<AppState>, JsonBody(body): DefinitionBody,
) -> Result<Response, ApiError> {
    let draft = parse_json(&body)?;
    let created = state.app.create_workflow(draft).await?;
    Ok((StatusCode::CREATED, Json(with_draft(&state, &created))).into_response())
}

#[utoipa::path(get, path = "/workflows/{id}", tag = "workflows",
    params(("id" = String, Path, description = "Workflow id")),
    responses((status = 200, description = "Summary, draft and the draft's validation", body = WorkflowWithDraft), (status = 404, description = "Unknown workflow")))]
pub async fn get_one(
    State(state): State<AppState>, ApiPath(id): ApiPath<String>,
) -> Result<Json<WorkflowWithDraft>, ApiError> {
    let w = state.app.workflow(&id).await?;
    Ok(Json(with_draft(&state, &w)))
}

#[utoipa::path(put, path = "/workflows/{id}", tag = "workflows",
    params(("id" = String, Path, description = "Workflow id")),
    request_body(content = super::openapi::AnyDefinition, description = "The new draft: any JSON (a draft may be invalid; its validation is in the answer). \
        An `id` must be the path's; left out, it is set to it"),
    responses((status = 200, description = "Draft replaced, with its validation", body = WorkflowWithDraft), (status = 404, description = "Unknown workflow"),
              (status = 409, description = "The workflow is edited in a file"), (status = 422, description = "The body's id differs")))]
pub async fn replace(
    State(state): State<AppState>, ApiPath(id): ApiPath<String>, JsonBody(body): DefinitionBody,
) -> Result<Json<WorkflowWithDraft>, ApiError> {
    let draft = parse_json(&body)?;
    let w = state.app.replace_draft(&id, draft).await?;
    Ok(Json(with_draft(&state, &w)))
}

#[utoipa::path(delete, path = "/workflows/{id}", tag = "workflows",
    params(("id" = String, Path, description = "Workflow id")),
    responses((status = 204, description = "Deleted (executions are kept until retention)"), (status = 404, description = "Unknown workflow"),
              (status = 409, description = "The workflow is edited in a file")))]
pub async fn delete(
    State(state): State<AppState>, ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state.app.delete_workflow(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/workflows/{id}/validate", tag = "workflows",
    params(("id" = String, Path, description = "Workflow id")),
    request_body(content = Option<super::openapi::AnyDefinition>, description = "Optional: a definition to check instead of the stored draft (any JSON: what is wrong with it is the answer)"),
    responses((status = 200, description = "Validation result", body = ValidationResult), (status = 404, description = "Unknown workflow (without a body)")))]
pub async fn validate(
    State(state): State<AppState>, ApiPath(id): ApiPath<String>, JsonBody(body): DefinitionBody,
) -> Result<Json<ValidationResult>, ApiError> {
    let definition = if is_blank(&body) {
        None
    } else {
        Some(parse_json(&body)?)
    };
    let report = state.app.validate_workflow(&id, definition).await?;
    Ok(Json(report.into()))
}

#[utoipa::path(post, path = "/workflows/{id}/publish", tag = "workflows",
    params(("id" = String, Path, description = "Workflow id")),
    responses((status = 201, description = "Version N created: { version, diff } (diff from N-1 as step ids and config keys)", body = PublishResult),
              (status = 200, description = "The draft equals the latest version: { version, unchanged: true }", body = PublishResult),
              (status = 409, description = "The workflow is edited in a file"),
              (status = 404, description = "Unknown workflow"), (status = 422, description = "The draft is invalid: every problem listed")))]
pub async fn publish(
    State(state): State<AppState>, ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let Published {
        version,
        unchanged,
        diff,
        meta,
    } = state.app.publish_draft(&id).await?;
    let workflow = summary_now(&state, &meta).await?;
    let (status, unchanged, diff) = if unchanged {
        (StatusCode::OK, Some(true), None)
    } else {
        (StatusCode::CREATED, None, Some(diff))
    };
    let body = PublishResult {
        version,
        unchanged,
        diff,
        workflow,
    };
    Ok((status, Json(body)).into_response())
}

#[derive(serde::Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ActivateBody {
    /// A published version (default: the latest).
    #[serde(default, deserialize_with = "super::whole_number")]
    #[schema(minimum = 1)]
    version: Option<u32>,
}

#[utoipa::path(post, path = "/workflows/{id}/activate", tag = "workflows",
    params(("id" = String, Path, description = "Workflow id")),
    request_body(content = Option<ActivateBody>, description = "Optional `{ \"version\": n }`: activate an older version (rollback)"),
    responses((status = 200, description = "Activated", body = WorkflowSummary), (status = 404, description = "Unknown workflow"),
              (status = 409, description = "Never published"), (status = 422, description = "No such version")))]
pub async fn activate(
    State(state): State<AppState>, ApiPath(id): ApiPath<String>, JsonBody(body): JsonBody,
) -> Result<Json<WorkflowSummary>, ApiError> {
    let req: ActivateBody = super::parse_optional_body(&body)?;
    let meta = state.app.activate(&id, req.version).await?;
    Ok(Json(summary_now(&state, &meta).await?))
}

#[utoipa::path(post, path = "/workflows/{id}/deactivate", tag = "workflows",
    params(("id" = String, Path, description = "Workflow id")),
    responses((status = 200, description = "Deactivated", body = WorkflowSummary), (status = 404, description = "Unknown workflow")))]
pub async fn deactivate(
    State(state): State<AppState>, ApiPath(id): ApiPath<String>,
) -> Result<Json<WorkflowSummary>, ApiError> {
    let meta = state.app.deactivate(&id).await?;
    Ok(Json(summary_now(&state, &meta).await?))
}

#[utoipa::path(get, path = "/workflows/{id}/config", tag = "workflows",
    params(("id" = String, Path, description = "Workflow id")),
    responses((status = 200, description = "The draft's config, with `active` from activation", body = ConfigAnswer), (status = 404, description = "Unknown workflow")))]
pub async fn get_config(
    State(state): State<AppState>, ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(state.app.config(&id).await?))
}

#[utoipa::path(patch, path = "/workflows/{id}/config", tag = "workflows",
    params(("id" = String, Path, description = "Workflow id")),
    request_body(content = ConfigPatch, description = "Config keys to change. `active` (de)activates now; other keys edit the draft and apply when published"),
    responses((status = 200, description = "The draft's config and its validation", body = ConfigPatched), (status = 404, description = "Unknown workflow"),
              (status = 409, description = "Edited in a file, or activating a never-published workflow"),
              (status = 422, description = "`active` is not a boolean (`invalid_config`), or the stored draft is not an object (`invalid_draft`)")))]
pub async fn patch_config(
    State(state): State<AppState>, ApiPath(id): ApiPath<String>, JsonBody(body): JsonBody,
) -> Result<Json<ConfigPatched>, ApiError> {
    let Value::Object(patch) = parse_json(&body)? else {
        return Err(ApiError::bad_request(
            "invalid_request",
            "the body must be a JSON object of config keys",
        ));
    };
    let (config, draft) = state.app.patch_config(&id, patch).await?;
    Ok(Json(ConfigPatched {
        config,
        validation: validation(&draft),
    }))
}

#[utoipa::path(get, path = "/workflows/{id}/versions", tag = "workflows",
    params(("id" = String, Path, description = "Workflow id")),
    responses((status = 200, description = "Published version numbers, the active one marked", body = VersionList)))]
pub async fn list_versions(
    State(state): State<AppState>, ApiPath(id): ApiPath<String>,
) -> Result<Json<VersionList>, ApiError> {
    let meta = state.app.versions(&id).await?;
    let versions = (1..=meta.latest_version)
        .map(|version| VersionEntry {
            version,
            active: meta.active && meta.active_version == Some(version),
        })
        .collect();
    Ok(Json(VersionList { versions }))
}

#[utoipa::path(get, path = "/workflows/{id}/versions/{version}", tag = "workflows",
    params(("id" = String, Path, description = "Workflow id"), ("version" = u32, Path, description = "Version number")),
    responses((status = 200, description = "The immutable definition", body = super::schemas::Workflow), (status = 404, description = "No such version")))]
pub async fn get_version(
    State(state): State<AppState>, ApiPath((id, version)): ApiPath<(String, u32)>,
) -> Result<Json<Workflow>, ApiError> {
    Ok(Json(state.app.version(&id, version).await?))
}

#[utoipa::path(post, path = "/workflows/{id}/webhook/rotate", tag = "workflows",
    params(("id" = String, Path, description = "Workflow id")),
    responses((status = 200, description = "A new webhook URL; the old one answers 404 from now on", body = WorkflowSummary)))]
pub async fn rotate_token(
    State(state): State<AppState>, ApiPath(id): ApiPath<String>,
) -> Result<Json<WorkflowSummary>, ApiError> {
    let meta = state.app.rotate_webhook_token(&id).await?;
    Ok(Json(summary_now(&state, &meta).await?))
}

#[derive(serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SecretsBody {
    /// Each one non-empty.
    #[schema(value_type = Vec<SecretValue>, example = json!(["whsec_c2VjcmV0"]))]
    secrets: Vec<String>,
}

/// A signing secret (`whsec_` and base64 for the Standard Webhooks scheme).
/// Not blank.
#[derive(ToSchema)]
#[schema(pattern = "\\S")]
#[allow(dead_code)] // documentation only
pub(crate) struct SecretValue(String);

#[utoipa::path(put, path = "/workflows/{id}/webhook/secrets", tag = "workflows",
    params(("id" = String, Path, description = "Workflow id")),
    request_body(content = SecretsBody, description = "`{ \"secrets\": [\"whsec_...\"] }`: signing secrets (several during a rotation; [] removes them). Never shown again."),
    responses((status = 200, description = "Stored", body = WorkflowSummary),
              (status = 422, description = "An empty secret (`invalid_secret`)")))]
pub async fn set_secrets(
    State(state): State<AppState>, ApiPath(id): ApiPath<String>, JsonBody(body): JsonBody,
) -> Result<Json<WorkflowSummary>, ApiError> {
    let req: SecretsBody = super::parse_body(&body)?;
    let meta = state.app.set_webhook_secrets(&id, req.secrets).await?;
    Ok(Json(summary_now(&state, &meta).await?))
}
