//! The JSON Schema of the workflow file format, generated from [`crate::model::Workflow`]
//! with schemars (draft 2020-12). `workflows/schema.json` is this output (`wf schema`); a test
//! in `shared/core/tests/schema_fresh.rs` fails when the file is stale.

use schemars::generate::SchemaSettings;
use serde_json::Value;

use crate::model::Workflow;

/// Title of the generated schema.
pub const TITLE: &str = "Workflow";

/// Description of the generated schema.
pub const DESCRIPTION: &str = "A workflow file (workflows/<id>.json): a graph of steps started by the triggers \
on its start step. Generated from the Rust types by `wf schema`; do not edit by hand.";

/// The JSON Schema (draft 2020-12) of a workflow file.
pub fn workflow_schema() -> Value {
    let generator = SchemaSettings::draft2020_12().into_generator();
    let schema = generator.into_root_schema_for::<Workflow>();
    let mut value = schema.to_value();
    if let Value::Object(map) = &mut value {
        // Keep `$schema`, `title`, `description` first, then the rest in generated order.
        let mut out = serde_json::Map::new();
        out.insert(
            "$schema".into(),
            map.remove("$schema")
                .unwrap_or_else(|| "https://json-schema.org/draft/2020-12/schema".into()),
        );
        map.remove("title");
        map.remove("description");
        out.insert("title".into(), TITLE.into());
        out.insert("description".into(), DESCRIPTION.into());
        out.extend(std::mem::take(map));
        *map = out;
    }
    value
}

/// Compile one of our own schemas (a piece of [`workflow_schema`], a catalog params schema) as
/// draft 7, without jsonschema meta-validating it: tests meta-validate each of them instead.
///
/// Why: jsonschema 0.33 meta-validates every schema it compiles (no public option turns that
/// off) with a process-wide meta-schema validator whose recursive `$ref`s are compiled lazily,
/// once per location the validated schema reaches, and kept: for the deep pieces of the
/// workflow schema the draft 7 one grew from 1.1 to ~6.5 MB, resident in every process that
/// validates a workflow. Only the document passed to `build` is meta-validated, so the schema is
/// registered as a resource and the document built is `{"$ref": <it>}`: the same validator and
/// the same errors (instance paths and messages); only that two-key document meets the (draft 7)
/// meta-schema. Internal `#/...` references resolve inside the resource (its URI is their base).
pub fn draft7_validator_unchecked(
    schema: &Value,
) -> Result<jsonschema::Validator, Box<jsonschema::ValidationError<'static>>> {
    debug_assert!(schema.get("$id").is_none(), "an own schema has no $id");
    validator_unchecked(schema, jsonschema::Draft::Draft7)
}

/// `schema` compiled under `draft` through a `{"$ref": ...}` document (see
/// [`draft7_validator_unchecked`]); that document is meta-validated as draft 7, whose
/// meta-schema validator the workflow schema's pieces build anyway (1.1 MB).
fn validator_unchecked(
    schema: &Value, draft: jsonschema::Draft,
) -> Result<jsonschema::Validator, Box<jsonschema::ValidationError<'static>>> {
    const URI: &str = "urn:wf:schema";
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft7)
        .with_resource(URI, draft.create_resource(schema.clone()))
        .build(&serde_json::json!({ "$ref": URI }))
        .map_err(Box::new)
}

/// A user's JSON Schema (an `inputSchema`, an llm step's `jsonSchema`) compiled with draft
/// 2020-12 semantics unless its `$schema` says otherwise: what `jsonschema::validator_for` does,
/// with the same answers and errors. But a schema that [`plainly_valid`] vouches for (the
/// keywords users write, nothing that resolves) skips jsonschema's meta-validation, which would
/// build the 2020-12 meta-schema validator: ~10 MB (its `$dynamicRef`s), kept for the life of
/// the process, the largest single cost of `wf dev` with the examples.
pub fn user_schema_validator(
    schema: &Value,
) -> Result<jsonschema::Validator, Box<jsonschema::ValidationError<'static>>> {
    if plainly_valid(schema)
        && let Ok(v) = validator_unchecked(schema, jsonschema::Draft::Draft202012)
    {
        return Ok(v);
    }
    // everything else, and the errors, the ordinary way
    jsonschema::validator_for(schema).map_err(Box::new)
}

/// The simple JSON types a `type` may name.
pub(crate) const JSON_TYPES: &[&str] = &[
    "string", "number", "integer", "boolean", "object", "array", "null",
];

