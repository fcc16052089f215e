//! Workflow files: bytes -> JSON -> structure and semantic validation, the two ways a workflow
//! arrives (`validate_source` for a file's text, as `wf validate` / `wf dev` read it;
//! `parse_json` + `validate_value` for an API body).
//!
//! Properties besides "no panic, no hang":
//! * a report with a workflow has no problems, and the two entry points agree on validity;
//! * a valid workflow, serialized back to JSON, is valid again (the file format round-trips:
//!   what the API stores and serves can be published again).
#![no_main]

use libfuzzer_sys::fuzz_target;
use wf_core::validate::{validate_source, validate_value};
use wf_core::webhook::body::parse_json;

fuzz_target!(|data: &[u8]| {
    let from_text = std::str::from_utf8(data).ok().map(validate_source);
    if let Some(report) = &from_text {
        assert_eq!(report.workflow.is_some(), report.problems.is_empty());
        if let Some(wf) = &report.workflow {
            let value = serde_json::to_value(wf).expect("a workflow serializes");
            let again = validate_value(&value);
            assert!(
                again.is_valid(),
                "a valid workflow serialized back is invalid: {:?}\n{value:#}",
                again.problems
            );
        }
    }
    if let Ok(value) = parse_json(data) {
        let report = validate_value(&value);
        assert_eq!(report.workflow.is_some(), report.problems.is_empty());
        if let Some(text_report) = &from_text {
            assert_eq!(
                report.is_valid(),
                text_report.is_valid(),
                "validate_value and validate_source disagree: {:?} vs {:?}",
                report.problems,
                text_report.problems
            );
        }
    }
});
