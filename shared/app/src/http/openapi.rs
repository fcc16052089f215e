//! The OpenAPI 3 document served at `GET /openapi.json`: the committed file
//! `shared/app/openapi.json` ([`DOCUMENT`]), served as it is. It is generated from the handlers'
//! annotations (utoipa) by `spec`, which only this crate's tests build: a test fails when the
//! file is not what `spec` generates, and `WF_WRITE_OPENAPI=1 cargo test -p wf-app --lib openapi`
//! writes it.
//!
//! Why a file: the size of the api Lambda's zip (at most 5 MB, 5,242,880 bytes, checked by CI).
//! Building the document at run time linked utoipa's builders for every operation and every
//! schema (wf-core's types too, `openapi` feature) into the function: its zip was 5,233,628
//! bytes, 9 KB under the limit. Served from the file it is 5,122,217 bytes (118 KB under), and
//! the webhook function's (whose 405 answers read the document too) went from 4,903,352 to
//! 4,748,798 bytes (x86_64, `scripts/lambda-build`).
//!
//! The answers every route can give whatever it does (in the one error shape, [`ErrorBody`])
//! are added in one place, `CommonResponses`, from what the operation takes: `400` and
//! `404` for a path parameter, `400` for query parameters, `400`/`413`/`415` for a body,
//! `502`/`503`/`504` for the operations that call the LLM, `414` and `503` everywhere. A method
//! a path does not take is `405` with an `Allow` header ([`documented_methods`]).

use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use serde_json::Value;
use utoipa::ToSchema;

/// The document as served (pretty-printed; `spec` in the tests generates it).
pub const DOCUMENT: &str = include_str!("../../openapi.json");

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
/// otherwise; the answer carries its validation). The format is `Workflow`
/// (`workflows/schema.json`).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct WorkflowDraft {
    /// Lowercase letters, digits and `-` (at most 64 characters).
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,63}$", example = "order-alert")]
    id: String,
}

/// Any JSON document: validation says what is wrong with it (the format is `Workflow`).
#[derive(ToSchema)]
#[schema(value_type = Value)]
#[allow(dead_code)]
pub struct AnyDefinition(serde_json::Value);

/// `GET /openapi.json`: the committed document, as it is.
pub async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT)
}

/// The committed document, parsed once (`Null` if it were not JSON, which a test rules out).
pub fn served() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| serde_json::from_str(DOCUMENT).unwrap_or_default())
}

/// The methods the document gives for a request path (`GET` implies `HEAD`), in the order of
/// an `Allow` header; `None` for a path it does not document. As in OpenAPI, a path without
/// templates wins over a templated one (`/workflows/generate` over `/workflows/{id}`), and of
/// two templated ones the one with more fixed segments.
pub fn documented_methods(path: &str) -> Option<Vec<&'static str>> {
    let segments: Vec<&str> = path.split('/').collect();
    let fixed_segments = |template: &str| -> Option<usize> {
        let parts: Vec<&str> = template.split('/').collect();
        if parts.len() != segments.len() {
            return None;
        }
        let mut fixed = 0;
        for (part, segment) in parts.iter().zip(&segments) {
            if part.starts_with('{') && part.ends_with('}') {
                if segment.is_empty() {
                    return None;
                }
            } else if part == segment {
                fixed += 1;
            } else {
                return None;
            }
        }
        Some(fixed)
    };
    let (_, item) = served()["paths"]
        .as_object()?
        .iter()
        .filter_map(|(template, item)| fixed_segments(template).map(|n| (n, item)))
        .max_by_key(|(n, _)| *n)?;
    let has = |m: &str| item.get(m).is_some();
    let methods = [
        ("GET", has("get")),
        ("HEAD", has("get") || has("head")),
        ("POST", has("post")),
        ("PUT", has("put")),
        ("PATCH", has("patch")),
        ("DELETE", has("delete")),
    ];
    Some(
        methods
            .into_iter()
            .filter(|(_, has)| *has)
            .map(|(m, _)| m)
            .collect(),
    )
}

#[cfg(test)]
pub use generate::spec;