/// Whether `schema` is surely valid against the draft 2020-12 meta-schema, judged by hand: true
/// only for a schema without `$schema` (or with 2020-12's) made of the keywords below with
/// values the meta-schema accepts; false means "ask the meta-schema", never "invalid". Leaves
/// out everything that resolves or scopes (`$ref`, `$id`, `$defs`, anchors, dynamic refs), so
/// compiling it behind another document changes nothing. A test checks it against the
/// meta-schema on valid and invalid samples.
pub fn plainly_valid(schema: &Value) -> bool {
    fn schema_ok(v: &Value, depth: usize) -> bool {
        let m = match v {
            Value::Bool(_) => return true,
            Value::Object(m) if depth < 32 => m,
            _ => return false,
        };
        let count = |x: &Value| x.is_u64();
        let schemas = |x: &Value| {
            x.as_array()
                .is_some_and(|a| !a.is_empty() && a.iter().all(|s| schema_ok(s, depth + 1)))
        };
        m.iter().all(|(k, x)| match k.as_str() {
            "$schema" => depth == 0 && x == "https://json-schema.org/draft/2020-12/schema",
            "type" => match x {
                Value::String(t) => JSON_TYPES.contains(&t.as_str()),
                Value::Array(a) => {
                    !a.is_empty()
                        && a.iter().enumerate().all(|(i, t)| {
                            t.as_str().is_some_and(|t| JSON_TYPES.contains(&t))
                                && !a[..i].contains(t)
                        })
                }
                _ => false,
            },
            "properties" => x
                .as_object()
                .is_some_and(|p| p.values().all(|s| schema_ok(s, depth + 1))),
            "additionalProperties" | "items" | "not" => schema_ok(x, depth + 1),
            "allOf" | "anyOf" | "oneOf" => schemas(x),
            "required" => x.as_array().is_some_and(|a| {
                a.iter()
                    .enumerate()
                    .all(|(i, r)| r.is_string() && !a[..i].contains(r))
            }),
            "enum" | "examples" => x.is_array(),
            "const" | "default" => true,
            "minimum" | "maximum" | "exclusiveMinimum" | "exclusiveMaximum" => x.is_number(),
            "multipleOf" => x.as_f64().is_some_and(|n| n > 0.0),
            "minLength" | "maxLength" | "minItems" | "maxItems" | "minProperties"
            | "maxProperties" => count(x),
            "uniqueItems" | "deprecated" | "readOnly" | "writeOnly" => x.is_boolean(),
            "pattern" | "title" | "description" | "format" | "$comment" => x.is_string(),
            _ => false,
        })
    }
    schema_ok(schema, 0)
}

