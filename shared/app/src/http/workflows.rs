//! Management API for workflows: drafts, validation, publishing, activation, config, tokens.

use std::collections::BTreeSet;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;
use wf_core::model::Workflow;
use wf_core::ports::WorkflowMeta;
use wf_core::time_fmt::format_ms;
use wf_core::validate::{Problem, validate_value};

use super::{AppState, RawBody, parse_json};
use crate::activation;
use crate::http::{ApiError, ApiPath};
use crate::publish::{new_webhook_token, publish as publish_version};

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
    pub updated_at: String,
}

/// Validation of a definition: every problem, each with a JSON pointer and a hint.
#[derive(Debug, Serialize, ToSchema)]
pub struct ValidationResult {
    pub valid: bool,
    #[schema(value_type = Vec<Object>)]
    pub problems: Vec<Problem>,
}

fn validation(draft: &Value) -> ValidationResult {
    let report = validate_value(draft);
    ValidationResult {
        valid: report.problems.is_empty(),
        problems: report.problems,
    }
}

fn summary(state: &AppState, meta: &WorkflowMeta, draft: Option<&Value>) -> WorkflowSummary {
    let name = draft
        .and_then(|d| d.get("name"))
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
        updated_at: format_ms(meta.updated_at),
    }
}

async fn load_meta(state: &AppState, id: &str) -> Result<WorkflowMeta, ApiError> {
    state
        .worker
        .services()
        .definitions
        .get_meta(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("workflow {id} does not exist")))
}

/// Refuse API writes to a workflow that `wf dev` loads from a file: edit the file instead.
fn refuse_file_backed(meta: &WorkflowMeta) -> Result<(), ApiError> {
    match &meta.source {
        Some(src) if src.starts_with("file:") => Err(ApiError::conflict(
            "file_backed",
            format!(
                "workflow {} comes from {}: edit that file (wf dev publishes it on save)",
                meta.id,
                src.trim_start_matches("file:")
            ),
        )),
        _ => Ok(()),
    }
}

fn check_id(id: &str) -> Result<(), ApiError> {
    let ok = id.len() <= 64
        && id
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(ApiError::unprocessable(
            "invalid_id",
            format!("workflow id {id:?} must match ^[a-z0-9][a-z0-9-]*$ (at most 64 characters)"),
        ))
    }
}

#[utoipa::path(get, path = "/workflows", tag = "workflows",
    responses((status = 200, description = "Every workflow", body = Vec<WorkflowSummary>)))]
pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<WorkflowSummary>>, ApiError> {
    let defs = &state.worker.services().definitions;
    let mut out = Vec::new();
    for meta in defs.list_metas().await? {
        let draft = defs.get_draft(&meta.id).await?;
        out.push(summary(&state, &meta, draft.as_ref()));
    }
    Ok(Json(out))
}

#[utoipa::path(post, path = "/workflows", tag = "workflows",
    request_body(content = Object, description = "A workflow definition (a draft may be invalid, but needs a valid `id`)"),
    responses((status = 201, description = "Draft created, with its validation"),
              (status = 400, description = "Not JSON"), (status = 409, description = "The id exists"),
              (status = 422, description = "No valid id")))]
pub async fn create(
    State(state): State<AppState>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let draft = parse_json(&body)?;
    let id = draft
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ApiError::unprocessable(
                "missing_id",
                "the workflow needs an \"id\" (e.g. \"order-alert\")",
            )
        })?
        .to_string();
    check_id(&id)?;
    let svc = state.worker.services();
    let now = svc.clock.now_ms();
    let meta = WorkflowMeta {
        id: id.clone(),
        updated_at: now,
        ..WorkflowMeta::default()
    };
    match svc.definitions.put_meta(&meta, None).await {
        Ok(()) => {}
        Err(wf_core::StoreError::Conflict(_)) => {
            return Err(ApiError::conflict(
                "exists",
                format!("workflow {id} exists: PUT /workflows/{id} replaces its draft"),
            ));
        }
        Err(e) => return Err(e.into()),
    }
    svc.definitions.put_draft(&id, &draft, now).await?;
    let body = json!({ "workflow": summary(&state, &meta, Some(&draft)), "draft": draft, "validation": validation(&draft) });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

#[utoipa::path(get, path = "/workflows/{id}", tag = "workflows",
    params(("id" = String, Path, description = "Workflow id")),
    responses((status = 200, description = "Summary, draft and the draft's validation"), (status = 404, description = "Unknown workflow")))]
pub async fn get_one(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let meta = load_meta(&state, &id).await?;
    let draft = state
        .worker
        .services()
        .definitions
        .get_draft(&id)
        .await?
        .unwrap_or(Value::Null);
    let v = if draft.is_null() {
        None
    } else {
        Some(validation(&draft))
    };
    Ok(Json(
        json!({ "workflow": summary(&state, &meta, Some(&draft)), "draft": draft, "validation": v }),
    ))
}

