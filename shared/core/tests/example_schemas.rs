//! Every schema the example workflows declare (`inputSchema`, `jsonSchema`) is one that
//! `schema::plainly_valid` vouches for, so loading the examples builds no meta-schema validator
//! (an integration test: wf-core itself reads no files).

use serde_json::Value;
use wf_core::schema::plainly_valid;

#[test]
fn the_examples_schemas_are_plainly_valid() {
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../../workflows");
    let mut seen = 0;
    for entry in std::fs::read_dir(examples).expect("workflows/") {
        let path = entry.expect("entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !name.ends_with(".json") || name == "schema.json" {
            continue;
        }
        let doc: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
        for step in doc["steps"].as_array().expect("steps") {
            for field in ["inputSchema", "jsonSchema"] {
                if let Some(s) = step.get(field) {
                    assert!(plainly_valid(s), "{name}: {field} {s}");
                    seen += 1;
                }
            }
        }
    }
    assert!(seen >= 3, "{seen} schemas in the examples");
}
