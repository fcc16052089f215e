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
/// off) with a process-wide draft 7 meta-schema validator whose recursive `$ref`s are compiled
/// lazily, once per location the validated schema reaches, and kept: for the deep pieces of the
/// workflow schema that grew to ~6.5 MB, resident in every process that validates a workflow.
/// Only the document passed to `build` is meta-validated, so the schema is registered as a
/// resource and the document built is `{"$ref": <it>}`: the same validator, the same errors
/// (instance paths and messages), no meta-schema. Internal `#/...` references resolve inside
/// the resource (its URI is their base); the schema must have no `$id` of its own.
pub fn draft7_validator_unchecked(
    schema: &Value,
) -> Result<jsonschema::Validator, Box<jsonschema::ValidationError<'static>>> {
    const URI: &str = "urn:wf:own-schema";
    debug_assert!(schema.get("$id").is_none(), "an own schema has no $id");
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft7)
        .with_resource(
            URI,
            jsonschema::Draft::Draft7.create_resource(schema.clone()),
        )
        .build(&serde_json::json!({ "$ref": URI }))
        .map_err(Box::new)
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
}