#[utoipa::path(put, path = "/workflows/{id}", tag = "workflows",
    params(("id" = String, Path, description = "Workflow id")),
    request_body(content = Object, description = "The new draft"),
    responses((status = 200, description = "Draft replaced, with its validation"), (status = 404, description = "Unknown workflow"),
              (status = 409, description = "The workflow is edited in a file"), (status = 422, description = "The body's id differs")))]
pub async fn replace(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    RawBody(body): RawBody,
) -> Result<Json<Value>, ApiError> {
    let mut draft = parse_json(&body)?;
    let meta = load_meta(&state, &id).await?;
    refuse_file_backed(&meta)?;
    match draft.get("id").and_then(Value::as_str) {
        Some(other) if other != id => {
            return Err(ApiError::unprocessable(
                "id_mismatch",
                format!("the body's id {other:?} differs from the URL's {id:?}; ids cannot change"),
            ));
        }
        Some(_) => {}
        None => {
            if let Some(o) = draft.as_object_mut() {
                o.insert("id".into(), Value::String(id.clone()));
            }
        }
    }
    let now = state.worker.services().clock.now_ms();
    state
        .worker
        .services()
        .definitions
        .put_draft(&id, &draft, now)
        .await?;
    Ok(Json(
        json!({ "workflow": summary(&state, &meta, Some(&draft)), "draft": draft, "validation": validation(&draft) }),
    ))
}

#[utoipa::path(delete, path = "/workflows/{id}", tag = "workflows",
    params(("id" = String, Path, description = "Workflow id")),
    responses((status = 204, description = "Deleted (executions are kept until retention)"), (status = 404, description = "Unknown workflow"),
              (status = 409, description = "The workflow is edited in a file")))]
pub async fn delete(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let meta = load_meta(&state, &id).await?;
    refuse_file_backed(&meta)?;
    state.triggers.sync(&id, None).await?;
    state
        .worker
        .services()
        .definitions
        .delete_workflow(&id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/workflows/{id}/validate", tag = "workflows",
    params(("id" = String, Path, description = "Workflow id")),
    request_body(content = Object, description = "Optional: a definition to check instead of the stored draft"),
    responses((status = 200, description = "Validation result", body = ValidationResult)))]
pub async fn validate(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    RawBody(body): RawBody,
) -> Result<Json<ValidationResult>, ApiError> {
    let draft = if body.iter().all(u8::is_ascii_whitespace) {
        load_meta(&state, &id).await?;
        state
            .worker
            .services()
            .definitions
            .get_draft(&id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("workflow {id} has no draft")))?
    } else {
        parse_json(&body)?
    };
    Ok(Json(validation(&draft)))
}

/// What changed between two versions: step ids and config keys.
pub fn version_diff(old: Option<&Workflow>, new: &Workflow) -> Value {
    let steps = |w: &Workflow| -> Map<String, Value> {
        let mut m = Map::new();
        fn walk(steps: &[wf_core::model::Step], m: &mut Map<String, Value>) {
            for s in steps {
                m.insert(
                    s.id().to_string(),
                    serde_json::to_value(s).unwrap_or(Value::Null),
                );
                if let wf_core::model::Step::Loop(l) = s {
                    walk(&l.steps, m);
                }
            }
        }
        walk(&w.steps, &mut m);
        m
    };
    let new_steps = steps(new);
    let old_steps = old.map(steps).unwrap_or_default();
    let added: Vec<&String> = new_steps
        .keys()
        .filter(|k| !old_steps.contains_key(*k))
        .collect();
    let removed: Vec<&String> = old_steps
        .keys()
        .filter(|k| !new_steps.contains_key(*k))
        .collect();
    let changed: Vec<&String> = new_steps
        .iter()
        .filter(|(k, v)| old_steps.get(*k).is_some_and(|o| o != *v))
        .map(|(k, _)| k)
        .collect();
    let cfg = |w: Option<&Workflow>| -> Map<String, Value> {
        w.and_then(|w| serde_json::to_value(&w.config).ok())
            .and_then(|v| v.as_object().cloned())
            .unwrap_or_default()
    };
    let (oc, nc) = (cfg(old), cfg(Some(new)));
    let keys: BTreeSet<&String> = oc.keys().chain(nc.keys()).collect();
    let config: Vec<&String> = keys
        .into_iter()
        .filter(|k| oc.get(*k) != nc.get(*k))
        .collect();
    json!({ "addedSteps": added, "removedSteps": removed, "changedSteps": changed, "changedConfig": config })
}