/// The document generated from the annotations: tests only, so that no binary links utoipa's
/// builders (see the module docs).
#[cfg(test)]
mod generate {
    use serde_json::Value;
    use utoipa::openapi::path::{Operation, ParameterIn};
    use utoipa::openapi::{Content, OpenApi as Document, Ref, RefOr, ResponseBuilder};
    use utoipa::{Modify, OpenApi};

    use super::{ErrorBody, ErrorDetail, WorkflowDraft};
    use crate::http::workflows::{ValidationResult, WorkflowSummary};

    #[derive(OpenApi)]
    #[openapi(
        info(
            title = "wf",
            description = "Workflow automation: webhooks, platform events and the management API. \
                Errors are `{\"error\": {\"code\", \"message\", \"details\"}}`."
        ),
        paths(
            crate::http::hooks::receive,
            crate::http::events::publish,
            crate::http::events::rejected,
            crate::http::workflows::list,
            crate::http::workflows::create,
            crate::http::workflows::get_one,
            crate::http::workflows::replace,
            crate::http::workflows::delete,
            crate::http::workflows::validate,
            crate::http::workflows::publish,
            crate::http::workflows::activate,
            crate::http::workflows::deactivate,
            crate::http::workflows::get_config,
            crate::http::workflows::patch_config,
            crate::http::workflows::list_versions,
            crate::http::workflows::get_version,
            crate::http::workflows::rotate_token,
            crate::http::workflows::set_secrets,
            crate::http::executions::run_manual,
            crate::http::executions::list,
            crate::http::executions::list_for_workflow,
            crate::http::executions::get_one,
            crate::http::executions::steps,
            crate::http::executions::cancel,
            crate::http::executions::rerun,
            crate::http::stream::events,
            crate::http::catalog::list,
            crate::http::ai::generate,
            crate::http::ai::chat,
            crate::http::ai::chat_history,
            crate::http::ai::forget_chat,
            crate::http::ai::cron,
        ),
        components(schemas(WorkflowSummary, ValidationResult, ErrorBody, ErrorDetail, WorkflowDraft,
            crate::http::schemas::Workflow, crate::http::schemas::WorkflowConfig, crate::http::schemas::TriggerType,
            wf_core::execution::ExecutionStatus)),
        modifiers(&CommonResponses),
        tags(
            (name = "webhooks", description = "Start workflows from signed HTTP requests"),
            (name = "events", description = "Publish platform events; see which a workflow did not start on"),
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
            // Components that take any JSON (`null` included).
            let any_value: Vec<String> = doc
                .components
                .iter()
                .flat_map(|c| &c.schemas)
                .filter(|(_, s)| {
                    matches!(s, RefOr::T(utoipa::openapi::schema::Schema::Object(o))
                        if matches!(o.schema_type, utoipa::openapi::schema::SchemaType::AnyValue))
                })
                .map(|(name, _)| format!("#/components/schemas/{name}"))
                .collect();
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
                    add_common(op, &any_value);
                }
            }
        }
    }

    /// An optional body (`Option<T>` in the annotation, which utoipa writes as `oneOf [null, T]`)
    /// is documented as what it is: a `T` or `null` (both accepted: `null` is the default) that may
    /// be left out (`required: false`); just `T` when `T` takes any JSON (`any_value`), since `null`
    /// would match both branches. Every other body is required.
    fn optional_body(op: &mut Operation, any_value: &[String]) {
        use utoipa::openapi::schema::Schema;
        let Some(body) = op.request_body.as_mut() else {
            return;
        };
        let mut optional = false;
        for content in body.content.values_mut() {
            let Some(RefOr::T(Schema::OneOf(one_of))) = &content.schema else {
                continue;
            };
            let reference = one_of.items.iter().find_map(|i| match i {
                RefOr::Ref(r) => Some(r.clone()),
                RefOr::T(_) => None,
            });
            if let (2, Some(r)) = (one_of.items.len(), reference) {
                optional = true;
                if any_value.contains(&r.ref_location) {
                    content.schema = Some(RefOr::Ref(r));
                }
            }
        }
        body.required = Some(if optional {
            utoipa::openapi::Required::False
        } else {
            utoipa::openapi::Required::True
        });
    }

    /// The operations that call the configured LLM (`POST /cron` only with `ai: true`), by
    /// operation id (the handler's name): they answer its errors too.
    const CALLS_THE_LLM: [&str; 3] = ["generate", "chat", "cron"];

    fn add_common(op: &mut Operation, any_value: &[String]) {
        optional_body(op, any_value);
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
                .or_insert_with(|| {
                    RefOr::T(ResponseBuilder::new().description(description).build())
                });
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
            add(
                "413",
                "The body is over 256 KiB, or a workflow definition over 384 KiB (`too_large`)",
            );
            add(
                "415",
                "A body whose Content-Type is not JSON (`unsupported_media_type`)",
            );
        }
        if op
            .operation_id
            .as_deref()
            .is_some_and(|id| CALLS_THE_LLM.contains(&id))
        {
            add(
                "502",
                "The LLM provider is unreachable (`llm_unavailable`) or refused the call (`llm_error`)",
            );
            add(
                "503",
                "No LLM provider is configured (`not_configured`), or the store is busy (`unavailable`)",
            );
            add("504", "The LLM did not answer in time (`llm_timeout`)");
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

    /// The document as served: utoipa's, with the workflow JSON Schema (`wf schema`) as the
    /// `Workflow` component and its definitions (`WorkflowConfig`, `Step`, ...) as components too.
    pub fn spec() -> Value {
        let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
        let mut workflow = wf_core::schema::workflow_schema();
        let defs = workflow
            .as_object_mut()
            .and_then(|w| {
                w.remove("$schema");
                w.remove("$defs")
            })
            .unwrap_or_default();
        if let Some(schemas) = doc
            .pointer_mut("/components/schemas")
            .and_then(Value::as_object_mut)
        {
            let defs = defs.as_object().into_iter().flatten();
            for (name, schema) in defs.chain([(&"Workflow".to_string(), &workflow)]) {
                let mut schema = schema.clone();
                rebase_refs(&mut schema);
                schemas.insert(name.clone(), schema);
            }
        }
        doc
    }

    /// `#/$defs/X` (the workflow schema's references) becomes `#/components/schemas/X`.
    fn rebase_refs(value: &mut Value) {
        match value {
            Value::Object(map) => {
                for (key, v) in map.iter_mut() {
                    match v {
                        Value::String(r) if key == "$ref" => {
                            if let Some(name) = r.strip_prefix("#/$defs/") {
                                *r = format!("#/components/schemas/{name}");
                            }
                        }
                        _ => rebase_refs(v),
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(rebase_refs),
            _ => {}
        }
    }

    /// The committed file is what the annotations generate, byte for byte (pretty-printed,
    /// a trailing newline); with `WF_WRITE_OPENAPI` set, this writes it instead.
    #[test]
    fn the_committed_openapi_document_is_the_generated_one() {
        let generated = serde_json::to_string_pretty(&spec()).expect("serializes") + "\n";
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");
        if std::env::var_os("WF_WRITE_OPENAPI").is_some() {
            std::fs::write(path, &generated).expect("writes shared/app/openapi.json");
            return;
        }
        if generated != super::DOCUMENT {
            let line = generated
                .lines()
                .zip(super::DOCUMENT.lines())
                .position(|(a, b)| a != b)
                .unwrap_or_else(|| {
                    generated
                        .lines()
                        .count()
                        .min(super::DOCUMENT.lines().count())
                });
            panic!(
                "shared/app/openapi.json (served at /openapi.json) is not what the utoipa \
                 annotations generate (first difference at line {}: {:?} generated). \
                 Regenerate it with `WF_WRITE_OPENAPI=1 cargo test -p wf-app --lib openapi` \
                 and commit it.",
                line + 1,
                generated.lines().nth(line).unwrap_or("(end of file)"),
            );
        }
        assert_eq!(
            super::served(),
            &spec(),
            "the served document parses to the generated one"
        );
    }
}