/// [`workflow_schema`] as pretty JSON with a trailing newline: the content of
/// `workflows/schema.json`.
pub fn workflow_schema_pretty() -> String {
    let mut s = serde_json::to_string_pretty(&workflow_schema()).expect("a JSON value serializes");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn schema_is_draft_2020_12_with_title_and_definitions() {
        let s = workflow_schema();
        assert_eq!(s["$schema"], "https://json-schema.org/draft/2020-12/schema");
        assert_eq!(s["title"], TITLE);
        assert!(s["$defs"]["Step"]["oneOf"].as_array().unwrap().len() == 6);
        assert_eq!(
            s["properties"]["id"]["pattern"],
            crate::model::WORKFLOW_ID_PATTERN
        );
        assert!(jsonschema::meta::is_valid(&s));
        assert!(workflow_schema_pretty().ends_with("}\n"));
    }

    fn answers(v: &jsonschema::Validator, instance: &Value) -> Vec<(String, String)> {
        v.iter_errors(instance)
            .map(|e| (e.instance_path.to_string(), e.to_string()))
            .collect()
    }

    /// `plainly_valid` never vouches for a schema the 2020-12 meta-schema refuses, and vouches
    /// for the schemas of the examples (else `wf dev` builds the meta-schema validator again).
    #[test]
    fn plainly_valid_schemas_are_valid_2020_12_schemas() {
        let vouched = [
            json!(true),
            json!({}),
            json!({ "type": "object", "required": ["orderId", "amount"], "additionalProperties": false,
                    "properties": { "orderId": { "type": "string", "minLength": 1, "pattern": "^A-" },
                                    "amount": { "type": ["number", "null"], "minimum": 0, "multipleOf": 0.5 },
                                    "tags": { "type": "array", "items": { "enum": ["a", "b"] }, "uniqueItems": true },
                                    "email": { "type": "string", "format": "email", "description": "d" },
                                    "kind": { "const": 1, "default": 1, "examples": [1] } } }),
            json!({ "$schema": "https://json-schema.org/draft/2020-12/schema",
                    "anyOf": [{ "type": "string" }, { "not": { "type": "null" } }],
                    "oneOf": [true, false], "allOf": [{ "maxProperties": 3 }] }),
        ];
        for s in &vouched {
            assert!(plainly_valid(s), "{s}");
            assert!(jsonschema::draft202012::meta::is_valid(s), "{s}");
        }
        // Every schema of the examples in workflows/ qualifies: tests/example_schemas.rs.
        let refused = [
            json!(1),
            json!("object"),
            json!({ "type": "numbr" }),
            json!({ "type": [] }),
            json!({ "type": ["string", "string"] }),
            json!({ "required": "amount" }),
            json!({ "required": ["a", "a"] }),
            json!({ "minLength": -1 }),
            json!({ "maxItems": 1.5 }),
            json!({ "multipleOf": 0 }),
            json!({ "properties": { "a": { "type": 3 } } }),
            json!({ "items": [{ "type": "string" }] }),
            json!({ "anyOf": [] }),
            json!({ "enum": 1 }),
            json!({ "pattern": 1 }),
            json!({ "uniqueItems": "yes" }),
            json!({ "$schema": "http://json-schema.org/draft-07/schema#", "type": "string" }),
        ];
        for s in &refused {
            assert!(!plainly_valid(s), "{s}");
        }
        // what it leaves to the meta-schema
        for s in [
            json!({ "$ref": "#/$defs/a", "$defs": { "a": true } }),
            json!({ "$id": "https://example.com/s" }),
            json!({ "prefixItems": [true] }),
            json!({ "x-custom": 1 }),
        ] {
            assert!(!plainly_valid(&s), "{s}");
        }
    }

    /// A plainly valid schema compiled behind a `$ref` answers like `validator_for`, and a
    /// schema that does not compile fails with the same error either way.
    #[test]
    fn user_schemas_answer_like_validator_for() {
        let schemas = [
            json!({ "type": "object", "required": ["orderId", "amount"], "additionalProperties": false,
                    "properties": { "orderId": { "type": "string", "minLength": 2, "pattern": "^A-" },
                                    "amount": { "type": ["number", "null"], "minimum": 0, "exclusiveMaximum": 10 },
                                    "tags": { "type": "array", "items": { "enum": ["a", "b"] }, "uniqueItems": true, "maxItems": 2 },
                                    "email": { "type": "string", "format": "email" },
                                    "when": { "type": "string", "format": "date-time" },
                                    "kind": { "const": 1 },
                                    "alt": { "oneOf": [{ "type": "integer" }, { "type": "number", "multipleOf": 0.5 }] },
                                    "no": { "not": { "type": "string" } },
                                    "nested": { "type": "object", "minProperties": 1,
                                                "additionalProperties": { "type": "boolean" } } } }),
            json!({ "$schema": "https://json-schema.org/draft/2020-12/schema", "type": "string", "maxLength": 3 }),
            json!({ "anyOf": [{ "type": "string" }, { "type": "integer" }], "allOf": [{ "not": { "const": 3 } }] }),
            json!(false),
        ];
        let instances = [
            json!(null),
            json!(3),
            json!("abcd"),
            json!({}),
            json!({ "orderId": "B", "amount": 10, "tags": ["a", "a", "c"], "email": "nope",
                    "when": "yesterday", "kind": 2, "alt": 0.25, "no": "s", "nested": { "x": 1 },
                    "extra": true }),
            json!({ "orderId": "A-1", "amount": null, "tags": [], "email": "a@b.c",
                    "when": "2026-01-01T00:00:00Z", "kind": 1, "alt": 1, "no": 1, "nested": { "x": true } }),
        ];
        for s in &schemas {
            assert!(plainly_valid(s), "{s}");
            let ours = user_schema_validator(s).expect("compiles");
            let theirs = jsonschema::validator_for(s).expect("compiles");
            for i in &instances {
                assert_eq!(answers(&ours, i), answers(&theirs, i), "{s} on {i}");
            }
        }
        for s in [
            json!({ "type": "string", "pattern": "(" }),
            json!({ "properties": { "a": { "pattern": "[" } } }),
            json!({ "type": "numbr" }),
        ] {
            let (Err(ours), Err(theirs)) =
                (user_schema_validator(&s), jsonschema::validator_for(&s))
            else {
                panic!("{s} compiles");
            };
            assert_eq!(
                (ours.instance_path.to_string(), ours.to_string()),
                (theirs.instance_path.to_string(), theirs.to_string()),
                "{s}"
            );
        }
    }
}