#[utoipa::path(post, path = "/workflows/{id}/publish", tag = "workflows",
    params(("id" = String, Path, description = "Workflow id")),
    responses((status = 201, description = "Version N created: { version, diff } (diff from N-1 as step ids and config keys)"),
              (status = 200, description = "The draft equals the latest version: { version, unchanged: true }"),
              (status = 409, description = "The workflow is edited in a file"),
              (status = 404, description = "Unknown workflow"), (status = 422, description = "The draft is invalid: every problem listed")))]
pub async fn publish(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let meta = load_meta(&state, &id).await?;
    refuse_file_backed(&meta)?;
    let svc = state.worker.services();
    let draft = svc
        .definitions
        .get_draft(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("workflow {id} has no draft")))?;
    let report = validate_value(&draft);
    let Some(workflow) = report.workflow else {
        return Err(ApiError::unprocessable(
            "invalid_workflow",
            format!(
                "the draft has {} problem(s); fix them and publish again",
                report.problems.len()
            ),
        )
        .with_details(json!({ "problems": report.problems })));
    };
    let previous = match meta.latest_version {
        0 => None,
        v => svc.definitions.get_version(&id, v).await?,
    };
    if previous.as_ref() == Some(&workflow) {
        let body = json!({ "version": meta.latest_version, "unchanged": true, "workflow": summary(&state, &meta, Some(&draft)) });
        return Ok((StatusCode::OK, Json(body)).into_response());
    }
    let diff = version_diff(previous.as_ref(), &workflow);
    let published = publish_version(&*svc.definitions, &workflow, svc.clock.now_ms()).await?;
    // A live workflow goes on with the version just published (roll back with activate).
    if meta.active {
        activation::activate(
            &state.worker,
            &*state.triggers,
            &id,
            Some(published.version),
        )
        .await?;
    }
    let meta = load_meta(&state, &id).await?;
    let body = json!({ "version": published.version, "diff": diff, "workflow": summary(&state, &meta, Some(&draft)) });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ActivateBody {
    version: Option<u32>,
}

#[utoipa::path(post, path = "/workflows/{id}/activate", tag = "workflows",
    params(("id" = String, Path, description = "Workflow id")),
    request_body(content = Object, description = "Optional `{ \"version\": n }`: activate an older version (rollback)"),
    responses((status = 200, description = "Activated", body = WorkflowSummary), (status = 404, description = "Unknown workflow"),
              (status = 409, description = "Never published"), (status = 422, description = "No such version")))]
pub async fn activate(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    RawBody(body): RawBody,
) -> Result<Json<WorkflowSummary>, ApiError> {
    let req: ActivateBody = if body.iter().all(u8::is_ascii_whitespace) {
        ActivateBody::default()
    } else {
        super::parse_body(&body)?
    };
    let meta = activation::activate(&state.worker, &*state.triggers, &id, req.version).await?;
    Ok(Json(summary(&state, &meta, None)))
}

#[utoipa::path(post, path = "/workflows/{id}/deactivate", tag = "workflows",
    params(("id" = String, Path, description = "Workflow id")),
    responses((status = 200, description = "Deactivated", body = WorkflowSummary), (status = 404, description = "Unknown workflow")))]
pub async fn deactivate(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<WorkflowSummary>, ApiError> {
    let meta = activation::deactivate(&state.worker, &*state.triggers, &id).await?;
    Ok(Json(summary(&state, &meta, None)))
}

#[utoipa::path(get, path = "/workflows/{id}/config", tag = "workflows",
    params(("id" = String, Path, description = "Workflow id")),
    responses((status = 200, description = "The draft's config, with `active` from activation"), (status = 404, description = "Unknown workflow")))]
pub async fn get_config(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let meta = load_meta(&state, &id).await?;
    let draft = state
        .worker
        .services()
        .definitions
        .get_draft(&id)
        .await?
        .unwrap_or(Value::Null);
    let mut config = draft.get("config").cloned().unwrap_or_else(|| json!({}));
    if let Some(o) = config.as_object_mut() {
        o.insert("active".into(), Value::Bool(meta.active));
    }
    Ok(Json(config))
}

#[utoipa::path(patch, path = "/workflows/{id}/config", tag = "workflows",
    params(("id" = String, Path, description = "Workflow id")),
    request_body(content = Object, description = "Config keys to change. `active` (de)activates now; other keys edit the draft and apply when published"),
    responses((status = 200, description = "The draft's config and its validation"), (status = 404, description = "Unknown workflow"),
              (status = 409, description = "Edited in a file, or activating a never-published workflow")))]
