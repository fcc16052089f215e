//! The OpenAPI 3 document, generated from the handlers' annotations (utoipa) and served at
//! `GET /openapi.json`.
//!
//! The answers every route can give whatever it does (in the one error shape, [`ErrorBody`])
//! are added in one place, [`CommonResponses`], from what the operation takes: `400` and
//! `404` for a path parameter, `400` for query parameters, `400`/`413`/`415` for a body, `414`
//! and `503` everywhere.

use axum::Json;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::{Content, OpenApi as Document, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi, ToSchema};

use super::workflows::{ValidationResult, WorkflowSummary};

/// Every error answer: `{"error": {"code", "message", "details"}}`.
#[derive(ToSchema)]
#[allow(dead_code)] // documentation only: answers are built by `ApiError`
pub struct ErrorBody {
    error: ErrorDetail,
}

/// A stable `code`, a `message` that says what to change, structured `details` (or null).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ErrorDetail {
    code: String,
    message: String,
    #[schema(value_type = Object, nullable = true)]
    details: Option<serde_json::Value>,
}

/// A workflow definition as a draft: any object with a valid `id` (a draft may be invalid
/// otherwise; the answer carries its validation). The format is `workflows/schema.json`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct WorkflowDraft {
    /// Lowercase letters, digits and `-` (at most 64 characters).
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,63}$", example = "order-alert")]
    id: String,
    #[schema(value_type = Option<String>)]
    name: Option<String>,
    #[schema(value_type = Option<Vec<Object>>)]
    steps: Option<Vec<serde_json::Value>>,
}

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
        super::stream::events,
        super::catalog::list,
        super::ai::generate,
        super::ai::chat,
        super::ai::chat_history,
        super::ai::forget_chat,
        super::ai::cron,
    ),
    components(schemas(WorkflowSummary, ValidationResult, ErrorBody, ErrorDetail, WorkflowDraft)),
    modifiers(&CommonResponses),
    tags(
        (name = "webhooks", description = "Start workflows from signed HTTP requests"),
        (name = "events", description = "Publish platform events"),
        (name = "workflows", description = "Drafts, versions, activation, config"),
        (name = "executions", description = "Runs and their step-by-step history"),
        (name = "ai", description = "AI-assisted authoring: generate, chat about a draft, plain English to cron"),
    )
)]
pub struct ApiDoc;

/// Adds the answers every operation can give (see the module docs), each in the error shape.
pub struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, doc: &mut Document) {
        for item in doc.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                add_common(op);
            }
        }
    }
}

/// An optional body (`Option<T>` in the annotation, which utoipa writes as `oneOf [null, T]`)
/// is documented as what it is: a `T` that may be left out (`required: false`).
fn optional_body(op: &mut Operation) {
    use utoipa::openapi::schema::Schema;
    let Some(body) = op.request_body.as_mut() else {
        return;
    };
    let mut optional = false;
    for content in body.content.values_mut() {
        if let Some(RefOr::T(Schema::OneOf(one_of))) = &content.schema {
            let refs: Vec<_> = one_of
                .items
                .iter()
                .filter(|i| matches!(i, RefOr::Ref(_)))
                .cloned()
                .collect();
            if refs.len() == 1 && one_of.items.len() == 2 {
                content.schema = refs.into_iter().next();
                optional = true;
            }
        }
    }
    body.required = Some(if optional {
        utoipa::openapi::Required::False
    } else {
        utoipa::openapi::Required::True
    });
}

fn add_common(op: &mut Operation) {
    optional_body(op);
    let params = op.parameters.as_deref().unwrap_or_default();
    let has = |place: ParameterIn| {
        params
            .iter()
            .any(|p| std::mem::discriminant(&p.parameter_in) == std::mem::discriminant(&place))
    };
    let (path, query, body) = (
        has(ParameterIn::Path),
        has(ParameterIn::Query),
        op.request_body.is_some(),
    );
    let mut add = |status: &str, description: &str| {
        op.responses
            .responses
            .entry(status.to_string())
            .or_insert_with(|| RefOr::T(ResponseBuilder::new().description(description).build()));
    };
    if path {
        add(
            "400",
            "A path parameter that cannot be read (`invalid_path`)",
        );
        add("404", "Not found (`not_found`)");
    }
    if query {
        add(
            "400",
            "An unknown query parameter or a value of the wrong type (`invalid_query`)",
        );
    }
    if body {
        add(
            "400",
            "The body is not JSON (`invalid_json`, with line and column), is nested deeper \
             than 64 levels (`too_deep`), or does not match the schema (`invalid_request`)",
        );
        add("413", "The body is over 256 KiB (`too_large`)");
        add(
            "415",
            "A body whose Content-Type is not JSON (`unsupported_media_type`)",
        );
    }
    add(
        "414",
        "The URI is over 8 KiB (`uri_too_long`; past 65,534 bytes the HTTP server answers 414 \
         with an empty body)",
    );
    add("503", "The store is busy (`unavailable`): try again");
    // Every error answer has the one shape.
    for (status, response) in op.responses.responses.iter_mut() {
        let is_error = status.starts_with('4') || status.starts_with('5');
        if let (true, RefOr::T(response)) = (is_error, response)
            && response.content.is_empty()
        {
            response.content.insert(
                "application/json".to_string(),
                Content::new(Some(Ref::from_schema_name("ErrorBody"))),
            );
        }
    }
}

/// The document as JSON.
pub fn spec() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(spec())
}
