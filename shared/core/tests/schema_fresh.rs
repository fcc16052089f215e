//! `workflows/schema.json` is generated from the Rust types; this fails when it is stale.
//! Regenerate with `cargo run -p wf-cli -- schema > workflows/schema.json`
//! (or run this test with `WF_UPDATE_SCHEMA=1`).

use std::path::PathBuf;

#[test]
fn workflows_schema_json_is_fresh() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../workflows/schema.json");
    let generated = wf_core::schema::workflow_schema_pretty();
    if std::env::var_os("WF_UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &generated).expect("write workflows/schema.json");
        return;
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    let on_disk = on_disk.replace("\r\n", "\n");
    assert!(
        on_disk == generated,
        "workflows/schema.json is stale (or missing): it must be exactly what the Rust types generate.\n\
         Run `cargo run -p wf-cli -- schema > workflows/schema.json` and commit the result."
    );
}

#[test]
fn the_schema_accepts_the_examples_it_describes() {
    let schema = wf_core::schema::workflow_schema();
    let validator = jsonschema::validator_for(&schema).expect("the schema compiles");
    let example: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/order-alert.json")).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&example)
        .map(|e| format!("{}: {e}", e.instance_path.as_str()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    // and it rejects a typo an editor should flag
    let mut bad = example.clone();
    bad["steps"][1]["nxt"] = "x".into();
    assert!(!validator.is_valid(&bad));
}