pub async fn patch_config(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    RawBody(body): RawBody,
) -> Result<Json<Value>, ApiError> {
    let patch = parse_json(&body)?;
    let Value::Object(mut patch) = patch else {
        return Err(ApiError::bad_request(
            "invalid_request",
            "the body must be a JSON object of config keys",
        ));
    };
    let meta = load_meta(&state, &id).await?;
    let active = patch.remove("active");
    if !patch.is_empty() {
        refuse_file_backed(&meta)?;
        let defs = &state.worker.services().definitions;
        let mut draft = defs
            .get_draft(&id)
            .await?
            .unwrap_or_else(|| json!({ "id": id }));
        let config = draft
            .as_object_mut()
            .map(|o| o.entry("config").or_insert_with(|| json!({})))
            .ok_or_else(|| {
                ApiError::unprocessable("invalid_draft", "the draft is not a JSON object")
            })?;
        let Some(config) = config.as_object_mut() else {
            return Err(ApiError::unprocessable(
                "invalid_draft",
                "the draft's config is not an object",
            ));
        };
        for (k, v) in patch {
            config.insert(k, v);
        }
        defs.put_draft(&id, &draft, state.worker.services().clock.now_ms())
            .await?;
    }
    match active {
        Some(Value::Bool(true)) => {
            activation::activate(&state.worker, &*state.triggers, &id, None).await?;
        }
        Some(Value::Bool(false)) => {
            activation::deactivate(&state.worker, &*state.triggers, &id).await?;
        }
        Some(other) => {
            return Err(ApiError::unprocessable(
                "invalid_config",
                format!("`active` must be true or false, got {other}"),
            ));
        }
        None => {}
    }
    let draft = state
        .worker
        .services()
        .definitions
        .get_draft(&id)
        .await?
        .unwrap_or(Value::Null);
    let meta = load_meta(&state, &id).await?;
    let mut config = draft.get("config").cloned().unwrap_or_else(|| json!({}));
    if let Some(o) = config.as_object_mut() {
        o.insert("active".into(), Value::Bool(meta.active));
    }
    Ok(Json(
        json!({ "config": config, "validation": validation(&draft) }),
    ))
}

#[utoipa::path(get, path = "/workflows/{id}/versions", tag = "workflows",
    params(("id" = String, Path, description = "Workflow id")),
    responses((status = 200, description = "Published version numbers, the active one marked")))]
pub async fn list_versions(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let meta = load_meta(&state, &id).await?;
    let versions: Vec<Value> = (1..=meta.latest_version)
        .map(|v| json!({ "version": v, "active": meta.active && meta.active_version == Some(v) }))
        .collect();
    Ok(Json(json!({ "versions": versions })))
}

#[utoipa::path(get, path = "/workflows/{id}/versions/{version}", tag = "workflows",
    params(("id" = String, Path, description = "Workflow id"), ("version" = u32, Path, description = "Version number")),
    responses((status = 200, description = "The immutable definition"), (status = 404, description = "No such version")))]
pub async fn get_version(
    State(state): State<AppState>,
    ApiPath((id, version)): ApiPath<(String, u32)>,
) -> Result<Json<Workflow>, ApiError> {
    let wf = state
        .worker
        .services()
        .definitions
        .get_version(&id, version)
        .await?
        .filter(|_| version < crate::http::executions::DRAFT_VERSION_BASE)
        .ok_or_else(|| ApiError::not_found(format!("workflow {id} has no version {version}")))?;
    Ok(Json(wf))
}

#[utoipa::path(post, path = "/workflows/{id}/webhook/rotate", tag = "workflows",
    params(("id" = String, Path, description = "Workflow id")),
    responses((status = 200, description = "A new webhook URL; the old one answers 404 from now on", body = WorkflowSummary)))]
pub async fn rotate_token(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<WorkflowSummary>, ApiError> {
    let meta = load_meta(&state, &id).await?;
    let token = new_webhook_token();
    let meta = activation::write_meta(&state.worker, meta, |m| {
        m.webhook_token = Some(token.clone())
    })
    .await?;
    Ok(Json(summary(&state, &meta, None)))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretsBody {
    secrets: Vec<String>,
}

#[utoipa::path(put, path = "/workflows/{id}/webhook/secrets", tag = "workflows",
    params(("id" = String, Path, description = "Workflow id")),
    request_body(content = Object, description = "`{ \"secrets\": [\"whsec_...\"] }`: signing secrets (several during a rotation; [] removes them). Never shown again."),
    responses((status = 200, description = "Stored", body = WorkflowSummary)))]
pub async fn set_secrets(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    RawBody(body): RawBody,
) -> Result<Json<WorkflowSummary>, ApiError> {
    let req: SecretsBody = super::parse_body(&body)?;
    if req.secrets.iter().any(|s| s.trim().is_empty()) {
        return Err(ApiError::unprocessable(
            "invalid_secret",
            "secrets must not be empty strings",
        ));
    }
    let meta = load_meta(&state, &id).await?;
    let meta = activation::write_meta(&state.worker, meta, |m| {
        m.webhook_secrets = req.secrets.clone()
    })
    .await?;
    Ok(Json(summary(&state, &meta, None)))
}
