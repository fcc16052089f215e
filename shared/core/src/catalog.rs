//! The catalog of actions: names, descriptions and params schemas.
//!
//! Validation checks `action` names and `params` against this catalog; wf-app implements each
//! entry (a test there keeps the two in step). Params may be templates: a value that is exactly
//! one `{{ expr }}` is only known when the step runs, so validation skips schema errors at it.

use serde_json::{Value, json};

/// One action of the catalog.
#[derive(Debug, Clone)]
pub struct ActionSpec {
    pub name: &'static str,
    pub description: &'static str,
    pub params_schema: Value,
}

/// A catalog params schema compiled as draft 7. The catalog uses only keywords that mean the
/// same in draft 7 and 2020-12 (`type`, `enum`, `properties`, `required`,
/// `additionalProperties`, `items` as one schema, `not`, `pattern`, bounds), so what passes and
/// every message are the same (a test in wf-app compares them); but compiling under 2020-12
/// first builds jsonschema's 2020-12 meta-schema validator (a process-wide static, ~10 MB that
/// stay resident and most of a Lambda init's instructions). Nor is the draft 7 meta-schema
/// validator built: the catalog is ours, a test meta-validates it
/// ([`crate::schema::draft7_validator_unchecked`] says why that matters).
/// Used by validation (`validate::semantic`) and by the actions that check their params.
pub fn params_validator(
    schema: &serde_json::Value,
) -> Result<jsonschema::Validator, Box<jsonschema::ValidationError<'static>>> {
    crate::schema::draft7_validator_unchecked(schema)
}

/// Every action the engine knows, in documentation order.
pub fn actions() -> Vec<ActionSpec> {
    vec![
        ActionSpec {
            name: "http.request",
            description: "Send an HTTP request. Output: { status, headers, body } (body is JSON when the response is JSON). A non-2xx status is a retryable failure unless listed in expectStatus.",
            params_schema: json!({
                "type": "object", "additionalProperties": false, "required": ["url"],
                "properties": {
                    "method": { "enum": ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"], "default": "GET" },
                    "url": { "type": "string", "minLength": 1 },
                    "headers": { "type": "object", "additionalProperties": { "type": "string" } },
                    "query": { "type": "object", "additionalProperties": { "type": ["string", "number", "boolean"] } },
                    "json": { "description": "A JSON body (sets Content-Type: application/json)." },
                    "body": { "type": "string", "description": "A text body." },
                    "timeoutMs": { "type": "integer", "minimum": 1, "maximum": 900000 },
                    "expectStatus": { "type": "array", "items": { "type": "integer", "minimum": 100, "maximum": 599 },
                                      "description": "Statuses that count as success besides 2xx." }
                },
                "not": { "required": ["json", "body"] }
            }),
        },
        ActionSpec {
            name: "record.create",
            description: "Create a record in a collection. Output: { collection, id, data }. Fails if the id exists (a redelivered create with the same idempotency key succeeds). Emits `<collection>.created`.",
            params_schema: json!({
                "type": "object", "additionalProperties": false, "required": ["collection", "data"],
                "properties": {
                    "collection": collection_param(),
                    "id": { "type": "string", "minLength": 1, "maxLength": 256, "description": "Defaults to a new ULID." },
                    "data": { "type": "object" }
                }
            }),
        },
        ActionSpec {
            name: "record.get",
            description: "Read a record. Output: { collection, id, data } or { collection, id, data: null } when absent (found: false).",
            params_schema: record_key_params(),
        },
        ActionSpec {
            name: "record.update",
            description: "Merge `data` into an existing record (top-level keys). Output: { collection, id, data }. Emits `<collection>.updated`.",
            params_schema: json!({
                "type": "object", "additionalProperties": false, "required": ["collection", "id", "data"],
                "properties": {
                    "collection": collection_param(),
                    "id": record_id_param(),
                    "data": { "type": "object" }
                }
            }),
        },
        ActionSpec {
            name: "record.delete",
            description: "Delete a record. Output: { collection, id, deleted }. Emits `<collection>.deleted` when one was deleted.",
            params_schema: record_key_params(),
        },
        ActionSpec {
            name: "record.query",
            description: "List records of a collection by id. Output: { items: [{ id, data }], next } (pass next as `after` for the next page).",
            params_schema: json!({
                "type": "object", "additionalProperties": false, "required": ["collection"],
                "properties": {
                    "collection": collection_param(),
                    "after": { "type": ["string", "null"] },
                    "limit": { "type": "integer", "minimum": 1, "maximum": 1000, "default": 100 }
                }
            }),
        },
        ActionSpec {
            name: "event.emit",
            description: "Publish a platform event of a type with a detail. Output: { id, type }.",
            params_schema: json!({
                "type": "object", "additionalProperties": false, "required": ["type"],
                "properties": {
                    "type": { "type": "string", "pattern": "^[A-Za-z0-9_.-]{1,128}$" },
                    "detail": { "description": "Any JSON value; default {}." }
                }
            }),
        },
        ActionSpec {
            name: "message.send",
            description: "Post a message to a Slack-compatible incoming-webhook URL. Output: { status }.",
            params_schema: json!({
                "type": "object", "additionalProperties": false, "required": ["url", "text"],
                "properties": {
                    "url": { "type": "string", "minLength": 1 },
                    "text": { "type": "string" },
                    "blocks": { "type": "array" }
                }
            }),
        },
    ]
}

/// The spec of an action by name.
pub fn action(name: &str) -> Option<ActionSpec> {
    actions().into_iter().find(|a| a.name == name)
}

/// The `collection` param of the `record.*` actions.
fn collection_param() -> Value {
    json!({ "type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", "description": "Names starting with `_` are the engine's own (refused)." })
}

/// The params of `record.get` and `record.delete`: the one record they address, and nothing else.
fn record_key_params() -> Value {
    json!({
        "type": "object", "additionalProperties": false, "required": ["collection", "id"],
        "properties": {
            "collection": collection_param(),
            "id": record_id_param()
        }
    })
}

/// The `id` param of `record.get` / `update` / `delete`.
fn record_id_param() -> Value {
    json!({ "type": "string", "minLength": 1, "maxLength": 256 })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `params_validator` skips meta-validation: every catalog schema is checked here instead.
    #[test]
    fn every_params_schema_is_a_valid_draft_7_schema() {
        for a in actions() {
            let errors: Vec<String> = jsonschema::draft7::meta::VALIDATOR
                .iter_errors(&a.params_schema)
                .map(|e| format!("{}: {e}", e.instance_path))
                .collect();
            assert!(errors.is_empty(), "{}: {errors:?}", a.name);
            params_validator(&a.params_schema).expect("compiles");
        }
    }
}
